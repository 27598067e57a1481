#pragma once
/// `tender replay --swf FILE --providers CONFIG`: the cost of a job trace across the
/// internal cluster and market providers, on virtual time, for three policies that
/// see the same predictions, catalogue, prices, budgets and preemptions:
///
/// * `cluster`: every job queues on the internal cluster;
/// * `greedy`: at submit, the cheapest offer whose point-predicted finish meets the
///   deadline and whose price fits the budget (SkyPilot's choice); on a refused
///   commit the next cheapest; the cluster queue when nothing fits;
/// * `tender`: the offers go into the agent's `auction_book` and are ranked by its
///   `offer_scorer` (expected cost over the predicted run-time distribution,
///   probability of meeting the deadline from the interval, the start and the
///   preemption rate, provider risk); the best feasible one is awarded, a refusal
///   moves on to the next. When none is feasible (no offer reaches `deadline_target`)
///   `fallback_order` ranks them (the target relative to the best probability on
///   offer, greedy's point test first, a miss costing the job's value whichever offer
///   it happens on); the cluster queue when no offer has any chance by the prediction
///   (as greedy) or none is within budget.
///
/// The parts are the agent's own: the cluster is `easy_scheduler` (the capacity plan
/// and EASY backfilling of `tender replay`); its offer's earliest start is the earlier
/// of the plan's `projected_start` (every waiting job keeps its place) and its EASY passes
/// played forward (running jobs ending as planned, no new arrival: backfilling
/// counted); its price is the local provider's list price, cost-plus with the
/// utilisation markup (`busy_markup`, utilisation of the cluster's processors before
/// the job), so a busy cluster quotes more, while what a job run there is billed is
/// the cost (`local_provider::cost`); every market is a `market_provider` whose `bid()` and
/// `hold()` run on the replay's clock (catalogue prices, spot or on-demand, provisioning delay,
/// injected refusals); predictions come from the `tender` replay policy (the XGBoost run-time model
/// trained online, the users' last two before the first training).
///
/// One job's life in a policy's replay (an attempt is one placement):
///
///   submit ─decide─> cluster queue ──EASY starts it──> running ──ends──> done
///             └────> market (hold) ──provisioning──> running ──ends──> done
///                                                        └─ spot preempted ─> decide again
///
/// Mapping, documented and the same for all policies:
/// * a trace processor is one core (vCPU) with `memory_per_proc` of memory;
/// * on a market a job of p processors takes n = ceil(p / instance_procs) identical
///   instances of ceil(p / n) cores each; its price and cost are n times one instance's;
/// * the price sheet is a single snapshot (AWS, 2022-05-31): its prices hold at every
///   instant of the trace;
/// * deadline = submit + deadline_factor × the job's actual run time (the only place a
///   policy's input depends on the actual run time, as the issue defines it; no policy
///   inverts it);
/// * budget = budget_factor × the cheapest covering on-demand instance's price for the
///   job's requested time (× n); no limit when no market covers the job;
/// * cost: markets bill each instance per second (60 s minimum) from its start to its
///   end or preemption; the cluster costs `local_provider::cost` of the job's cores and
///   memory for its run time (its cost-plus price per core-hour and GiB-hour);
/// * spot preemption: an attempt on a spot instance of market M is preempted after an
///   exponential time with M's `preemption_per_hour`, drawn from a generator seeded by
///   (seed, job, attempt, M): a job placed the same way meets the same fate under every
///   policy. The preempted attempt's cost is paid and the job is decided again, from
///   scratch, at the preemption instant.
/// * a job's end: the end of its successful attempt; bsld = max(1, (end - submit -
///   run + run) / max(run, 10)) = max(1, (end - submit) / max(run, 10)).

#include "actors/trace_replay.hpp"
#include "config/node_config.hpp"
#include "providers/provider_config.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tender {

/// The providers of a cost replay, from a node config: exactly one local provider (the
/// internal cluster; its pricing and availability are used, its size is the trace's)
/// and at least one market; `[scoring]` weighs tender's offers.
struct cost_setup {
  provider_config cluster;
  std::vector<provider_config> markets;
  scoring_config scoring;
  std::string source;
};
std::variant<cost_setup, std::string> cost_setup_from(const node_config& cfg);
/// Loads and checks a providers config file.
std::variant<cost_setup, std::string> load_cost_setup(const std::string& path);

struct cost_options {
  std::int64_t procs = 0;           ///< cluster size (0: the trace's MaxProcs)
  double deadline_factor = 3.0;     ///< deadline = submit + this × run time
  double budget_factor = 1.0;       ///< budget = this × on-demand price for the requested time
  std::int64_t instance_procs = 32; ///< most processors on one market instance
  bytes_t memory_per_proc = 2LL << 30;
  std::uint64_t seed = 1; ///< preemption draws (and the model's)
  std::size_t limit = 0;  ///< replay only the first N jobs by submit time (0: all)
  /// "cluster", "greedy", "tender", run in this order.
  std::vector<std::string> policies = {"cluster", "greedy", "tender"};
  replay_options predict; ///< the run-time model's settings (policy "tender")
  /// Keep every attempt with the offers it was decided among (tests).
  bool keep_attempts = false;
  /// Deadlines in seconds per input job (tests; empty: from deadline_factor).
  std::vector<double> deadline_s;
  std::function<void(const std::string&, std::size_t, std::size_t)> progress;
};

/// One offer a decision was made among.
struct cost_candidate {
  std::string provider;
  micros price = 0;             ///< for all instances, at the point prediction
  double start_s = 0;           ///< earliest start
  double point_finish_s = 0;    ///< start + point prediction
  bool greedy_feasible = false; ///< point finish by the deadline and price within budget
  bool tender_feasible = false; ///< the scorer's verdict (tender only)
  double risk_adjusted = 0;     ///< the scorer's (tender only)
  bool refused = false;         ///< awarded, and the commit was refused
};

/// One placement of a job.
struct cost_attempt {
  std::size_t job = 0; ///< index among the replayed jobs (submit order)
  int attempt = 0;     ///< 0, 1, ... (a new one after each preemption)
  std::string provider;
  std::string instance_type; ///< market: the instance type; cluster: ""
  bool spot = false;
  std::int64_t instances = 1;
  bool fallback = false; ///< nothing fitted: queued on the cluster
  double decided_s = 0;
  double start_s = -1;
  double end_s = -1;
  std::string outcome; ///< "done" or "preempted"
  micros price = 0;    ///< what the chosen offer quoted
  micros cost = 0;     ///< what was billed
  double point_s = 0;  ///< the prediction it was decided with (point, 90 % interval)
  double lo_s = 0;
  double hi_s = 0;
  std::vector<cost_candidate> offers;
};

struct cost_policy_result {
  std::string policy;
  micros total_cost = 0;
  micros preempted_cost = 0; ///< paid for attempts that were preempted
  std::size_t deadline_misses = 0;
  double avg_bsld = 0;
  double avg_wait_s = 0; ///< submit to the successful attempt's start
  std::size_t preemptions = 0;
  std::size_t refusals = 0;
  /// Decisions where nothing fitted: greedy's cluster queue; tender's relative target
  std::size_t fallbacks = 0;
  std::map<std::string, std::size_t> jobs_by_provider; ///< where each job finished
  std::size_t trainings = 0;
  double wall_s = 0;
  std::vector<double> end_s;          ///< per job
  std::vector<cost_attempt> attempts; ///< with keep_attempts

  nlohmann::json to_json() const;
};

struct cost_result {
  std::size_t jobs = 0;
  std::size_t skipped = 0; ///< wider than the cluster, or without processors or run time
  std::int64_t procs = 0;
  cost_options opt;
  std::vector<double> deadline_s; ///< per job
  std::vector<micros> budget;     ///< per job
  std::vector<std::size_t> trace_index;
  std::vector<cost_policy_result> policies;

  const cost_policy_result* find(const std::string& policy) const;
  nlohmann::json to_json() const;
  std::string table() const;
};

/// Every attempt of every policy as CSV (needs keep_attempts), one line each.
std::string attempts_csv(const cost_result& r);

/// Replays `jobs` (any order) on a cluster of `procs` and the setup's markets.
std::variant<cost_result, std::string> cost_replay_jobs(std::vector<trace_job> jobs,
                                                        std::int64_t procs, const cost_setup& setup,
                                                        const cost_options& opt);
/// Reads the SWF file and the providers config and replays.
std::variant<cost_result, std::string> cost_replay_swf(const std::string& swf_path,
                                                       const std::string& providers_path,
                                                       const cost_options& opt);

/// When `job` (a key the scheduler does not know) would start if it queued on `sched`
/// at `now`: the plan's EASY passes played forward on a copy, running jobs ending as
/// planned and nothing else arriving, so backfilling counts (`projected_start` keeps
/// every waiting job in its place: later). nullopt when not by `until` or within
/// `max_ends` ends (a bound on the work).
std::optional<usec> backfill_start(const easy_scheduler& sched, const waiting_job& job, usec now,
                                   usec until, int max_ends = 64);

/// One offer in tender's fallback (no offer reached `deadline_target`), as scored.
struct fallback_offer {
  bool cluster = false;       ///< the internal cluster's queue
  bool within_budget = true;  ///< worst cost within the job's budget
  double p_deadline = 0;      ///< the scorer's probability of meeting the deadline
  double expected_cost = 0;   ///< micro-dollars, the scorer's
  double risk = 0;            ///< the scorer's provider risk
  bool point_in_time = false; ///< start + point prediction meets the deadline
};

/// Tender's order of the offers (indices) when none reached `deadline_target`; empty:
/// the cluster queue. Candidates: the offers within budget and the cluster's (the queue
/// of last resort, whatever its list price). When none has any chance (p = 0) there
/// are none. The target becomes `deadline_target` x the best probability among them;
/// first the ones reaching it whose point-predicted finish meets the deadline, then
/// the other ones reaching it, then the rest (the first class only exists when some
/// offer is in it). Within a class, by w_cost x expected cost + w_deadline x (1 - p) x
/// the job's value + w_risk x risk x expected cost, where the value is the budget (at
/// least the dearest expected cost on offer): a miss costs the same whichever offer it
/// happens on, so a cheap offer likelier to miss does not make it cheaper.
std::vector<std::size_t> fallback_order(const std::vector<fallback_offer>& offers,
                                        const scoring_config& w, micros budget);

/// Greedy's choice: the index of the cheapest offer (ties: the earlier) whose point
/// finish meets `deadline_s` and whose price is within `budget` (0: none), skipping
/// the ones marked refused; -1 when none.
int greedy_pick(const std::vector<cost_candidate>& offers, double deadline_s, micros budget);

} // namespace tender
