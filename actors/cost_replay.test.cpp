#include "actors/cost_replay.hpp"

#include "actors/offer_scorer.hpp"
#include "models/test_data.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace tender {
namespace {

/// The example providers config, as a user would pass it.
cost_setup example_setup() {
  auto s = load_cost_setup(std::string(TENDER_SOURCE_DIR) + "/examples/replay-providers.toml");
  if (auto* e = std::get_if<std::string>(&s)) {
    ADD_FAILURE() << *e;
    return {};
  }
  return std::get<cost_setup>(s);
}

/// The first `n` jobs of KTH-SP2 (real submit, run, procs, requests, users).
std::vector<trace_job> kth_slice(std::size_t n) {
  swf_trace t;
  if (!test_data::trace_head("KTH-SP2-filtered.swf.gz", n, t))
    return {};
  return to_records(t);
}

cost_result replay(std::vector<trace_job> jobs, const cost_setup& setup, cost_options opt) {
  auto r = cost_replay_jobs(std::move(jobs), 100, setup, opt);
  if (auto* e = std::get_if<std::string>(&r)) {
    ADD_FAILURE() << *e;
    return {};
  }
  return std::get<cost_result>(r);
}

cost_options small_options() {
  cost_options o;
  o.keep_attempts = true;
  // Train the model early so that tender's choices use its intervals on a small slice.
  o.predict.first_train = 150;
  o.predict.retrain_every = 200;
  return o;
}

TEST(cost_replay, the_same_seed_gives_the_same_result_and_another_seed_other_preemptions) {
  auto jobs = kth_slice(400);
  if (jobs.empty())
    GTEST_SKIP() << "KTH-SP2-filtered.swf.gz not found";
  auto setup = example_setup();
  auto o = small_options();
  auto a = replay(jobs, setup, o);
  auto b = replay(jobs, setup, o);
  ASSERT_EQ(a.policies.size(), 3u);
  ASSERT_EQ(b.policies.size(), 3u);
  for (std::size_t k = 0; k < 3; ++k) {
    auto ja = a.policies[k].to_json();
    auto jb = b.policies[k].to_json();
    ja.erase("wall_s");
    jb.erase("wall_s");
    EXPECT_EQ(ja, jb) << a.policies[k].policy;
    EXPECT_EQ(a.policies[k].end_s, b.policies[k].end_s) << a.policies[k].policy;
  }
  const auto* g = a.find("greedy");
  ASSERT_NE(g, nullptr);
  EXPECT_GT(g->preemptions, 0u) << "the slice must exercise spot preemptions";
  o.seed = 2;
  auto c = replay(jobs, setup, o);
  EXPECT_NE(c.find("greedy")->end_s, g->end_s) << "the seed drives the preemptions";
}

TEST(cost_replay, every_job_ends_exactly_once_and_each_attempt_is_on_one_provider) {
  auto jobs = kth_slice(600);
  if (jobs.empty())
    GTEST_SKIP() << "KTH-SP2-filtered.swf.gz not found";
  auto setup = example_setup();
  std::set<std::string> names = {setup.cluster.name};
  for (const auto& m : setup.markets)
    names.insert(m.name);
  auto r = replay(jobs, setup, small_options());
  ASSERT_GT(r.jobs, 500u);
  for (const auto& p : r.policies) {
    std::vector<int> done(r.jobs, 0);
    std::vector<int> next_attempt(r.jobs, 0);
    std::vector<double> last_end(r.jobs, -1);
    micros sum = 0;
    std::map<std::string, std::size_t> by;
    // Attempts are recorded as they end: per job, in order.
    for (const auto& a : p.attempts) {
      ASSERT_LT(a.job, r.jobs);
      EXPECT_EQ(done[a.job], 0) << p.policy << ": job " << a.job << " ran after it was done";
      EXPECT_EQ(a.attempt, next_attempt[a.job]++) << p.policy << ": job " << a.job;
      EXPECT_EQ(names.count(a.provider), 1u) << p.policy << ": provider '" << a.provider << "'";
      EXPECT_GE(a.decided_s, last_end[a.job]);
      EXPECT_GE(a.start_s, a.decided_s);
      EXPECT_GT(a.end_s, a.start_s);
      last_end[a.job] = a.end_s;
      sum += a.cost;
      if (a.outcome == "done") {
        ++done[a.job];
        ++by[a.provider];
        EXPECT_EQ(a.end_s, p.end_s[a.job]);
      } else {
        EXPECT_EQ(a.outcome, "preempted");
        EXPECT_TRUE(a.spot) << "only spot attempts are preempted";
        EXPECT_NE(a.provider, setup.cluster.name);
      }
    }
    for (std::size_t i = 0; i < r.jobs; ++i)
      EXPECT_EQ(done[i], 1) << p.policy << ": job " << i;
    EXPECT_EQ(sum, p.total_cost) << p.policy;
    EXPECT_EQ(by, p.jobs_by_provider) << p.policy;
  }
  // Greedy and tender use the markets; cluster-only never does.
  EXPECT_EQ(r.find("cluster")->jobs_by_provider.size(), 1u);
  EXPECT_GT(r.find("greedy")->jobs_by_provider.size(), 1u);
  EXPECT_GT(r.find("tender")->jobs_by_provider.size(), 1u);
}

TEST(cost_replay, greedy_takes_the_cheapest_offer_that_meets_the_deadline_by_its_prediction) {
  // The plain rule.
  std::vector<cost_candidate> c(4);
  c[0] = {"cluster", 500, 0, 900, false, false, 0, false}; // cheap but late
  c[1] = {"a", 300, 0, 100, false, false, 0, false};
  c[2] = {"b", 200, 0, 100, false, false, 0, false};
  c[3] = {"c", 100, 0, 900, false, false, 0, false}; // cheapest, as late as the cluster
  EXPECT_EQ(greedy_pick(c, 800, 0), 2);
  EXPECT_EQ(greedy_pick(c, 1000, 0), 3);
  EXPECT_EQ(greedy_pick(c, 800, 250), 2);
  c[2].refused = true;
  EXPECT_EQ(greedy_pick(c, 800, 250), -1) << "a (300) is over the budget, the others late";
  EXPECT_EQ(greedy_pick(c, 800, 400), 1);
  EXPECT_EQ(greedy_pick(c, 1000, 400), 3);
  EXPECT_EQ(greedy_pick(c, 50, 0), -1);

  // In the replay: every greedy decision took the cheapest offer that met the deadline
  // by the point prediction and fit the budget, after the refused ones.
  auto jobs = kth_slice(400);
  if (jobs.empty())
    GTEST_SKIP() << "KTH-SP2-filtered.swf.gz not found";
  auto o = small_options();
  o.policies = {"greedy"};
  auto r = replay(jobs, example_setup(), o);
  const auto& g = r.policies.at(0);
  std::size_t checked = 0;
  for (const auto& a : g.attempts) {
    ASSERT_FALSE(a.offers.empty());
    const double deadline = r.deadline_s[a.job];
    const micros budget = r.budget[a.job];
    micros cheapest = -1;
    for (const auto& c : a.offers) {
      EXPECT_EQ(c.greedy_feasible,
                c.point_finish_s <= deadline && (budget <= 0 || c.price <= budget));
      if (c.greedy_feasible && !c.refused && (cheapest < 0 || c.price < cheapest))
        cheapest = c.price;
    }
    if (a.fallback) {
      EXPECT_EQ(cheapest, -1) << "job " << a.job << " fell back with a feasible offer";
      continue;
    }
    EXPECT_EQ(a.price, cheapest) << "job " << a.job << " on " << a.provider;
    ++checked;
  }
  EXPECT_GT(checked, 100u);
}

TEST(cost_replay, tender_takes_the_best_risk_adjusted_offer_the_scorer_finds_feasible) {
  auto jobs = kth_slice(400);
  if (jobs.empty())
    GTEST_SKIP() << "KTH-SP2-filtered.swf.gz not found";
  auto o = small_options();
  o.policies = {"tender"};
  auto r = replay(jobs, example_setup(), o);
  const auto& t = r.policies.at(0);
  std::size_t checked = 0, spot = 0;
  for (const auto& a : t.attempts) {
    if (a.fallback)
      continue;
    const cost_candidate* best = nullptr;
    for (const auto& c : a.offers)
      if (c.tender_feasible && !c.refused && (!best || c.risk_adjusted < best->risk_adjusted))
        best = &c;
    ASSERT_NE(best, nullptr) << "job " << a.job << " was placed without a feasible offer";
    EXPECT_EQ(a.provider, best->provider) << "job " << a.job;
    ++checked;
    spot += a.spot ? 1 : 0;
  }
  EXPECT_GT(checked, 50u);
  EXPECT_GT(spot, 0u);
}

TEST(cost_replay, the_clusters_start_counts_backfilling) {
  easy_scheduler s({10, 0, 0}, backfill_order::shortest_first);
  const usec until = 10'000 * sec_us;
  ASSERT_EQ(s.submit({1, {8, 0, 0}, 100 * sec_us, 0, 0}), "");
  ASSERT_EQ(s.schedule(0).size(), 1u); // runs until 100 s as planned
  ASSERT_EQ(s.submit({2, {4, 0, 0}, 500 * sec_us, 0, 0}), "");
  ASSERT_EQ(s.submit({3, {6, 0, 0}, 1000 * sec_us, 0, 0}), "");
  ASSERT_TRUE(s.schedule(0).empty()); // the head (2) reserved at 100 s, 6 spare beside it
  // 2 processors for 200 s: EASY starts them now (they fit in the head's spare
  // processors), while the plan that reserves every waiting job puts them after the
  // head, once job 3 has its 6 processors from 100 s.
  const waiting_job small{4, {2, 0, 0}, 200 * sec_us, 0, 0};
  const auto projected = s.projected_start(small.amount, small.estimate, 0);
  ASSERT_TRUE(projected.has_value());
  EXPECT_GE(*projected, 100 * sec_us);
  EXPECT_EQ(backfill_start(s, small, 0, until), std::optional<usec>(0));
  // 4 processors do not fit now: at 100 s jobs 2 and 3 take all 10, so 600 s.
  const waiting_job wide{5, {4, 0, 0}, 50 * sec_us, 0, 0};
  EXPECT_EQ(backfill_start(s, wide, 0, until), std::optional<usec>(600 * sec_us));
  // Not by `until`.
  EXPECT_EQ(backfill_start(s, wide, 0, 300 * sec_us), std::nullopt);
  // The scheduler itself is untouched.
  EXPECT_EQ(s.waiting(), 2u);
  EXPECT_EQ(s.running(), 1u);
}

TEST(cost_replay, the_fallback_counts_a_miss_at_the_jobs_value_and_keeps_the_cluster_queue) {
  scoring_config w;
  w.w_cost = 1;
  w.w_deadline = 2;
  w.w_risk = 1;
  w.deadline_target = 0.9;
  // Spot: cheap, likelier to miss; on-demand: dearer, likelier to make it. Both reach
  // 0.9 x the best probability (0.71). By the offer's own cost as the penalty spot
  // would win (100 + 2 x 0.36 x 100 < 300 + 2 x 0.29 x 300); a miss costs the job's
  // value (its budget, 2000) on either: on-demand first.
  fallback_offer spot{false, true, 0.64, 100, 0, true};
  fallback_offer od{false, true, 0.71, 300, 0, true};
  EXPECT_EQ(fallback_order({spot, od}, w, 2000), (std::vector<std::size_t>{1, 0}));
  // With a small value the cheap one goes first.
  EXPECT_EQ(fallback_order({spot, od}, w, 300), (std::vector<std::size_t>{0, 1}));
  // Below the relative target: last, whatever its price.
  fallback_offer poor{false, true, 0.3, 1, 0, true};
  EXPECT_EQ(fallback_order({poor, od}, w, 2000), (std::vector<std::size_t>{1, 0}));
  // An offer whose point-predicted finish misses the deadline goes after one reaching
  // the target whose point finish meets it.
  fallback_offer late{false, true, 0.71, 1, 0, false};
  EXPECT_EQ(fallback_order({late, spot}, w, 2000), (std::vector<std::size_t>{1, 0}));
  // The cluster over the budget (its list price at a busy moment) is still a
  // candidate: the queue of last resort; a market over the budget is not.
  fallback_offer cluster{true, false, 0.84, 500, 0, true};
  fallback_offer dear{false, false, 0.99, 400, 0, true};
  EXPECT_EQ(fallback_order({spot, cluster, dear}, w, 2000), (std::vector<std::size_t>{1, 0}));
  // No chance anywhere: nothing (the cluster queue, as for greedy).
  fallback_offer none{false, true, 0.0, 1, 0, false};
  EXPECT_TRUE(fallback_order({none, none}, w, 2000).empty());
}

TEST(cost_replay, the_cluster_quotes_its_list_price_and_bills_its_cost) {
  auto jobs = kth_slice(400);
  if (jobs.empty())
    GTEST_SKIP() << "KTH-SP2-filtered.swf.gz not found";
  auto setup = example_setup();
  ASSERT_GT(setup.cluster.busy_markup, 1.0);
  setup.cluster.price_per_gib_hour = 0;
  auto o = small_options();
  o.policies = {"greedy"};
  auto r = replay(jobs, setup, o);
  const auto& g = r.policies.at(0);
  std::size_t on_cluster = 0, marked_up = 0;
  for (const auto& a : g.attempts) {
    if (a.provider != setup.cluster.name || a.outcome != "done")
      continue;
    const auto& j = jobs[r.trace_index[a.job]];
    const micros rate = setup.cluster.price_per_core_hour * j.procs;
    // Billed: the cost of the actual run; quoted: at least the cost of the prediction,
    // at most busy_markup times it.
    EXPECT_EQ(a.cost, cost_for(rate, static_cast<usec>(std::llround(j.runtime * 1e6))));
    const usec point = std::max<usec>(static_cast<usec>(std::llround(a.point_s * 1e6)), sec_us);
    const micros base = cost_for(rate, point);
    EXPECT_GE(a.price, base) << "job " << a.job;
    EXPECT_LE(static_cast<double>(a.price),
              setup.cluster.busy_markup * static_cast<double>(base) + 1)
        << "job " << a.job;
    ++on_cluster;
    marked_up += a.price > base ? 1 : 0;
  }
  EXPECT_GT(on_cluster, 50u);
  EXPECT_GT(marked_up, 0u) << "the cluster was never busy when a job queued";
}

TEST(cost_replay, cluster_only_costs_the_cluster_price_times_core_hours) {
  auto jobs = kth_slice(500);
  if (jobs.empty())
    GTEST_SKIP() << "KTH-SP2-filtered.swf.gz not found";
  auto setup = example_setup();
  setup.cluster.price_per_gib_hour = 0;
  auto o = small_options();
  o.policies = {"cluster"};
  auto r = replay(jobs, setup, o);
  const auto& c = r.policies.at(0);
  micros want = 0;
  for (std::size_t i = 0; i < r.jobs; ++i) {
    const auto& j = jobs[r.trace_index[i]];
    want += cost_for(setup.cluster.price_per_core_hour * j.procs,
                     static_cast<usec>(std::llround(j.runtime * 1e6)));
  }
  EXPECT_EQ(c.total_cost, want);
  EXPECT_EQ(c.jobs_by_provider.at(setup.cluster.name), r.jobs);
  EXPECT_EQ(c.preemptions, 0u);
}

TEST(cost_replay, no_policy_sees_a_run_time_before_the_job_ends_except_through_its_deadline) {
  auto jobs = kth_slice(400);
  if (jobs.empty())
    GTEST_SKIP() << "KTH-SP2-filtered.swf.gz not found";
  auto setup = example_setup();
  auto o = small_options();
  // Deadlines fixed from the original run times, so only the run time itself changes.
  for (const auto& j : jobs)
    o.deadline_s.push_back(j.submit + o.deadline_factor * j.runtime);
  auto a = replay(jobs, setup, o);
  // Lengthen one job in the middle that runs a while.
  std::size_t victim = 0;
  for (std::size_t i = 0; i < a.jobs; ++i)
    if (i > a.jobs / 3 && jobs[a.trace_index[i]].runtime > 600) {
      victim = i;
      break;
    }
  ASSERT_GT(victim, 0u);
  auto longer = jobs;
  longer[a.trace_index[victim]].runtime *= 3;
  auto b = replay(longer, setup, o);
  for (std::size_t k = 0; k < a.policies.size(); ++k) {
    const auto& pa = a.policies[k];
    const auto& pb = b.policies[k];
    // The victim's first end in run a: until then the two runs are the same.
    double first_end = 1e300;
    for (const auto& at : pa.attempts)
      if (at.job == victim)
        first_end = std::min(first_end, at.end_s);
    std::map<std::pair<std::size_t, int>, const cost_attempt*> in_b;
    for (const auto& at : pb.attempts)
      in_b[{at.job, at.attempt}] = &at;
    std::size_t compared = 0;
    for (const auto& at : pa.attempts) {
      if (at.decided_s >= first_end || (at.job == victim))
        continue;
      auto it = in_b.find({at.job, at.attempt});
      ASSERT_NE(it, in_b.end()) << pa.policy << ": job " << at.job;
      EXPECT_EQ(it->second->provider, at.provider) << pa.policy << ": job " << at.job;
      EXPECT_EQ(it->second->price, at.price) << pa.policy << ": job " << at.job;
      EXPECT_EQ(it->second->decided_s, at.decided_s);
      if (at.start_s < first_end) {
        EXPECT_EQ(it->second->start_s, at.start_s) << pa.policy << ": job " << at.job;
      }
      ++compared;
    }
    // The victim's own first decision did not depend on its run time either.
    for (const auto& at : pa.attempts)
      if (at.job == victim && at.attempt == 0) {
        auto it = in_b.find({victim, 0});
        ASSERT_NE(it, in_b.end());
        EXPECT_EQ(it->second->provider, at.provider) << pa.policy;
        EXPECT_EQ(it->second->price, at.price) << pa.policy;
      }
    EXPECT_GT(compared, 50u) << pa.policy;
  }
}

TEST(cost_replay, a_providers_config_without_a_cluster_or_markets_is_refused) {
  auto cfg = dev_config();
  // The dev config has one local provider and three markets: usable.
  auto ok = cost_setup_from(cfg);
  EXPECT_TRUE(std::holds_alternative<cost_setup>(ok));
  auto no_markets = cfg;
  std::erase_if(no_markets.providers, [](const auto& p) { return p.kind == "market"; });
  auto e = cost_setup_from(no_markets);
  ASSERT_TRUE(std::holds_alternative<std::string>(e));
  EXPECT_NE(std::get<std::string>(e).find("at least one provider of kind \"market\""),
            std::string::npos);
  auto no_cluster = cfg;
  std::erase_if(no_cluster.providers, [](const auto& p) { return p.kind == "local"; });
  e = cost_setup_from(no_cluster);
  ASSERT_TRUE(std::holds_alternative<std::string>(e));
  EXPECT_NE(std::get<std::string>(e).find("exactly one provider of kind \"local\""),
            std::string::npos);
  auto m = load_cost_setup("/nonexistent/providers.toml");
  ASSERT_TRUE(std::holds_alternative<std::string>(m));
  EXPECT_NE(std::get<std::string>(m).find("/nonexistent/providers.toml"), std::string::npos);
}

} // namespace
} // namespace tender
