// Statistics and extrapolation on synthetic samples: exact inputs, exact expectations.
// (Real workloads through the executor: profiling.test.cpp.)

#include "providers/profile_stats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

namespace tender {
namespace {

constexpr double mb = 1e6;

/// 20 Hz samples of rss(t) for `seconds`, starting at t = 0.05 s; cpu constant.
std::vector<usage_sample> samples(double seconds, const std::function<double(double)>& rss,
                                  millicores cpu = 1000, double noise_mb = 0, unsigned seed = 1) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> n(0, noise_mb * mb);
  std::vector<usage_sample> v;
  for (int i = 1; i * 0.05 <= seconds + 1e-9; ++i) {
    const double t = i * 0.05;
    usage_sample s;
    s.at = static_cast<usec>(std::llround(t * 1e6));
    s.cpu = cpu;
    s.rss = static_cast<bytes_t>(std::max(0.0, rss(t) + (noise_mb > 0 ? n(gen) : 0)));
    s.io_write = static_cast<bytes_t>(t * 2 * mb); // 2 MB/s
    s.net_bytes = static_cast<bytes_t>(t * 1 * mb);
    s.threads = 3;
    v.push_back(s);
  }
  return v;
}

TEST(describe, mean_stddev_p95_and_peak) {
  std::vector<double> v;
  for (int i = 20; i >= 1; --i)
    v.push_back(i);
  auto s = describe(v);
  EXPECT_DOUBLE_EQ(s.mean, 10.5);
  EXPECT_NEAR(s.stddev, std::sqrt((20.0 * 20.0 - 1) / 12), 1e-12);
  EXPECT_DOUBLE_EQ(s.p95, 19); // nearest rank: ceil(0.95 * 20) = 19th value
  EXPECT_DOUBLE_EQ(s.peak, 20);
  EXPECT_EQ(s.n, 20u);
  EXPECT_EQ(describe({}), series_stats{});
  auto one = describe({5});
  EXPECT_DOUBLE_EQ(one.p95, 5);
  EXPECT_DOUBLE_EQ(one.stddev, 0);
}

TEST(least_squares, recovers_a_line_and_reports_fit_quality) {
  auto f = least_squares({0, 1, 2, 3}, {1, 3, 5, 7});
  EXPECT_DOUBLE_EQ(f.slope, 2);
  EXPECT_DOUBLE_EQ(f.intercept, 1);
  EXPECT_DOUBLE_EQ(f.r2, 1);
  auto flat = least_squares({0, 1, 2}, {4, 4, 4});
  EXPECT_DOUBLE_EQ(flat.slope, 0);
  EXPECT_DOUBLE_EQ(flat.r2, 0);
  EXPECT_EQ(least_squares({}, {}).n, 0u);
}

TEST(summarize, skips_the_first_cpu_sample_and_takes_rates_and_totals) {
  auto v = samples(2, [](double) { return 100 * mb; }, 1500);
  v.front().cpu = 0; // the executor's first sample has no CPU delta
  auto s = summarize(v);
  EXPECT_DOUBLE_EQ(s.cpu.mean, 1.5);
  EXPECT_DOUBLE_EQ(s.cpu.stddev, 0);
  EXPECT_DOUBLE_EQ(s.rss.peak, 100 * mb);
  EXPECT_EQ(s.io_write, v.back().io_write);
  EXPECT_NEAR(s.io_write_rate.mean, 2 * mb, 0.01 * mb);
  EXPECT_NEAR(s.net_rate.mean, 1 * mb, 0.01 * mb);
  EXPECT_DOUBLE_EQ(s.threads.mean, 3);
  EXPECT_NEAR(s.mem_growth.slope, 0, 1e-6);
}

// The case: grows linearly to 400 MB over 30 s, profiled for 5 s, walltime 30 s.
TEST(project, linear_growth_is_extrapolated_to_the_full_runtime) {
  auto v = samples(5, [](double t) { return 400 * mb * t / 30; }, 1000, 2, 7);
  auto s = summarize(v, 0);
  EXPECT_NEAR(s.rss.peak, 400 * mb * 5 / 30, 10 * mb); // what the run saw: ~67 MB
  auto p = project(s, 30 * sec_us, false);
  EXPECT_TRUE(p.grows) << p.basis;
  EXPECT_NEAR(static_cast<double>(p.mem_peak), 400 * mb, 0.2 * 400 * mb) << p.basis;
  EXPECT_NEAR(static_cast<double>(p.mem_peak), 400 * mb, 0.05 * 400 * mb) << "tighter than required";
  EXPECT_NEAR(static_cast<double>(p.mem_mean), 200 * mb, 0.1 * 200 * mb);
  EXPECT_NEAR(static_cast<double>(p.io_write), 60 * mb, 1 * mb); // 2 MB/s x 30 s
  EXPECT_NEAR(static_cast<double>(p.net_bytes), 30 * mb, 1 * mb);
}

TEST(project, a_ramp_that_settled_is_not_extrapolated) {
  auto v = samples(5, [](double t) { return std::min(300 * mb, 300 * mb * t / 1.0); }, 1000, 1, 3);
  auto p = project(summarize(v, 0), 60 * sec_us, false);
  EXPECT_FALSE(p.grows) << p.basis;
  EXPECT_NEAR(static_cast<double>(p.mem_peak), 300 * mb, 5 * mb);
}

TEST(project, flat_noise_is_not_growth) {
  auto v = samples(5, [](double) { return 150 * mb; }, 1000, 5, 11);
  auto p = project(summarize(v, 0), 3600 * sec_us, false);
  EXPECT_FALSE(p.grows) << p.basis;
  EXPECT_LT(static_cast<double>(p.mem_peak), 170 * mb);
}

TEST(project, a_completed_run_is_the_whole_job) {
  auto v = samples(5, [](double t) { return 400 * mb * t / 30; });
  auto p = project(summarize(v, 0), 30 * sec_us, true);
  EXPECT_FALSE(p.grows);
  EXPECT_EQ(p.mem_peak, v.back().rss);
  EXPECT_EQ(p.io_write, v.back().io_write);
}

// The demo's memory-grow job: its representative run allocates 60 MB at 0 s and at 1 s and
// ends at 2.2 s; the job itself does it five times in about 6 s (300 MB).
TEST(project, a_completed_representative_run_is_scaled_up_by_its_whole_trend) {
  auto v = samples(2.2, [](double t) { return t < 1.0 ? 60 * mb : 120 * mb; });
  auto s = summarize(v, 0);
  auto whole_job = project(s, 6 * sec_us, true, false);
  EXPECT_FALSE(whole_job.grows);
  auto scaled = project(s, 6 * sec_us, true, true);
  EXPECT_TRUE(scaled.grows) << scaled.basis;
  EXPECT_GT(static_cast<double>(scaled.mem_peak), 300 * mb * 0.9) << scaled.basis;
  EXPECT_LT(static_cast<double>(scaled.mem_peak), 300 * mb * 1.5) << scaled.basis;
}

TEST(project, without_a_runtime_estimate_nothing_is_scaled) {
  auto v = samples(5, [](double t) { return 400 * mb * t / 30; });
  auto p = project(summarize(v, 0), 0, false);
  EXPECT_FALSE(p.grows);
  EXPECT_EQ(p.io_write, v.back().io_write);
  EXPECT_FALSE(p.basis.empty());
  EXPECT_EQ(project(summarize({}), 10 * sec_us, false).mem_peak, 0);
}

} // namespace
} // namespace tender
