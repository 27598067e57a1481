// The node's model lifecycle: retraining on its finished jobs replaces the model
// only when better, persists it, and a restarted node predicts with it.

#include "actors/context.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

using namespace tender;

namespace {

struct temp_data_dir {
  std::string path;
  temp_data_dir() {
    char tmpl[] = "/tmp/tender-ctx-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_data_dir() { std::filesystem::remove_all(path); }
};

std::unique_ptr<node_context> make_context(const std::string& dir, std::int64_t min_jobs) {
  auto c = std::make_unique<node_context>();
  c->data_dir = dir;
  c->clock = [] { return usec{1'800'000'000} * sec_us; };
  c->cfg.models_retrain_min_jobs = min_jobs;
  return c;
}

/// Jobs whose requested time tells their run time and whose user's last two do not.
std::vector<finished_job> history(std::size_t n) {
  std::mt19937_64 rng(7);
  std::vector<finished_job> out;
  usec t = 1'700'000'000 * sec_us;
  for (std::size_t i = 0; i < n; ++i) {
    finished_job f;
    f.spec.user = "u" + std::to_string(rng() % 3);
    bool longer = rng() % 2 == 0;
    f.spec.command = {longer ? "solve" : "prep"};
    f.spec.walltime = (longer ? 4 * 3600 : 300) * sec_us;
    f.submitted_at = t;
    f.runtime = (longer ? 3 * 3600 : 60) * sec_us + static_cast<usec>(rng() % 30) * sec_us;
    f.finished_at = t + f.runtime;
    t += 600 * sec_us;
    out.push_back(f);
  }
  return out;
}

} // namespace

TEST(node_context, retraining_replaces_the_baseline_and_survives_a_restart) {
  temp_data_dir d;
  auto c = make_context(d.path, 100);
  c->load_model();
  EXPECT_EQ(c->model_info().source, "baseline");
  for (auto& j : history(300))
    c->observe(j);
  auto m = c->retrain();
  ASSERT_EQ(m.replaced, 1) << m.last_retrain;
  EXPECT_EQ(m.retrains, 1);
  EXPECT_EQ(m.source, "retrained");
  EXPECT_EQ(m.version.rfind("xgboost:", 0), 0u) << m.version;
  EXPECT_LT(m.last_new_mae_s, m.last_old_mae_s);
  EXPECT_EQ(m.finished_jobs, 300);
  // The next job is predicted by the new model.
  job_spec s;
  s.user = "u1";
  s.command = {"solve"};
  s.walltime = 4 * 3600 * sec_us;
  EXPECT_EQ(c->predict(s, {}).model_version, m.version);

  // A restarted node (same data dir) loads the retrained model, not the baseline.
  auto again = make_context(d.path, 100);
  again->load_model();
  auto m2 = again->model_info();
  EXPECT_EQ(m2.version, m.version);
  EXPECT_EQ(m2.source, "retrained");
  EXPECT_EQ(m2.load_error, "");
}

TEST(node_context, a_damaged_retrained_model_falls_back_with_its_reason) {
  temp_data_dir d;
  std::filesystem::create_directories(d.path + "/models");
  {
    std::ofstream(d.path + "/models/runtime-x.json") << "{ not json";
    std::ofstream(d.path + "/models/current") << "runtime-x.json\n";
  }
  auto c = make_context(d.path, 100);
  c->load_model();
  auto m = c->model_info();
  EXPECT_EQ(m.source, "baseline");
  EXPECT_EQ(m.version, "baseline:last2");
  EXPECT_NE(m.load_error.find("runtime-x.json"), std::string::npos) << m.load_error;
}

TEST(context, requested_runtime_plans_with_the_users_requested_times_and_never_retrains) {
  temp_data_dir d;
  auto c = make_context(d.path, 20);
  c->cfg.models_runtime = "requested";
  c->load_model();
  EXPECT_EQ(c->model_info().source, "requested");
  job_spec spec;
  spec.user = "alice";
  spec.walltime = 7200 * sec_us;
  auto p = c->predict(spec, resource_profile{});
  EXPECT_EQ(p.runtime, 7200 * sec_us);
  EXPECT_EQ(p.runtime_lo, p.runtime);
  EXPECT_EQ(p.runtime_hi, p.runtime);
  EXPECT_EQ(p.model_version, "requested");
  // Without a requested time: an hour, then the median of the finished jobs.
  spec.walltime = 0;
  EXPECT_EQ(c->predict(spec, resource_profile{}).runtime, 3600 * sec_us);
  for (usec s : {100, 300, 200, 900}) {
    finished_job f;
    f.spec = spec;
    f.runtime = s * sec_us;
    c->observe(f);
  }
  EXPECT_EQ(c->predict(spec, resource_profile{}).runtime, 250 * sec_us);
  // Retraining leaves the operator's choice alone.
  for (int i = 0; i < 40; ++i) {
    finished_job f;
    f.spec = spec;
    f.runtime = (60 + i) * sec_us;
    c->observe(f);
  }
  auto m = c->retrain();
  EXPECT_NE(m.last_retrain.find("requested"), std::string::npos) << m.last_retrain;
  EXPECT_EQ(c->predict(spec, resource_profile{}).model_version, "requested");
}
