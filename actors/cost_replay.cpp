#include "actors/cost_replay.hpp"

#include "actors/auction_book.hpp"
#include "actors/offer_scorer.hpp"
#include "models/swf.hpp"
#include "providers/local.hpp"
#include "providers/market.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <sstream>

namespace tender {

namespace {

usec to_us(double s) {
  return static_cast<usec>(std::llround(s * 1e6));
}
double to_s(usec t) {
  return static_cast<double>(t) / 1e6;
}

/// Holds on a market last until the replay releases them.
constexpr usec replay_lease_ttl = 100LL * 365 * 24 * 3600 * sec_us;

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s)
    h = (h ^ c) * 0x100000001b3ull;
  return h;
}

/// Seconds a spot attempt runs before it is preempted (infinity when never): an
/// exponential time at `per_hour`, from a generator of its own per (seed, job,
/// attempt, provider), so every policy that places the attempt the same way sees the
/// same preemption.
double preempt_after_s(std::uint64_t seed, std::size_t job, int attempt,
                       const std::string& provider, double per_hour) {
  if (per_hour <= 0)
    return std::numeric_limits<double>::infinity();
  std::uint64_t k = splitmix(seed);
  k = splitmix(k ^ static_cast<std::uint64_t>(job));
  k = splitmix(k ^ static_cast<std::uint64_t>(attempt));
  k = splitmix(k ^ fnv1a(provider));
  std::mt19937_64 g(k);
  const double u = static_cast<double>(g() >> 11) * 0x1.0p-53;
  return -std::log1p(-u) / per_hour * 3600.0;
}

enum class policy_kind { cluster, greedy, tender };

/// A replayed job with what every policy is given.
struct job_info {
  trace_job j;
  usec submit = 0;
  usec run = 0; ///< the actual run time: only the replay loop reads it
  usec deadline = 0;
  micros budget = 0; ///< 0: no limit
  resources whole;   ///< all processors: the cluster's request
  resources one;     ///< one market instance's request
  std::int64_t instances = 1;
};

/// A market offer scaled to the job's `instances`, with the provider's own offer id.
offer scaled(offer o, std::int64_t n) {
  o.price *= n;
  o.rate_per_hour *= n;
  o.granted.cpu *= n;
  o.granted.memory *= n;
  o.granted.gpus *= static_cast<std::int32_t>(n);
  return o;
}

/// Token source for the replay's markets: leases are never presented, so any unique
/// string will do; a counter keeps runs identical.
token_source counter_tokens() {
  auto n = std::make_shared<std::uint64_t>(0);
  return [n] { return "replay-token-" + std::to_string(++*n); };
}

class policy_run {
public:
  policy_run(policy_kind kind, std::string name, const std::vector<job_info>& jobs,
             std::int64_t procs, const cost_setup& setup, const cost_options& opt)
      : kind_(kind), jobs_(jobs), procs_(procs), setup_(setup), opt_(opt), scorer_(setup.scoring),
        sched_({procs, 0, 0}, backfill_order::shortest_first) {
    r_.policy = std::move(name);
    const auto root = (std::filesystem::temp_directory_path() / "tender-cost-replay").string();
    provider_config c = setup.cluster;
    c.plan_horizon = 0; // the replay plans the cluster itself, with `sched_`
    cluster_ = std::make_unique<local_provider>(c, root, counter_tokens(), replay_lease_ttl);
    for (const auto& m : setup.markets)
      markets_.push_back(
          std::make_unique<market_provider>(m, root, counter_tokens(), replay_lease_ttl));
    providers_.insert(c.name);
    for (const auto& m : setup.markets)
      providers_.insert(m.name);
  }

  std::variant<cost_policy_result, std::string> run();

private:
  struct state {
    replay_plan plan;
    int attempt = 0;
    bool on_cluster = false;
    usec planned = 0; ///< cluster: the planned run time
    usec start = -1;  ///< the current attempt's start
    usec end = -1;    ///< the job's end
    std::size_t market = 0;
    std::string allocation_id;
    bool preempt = false;
    std::size_t attempt_index = 0; ///< in r_.attempts (keep_attempts)
    cost_attempt current;
  };
  struct market_offer {
    std::size_t market = 0;
    offer o; ///< scaled to the job
  };

  trace_job hidden(std::size_t i) const {
    trace_job v = jobs_[i].j;
    v.runtime = -1;
    v.end = -1;
    return v;
  }
  double breach(const std::string& provider) const {
    auto it = sla_.find(provider);
    return it == sla_.end() ? breach_posterior(0, 0)
                            : breach_posterior(it->second.first, it->second.second);
  }
  std::string decide(std::size_t i, usec now);
  std::string queue_on_cluster(std::size_t i, usec now, micros price, bool fallback);
  void go_to_market(std::size_t i, usec now, const market_offer& m, const allocation& a);
  void record(std::size_t i);
  void complete(std::size_t i, usec now, micros cost);

  policy_kind kind_;
  const std::vector<job_info>& jobs_;
  std::int64_t procs_;
  const cost_setup& setup_;
  const cost_options& opt_;
  offer_scorer scorer_;
  easy_scheduler sched_;
  std::unique_ptr<local_provider> cluster_;
  std::vector<std::unique_ptr<market_provider>> markets_;
  std::set<std::string> providers_;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> sla_; // breaches, kept
  std::unique_ptr<replay_policy> predictor_;
  std::vector<state> st_;
  using ev = std::pair<usec, std::size_t>;
  std::priority_queue<ev, std::vector<ev>, std::greater<>> cluster_ends_, market_ends_;
  cost_policy_result r_;
};

std::string policy_run::queue_on_cluster(std::size_t i, usec now, micros price, bool fallback) {
  auto& s = st_[i];
  waiting_job w;
  w.key = i;
  w.amount = {jobs_[i].j.procs, 0, 0};
  w.estimate = std::max<usec>(to_us(s.plan.planned_s), sec_us);
  w.order_estimate = std::max<usec>(to_us(s.plan.order_s), 1);
  w.submitted = now;
  s.planned = w.estimate;
  s.on_cluster = true;
  if (auto e = sched_.submit(w); !e.empty())
    return "job " + std::to_string(i) + ": " + e;
  s.current.provider = setup_.cluster.name;
  s.current.price = price;
  s.current.fallback = fallback;
  if (fallback)
    ++r_.fallbacks;
  return {};
}

void policy_run::go_to_market(std::size_t i, usec now, const market_offer& m, const allocation& a) {
  auto& s = st_[i];
  const auto& job = jobs_[i];
  const auto& mc = markets_[m.market]->config();
  s.on_cluster = false;
  s.market = m.market;
  s.allocation_id = a.allocation_id;
  s.start = std::max(now, a.start_at);
  s.current.provider = mc.name;
  s.current.instance_type = a.instance_type;
  s.current.spot = m.o.spot;
  s.current.instances = job.instances;
  s.current.price = m.o.price;
  s.current.start_s = to_s(s.start);
  usec run = job.run;
  s.preempt = false;
  if (m.o.spot) {
    const double after = preempt_after_s(opt_.seed, i, s.attempt, mc.name, mc.preemption_per_hour);
    if (after < to_s(job.run)) {
      // At least a microsecond, so the attempt has a duration.
      run = std::max<usec>(1, to_us(after));
      s.preempt = true;
    }
  }
  // Billed per instance at its own hourly rate (the allocation's), per second.
  s.current.cost = market_provider::billed(a.rate_per_hour, run) * job.instances;
  market_ends_.emplace(s.start + run, i);
  ++sla_[mc.name].second;
}

std::string policy_run::decide(std::size_t i, usec now) {
  auto& s = st_[i];
  const auto& job = jobs_[i];
  s.current = cost_attempt{};
  s.current.job = i;
  s.current.attempt = s.attempt;
  s.current.decided_s = to_s(now);
  s.current.instances = 1;
  s.current.point_s = s.plan.order_s;
  s.current.lo_s = s.plan.lo_s;
  s.current.hi_s = s.plan.hi_s;
  const usec point = std::max<usec>(to_us(s.plan.order_s), sec_us);
  const micros cluster_price = cluster_->cost(job.whole, point);
  if (kind_ == policy_kind::cluster)
    return queue_on_cluster(i, now, cluster_price, false);

  // The offers: the cluster's (its plan's projected start, its cost-plus price) and
  // each market's bid, all for the same prediction.
  const std::string id = "j" + std::to_string(i) + "." + std::to_string(s.attempt);
  resource_request req;
  req.job_id = id;
  req.auction_id = id;
  req.round = 1;
  req.profile.job_id = id;
  req.profile.runtime = point;
  req.profile.runtime_lo = s.plan.lo_s > 0 ? std::min(to_us(s.plan.lo_s), point) : 0;
  req.profile.runtime_hi = s.plan.hi_s > 0 ? std::max(to_us(s.plan.hi_s), point) : 0;
  req.deadline = job.deadline;
  req.max_cost = job.budget;
  req.reply_by = now;

  offer co;
  co.offer_id = id + "/" + setup_.cluster.name;
  co.job_id = id;
  co.auction_id = id;
  co.provider = setup_.cluster.name;
  co.granted = job.whole;
  // The agent's list price: cost-plus with the utilisation markup (utilisation before
  // this job); what the job is billed stays the cost.
  const double util =
      1.0 - static_cast<double>(sched_.free_now().cpu) / static_cast<double>(procs_);
  const double markup = 1.0 + (setup_.cluster.busy_markup - 1.0) * std::clamp(util, 0.0, 1.0);
  co.price = static_cast<micros>(std::ceil(static_cast<double>(cluster_price) * markup));
  co.rate_per_hour = static_cast<micros>(
      std::ceil(static_cast<double>(cluster_->hourly_rate(job.whole)) * markup));
  const usec est = std::max<usec>(to_us(s.plan.planned_s), sec_us);
  auto start = sched_.projected_start({job.j.procs, 0, 0}, est, now);
  if (start && *start > now)
    if (auto b = backfill_start(sched_,
                                {std::numeric_limits<std::uint64_t>::max(),
                                 {job.j.procs, 0, 0},
                                 est,
                                 std::max<usec>(to_us(s.plan.order_s), 1),
                                 now},
                                now, job.deadline);
        b && *b < *start)
      start = b;
  co.earliest_start = start ? *start : now;
  co.terms.latency = setup_.cluster.latency;
  co.terms.availability = setup_.cluster.availability;

  std::vector<market_offer> mk;
  for (std::size_t m = 0; m < markets_.size(); ++m) {
    resource_request one = req;
    one.request = job.one;
    one.max_cost = 0; // the budget is the policy's to check, for the whole job
    one.deadline = 0;
    auto b = markets_[m]->bid(one, now);
    if (auto* o = std::get_if<offer>(&b))
      mk.push_back({m, scaled(*o, job.instances)});
  }

  std::vector<cost_candidate> cands;
  auto candidate = [&](const offer& o) {
    cost_candidate c;
    c.provider = o.provider;
    c.price = o.price;
    c.start_s = to_s(std::max(o.earliest_start, now));
    c.point_finish_s = to_s(std::max(o.earliest_start, now) + point);
    c.greedy_feasible =
        c.point_finish_s <= to_s(job.deadline) && (job.budget <= 0 || c.price <= job.budget);
    return c;
  };
  if (start)
    cands.push_back(candidate(co));
  for (const auto& m : mk)
    cands.push_back(candidate(m.o));
  const std::size_t first_market = start ? 1 : 0;

  std::string err;
  bool placed = false;
  std::string awarded;
  bool counted = false; // a fallback already counted
  auto try_market = [&](std::size_t k, const std::string& offer_id) -> std::string {
    // The provider's own offer id: the scaled offer keeps it.
    const auto& m = mk[k];
    award a;
    a.offer_id = offer_id;
    a.job_id = id;
    a.auction_id = id;
    a.provider = m.o.provider;
    auto h = markets_[m.market]->hold(a, now);
    if (auto* c = std::get_if<commit_confirm>(&h)) {
      awarded = offer_id;
      go_to_market(i, now, m, c->alloc);
      return {};
    }
    ++r_.refusals;
    ++sla_[m.o.provider].first;
    return std::get<commit_refuse>(h).reason;
  };

  if (kind_ == policy_kind::greedy) {
    while (!placed) {
      const int k = greedy_pick(cands, to_s(job.deadline), job.budget);
      if (k < 0)
        break;
      if (static_cast<std::size_t>(k) < first_market) {
        err = queue_on_cluster(i, now, co.price, false);
        placed = true;
      } else if (try_market(k - first_market, mk[k - first_market].o.offer_id).empty()) {
        placed = true;
      } else {
        cands[k].refused = true;
      }
    }
  } else {
    auction_book book(req, providers_);
    if (start)
      book.add(co, now, 0);
    for (const auto& m : mk)
      book.add(m.o, now, 0);
    auto ranked = book.rank(
        scorer_, [&](const std::string& p) { return breach(p); }, now);
    for (const auto& e : book.entries()) {
      for (auto& c : cands)
        if (c.provider == e.o.provider) {
          c.tender_feasible = e.score.feasible;
          c.risk_adjusted = e.score.risk_adjusted;
        }
    }
    // When no offer is likely enough to meet the deadline (the agent would refuse
    // the job), the job still has to run: see `fallback_order`.
    std::vector<const book_entry*> order = ranked.feasible;
    const bool none_feasible = order.empty();
    counted = none_feasible;
    if (none_feasible) {
      ++r_.fallbacks;
      std::vector<fallback_offer> fo;
      std::vector<const book_entry*> by_index;
      for (const book_entry* e : ranked.infeasible) {
        fallback_offer f;
        f.cluster = e->o.provider == setup_.cluster.name;
        f.within_budget = job.budget <= 0 || e->score.worst_cost <= job.budget;
        f.p_deadline = e->score.p_deadline;
        f.expected_cost = e->score.expected_cost;
        f.risk = e->score.risk;
        f.point_in_time = std::max(e->o.earliest_start, now) + point <= job.deadline;
        fo.push_back(f);
        by_index.push_back(e);
      }
      for (std::size_t k : fallback_order(fo, setup_.scoring, job.budget))
        order.push_back(by_index[k]);
    }
    for (const book_entry* e : order) {
      if (e->o.provider == setup_.cluster.name) {
        err = queue_on_cluster(i, now, co.price, false);
        s.current.fallback = none_feasible;
        placed = true;
        break;
      }
      std::size_t k = 0;
      while (mk[k].o.offer_id != e->o.offer_id)
        ++k;
      auto why = try_market(k, e->o.offer_id);
      if (why.empty()) {
        book.set_verdict(e->o.offer_id, "won");
        s.current.fallback = none_feasible;
        placed = true;
        break;
      }
      book.set_verdict(e->o.offer_id, "refused: " + why);
      cands[first_market + k].refused = true;
    }
  }
  // Offers nobody took are withdrawn, so the markets forget them.
  for (const auto& m : mk)
    if (m.o.offer_id != awarded) {
      release rel;
      rel.offer_id = m.o.offer_id;
      rel.job_id = id;
      markets_[m.market]->release(rel, now);
    }
  if (!placed) {
    // Nothing within budget (tender), or nothing that fits (greedy): the cluster queue.
    err = queue_on_cluster(i, now, co.price, !counted);
    s.current.fallback = true;
  }
  if (opt_.keep_attempts)
    s.current.offers = std::move(cands);
  return err;
}

void policy_run::record(std::size_t i) {
  if (opt_.keep_attempts)
    r_.attempts.push_back(st_[i].current);
}

void policy_run::complete(std::size_t i, usec now, micros cost) {
  auto& s = st_[i];
  s.end = now;
  s.current.end_s = to_s(now);
  s.current.outcome = "done";
  s.current.cost = cost;
  r_.total_cost += cost;
  ++r_.jobs_by_provider[s.current.provider];
  record(i);
  trace_job full = jobs_[i].j;
  full.end = to_s(now);
  predictor_->finished(i, full, to_s(now));
}

std::variant<cost_policy_result, std::string> policy_run::run() {
  const auto t0 = std::chrono::steady_clock::now();
  replay_options po = opt_.predict;
  po.policy = "tender";
  po.seed = opt_.seed;
  auto p = make_replay_policy(po);
  if (auto* e = std::get_if<std::string>(&p))
    return *e;
  predictor_ = std::move(std::get<std::unique_ptr<replay_policy>>(p));

  const std::size_t n = jobs_.size();
  st_.assign(n, state{});
  std::size_t next = 0, done = 0;
  constexpr usec never = std::numeric_limits<usec>::max();
  std::vector<std::size_t> redo;
  while (next < n || sched_.running() > 0 || sched_.waiting() > 0 || !market_ends_.empty()) {
    usec t = next < n ? jobs_[next].submit : never;
    if (!cluster_ends_.empty())
      t = std::min(t, cluster_ends_.top().first);
    if (!market_ends_.empty())
      t = std::min(t, market_ends_.top().first);
    if (auto pe = sched_.next_planned_end())
      t = std::min(t, *pe);
    if (t == never)
      return std::string("cost replay stalled: jobs wait but nothing runs (a bug)");

    // 1. Ends: cluster finishes, market finishes and preemptions.
    redo.clear();
    while (!cluster_ends_.empty() && cluster_ends_.top().first == t) {
      const std::size_t i = cluster_ends_.top().second;
      cluster_ends_.pop();
      sched_.finish(i);
      complete(i, t, cluster_->cost(jobs_[i].whole, jobs_[i].run));
      ++done;
    }
    while (!market_ends_.empty() && market_ends_.top().first == t) {
      const std::size_t i = market_ends_.top().second;
      market_ends_.pop();
      auto& s = st_[i];
      release rel;
      rel.allocation_id = s.allocation_id;
      markets_[s.market]->release(rel, t);
      s.allocation_id.clear();
      if (s.preempt) {
        s.current.end_s = to_s(t);
        s.current.outcome = "preempted";
        r_.total_cost += s.current.cost;
        r_.preempted_cost += s.current.cost;
        ++r_.preemptions;
        record(i);
        ++s.attempt;
        redo.push_back(i);
      } else {
        complete(i, t, s.current.cost);
        ++done;
      }
    }
    if (opt_.progress && done > 0 && done % 2000 == 0)
      opt_.progress(r_.policy, done, n);
    // 2. Cluster jobs that outlived their plan.
    for (std::uint64_t k : sched_.overdue(t)) {
      const std::size_t i = static_cast<std::size_t>(k);
      auto& s = st_[i];
      const double elapsed = to_s(t - s.start);
      const double next_s = predictor_->correct(i, hidden(i), elapsed, to_s(s.planned), to_s(t));
      s.planned = std::max(to_us(next_s), t - s.start + sec_us);
      sched_.correct(k, s.start + s.planned);
    }
    // 3. Decisions: preempted jobs again, then new submissions.
    for (std::size_t i : redo)
      if (auto e = decide(i, t); !e.empty())
        return e;
    for (; next < n && jobs_[next].submit == t; ++next) {
      st_[next].plan = predictor_->submitted(next, hidden(next), to_s(t));
      if (auto e = decide(next, t); !e.empty())
        return e;
    }
    // 4. One scheduling pass on the cluster.
    for (const auto& s0 : sched_.schedule(t)) {
      const std::size_t i = static_cast<std::size_t>(s0.key);
      st_[i].start = t;
      st_[i].current.start_s = to_s(t);
      cluster_ends_.emplace(t + jobs_[i].run, i);
    }
  }
  if (opt_.progress)
    opt_.progress(r_.policy, n, n);

  double bsld = 0, wait = 0;
  r_.end_s.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& s = st_[i];
    const double run = to_s(jobs_[i].run);
    const double resp = to_s(s.end - jobs_[i].submit);
    bsld += std::max(1.0, resp / std::max(run, 10.0));
    wait += to_s(s.end - jobs_[i].run - jobs_[i].submit);
    if (s.end > jobs_[i].deadline)
      ++r_.deadline_misses;
    r_.end_s[i] = to_s(s.end);
  }
  if (n > 0) {
    r_.avg_bsld = bsld / static_cast<double>(n);
    r_.avg_wait_s = wait / static_cast<double>(n);
  }
  r_.trainings = predictor_->trainings();
  r_.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return std::move(r_);
}

} // namespace

std::optional<usec> backfill_start(const easy_scheduler& sched, const waiting_job& job, usec now,
                                   usec until, int max_ends) {
  easy_scheduler sim = sched;
  if (!sim.submit(job).empty())
    return std::nullopt;
  usec t = now;
  for (int step = 0; step <= max_ends; ++step) {
    for (const auto& s : sim.schedule(t))
      if (s.key == job.key)
        return t;
    const auto pe = sim.next_planned_end();
    if (!pe || step == max_ends)
      return std::nullopt;
    t = std::max(*pe, t + 1);
    if (t > until)
      return std::nullopt;
    for (std::uint64_t k : sim.overdue(t))
      sim.finish(k);
  }
  return std::nullopt;
}

std::vector<std::size_t> fallback_order(const std::vector<fallback_offer>& offers,
                                        const scoring_config& w, micros budget) {
  std::vector<std::size_t> within;
  double best_p = 0;
  for (std::size_t k = 0; k < offers.size(); ++k)
    if (offers[k].within_budget || offers[k].cluster) {
      within.push_back(k);
      best_p = std::max(best_p, offers[k].p_deadline);
    }
  // No offer has any chance by the prediction: the cluster queue, as for greedy.
  if (best_p <= 0)
    return {};
  const double target = w.deadline_target * best_p;
  auto reach = [&](std::size_t k) { return offers[k].p_deadline >= target; };
  bool any_point = false;
  for (std::size_t k : within)
    any_point = any_point || (reach(k) && offers[k].point_in_time);
  double value = static_cast<double>(budget);
  for (std::size_t k : within)
    value = std::max(value, offers[k].expected_cost);
  auto adjusted = [&](std::size_t k) {
    const auto& o = offers[k];
    return w.w_cost * o.expected_cost + w.w_deadline * (1.0 - o.p_deadline) * value +
           w.w_risk * o.risk * o.expected_cost;
  };
  std::stable_sort(within.begin(), within.end(),
                   [&](std::size_t a, std::size_t b) { return adjusted(a) < adjusted(b); });
  std::vector<std::size_t> out;
  for (int cls = 0; cls < 3; ++cls)
    for (std::size_t k : within) {
      const int c = !reach(k) ? 2 : (any_point && !offers[k].point_in_time) ? 1 : 0;
      if (c == cls)
        out.push_back(k);
    }
  return out;
}

int greedy_pick(const std::vector<cost_candidate>& offers, double deadline_s, micros budget) {
  int best = -1;
  for (std::size_t k = 0; k < offers.size(); ++k) {
    const auto& c = offers[k];
    if (c.refused || c.point_finish_s > deadline_s || (budget > 0 && c.price > budget))
      continue;
    if (best < 0 || c.price < offers[static_cast<std::size_t>(best)].price)
      best = static_cast<int>(k);
  }
  return best;
}

std::variant<cost_setup, std::string> cost_setup_from(const node_config& cfg) {
  cost_setup s;
  s.scoring = cfg.scoring;
  s.source = cfg.source;
  int locals = 0;
  for (const auto& p : cfg.providers) {
    if (p.kind == "local") {
      ++locals;
      s.cluster = p;
    } else if (p.kind == "market") {
      if (p.types.empty())
        return cfg.source + ": market provider " + p.name + " has an empty catalogue";
      s.markets.push_back(p);
    } else {
      return cfg.source + ": provider " + p.name + " is of kind '" + p.kind +
             "'; a cost replay takes one local provider (the cluster) and markets";
    }
  }
  if (locals != 1)
    return cfg.source + ": a cost replay needs exactly one provider of kind \"local\" (the " +
           "internal cluster), found " + std::to_string(locals);
  if (s.cluster.price_per_core_hour <= 0 && s.cluster.price_per_gib_hour <= 0)
    return cfg.source + ": the local provider " + s.cluster.name +
           " has no price (price_per_core_hour, price_per_gib_hour)";
  if (s.markets.empty())
    return cfg.source + ": a cost replay needs at least one provider of kind \"market\"";
  return s;
}

std::variant<cost_setup, std::string> load_cost_setup(const std::string& path) {
  auto c = load_node_config(path);
  if (auto* e = std::get_if<config_error>(&c))
    return e->to_string();
  return cost_setup_from(std::get<node_config>(c));
}

std::variant<cost_result, std::string> cost_replay_jobs(std::vector<trace_job> all,
                                                        std::int64_t procs, const cost_setup& setup,
                                                        const cost_options& opt) {
  if (procs <= 0)
    return std::string("the cluster size must be positive (give --procs)");
  if (opt.deadline_factor < 1)
    return std::string("--deadline-factor must be at least 1");
  if (opt.budget_factor <= 0)
    return std::string("--budget-factor must be positive");
  if (opt.instance_procs <= 0)
    return std::string("--instance-procs must be positive");
  if (!opt.deadline_s.empty() && opt.deadline_s.size() != all.size())
    return std::string("deadline_s must give one deadline per job");
  for (const auto& p : opt.policies)
    if (p != "cluster" && p != "greedy" && p != "tender")
      return "unknown policy '" + p + "' (cluster, greedy or tender)";

  cost_result res;
  res.procs = procs;
  res.opt = opt;
  res.opt.progress = nullptr;
  std::vector<std::size_t> order(all.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return all[a].submit < all[b].submit; });

  // Budgets price the request at the cheapest covering on-demand instance.
  auto on_demand_rate = [&](const resources& one) {
    micros best = 0;
    for (const auto& m : setup.markets)
      for (const auto& t : m.types)
        if (t.on_demand_per_hour > 0 && t.cpu >= one.cpu && t.memory >= one.memory &&
            (best == 0 || t.on_demand_per_hour < best))
          best = t.on_demand_per_hour;
    return best;
  };

  std::vector<job_info> jobs;
  for (std::size_t idx : order) {
    const auto& j = all[idx];
    if (j.procs <= 0 || j.procs > procs || j.runtime < 0) {
      ++res.skipped;
      continue;
    }
    if (opt.limit > 0 && jobs.size() >= opt.limit)
      break;
    job_info ji;
    ji.j = j;
    ji.submit = to_us(j.submit);
    ji.run = to_us(j.runtime);
    const double dl =
        opt.deadline_s.empty() ? j.submit + opt.deadline_factor * j.runtime : opt.deadline_s[idx];
    ji.deadline = to_us(dl);
    ji.whole.cpu = j.procs * 1000;
    ji.whole.memory = j.procs * opt.memory_per_proc;
    ji.instances = (j.procs + opt.instance_procs - 1) / opt.instance_procs;
    const std::int64_t per = (j.procs + ji.instances - 1) / ji.instances;
    ji.one.cpu = per * 1000;
    ji.one.memory = per * opt.memory_per_proc;
    const double req = j.req_time > 0 ? j.req_time : j.runtime;
    if (micros od = on_demand_rate(ji.one); od > 0)
      ji.budget = static_cast<micros>(std::llround(
          opt.budget_factor *
          static_cast<double>(market_provider::billed(od, to_us(req)) * ji.instances)));
    res.deadline_s.push_back(to_s(ji.deadline));
    res.budget.push_back(ji.budget);
    res.trace_index.push_back(idx);
    jobs.push_back(std::move(ji));
  }
  res.jobs = jobs.size();

  for (const auto& name : opt.policies) {
    const policy_kind k = name == "cluster"  ? policy_kind::cluster
                          : name == "greedy" ? policy_kind::greedy
                                             : policy_kind::tender;
    policy_run run(k, name, jobs, procs, setup, opt);
    auto r = run.run();
    if (auto* e = std::get_if<std::string>(&r))
      return name + ": " + *e;
    res.policies.push_back(std::move(std::get<cost_policy_result>(r)));
  }
  return res;
}

std::variant<cost_result, std::string> cost_replay_swf(const std::string& swf_path,
                                                       const std::string& providers_path,
                                                       const cost_options& opt) {
  auto setup = load_cost_setup(providers_path);
  if (auto* e = std::get_if<std::string>(&setup))
    return *e;
  swf_trace t;
  std::string error;
  if (!read_swf(swf_path, swf_options{}, t, error))
    return error;
  const std::int64_t procs = opt.procs > 0 ? opt.procs : t.max_procs;
  if (procs <= 0)
    return swf_path + ": no MaxProcs header; give --procs";
  return cost_replay_jobs(to_records(t), procs, std::get<cost_setup>(setup), opt);
}

std::string attempts_csv(const cost_result& r) {
  std::ostringstream o;
  o << "policy,job,trace_index,attempt,provider,instance_type,spot,instances,fallback,decided_s,"
       "start_s,end_s,outcome,price,cost,point_s,lo_s,hi_s,deadline_s\n";
  char buf[512];
  for (const auto& p : r.policies)
    for (const auto& a : p.attempts) {
      std::snprintf(
          buf, sizeof buf,
          "%s,%zu,%zu,%d,%s,%s,%d,%lld,%d,%.0f,%.0f,%.0f,%s,%lld,%lld,%.0f,%.0f,%.0f,%.0f\n",
          p.policy.c_str(), a.job, r.trace_index[a.job], a.attempt, a.provider.c_str(),
          a.instance_type.c_str(), a.spot ? 1 : 0, static_cast<long long>(a.instances),
          a.fallback ? 1 : 0, a.decided_s, a.start_s, a.end_s, a.outcome.c_str(),
          static_cast<long long>(a.price), static_cast<long long>(a.cost), a.point_s, a.lo_s,
          a.hi_s, r.deadline_s[a.job]);
      o << buf;
    }
  return o.str();
}

const cost_policy_result* cost_result::find(const std::string& policy) const {
  for (const auto& p : policies)
    if (p.policy == policy)
      return &p;
  return nullptr;
}

nlohmann::json cost_policy_result::to_json() const {
  nlohmann::json by = nlohmann::json::object();
  for (const auto& [k, v] : jobs_by_provider)
    by[k] = v;
  return {{"total_cost", format_usd(total_cost)},
          {"total_cost_micros", total_cost},
          {"preempted_cost", format_usd(preempted_cost)},
          {"deadline_misses", deadline_misses},
          {"avg_bsld", avg_bsld},
          {"avg_wait_s", avg_wait_s},
          {"preemptions", preemptions},
          {"refusals", refusals},
          {"fallbacks", fallbacks},
          {"jobs_by_provider", by},
          {"trainings", trainings},
          {"wall_s", wall_s}};
}

nlohmann::json cost_result::to_json() const {
  nlohmann::json pol = nlohmann::json::object();
  for (const auto& p : policies)
    pol[p.policy] = p.to_json();
  nlohmann::json out = {{"jobs", jobs},
                        {"skipped", skipped},
                        {"procs", procs},
                        {"deadline_factor", opt.deadline_factor},
                        {"budget_factor", opt.budget_factor},
                        {"instance_procs", opt.instance_procs},
                        {"memory_per_proc", opt.memory_per_proc},
                        {"seed", opt.seed},
                        {"policies", pol}};
  const auto* g = find("greedy");
  const auto* t = find("tender");
  if (g && t && g->total_cost > 0) {
    out["tender_vs_greedy_cost"] =
        static_cast<double>(t->total_cost) / static_cast<double>(g->total_cost) - 1.0;
    out["tender_target_met"] =
        static_cast<double>(t->total_cost) <= 0.9 * static_cast<double>(g->total_cost) &&
        t->deadline_misses <= g->deadline_misses;
  }
  return out;
}

std::string cost_result::table() const {
  std::ostringstream o;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%zu jobs (skipped %zu), cluster %lld procs, deadline = submit + %.2f x run, "
                "budget = %.2f x on-demand, seed %llu\n",
                jobs, skipped, static_cast<long long>(procs), opt.deadline_factor,
                opt.budget_factor, static_cast<unsigned long long>(opt.seed));
  o << buf;
  std::snprintf(buf, sizeof buf, "%-8s %16s %9s %8s %9s %10s %7s %7s %8s  %s\n", "POLICY",
                "TOTAL COST USD", "PREEMPTED", "MISSES", "AVG BSLD", "AVG WAIT", "PREEMPT",
                "REFUSED", "FALLBACK", "JOBS PER PROVIDER");
  o << buf;
  for (const auto& p : policies) {
    std::string by;
    for (const auto& [k, v] : p.jobs_by_provider)
      by += (by.empty() ? "" : ", ") + k + " " + std::to_string(v);
    std::snprintf(buf, sizeof buf, "%-8s %16s %9s %8zu %9.2f %9.0fs %7zu %7zu %8zu  %s\n",
                  p.policy.c_str(), format_usd(p.total_cost).c_str(),
                  format_usd(p.preempted_cost).c_str(), p.deadline_misses, p.avg_bsld, p.avg_wait_s,
                  p.preemptions, p.refusals, p.fallbacks, by.c_str());
    o << buf;
  }
  const auto* g = find("greedy");
  const auto* t = find("tender");
  if (g && t && g->total_cost > 0) {
    const double d = static_cast<double>(t->total_cost) / static_cast<double>(g->total_cost) - 1.0;
    std::snprintf(buf, sizeof buf,
                  "tender vs greedy: cost %+.1f %%, deadline misses %zu vs %zu (target: <= -10 "
                  "%% with no more misses: %s)\n",
                  100 * d, t->deadline_misses, g->deadline_misses,
                  d <= -0.1 && t->deadline_misses <= g->deadline_misses ? "met" : "not met");
    o << buf;
  }
  return o.str();
}

} // namespace tender
