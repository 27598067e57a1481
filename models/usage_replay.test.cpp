#include "models/usage_replay.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace tender;

namespace {

std::string usage_path(const std::string& file) {
  const char* env = std::getenv("TENDER_SHARED_DIR");
  for (std::string dir : {env ? std::string(env) : std::string(), std::string("/work/shared")}) {
    if (dir.empty())
      continue;
    auto p = std::filesystem::path(dir) / "data" / "usage" / file;
    if (std::filesystem::exists(p))
      return p.string();
  }
  return {};
}

/// The real series, read once for all tests.
struct azure {
  usage_series mean, peak;
  bool ok = false;
  azure() {
    std::string err;
    auto m = usage_path("azure-vm-cpu-avg-100vms-5min.csv.gz");
    auto p = usage_path("azure-vm-cpu-max-100vms-5min.csv.gz");
    ok = !m.empty() && !p.empty() && read_usage_series(m, mean, err) &&
         read_usage_series(p, peak, err);
  }
  static const azure& get() {
    static azure a;
    return a;
  }
};

std::vector<millicores> millicores_of(const std::vector<double>& pct, std::size_t n) {
  std::vector<millicores> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(std::llround(pct[i] * 40.0)); // 4 cores
  return out;
}

std::string write_temp(const std::string& name, const std::string& text) {
  auto p = std::filesystem::temp_directory_path() / ("tender-usage-test-" + name);
  std::ofstream(p) << text;
  return p.string();
}

} // namespace

TEST(usage_series, reads_the_real_azure_files) {
  const auto& a = azure::get();
  if (!a.ok)
    GTEST_SKIP() << "../shared/data/usage not found";
  ASSERT_EQ(a.mean.ids.size(), 100u);
  EXPECT_EQ(a.mean.readings(), 8004u);
  EXPECT_EQ(a.mean.ids.front(), "1633748");
  EXPECT_EQ(a.mean.ids, a.peak.ids);
  EXPECT_DOUBLE_EQ(a.mean.percent[0][0], 44.459092);
  EXPECT_DOUBLE_EQ(a.peak.percent[0][0], 71.889037);
  EXPECT_DOUBLE_EQ(a.mean.percent[1][1], 5.662754);
  // The peak of five minutes is never below their mean.
  for (std::size_t v = 0; v < 100; ++v)
    for (std::size_t i = 0; i < 8004; i += 97)
      ASSERT_GE(a.peak.percent[v][i], a.mean.percent[v][i]) << v << " " << i;
}

TEST(usage_series, a_malformed_file_names_the_file_and_line) {
  struct bad_case {
    std::string name, text, says;
  };
  const std::string head = "\"\",\"vm1\",\"vm2\"\n\"1\",1.5,2.5\n";
  for (const auto& c : std::vector<bad_case>{
           {"fields", head + "\"2\",1.0\n", ":3: expected 3 fields"},
           {"number", head + "\"2\",1.0,abc\n", ":3: VM vm2: 'abc' is not a number"},
           {"range", head + "\"2\",1.0,140\n", ":3: VM vm2: 140 is not a percentage"},
           {"index", head + "\"7\",1.0,2.0\n", ":3: expected reading index 2"},
           {"id", "\"\",\"vm1\",\"\"\n", ":1: VM id 2 is empty"},
           {"empty", "\"\",\"vm1\"\n", ": no readings"}}) {
    auto path = write_temp(c.name + ".csv", c.text);
    usage_series s;
    std::string err;
    EXPECT_FALSE(read_usage_series(path, s, err)) << c.name;
    EXPECT_EQ(err.rfind(path, 0), 0u) << err;
    EXPECT_NE(err.find(c.says), std::string::npos) << c.name << ": " << err;
    std::filesystem::remove(path);
  }
  usage_series s;
  std::string err;
  EXPECT_FALSE(read_usage_series("/nonexistent/usage.csv.gz", s, err));
  EXPECT_NE(err.find("/nonexistent/usage.csv.gz"), std::string::npos) << err;
}

TEST(usage_replay, no_policy_sees_the_future) {
  // Changing readings from k on must not change any allocation up to reading k.
  const auto& a = azure::get();
  if (!a.ok)
    GTEST_SKIP() << "../shared/data/usage not found";
  usage_replay_options o;
  const std::size_t n = 3 * 288, k = 2 * 288;
  for (std::size_t v : {0u, 7u, 13u})
    for (const char* policy : {"static", "vpa", "tender"}) {
      auto m = millicores_of(a.mean.percent[v], n);
      auto p = millicores_of(a.peak.percent[v], n);
      std::vector<millicores> before, after;
      std::int64_t d1, r1, d2, r2;
      std::string err;
      ASSERT_TRUE(replay_allocations(m, p, policy, o, before, d1, r1, err)) << err;
      for (std::size_t i = k; i < n; ++i) {
        m[i] = 3900;
        p[i] = 4000;
      }
      ASSERT_TRUE(replay_allocations(m, p, policy, o, after, d2, r2, err)) << err;
      ASSERT_EQ(before.size(), n - o.warmup);
      for (std::size_t i = o.warmup; i <= k; ++i)
        ASSERT_EQ(before[i - o.warmup], after[i - o.warmup]) << policy << " vm " << v << " @" << i;
      if (std::string(policy) != "static") {
        EXPECT_NE(before, after) << policy << " ignores what it sees";
      }
    }
}

TEST(usage_replay, a_step_in_demand_is_followed_by_tender_and_not_by_static) {
  // Two days at 0.5 core, then a step to 2 cores with peaks at 2.2 cores; the
  // detector's own (peak-covering) knobs, not the replay's usage-hugging ones.
  usage_replay_options o;
  o.tender = deviation_options{};
  std::vector<millicores> m(3 * 288, 500), p(3 * 288, 600);
  for (std::size_t i = 2 * 288; i < m.size(); ++i) {
    m[i] = 2000;
    p[i] = 2200;
  }
  std::vector<millicores> st, tn;
  std::int64_t d, r;
  std::string err;
  ASSERT_TRUE(replay_allocations(m, p, "static", o, st, d, r, err)) << err;
  EXPECT_EQ(st.back(), 500);
  EXPECT_EQ(r, 0);
  ASSERT_TRUE(replay_allocations(m, p, "tender", o, tn, d, r, err)) << err;
  EXPECT_EQ(d, 0) << "in-place resizes are not disruptive";
  // Within half an hour of the step tender holds at least the peak.
  EXPECT_GE(tn[2 * 288 + 6 - o.warmup], 2200);
  // And a day later it has come back to within 20 % of it.
  EXPECT_LE(tn.back(), 2200 * 12 / 10);
  o.tender_restarts = true;
  ASSERT_TRUE(replay_allocations(m, p, "tender", o, tn, d, r, err)) << err;
  EXPECT_EQ(d, r);
  EXPECT_LE(d, 2 * 24) << "at most one restart per job-hour";
}

TEST(usage_replay, three_policies_on_a_slice_of_the_real_data) {
  const auto& a = azure::get();
  if (!a.ok)
    GTEST_SKIP() << "../shared/data/usage not found";
  usage_replay_options o;
  o.vms = 10;
  o.readings = 4 * 288;
  usage_replay_report r;
  std::string err;
  ASSERT_TRUE(replay_usage(a.mean, &a.peak, o, r, err)) << err;
  ASSERT_EQ(r.policies.size(), 3u);
  for (const auto& p : r.policies) {
    EXPECT_EQ(p.jobs, 10u) << p.policy;
    EXPECT_EQ(p.readings, 10u * 3 * 288) << p.policy;
    EXPECT_GT(p.slack, 0) << p.policy;
    EXPECT_LT(p.slack, 1) << p.policy;
    EXPECT_LE(p.slack_peak, p.slack) << p.policy;
    EXPECT_GE(p.time_short, p.time_short_mean) << p.policy;
  }
  const auto& st = r.policies[0];
  const auto& vpa = r.policies[1];
  const auto& tn = r.policies[2];
  EXPECT_EQ(st.resizes, 0);
  EXPECT_EQ(vpa.disruptive, vpa.resizes);
  EXPECT_EQ(tn.disruptive, 0);
  EXPECT_LT(tn.time_short, vpa.time_short);
  EXPECT_LT(tn.time_short, st.time_short);
  auto j = r.to_json();
  for (const char* key : {"slack", "time_short", "disruptive_per_job_hour", "jobs", "readings"})
    EXPECT_TRUE(j["tender"].contains(key)) << key;

  // A peak file of other VMs is refused, naming it.
  usage_series other = a.peak;
  other.ids.pop_back();
  other.percent.pop_back();
  other.path = "other.csv";
  EXPECT_FALSE(replay_usage(a.mean, &other, o, r, err));
  EXPECT_EQ(err.rfind("other.csv: ", 0), 0u) << err;
}

TEST(usage_replay, the_linear_forecasters_and_scaled_headroom_beat_the_level_and_rises_alone) {
  // VMs 0-19, their first week, the mean view: the default sizer against the same
  // sizer without its linear forecasters and with headroom in millicores (the design
  // before them). Less slack and no more time short.
  const auto& a = azure::get();
  if (!a.ok)
    GTEST_SKIP() << "../shared/data/usage not found";
  usage_replay_options o;
  o.vms = 20;
  o.readings = 7 * 288;
  usage_replay_report now, before;
  std::string err;
  ASSERT_TRUE(replay_usage(a.mean, nullptr, o, now, err)) << err;
  o.tender.forecast.linear_forgetting.clear();
  o.tender.forecast.scale_smoothing = 0;
  ASSERT_TRUE(replay_usage(a.mean, nullptr, o, before, err)) << err;
  const auto& tn = now.policies[2];
  const auto& tb = before.policies[2];
  EXPECT_LT(tn.slack, tb.slack);
  EXPECT_LE(tn.time_short, tb.time_short);
  EXPECT_EQ(tn.disruptive, 0);
}
