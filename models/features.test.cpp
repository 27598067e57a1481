#include "models/features.hpp"
#include "models/test_data.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

using namespace tender;

namespace {

trace_job job(double submit, double run, double req, std::int64_t user, std::int64_t procs = 1) {
  trace_job j;
  j.submit = submit;
  j.runtime = run;
  j.end = submit + run;
  j.req_time = req;
  j.user = user;
  j.procs = procs;
  return j;
}

struct replayed {
  std::vector<feature_vector> x;
  std::vector<double> last2, median, cap;
};

replayed run(const std::vector<trace_job>& jobs) {
  replayed r;
  r.x.resize(jobs.size());
  r.last2.resize(jobs.size());
  r.median.resize(jobs.size());
  r.cap.resize(jobs.size());
  job_history h;
  replay(jobs, h, [&](const replay_row& row) {
    r.x[row.index] = row.x;
    r.last2[row.index] = row.last2;
    r.median[row.index] = row.median;
    r.cap[row.index] = row.cap_s;
  });
  return r;
}

bool same_bits(const feature_vector& a, const feature_vector& b) {
  return std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

std::size_t index_of(const std::string& name) {
  const auto& n = feature_names();
  return static_cast<std::size_t>(std::find(n.begin(), n.end(), name) - n.begin());
}

std::vector<trace_job> kth_head(std::size_t n) {
  swf_trace t;
  if (!test_data::trace_head("KTH-SP2-filtered.swf.gz", n, t))
    return {};
  return to_records(t);
}

} // namespace

TEST(features, names_match_the_vector) {
  EXPECT_EQ(feature_names().size(), n_features);
}

TEST(features, last2_uses_only_jobs_finished_before_submit_and_caps_at_request) {
  // User 1: runs of 100 s and 300 s end at 110 and 320; job 3 is submitted at 200,
  // when only the first has finished; job 4 at 400, after both.
  std::vector<trace_job> jobs = {job(10, 100, 1000, 1), job(20, 300, 1000, 1), job(200, 50, 150, 1),
                                 job(400, 50, 150, 1), job(401, 5, -1, 2)};
  auto r = run(jobs);
  EXPECT_EQ(r.last2[0], 1000); // no history: the requested time
  EXPECT_EQ(r.last2[2], 150);  // one finished run: falls back to the request (150)
  // By 400 jobs 0, 2 and 1 have finished (at 110, 250, 320): (50 + 300) / 2 capped at 150.
  EXPECT_EQ(r.last2[3], 150);
  EXPECT_EQ(r.last2[4], -1); // user 2: no history, no request
  EXPECT_EQ(r.median[0], -1);
  EXPECT_EQ(r.median[2], 100); // only job 0 had finished
  EXPECT_EQ(r.median[3], 100); // median of 100, 50 and 300
  auto last = index_of("user_last_log");
  EXPECT_FLOAT_EQ(r.x[2][last], std::log1p(100.0f));
  EXPECT_FLOAT_EQ(r.x[3][last], std::log1p(300.0f));
  EXPECT_EQ(r.x[3][index_of("user_running")], 0);
  EXPECT_EQ(r.x[2][index_of("user_running")], 1);
  EXPECT_FLOAT_EQ(r.x[3][index_of("since_user_end_log")], std::log1p(400.0f - 320.0f));
}

TEST(features, template_history_matches_requested_time_and_procs) {
  std::vector<trace_job> jobs = {job(0, 10, 60, 1, 4), job(1, 1000, 3600, 1, 8),
                                 job(2000, 1, 60, 1, 8)};
  auto r = run(jobs);
  EXPECT_FLOAT_EQ(r.x[2][index_of("tmpl_req_last_log")], std::log1p(10.0f));
  EXPECT_FLOAT_EQ(r.x[2][index_of("tmpl_procs_last_log")], std::log1p(1000.0f));
  EXPECT_EQ(r.x[2][index_of("tmpl_req_n")], 1);
  EXPECT_TRUE(std::isnan(r.x[2][index_of("tmpl_req_procs_last_log")]));
}

// The leakage test: a job's features must not change when its own run time, or the run
// time of any job that had not finished when it was submitted, changes.
TEST(features, no_leakage_on_a_real_trace) {
  auto jobs = kth_head(3000);
  if (jobs.empty())
    GTEST_SKIP() << "shared traces not found";
  auto base = run(jobs);
  int checked = 0, changed_control = 0, changed_anchor = 0;
  const auto anchor = index_of("anchor_log");
  for (std::size_t k = 100; k < jobs.size(); k += 97) {
    auto perturbed = jobs;
    for (std::size_t i = 0; i < perturbed.size(); ++i) {
      auto& j = perturbed[i];
      if (i != k && j.end < jobs[k].submit)
        continue;
      double wait = j.end - j.submit - j.runtime;
      j.runtime = j.runtime * 3 + 7;
      j.end = std::max(jobs[k].submit, j.submit + wait + j.runtime); // still not finished
    }
    auto p = run(perturbed);
    ASSERT_TRUE(same_bits(base.x[k], p.x[k])) << "job " << k << " saw a future run time";
    ASSERT_EQ(base.last2[k], p.last2[k]);
    ASSERT_EQ(base.median[k], p.median[k]);
    ASSERT_EQ(base.cap[k], p.cap[k]);
    ++checked;

    // Control: changing the run time of the user's most recently finished job must be
    // visible, so this test can fail.
    std::size_t latest = jobs.size();
    for (std::size_t m = 0; m < k; ++m)
      if (jobs[m].user == jobs[k].user && jobs[m].end < jobs[k].submit &&
          (latest == jobs.size() || jobs[m].end >= jobs[latest].end))
        latest = m;
    if (latest == jobs.size())
      continue;
    auto past = jobs;
    past[latest].runtime += 1234; // same end: the event order does not change
    auto c = run(past);
    changed_control += same_bits(base.x[k], c.x[k]) ? 0 : 1;
    changed_anchor += base.x[k][anchor] != c.x[k][anchor] ? 1 : 0;
  }
  EXPECT_GT(checked, 20);
  EXPECT_GT(changed_control, 10);
  EXPECT_GT(changed_anchor, 3); // the anchor (the point model's scale) follows the history
}

TEST(features, anchors_combine_template_ratio_and_last2) {
  // User 1 finishes 100, 200 and 600 s of 1000 s on 4 processors, then 1000 s of 2000 s
  // on 8; job 4 asks for 1000 s on 4 again. Job 5 is a new user's first job.
  std::vector<trace_job> jobs = {job(0, 100, 1000, 1, 4),  job(1, 200, 1000, 1, 4),
                                 job(2, 600, 1000, 1, 4),  job(3, 1000, 2000, 1, 8),
                                 job(5000, 1, 1000, 1, 4), job(5001, 1, 300, 2, 1)};
  auto r = run(jobs);
  const auto& x = r.x[4];
  EXPECT_EQ(r.last2[4], 800); // (600 + 1000) / 2
  // Ratios 0.1, 0.2, 0.6, 0.5: median (upper) 0.5, mean 0.35.
  EXPECT_FLOAT_EQ(x[index_of("req_x_user_median_ratio_log")], std::log1p(500.0f));
  EXPECT_FLOAT_EQ(x[index_of("req_x_user_mean_ratio_log")], std::log1p(350.0f));
  // The template (1000 s, 4 processors): last 600, median 200 of three runs.
  EXPECT_FLOAT_EQ(x[index_of("tmpl_chain_last_log")], std::log1p(600.0f));
  EXPECT_FLOAT_EQ(x[index_of("tmpl_req_procs_median_log")], std::log1p(200.0f));
  EXPECT_EQ(x[index_of("tmpl_req_procs_n")], 3);
  EXPECT_FLOAT_EQ(x[index_of("user_median5_log")], std::log1p(400.0f));
  EXPECT_FLOAT_EQ(x[index_of("user_median10_log")], std::log1p(400.0f));
  // The anchor: median of 200 (template), 500 (request x ratio) and 800 (last-two).
  EXPECT_FLOAT_EQ(x[index_of("anchor_log")], std::log1p(500.0f));
  // Without history every anchor is the request.
  EXPECT_FLOAT_EQ(r.x[5][index_of("anchor_log")], std::log1p(300.0f));
  EXPECT_FLOAT_EQ(r.x[5][index_of("tmpl_chain_last_log")], std::log1p(300.0f));
  EXPECT_TRUE(std::isnan(r.x[5][index_of("req_x_user_median_ratio_log")]));
  EXPECT_FLOAT_EQ(r.x[0][index_of("anchor_log")], std::log1p(1000.0f));
  // The anchor is capped at the request: job 6 asks for 100 s of the same user.
  jobs.push_back(job(6000, 1, 100, 1, 4));
  r = run(jobs);
  EXPECT_FLOAT_EQ(r.x[6][index_of("anchor_log")], std::log1p(100.0f));
}

TEST(features, replay_hides_the_jobs_own_outcome) {
  // A job that finishes instantly (end == submit) is not history for itself, nor for a
  // job submitted at the same instant.
  std::vector<trace_job> jobs = {job(100, 0, 10, 1), job(100, 5, 10, 1)};
  auto r = run(jobs);
  EXPECT_TRUE(std::isnan(r.x[1][index_of("user_last_log")]));
  EXPECT_EQ(r.median[1], -1);
}

TEST(features, over_request_rate_counts_jobs_past_their_request) {
  std::vector<trace_job> jobs = {job(0, 100, 60, 1), job(1, 10, 60, 1), job(500, 1, 60, 1)};
  std::vector<char> cap;
  job_history h;
  replay(jobs, h, [&](const replay_row& r) { cap.push_back(r.cap_at_request); });
  EXPECT_EQ(cap, (std::vector<char>{1, 1, 0}));
  EXPECT_DOUBLE_EQ(h.over_request_rate(), 1.0 / 3);
}

TEST(features, last2_and_user_ratio_features) {
  // User 1 finishes 100 s of 1000 and 300 s of 1000 (the second hits 90 % of nothing),
  // then 950 s of 1000 (a hit); job 3 sees all three.
  std::vector<trace_job> jobs = {job(0, 100, 1000, 1), job(1, 300, 1000, 1), job(2, 950, 1000, 1),
                                 job(5000, 10, 600, 1)};
  auto r = run(jobs);
  EXPECT_FLOAT_EQ(r.x[3][index_of("last2_log")], static_cast<float>(std::log1p(r.last2[3])));
  EXPECT_EQ(r.last2[3], 600); // (300 + 950) / 2 capped at the request
  EXPECT_FLOAT_EQ(r.x[3][index_of("last2_over_req")], 1.0f);
  EXPECT_FLOAT_EQ(r.x[3][index_of("user_hit_req_share")], 1.0f / 3);
  EXPECT_FLOAT_EQ(r.x[3][index_of("user_median10_ratio")], 0.3f);
  EXPECT_FLOAT_EQ(r.x[3][index_of("global_recent_ratio_median")], 0.3f);
  EXPECT_FLOAT_EQ(r.x[0][index_of("last2_log")], std::log1p(1000.0f)); // the request
}

TEST(features, overrun_allowance_is_a_high_percentile_of_overruns) {
  job_history h;
  EXPECT_EQ(h.overrun_allowance(), 0);
  // 2000 jobs stopped at their request, then three ran 30 s past it: 3 of 2003 is more
  // than 0.1 %, so the cap becomes request + the third largest overrun.
  for (int i = 0; i < 2000; ++i)
    h.finished(job(i, 60, 60, 1));
  EXPECT_EQ(h.overrun_allowance(), 0);
  h.finished(job(3000, 110, 60, 1));
  h.finished(job(3001, 90, 60, 1));
  EXPECT_EQ(h.overrun_allowance(), 0); // 2 of 2002 overran: within 0.1 %
  h.finished(job(3002, 70, 60, 1));
  EXPECT_EQ(h.overrun_allowance(), 10);
  std::vector<trace_job> jobs = {job(0, 10, 60, 1), job(100, 1, 60, 1)};
  auto r = run(jobs);
  EXPECT_EQ(r.cap[1], 60);
}
