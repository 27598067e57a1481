#include "models/vpa.hpp"

#include <gtest/gtest.h>

#include <cmath>

using namespace tender;

namespace {
constexpr double day = 86400.0;
} // namespace

TEST(vpa_buckets, exponential_scheme_as_in_vpa) {
  auto m = vpa_buckets::memory();
  // ceil(log(1e12 * 0.05 / 1e7 + 1) / log(1.05)) + 1
  EXPECT_EQ(m.count(), 176u);
  EXPECT_EQ(m.find(0), 0u);
  EXPECT_EQ(m.find(9.99e6), 0u);
  EXPECT_EQ(m.find(1.01e7), 1u);
  EXPECT_DOUBLE_EQ(m.start(0), 0);
  EXPECT_DOUBLE_EQ(m.start(1), 1e7);
  EXPECT_NEAR(m.start(2), 2.05e7, 1e-3);
  // Each bucket is 5 % wider than the one before it.
  for (std::size_t b = 2; b < 50; ++b)
    EXPECT_NEAR((m.start(b + 1) - m.start(b)) / (m.start(b) - m.start(b - 1)), 1.05, 1e-9);
  // Every value lands in the bucket whose range holds it; beyond the maximum, the last.
  for (double v : {1.5e7, 3.3e8, 9.2e8, 4.1e10})
    EXPECT_TRUE(m.start(m.find(v)) <= v && v < m.start(m.find(v) + 1)) << v;
  EXPECT_EQ(m.find(5e12), m.count() - 1);
  auto c = vpa_buckets::cpu();
  EXPECT_DOUBLE_EQ(c.start(1), 0.01);
  EXPECT_EQ(c.count(), static_cast<std::size_t>(std::ceil(std::log(1000 * 0.05 / 0.01 + 1) /
                                                          std::log(1.05))) + 1);
}

TEST(decaying_histogram, percentile_is_the_end_of_the_bucket_reaching_the_weight) {
  decaying_histogram h(vpa_buckets::cpu(), day);
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.percentile(0.9), 0.0);
  for (int v = 1; v <= 10; ++v)
    h.add_sample(v, 1.0, 0.0);
  const auto& b = h.buckets();
  EXPECT_DOUBLE_EQ(h.total_weight(), 10.0);
  // 90 % of the weight is reached at the sample 9: the answer is its bucket's end.
  EXPECT_DOUBLE_EQ(h.percentile(0.9), b.start(b.find(9.0) + 1));
  EXPECT_GT(h.percentile(0.9), 9.0);
  EXPECT_LT(h.percentile(0.9), 9.0 * 1.06);
  EXPECT_DOUBLE_EQ(h.percentile(0.5), b.start(b.find(5.0) + 1));
  EXPECT_DOUBLE_EQ(h.percentile(1.0), b.start(b.find(10.0) + 1));
  EXPECT_DOUBLE_EQ(h.percentile(0.0), b.start(b.find(1.0) + 1));
}

TEST(decaying_histogram, the_last_bucket_answers_its_start) {
  decaying_histogram h(vpa_buckets::cpu(), day);
  h.add_sample(5000.0, 1.0, 0.0); // beyond the 1000-core maximum
  const auto& b = h.buckets();
  EXPECT_DOUBLE_EQ(h.percentile(0.9), b.start(b.count() - 1));
}

TEST(decaying_histogram, newer_samples_weigh_twice_per_half_life) {
  decaying_histogram h(vpa_buckets::cpu(), day);
  h.add_sample(1.0, 1.0, 0.0);
  h.add_sample(10.0, 1.0, day); // one half-life later: weight 2
  EXPECT_DOUBLE_EQ(h.total_weight(), 3.0);
  const auto& b = h.buckets();
  EXPECT_DOUBLE_EQ(h.bucket_weight(b.find(1.0)), 1.0);
  EXPECT_DOUBLE_EQ(h.bucket_weight(b.find(10.0)), 2.0);
  // Without decay the 40th percentile would be the older sample (0.8 of 2); with it
  // 1.2 of 3 needs the newer one.
  EXPECT_DOUBLE_EQ(h.percentile(0.4), b.start(b.find(10.0) + 1));
  EXPECT_DOUBLE_EQ(h.percentile(0.3), b.start(b.find(1.0) + 1));

  decaying_histogram same_time(vpa_buckets::cpu(), day);
  same_time.add_sample(1.0, 1.0, 0.0);
  same_time.add_sample(10.0, 1.0, 0.0);
  EXPECT_DOUBLE_EQ(same_time.percentile(0.4), b.start(b.find(1.0) + 1));
  // Three half-lives: 1 against 8.
  decaying_histogram later(vpa_buckets::cpu(), day);
  later.add_sample(1.0, 1.0, 0.0);
  later.add_sample(10.0, 1.0, 3 * day);
  EXPECT_DOUBLE_EQ(later.total_weight(), 9.0);
  EXPECT_DOUBLE_EQ(later.percentile(0.12), b.start(b.find(10.0) + 1));
}

TEST(decaying_histogram, renormalises_far_in_the_future_without_changing_answers) {
  decaying_histogram h(vpa_buckets::memory(), day);
  h.add_sample(1e9, 1.0, 0.0);
  h.add_sample(2e9, 1.0, 50 * day);
  EXPECT_EQ(h.reference_time(), 0.0);
  // 150 half-lives after the reference: the reference moves to the sample's time and
  // the old weights shrink by 2^-150 (below epsilon: they count as gone).
  h.add_sample(4e9, 1.0, 150 * day + 3600);
  EXPECT_DOUBLE_EQ(h.reference_time(), 150 * day);
  EXPECT_NEAR(h.total_weight(), std::exp2(1.0 / 24), 1e-9);
  const auto& b = h.buckets();
  EXPECT_DOUBLE_EQ(h.percentile(0.1), b.start(b.find(4e9) + 1));

  // Within the allowed range nothing moves and relative weights are exact.
  decaying_histogram g(vpa_buckets::memory(), day);
  g.add_sample(1e9, 1.0, 0.0);
  g.add_sample(2e9, 1.0, 99 * day);
  EXPECT_EQ(g.reference_time(), 0.0);
  EXPECT_DOUBLE_EQ(g.bucket_weight(b.find(2e9)) / g.bucket_weight(b.find(1e9)), std::exp2(99));
}

TEST(vpa_recommender, target_is_p90_plus_fifteen_percent) {
  vpa_recommender r; // memory
  const auto& b = r.options().buckets;
  for (int i = 0; i < 20; ++i)
    r.observe(7, -1, 1e9, i * 600.0);
  auto rec = r.recommend(7, -1);
  EXPECT_EQ(rec.basis, vpa_basis::user);
  EXPECT_DOUBLE_EQ(rec.value, b.start(b.find(1e9) + 1) * 1.15);
  EXPECT_DOUBLE_EQ(r.percentile(7, -1, 0.9), b.start(b.find(1e9) + 1));

  vpa_options o;
  o.margin = 0;
  o.min_value = 250.0 * 1024 * 1024;
  vpa_recommender floor(o);
  floor.observe(1, -1, 1e7, 0);
  EXPECT_DOUBLE_EQ(floor.recommend(1, -1).value, 250.0 * 1024 * 1024);
}

TEST(vpa_recommender, keyed_by_user_and_executable_with_fallbacks) {
  vpa_options o;
  o.buckets = vpa_buckets::cpu();
  vpa_recommender r(o);
  EXPECT_EQ(r.recommend(1, 5).basis, vpa_basis::none);
  EXPECT_EQ(r.recommend(1, 5).value, -1);
  const auto& b = o.buckets;
  auto target = [&](double v) { return b.start(b.find(v) + 1) * 1.15; };
  r.observe(1, 5, 4.0, 0);   // user 1 running executable 5
  r.observe(1, -1, 1.0, 10); // user 1, executable unknown
  r.observe(2, 6, 16.0, 20);
  EXPECT_EQ(r.recommend(1, 5).basis, vpa_basis::user_exe);
  EXPECT_DOUBLE_EQ(r.recommend(1, 5).value, target(4.0));
  // An executable the user has not run: the user's own histogram (4 and 1).
  EXPECT_EQ(r.recommend(1, 9).basis, vpa_basis::user);
  EXPECT_DOUBLE_EQ(r.recommend(1, 9).value, target(4.0));
  EXPECT_DOUBLE_EQ(r.percentile(1, 9, 0.5), b.start(b.find(1.0) + 1));
  // A new user: all jobs.
  EXPECT_EQ(r.recommend(3, -1).basis, vpa_basis::global);
  EXPECT_DOUBLE_EQ(r.recommend(3, -1).value, target(16.0));
  EXPECT_STREQ(to_string(vpa_basis::user_exe), "user+executable");
}
