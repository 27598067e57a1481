#include "models/retrainer.hpp"

#include <gtest/gtest.h>

#include <random>

using namespace tender;

namespace {

/// A node's history where the user's last two runs say little and the requested
/// time says a lot: each user alternates at random between a short and a long kind
/// of job, and each kind runs about the same share of its request.
std::vector<finished_job> history(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> noise(0.9, 1.1);
  std::vector<finished_job> out;
  usec t = 1'700'000'000 * sec_us;
  for (std::size_t i = 0; i < n; ++i) {
    finished_job f;
    f.spec.user = "u" + std::to_string(rng() % 4);
    bool longer = rng() % 2 == 0;
    f.spec.command = {longer ? "solve" : "prep"};
    f.spec.walltime = (longer ? 4 * 3600 : 300) * sec_us;
    f.spec.hints.cpu = longer ? 4000 : 1000;
    f.submitted_at = t;
    auto run_s = (longer ? 3 * 3600 : 60) * noise(rng);
    f.runtime = static_cast<usec>(run_s * sec_us);
    f.finished_at = t + 5 * sec_us + f.runtime;
    t += 600 * sec_us;
    out.push_back(f);
  }
  return out;
}

model_config small_model() {
  model_config c;
  c.rounds = 30;
  c.max_depth = 4;
  return c;
}

} // namespace

TEST(retrainer, maps_finished_jobs_to_records_in_submit_order) {
  auto h = history(10, 1);
  std::swap(h[0], h[5]);
  auto recs = history_records(h);
  ASSERT_EQ(recs.size(), 10u);
  for (std::size_t i = 1; i < recs.size(); ++i)
    EXPECT_LE(recs[i - 1].submit, recs[i].submit);
  auto r = history_record(h[5]); // the original first job
  EXPECT_DOUBLE_EQ(r.submit, 1'700'000'000.0);
  EXPECT_NEAR(r.end, r.submit + 5 + r.runtime, 1e-6);
}

TEST(retrainer, does_nothing_below_the_minimum_history) {
  retrain_options o;
  o.min_jobs = 200;
  runtime_model cand;
  auto got = retrain_runtime(history(150, 2), nullptr, o, cand);
  EXPECT_FALSE(got.trained);
  EXPECT_FALSE(got.replaced);
  EXPECT_EQ(got.reason, "150 finished jobs, retraining needs 200");
  EXPECT_FALSE(cand.usable());
}

TEST(retrainer, a_model_that_beats_the_baseline_replaces_it) {
  retrain_options o;
  o.model = small_model();
  runtime_model cand;
  auto got = retrain_runtime(history(400, 3), nullptr, o, cand);
  ASSERT_TRUE(got.trained) << got.reason;
  EXPECT_TRUE(got.replaced) << got.reason;
  EXPECT_EQ(got.old_version, "baseline:last2");
  EXPECT_EQ(got.new_version, cand.version());
  EXPECT_LT(got.new_mae_s, got.old_mae_s);
  EXPECT_EQ(got.n_holdout, 80u);
  // Only jobs finished before the first held-out submission are trained on: the
  // long jobs submitted in the last three hours before it had not finished.
  EXPECT_LT(got.n_train, 320u);
  EXPECT_GT(got.n_train, 300u);
  EXPECT_TRUE(cand.usable());
}

TEST(retrainer, keeps_the_current_model_when_the_candidate_is_worse) {
  // Two configurations trained on the same history; whichever is better on the held-out
  // jobs becomes the current model, and retraining with the other must keep it.
  auto h = history(400, 4);
  retrain_options a, b;
  a.model = small_model();
  b.model = small_model();
  b.model.rounds = 1;
  b.model.max_depth = 1;
  runtime_model ma, mb;
  auto ra = retrain_runtime(h, nullptr, a, ma);
  auto rb = retrain_runtime(h, nullptr, b, mb);
  ASSERT_TRUE(ra.replaced && rb.replaced) << ra.reason << " / " << rb.reason;
  ASSERT_NE(ra.new_mae_s, rb.new_mae_s);
  bool a_better = ra.new_mae_s < rb.new_mae_s;
  const runtime_model& current = a_better ? ma : mb;
  const retrain_options& other = a_better ? b : a;

  runtime_model cand;
  auto got = retrain_runtime(h, &current, other, cand);
  ASSERT_TRUE(got.trained) << got.reason;
  EXPECT_FALSE(got.replaced) << got.reason;
  EXPECT_EQ(got.old_version, current.version());
  EXPECT_EQ(got.old_mae_s, std::min(ra.new_mae_s, rb.new_mae_s));
  EXPECT_EQ(got.new_mae_s, std::max(ra.new_mae_s, rb.new_mae_s));
  EXPECT_FALSE(cand.usable()); // untouched
  EXPECT_NE(got.reason.find("kept the current model"), std::string::npos) << got.reason;
}
