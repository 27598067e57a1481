#pragma once
/// Replays a job trace (SWF) through the internal cluster's scheduling code on
/// virtual time: the same `easy_scheduler` (providers/backfill.hpp) the local
/// provider plans with, fed by run-time predictions from the same models.
///
/// Events at one instant are handled in this order, then one scheduling pass runs:
///
///   finishes (the policy learns the run time) ─> corrections of running jobs that
///   outlived their planned run time ─> submissions (the policy predicts) ─> schedule
///
/// A policy never sees a job's run time before the job ends in the replay: it gets
/// a copy of the job with `runtime` and `end` unknown (-1) at submission and at
/// corrections, and the real values only in `finished`. Only the replay loop reads
/// the trace's run times, to schedule each finish.

#include "models/features.hpp"
#include "providers/backfill.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace tender {

/// What a policy plans with for one job, in seconds.
struct replay_plan {
  double planned_s = 0; ///< run time the plan counts on (reservations, backfill)
  double order_s = 0;   ///< what shortest-first backfilling sorts by
  /// The prediction's 90 % interval (0: unknown), for pricing over the run-time
  /// distribution (`tender replay --providers`). Added with the cost replay.
  double lo_s = 0;
  double hi_s = 0;
};

class replay_policy {
public:
  virtual ~replay_policy();
  virtual std::string name() const = 0;
  virtual backfill_order order() const = 0;
  /// Job `id` is submitted at `now` (seconds); `j.runtime` and `j.end` are -1.
  virtual replay_plan submitted(std::size_t id, const trace_job& j, double now) = 0;
  /// Job `id` has run `elapsed` seconds, past its planned `planned_s`: the new planned
  /// run time (the replay makes it at least elapsed + 1 s). `j` as at submission.
  virtual double correct(std::size_t id, const trace_job& j, double elapsed, double planned_s,
                         double now) = 0;
  /// Job `id` finished at `now`; `j.runtime` and `j.end` are set.
  virtual void finished(std::size_t id, const trace_job& j, double now) = 0;
  /// Model trainings so far (0 for policies without a model).
  virtual std::size_t trainings() const { return 0; }
};

struct replay_options {
  std::string policy = "easy"; ///< easy | easy-sjbf | easy++ | tender
  std::int64_t procs = 0;      ///< machine size (0: the trace's MaxProcs)
  /// tender: train first when this many jobs have finished, then retrain every
  /// `retrain_every` finishes on the most recent `max_train_rows` finished jobs.
  std::size_t first_train = 2000;
  std::size_t retrain_every = 10000;
  std::size_t max_train_rows = 60000;
  /// tender: what the plan counts on: "median" (the point prediction), "lower80" (the
  /// 80 % interval's lower end), "upper80" or "upper" (the 90 % interval's upper end).
  /// A job that outlives its plan is corrected to the 90 % upper end, then to its
  /// request, then by doubling.
  std::string tender_plan = "median";
  std::uint64_t seed = 1;
  /// Called now and then with (jobs done, total).
  std::function<void(std::size_t, std::size_t)> progress;
};

struct replay_result {
  std::string policy;
  std::size_t jobs = 0;    ///< jobs replayed
  std::size_t skipped = 0; ///< jobs wider than the machine or without processors
  std::int64_t procs = 0;
  double avg_bsld = 0; ///< mean of max(1, (wait + run) / max(run, 10))
  double avg_wait_s = 0;
  double utilization = 0;      ///< processor-seconds used / (procs × makespan)
  std::size_t corrections = 0; ///< planned run times corrected after being outlived
  std::size_t backfilled = 0;  ///< jobs started ahead of an earlier waiting job
  std::size_t trainings = 0;   ///< model (re)trainings (tender)
  std::size_t max_waiting = 0;
  double wall_s = 0;
  std::vector<double> start_s;          ///< per replayed job, in submit order: its start
  std::vector<std::size_t> trace_index; ///< per replayed job: its index in the records

  nlohmann::json to_json() const;
  std::string table() const;
};

/// The built-in policies: easy (requested times, FCFS backfill), easy-sjbf (requested
/// times, shortest first), easy++ (user's last-two average capped at the request,
/// corrected to the request when outlived, shortest first; Tsafrir et al. 2007),
/// tender (the XGBoost run-time model trained online on finished jobs, planning with
/// its median and correcting to its interval's upper end, shortest predicted first). Error for an
/// unknown name.
std::variant<std::unique_ptr<replay_policy>, std::string>
make_replay_policy(const replay_options& opt);

/// Replays `jobs` (any order; sorted by submit here) on a machine of `procs`.
std::variant<replay_result, std::string> replay_jobs(std::vector<trace_job> jobs,
                                                     std::int64_t procs, replay_policy& policy,
                                                     const replay_options& opt);

/// Reads the SWF file (gzip or not) and replays it with the policy named in `opt`.
std::variant<replay_result, std::string> replay_swf(const std::string& path,
                                                    const replay_options& opt);

} // namespace tender
