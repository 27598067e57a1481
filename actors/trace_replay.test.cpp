#include "actors/trace_replay.hpp"

#include "models/test_data.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace tender {
namespace {

trace_job tj(double submit, double run, std::int64_t procs, double req, std::int64_t user = 1) {
  trace_job j;
  j.submit = submit;
  j.runtime = run;
  j.end = -1;
  j.req_time = req;
  j.procs = procs;
  j.user = user;
  return j;
}

replay_result run(std::vector<trace_job> jobs, std::int64_t procs, replay_options opt) {
  auto p = make_replay_policy(opt);
  EXPECT_TRUE(std::holds_alternative<std::unique_ptr<replay_policy>>(p));
  auto r = replay_jobs(std::move(jobs), procs, *std::get<std::unique_ptr<replay_policy>>(p), opt);
  if (auto* e = std::get_if<std::string>(&r)) {
    ADD_FAILURE() << *e;
    return {};
  }
  return std::get<replay_result>(r);
}

TEST(trace_replay, easy_backfills_by_requested_time_and_reports_bounded_slowdown) {
  // 10 procs. Job 0 takes 6 until 100; job 1 (8 procs) must wait for it; job 2
  // (4 procs, asks 50 s) fits before the reservation; job 3 (4 procs, asks 500 s)
  // would delay job 1, so it waits.
  std::vector<trace_job> jobs = {tj(0, 100, 6, 100), tj(1, 50, 8, 60), tj(2, 40, 4, 50),
                                 tj(3, 30, 4, 500)};
  replay_options o;
  o.policy = "easy";
  auto r = run(jobs, 10, o);
  ASSERT_EQ(r.jobs, 4u);
  EXPECT_EQ(r.start_s, (std::vector<double>{0, 100, 2, 150}));
  EXPECT_EQ(r.backfilled, 1u);
  // bsld: 1, (99+50)/50, 1, (147+30)/30.
  const double want = (1 + 149.0 / 50 + 1 + 177.0 / 30) / 4;
  EXPECT_NEAR(r.avg_bsld, want, 1e-9);
  EXPECT_NEAR(r.avg_wait_s, (0 + 99 + 0 + 147) / 4.0, 1e-9);
  EXPECT_EQ(r.corrections, 0u);
}

TEST(trace_replay, shortest_first_and_corrections_change_the_order) {
  // Job 0 holds 3 of 4 procs until 100; job 1 (4 procs) waits. Jobs 2 and 3 (1 proc)
  // both fit before the reservation: FCFS takes 2, SJBF the shorter 3.
  std::vector<trace_job> jobs = {tj(0, 100, 3, 100), tj(1, 10, 4, 10), tj(2, 50, 1, 90),
                                 tj(2, 10, 1, 20)};
  replay_options o;
  o.policy = "easy";
  EXPECT_EQ(run(jobs, 4, o).start_s, (std::vector<double>{0, 100, 2, 52}));
  o.policy = "easy-sjbf";
  EXPECT_EQ(run(jobs, 4, o).start_s, (std::vector<double>{0, 100, 110, 2}))
      << "job 2 (plans 90 s) no longer ends by the reservation at 100 after job 3";

  // EASY++ plans with the user's last two run times: a job that outlives that is
  // corrected to its request.
  std::vector<trace_job> hist = {tj(0, 10, 1, 1000, 7), tj(20, 10, 1, 1000, 7),
                                 tj(40, 300, 1, 1000, 7)};
  o.policy = "easy++";
  auto r = run(hist, 4, o);
  EXPECT_EQ(r.corrections, 1u) << "planned 10 s, ran 300 s";
  o.policy = "easy";
  EXPECT_EQ(run(hist, 4, o).corrections, 0u);
}

TEST(trace_replay, bad_input_is_refused_with_a_reason) {
  replay_options o;
  o.policy = "fifo";
  auto p = make_replay_policy(o);
  ASSERT_TRUE(std::holds_alternative<std::string>(p));
  EXPECT_NE(std::get<std::string>(p).find("unknown policy 'fifo'"), std::string::npos);
  o.policy = "tender";
  o.tender_plan = "lower";
  EXPECT_TRUE(std::holds_alternative<std::string>(make_replay_policy(o)));

  o = {};
  auto r = replay_swf("/nonexistent.swf", o);
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_NE(std::get<std::string>(r).find("/nonexistent.swf"), std::string::npos);

  // Jobs wider than the machine are skipped and counted, not lost silently.
  auto rr = run({tj(0, 10, 2, 10), tj(0, 10, 20, 10), tj(0, 10, 0, 10)}, 4, o);
  EXPECT_EQ(rr.jobs, 1u);
  EXPECT_EQ(rr.skipped, 2u);
}

/// Wraps a policy and fails the test if the policy is ever shown a run time before
/// the job has ended in the replay.
class peeking_guard final : public replay_policy {
public:
  explicit peeking_guard(std::unique_ptr<replay_policy> p) : p_(std::move(p)) {}
  std::string name() const override { return p_->name(); }
  backfill_order order() const override { return p_->order(); }
  std::size_t trainings() const override { return p_->trainings(); }
  replay_plan submitted(std::size_t id, const trace_job& j, double now) override {
    EXPECT_EQ(j.runtime, -1);
    EXPECT_EQ(j.end, -1);
    submitted_at_[id] = now;
    return p_->submitted(id, j, now);
  }
  double correct(std::size_t id, const trace_job& j, double elapsed, double planned,
                 double now) override {
    EXPECT_EQ(j.runtime, -1);
    EXPECT_EQ(j.end, -1);
    EXPECT_FALSE(finished_.count(id));
    return p_->correct(id, j, elapsed, planned, now);
  }
  void finished(std::size_t id, const trace_job& j, double now) override {
    EXPECT_TRUE(submitted_at_.count(id));
    EXPECT_GE(now, submitted_at_[id] + j.runtime) << "finished before it could have run";
    EXPECT_EQ(j.end, now);
    finished_[id] = now;
    p_->finished(id, j, now);
  }
  std::map<std::size_t, double> submitted_at_, finished_;

private:
  std::unique_ptr<replay_policy> p_;
};

std::vector<trace_job> real_slice(std::size_t n) {
  swf_trace t;
  if (!test_data::trace_head("KTH-SP2-filtered.swf.gz", n, t))
    return {};
  return to_records(t);
}

TEST(trace_replay, no_policy_sees_a_run_time_before_the_job_ends) {
  auto jobs = real_slice(3000);
  if (jobs.empty())
    GTEST_SKIP() << "KTH-SP2 trace not found under TENDER_SHARED_DIR";
  for (std::string name : {"easy", "easy-sjbf", "easy++", "tender"}) {
    replay_options o;
    o.policy = name;
    o.first_train = 400;
    o.retrain_every = 800;
    auto p = make_replay_policy(o);
    peeking_guard g(std::move(std::get<std::unique_ptr<replay_policy>>(p)));
    auto r = std::get<replay_result>(replay_jobs(jobs, 100, g, o));
    EXPECT_EQ(g.finished_.size(), r.jobs) << name << ": every job finishes once";
    if (name == "tender") {
      EXPECT_GE(r.trainings, 2u);
    }
  }
}

// Causality: lengthening one job's run time may change only what is decided after
// that job would have ended. Every job started before then starts at the same time.
TEST(trace_replay, changing_a_run_time_changes_nothing_decided_before_it_ends) {
  auto jobs = real_slice(1500);
  if (jobs.empty())
    GTEST_SKIP() << "KTH-SP2 trace not found under TENDER_SHARED_DIR";
  for (std::string name : {"easy", "easy++", "tender"}) {
    replay_options o;
    o.policy = name;
    o.first_train = 300;
    o.retrain_every = 300;
    auto a = run(jobs, 100, o);
    // Pick a job in the middle and make it run much longer (past its request: the
    // replay corrects its plan when it outlives it).
    const std::size_t pick = a.trace_index[700];
    auto changed = jobs;
    changed[pick].runtime = jobs[pick].runtime * 3 + 1000;
    auto b = run(changed, 100, o);
    ASSERT_EQ(a.jobs, b.jobs);
    const double original_end = a.start_s[700] + jobs[pick].runtime;
    std::size_t same = 0, compared = 0, later_differs = 0;
    for (std::size_t i = 0; i < a.jobs; ++i) {
      if (a.start_s[i] >= original_end || b.start_s[i] >= original_end) {
        later_differs += a.start_s[i] != b.start_s[i];
        continue;
      }
      ++compared;
      same += a.start_s[i] == b.start_s[i];
    }
    EXPECT_GT(compared, 100u) << name;
    EXPECT_EQ(same, compared) << name;
    EXPECT_GT(later_differs, 0u) << name << ": the change must matter afterwards";
  }
}

TEST(trace_replay, easy_lands_near_the_published_result_on_kth) {
  auto p = test_data::trace_path("KTH-SP2-filtered.swf.gz");
  if (p.empty())
    GTEST_SKIP() << "KTH-SP2 trace not found under TENDER_SHARED_DIR";
  replay_options o;
  o.policy = "easy";
  auto r = replay_swf(p, o);
  ASSERT_TRUE(std::holds_alternative<replay_result>(r)) << std::get<std::string>(r);
  auto& res = std::get<replay_result>(r);
  EXPECT_EQ(res.procs, 100);
  EXPECT_EQ(res.jobs + res.skipped, 28481u);
  // SC'15 study, EASY with user estimates: 92.58 (../shared/data/README.md).
  EXPECT_NEAR(res.avg_bsld, 92.58, 0.10 * 92.58);
}

} // namespace
} // namespace tender
