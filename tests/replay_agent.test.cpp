// One implementation: a slice of a real trace replayed through a running agent on a
// virtual clock starts every job at the same instant as `tender replay --policy easy`.
//
// The agent is a whole node (gateway, intake, job actors, auctions, the local provider
// with its plan and EASY backfilling), driven through its client API; only time and the
// jobs' processes are virtual: the node's clock is an injected one, and the local provider
// runs each `sleep SECONDS` on that clock (providers/virtual_executor.hpp). The node plans
// with the users' requested times (`[models] runtime = "requested"`), as `--policy easy`
// does. The driver moves the clock from one event to the next, as the replay does:
// finishes (the board of the virtual executors says when), corrections of jobs that
// outlived their plan (the plan's predicted ends), submissions (the trace).

#include "actors/node.hpp"
#include "actors/trace_replay.hpp"
#include "models/features.hpp"
#include "models/test_data.hpp"
#include "providers/virtual_executor.hpp"
#include "tools/client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

using namespace tender;

namespace {

using steady = std::chrono::steady_clock;

template <class T> T answer(client& c, body request) {
  for (int attempt = 0;; ++attempt) {
    auto r = c.call(request, 30 * sec_us);
    if (auto* e = std::get_if<envelope>(&r)) {
      if (auto* v = std::get_if<T>(&e->body))
        return *v;
      ADD_FAILURE() << "unexpected answer";
      return T{};
    }
    if (attempt >= 3) {
      ADD_FAILURE() << std::get<std::string>(r);
      return T{};
    }
  }
}

/// Polls `pred` until true (every millisecond, then every 10), false after `limit`.
bool settle(const std::function<bool()>& pred,
            std::chrono::seconds limit = std::chrono::seconds(60)) {
  const auto until = steady::now() + limit;
  for (int i = 0; steady::now() < until; ++i) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(i < 20 ? 1 : 10));
  }
  return pred();
}

std::string node_toml(std::int64_t procs) {
  return "[node]\nname = \"virtual\"\nsample_interval = \"2ms\"\n\n"
         "[auction]\nmax_rounds = 1\n\n"
         "[models]\nruntime = \"requested\"\n\n"
         "[scaling]\nenabled = false\n\n"
         "[[providers]]\nname = \"cluster\"\nkind = \"local\"\ncpus = " +
         std::to_string(procs) +
         "\nmemory = \"64TiB\"\nplan_horizon = \"3650d\"\n"
         "price_per_core_hour = 0.04\nprice_per_gib_hour = 0.005\n";
}

} // namespace

TEST(replay_agent, a_trace_slice_starts_every_job_at_the_same_instant_as_tender_replay) {
  swf_trace trace;
  if (!test_data::trace_head("KTH-SP2-filtered.swf.gz", 260, trace))
    GTEST_SKIP() << "KTH-SP2-filtered.swf.gz not found (TENDER_SHARED_DIR)";
  // A small machine, so that jobs queue and backfill; jobs wider than it are left out,
  // as the replay leaves them out.
  const std::int64_t procs = 32;
  std::vector<trace_job> jobs;
  for (auto& j : to_records(trace))
    if (j.procs > 0 && j.procs <= procs && j.runtime >= 0 && j.req_time > 0)
      jobs.push_back(j);
  ASSERT_GE(jobs.size(), 150u);
  // Some users underestimate: every seventh longer job asked for a third of what it ran,
  // so that the plan has jobs to correct when they outlive it.
  for (std::size_t i = 0; i < jobs.size(); ++i)
    if (i % 7 == 3 && jobs[i].runtime > 60)
      jobs[i].req_time = std::max(1.0, std::floor(jobs[i].runtime / 3));

  replay_options ro;
  ro.policy = "easy";
  auto policy = make_replay_policy(ro);
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<replay_policy>>(policy));
  auto replayed = replay_jobs(jobs, procs, *std::get<0>(policy), ro);
  ASSERT_TRUE(std::holds_alternative<replay_result>(replayed)) << std::get<std::string>(replayed);
  const auto& want = std::get<replay_result>(replayed);
  ASSERT_EQ(want.jobs, jobs.size());
  // The slice is worth replaying: jobs wait, and some are backfilled.
  ASSERT_GT(want.backfilled, 5u);
  ASSERT_GT(want.avg_wait_s, 60.0);
  ASSERT_GT(want.corrections, 5u);

  // The same jobs in the replay's order (by submit time, ties in trace order).
  std::vector<std::size_t> order(jobs.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return jobs[a].submit < jobs[b].submit; });

  char tmpl[] = "/tmp/tender-replay-agent-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const usec base = 1'700'000'000 * sec_us; // virtual time of the trace's second 0
  std::atomic<usec> now{base};
  auto board = std::make_shared<virtual_executor::board>();
  node_options opt;
  opt.listen = "inproc://tender-replay-agent";
  opt.data_dir = dir;
  opt.quiet = true;
  opt.clock = [&now] { return now.load(); };
  opt.make_executor = [board](const provider_config&) -> std::unique_ptr<executor> {
    return std::make_unique<virtual_executor>(board);
  };
  auto parsed = parse_node_toml(node_toml(procs), "<replay agent>", dir);
  ASSERT_TRUE(std::holds_alternative<node_config>(parsed))
      << std::get<config_error>(parsed).to_string();
  auto started = node::start(std::get<node_config>(std::move(parsed)), opt);
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<node>>(started))
      << std::get<std::string>(started);
  auto& n = *std::get<std::unique_ptr<node>>(started);
  client c(n.endpoint(), "replay-driver", n.zmq_context());

  auto plan = [&] {
    auto l = answer<provider_list>(c, providers_query{});
    for (auto& p : l.providers)
      if (p.name == "cluster")
        return p.plan;
    ADD_FAILURE() << "no provider named cluster";
    return std::vector<plan_entry>{};
  };
  auto status = [&](const std::string& id) { return answer<job_status>(c, job_query{id}); };

  std::vector<std::string> ids(jobs.size());
  std::size_t next = 0;
  usec t = base + static_cast<usec>(std::llround(jobs[order[0]].submit * 1e6));
  for (int steps = 0;; ++steps) {
    ASSERT_LT(steps, 20000) << "the driver does not converge";
    now = t;
    // Finishes and corrections at t: the provider has polled at t when no job still
    // runs on the board past its end and no running job in the plan is overdue.
    ASSERT_TRUE(settle([&] {
      auto e = board->next_end();
      return !e || *e > t;
    })) << "the provider never polled at t";
    ASSERT_TRUE(settle([&] {
      for (auto& p : plan())
        if (p.state == "running" && p.end <= t)
          return false;
      return true;
    })) << "an overdue job was never corrected";
    // Submissions at t, one at a time (their order is their place in the queue).
    for (; next < jobs.size() &&
           base + static_cast<usec>(std::llround(jobs[order[next]].submit * 1e6)) == t;
         ++next) {
      const auto& j = jobs[order[next]];
      job_spec spec;
      spec.name = "trace-" + std::to_string(order[next]);
      spec.user = "u" + std::to_string(j.user);
      spec.command = {"sleep", std::to_string(static_cast<std::int64_t>(std::llround(j.runtime)))};
      spec.walltime = static_cast<usec>(std::llround(j.req_time * 1e6));
      spec.hints.cpu = j.procs * 1000;
      spec.hints.memory = 1ll << 20;
      spec.profile_skip = true;
      auto s = answer<job_status>(c, job_submit{spec, ""});
      ASSERT_FALSE(s.job_id.empty());
      ids[next] = s.job_id;
      // Committed and in the plan (its launch is at the provider), running, or done.
      ASSERT_TRUE(settle([&] {
        auto st = status(s.job_id);
        if (st.state == job_state::running || st.state == job_state::done)
          return true;
        if (is_final(st.state)) {
          ADD_FAILURE() << "job " << spec.name << " ended " << to_string(st.state) << ": "
                        << st.reason;
          return true;
        }
        if (st.state != job_state::committed)
          return false;
        for (auto& p : plan())
          if (p.job_id == s.job_id)
            return true;
        return false;
      })) << "job "
          << spec.name << " never reached the plan";
    }
    // What comes next: a submission, a finish, or a planned end passing.
    std::optional<usec> next_t;
    auto consider = [&](usec x) {
      if (x >= t && (!next_t || x < *next_t))
        next_t = x;
    };
    if (next < jobs.size())
      consider(base + static_cast<usec>(std::llround(jobs[order[next]].submit * 1e6)));
    if (auto e = board->next_end())
      consider(*e);
    for (auto& p : plan())
      if (p.state == "running")
        consider(p.end);
    if (!next_t)
      break;
    t = *next_t;
  }

  // Every job ran once, and started when the replay started it.
  std::size_t equal = 0, waited = 0;
  for (std::size_t k = 0; k < jobs.size(); ++k) {
    auto s = status(ids[k]);
    ASSERT_EQ(s.state, job_state::done) << "job " << k << ": " << s.reason;
    const usec want_start = base + static_cast<usec>(std::llround(want.start_s[k] * 1e6));
    EXPECT_EQ(s.started_at - base, want_start - base)
        << "job " << k << " (trace record " << order[k] << ") submitted at "
        << jobs[order[k]].submit << " s";
    equal += s.started_at == want_start;
    waited += s.started_at > s.submitted_at;
  }
  EXPECT_EQ(board->launched(), jobs.size()) << "no job ran twice";
  EXPECT_GT(waited, 10u);
  std::printf("replayed %zu jobs through the agent on virtual time: %zu of them started as in "
              "`tender replay --policy easy`; %zu waited; the replay backfilled %zu and "
              "corrected %zu\n",
              jobs.size(), equal, waited, want.backfilled, want.corrections);
  n.stop();
  std::filesystem::remove_all(dir);
}
