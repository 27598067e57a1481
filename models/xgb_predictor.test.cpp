#include "models/xgb_predictor.hpp"
#include "models/evaluate.hpp"
#include "models/test_data.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

using namespace tender;

namespace {

job_spec spec(const std::string& user, usec walltime, millicores cpu) {
  job_spec s;
  s.user = user;
  s.command = {"sim", "--fast"};
  s.walltime = walltime;
  s.hints.cpu = cpu;
  return s;
}

} // namespace

TEST(xgb_predictor, maps_a_live_job_onto_the_trace_features) {
  auto r = xgb_predictor::to_record(spec("ana", 20 * 60 * sec_us, 1500), 86400 * sec_us);
  EXPECT_EQ(r.req_time, 1200);
  EXPECT_EQ(r.procs, 2);
  EXPECT_EQ(r.submit, 86400);
  EXPECT_EQ(r.user, name_id("ana") % 1000003);
  EXPECT_EQ(r.exe, name_id("sim") % 1000003);
  EXPECT_EQ(r.runtime, -1);
}

TEST(xgb_predictor, falls_back_to_the_baseline_without_a_usable_model) {
  xgb_predictor p("/nonexistent/model.json");
  EXPECT_FALSE(p.model_usable());
  EXPECT_EQ(p.load_error(), "/nonexistent/model.json: cannot open the model file");
  EXPECT_EQ(p.version(), "baseline:last2");
  auto s = spec("ana", 600 * sec_us, 1000);
  auto got = p.predict(s, {}, 0);
  EXPECT_EQ(got.model_version, "baseline:walltime");
  EXPECT_EQ(got.runtime, 300 * sec_us);
  for (usec run : {100 * sec_us, 200 * sec_us})
    p.observe(finished_job{s, 0, run, 0, 0});
  EXPECT_EQ(p.predict(s, {}, 0).model_version, "baseline:last2");
  EXPECT_EQ(p.predict(s, {}, 0).runtime, 150 * sec_us);
}

TEST(xgb_predictor, predicts_with_an_interval_from_a_trained_model) {
  swf_trace t;
  if (!test_data::trace_head("CTC-SP2-filtered.swf.gz", 3000, t))
    GTEST_SKIP() << "shared traces not found";
  std::vector<feature_vector> x;
  std::vector<double> y;
  training_rows(to_records(t), x, y);
  model_config c;
  c.rounds = 30;
  runtime_model m;
  std::string err;
  ASSERT_TRUE(runtime_model::train(x, y, c, m, err)) << err;
  auto version = m.version();
  xgb_predictor p(std::move(m));
  ASSERT_TRUE(p.model_usable());
  EXPECT_EQ(p.version(), version);
  auto s = spec("bo", 3600 * sec_us, 8000);
  for (int i = 0; i < 5; ++i)
    p.observe(finished_job{s, i * 4000 * sec_us, 1800 * sec_us, 0, 0});
  auto got = p.predict(s, {}, 30000 * sec_us);
  EXPECT_EQ(got.model_version, version);
  EXPECT_LE(got.runtime_lo, got.runtime);
  EXPECT_LE(got.runtime, got.runtime_hi);
  EXPECT_LE(got.runtime_hi, s.walltime);
  EXPECT_GT(got.runtime_hi, got.runtime_lo);
  EXPECT_NE(got.basis.find("conformalized quantile regression"), std::string::npos);
}

// The replay counts a job as in flight from its submission; the live predictor must
// too, not only once the job has finished (then `user_running` was always 0).
TEST(xgb_predictor, counts_a_users_jobs_in_flight_from_their_submission) {
  const auto& names = feature_names();
  auto at = [&](const char* name) {
    return static_cast<std::size_t>(std::find(names.begin(), names.end(), name) - names.begin());
  };
  const auto running = at("user_running"), since_submit = at("since_user_submit_log");
  xgb_predictor p("/nonexistent/model.json"); // the history is kept without a model too
  auto s = spec("cy", 3600 * sec_us, 4000);
  auto other = spec("di", 3600 * sec_us, 4000);
  const usec t0 = 100000 * sec_us;
  EXPECT_EQ(p.features(s, t0)[running], 0);
  p.submitted(s, t0);
  p.submitted(s, t0 + 10 * sec_us);
  EXPECT_EQ(p.features(s, t0 + 20 * sec_us)[running], 2);
  EXPECT_EQ(p.features(other, t0 + 20 * sec_us)[running], 0);
  // Time since the user's last submission: 10 s (log1p), not since a finish.
  EXPECT_FLOAT_EQ(p.features(s, t0 + 20 * sec_us)[since_submit],
                  static_cast<float>(std::log1p(10.0)));
  // The first finishes: one left in flight, and its submission is not counted twice.
  p.observe(finished_job{s, t0, 600 * sec_us, t0 + 600 * sec_us, 0, 0});
  EXPECT_EQ(p.features(s, t0 + 700 * sec_us)[running], 1);
  p.observe(finished_job{s, t0 + 10 * sec_us, 600 * sec_us, t0 + 610 * sec_us, 0, 0});
  EXPECT_EQ(p.features(s, t0 + 700 * sec_us)[running], 0);
  // A finished job never announced (history replayed into a new predictor) counts once.
  p.observe(finished_job{other, t0, 60 * sec_us, t0 + 60 * sec_us, 0, 0});
  EXPECT_EQ(p.features(other, t0 + 700 * sec_us)[running], 0);
}

// A job refused, cancelled or failed before it ran is never observed finishing; the
// agent withdraws it, so it does not stay in its user's jobs in flight for ever.
TEST(xgb_predictor, a_job_withdrawn_before_it_ran_leaves_the_users_jobs_in_flight) {
  const auto& names = feature_names();
  const auto running = static_cast<std::size_t>(
      std::find(names.begin(), names.end(), "user_running") - names.begin());
  xgb_predictor p("/nonexistent/model.json");
  auto s = spec("ed", 3600 * sec_us, 4000);
  auto other = spec("fa", 3600 * sec_us, 4000);
  const usec t0 = 100000 * sec_us;
  p.submitted(s, t0);
  p.submitted(s, t0 + 10 * sec_us);
  p.withdrawn(s); // the first was refused
  EXPECT_EQ(p.features(s, t0 + 20 * sec_us)[running], 1);
  // A withdrawal of a job never announced here (submitted before a restart) changes nothing.
  p.withdrawn(other);
  EXPECT_EQ(p.features(other, t0 + 20 * sec_us)[running], 0);
  // The second runs and finishes: none left, and nothing goes below zero.
  p.observe(finished_job{s, t0 + 10 * sec_us, 600 * sec_us, t0 + 610 * sec_us, 0, 0});
  EXPECT_EQ(p.features(s, t0 + 700 * sec_us)[running], 0);
  p.withdrawn(s);
  EXPECT_EQ(p.features(s, t0 + 700 * sec_us)[running], 0);
}
