#pragma once
/// Submit-time features of a job, and the online history they are computed from.
///
/// The history only learns what a scheduler knows at a given instant: a job's
/// submission when it is submitted, its run time when it finishes. `replay()` feeds a
/// trace through a history in event order (every finish strictly before a submit is
/// applied first), so a job's features never see its own run time or the run time of
/// any job that had not finished when it was submitted. A live job maps onto the same
/// record: `walltime` is the requested time, `user` the user, `hints.cpu` the
/// processors (rounded up to whole cores).

#include "models/swf.hpp"

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

namespace tender {

/// A job as the models see it. Times in seconds; -1 = unknown.
struct trace_job {
  double submit = 0;    ///< seconds (trace time or Unix time)
  double runtime = -1;  ///< actual run time, known once finished
  double end = -1;      ///< finish instant (submit + wait + run), known once finished
  double req_time = -1; ///< the user's estimate
  std::int64_t procs = -1;
  std::int64_t user = -1;
  std::int64_t group = -1;
  std::int64_t exe = -1;
  std::int64_t queue = -1;
  std::int64_t partition = -1;
  double day_offset = 0; ///< added to `submit` before taking the time of day/week
};

/// Records of a trace usable for run-time models: known run time >= 0 and submit.
std::vector<trace_job> to_records(const swf_trace& t);

/// Stable 63-bit id of a name (FNV-1a), for users and executables of live jobs.
std::int64_t name_id(const std::string& s);

/// Names of the feature vector's entries, in order. Missing values are NaN. Entry 39,
/// `anchor_log`, is log1p of the job's anchor: the median of the user's template
/// median (same requested time and processors), the request times the user's median
/// run/request ratio, and last-two, capped at the request.
const std::vector<std::string>& feature_names();
constexpr std::size_t n_features = 44;
using feature_vector = std::array<float, n_features>;

/// What is known about past jobs at an instant.
class job_history {
public:
  /// A job was submitted (its run time is not looked at).
  void submitted(const trace_job& j);
  /// A job finished; `j.runtime` and `j.end` must be set.
  void finished(const trace_job& j);
  /// A submitted job that will never finish (it ended without running): it is no
  /// longer counted among its user's jobs in flight.
  void withdrawn(const trace_job& j);

  /// Features of `j` from what the history knows now. Reads only `j`'s submit-time
  /// fields (never `runtime` or `end`).
  feature_vector features(const trace_job& j) const;

  /// The user's last two finished run times averaged (Tsafrir et al.), else the
  /// requested time; capped at the requested time. -1 when neither is known.
  double last2(const trace_job& j) const;
  /// Median run time of all finished jobs (-1 before any has finished).
  double global_median() const;
  std::size_t n_finished() const { return n_finished_; }
  /// Share of finished jobs with a requested time that ran longer than it (0 when
  /// none had one). Where jobs are stopped at their request this stays 0 and
  /// predictions may be capped at the request.
  double over_request_rate() const;
  /// How far past their request finished jobs have run: the 99.9th percentile of
  /// max(0, run - requested) over finished jobs with a request (0 where jobs are
  /// stopped at their request). An interval is capped at request + this.
  double overrun_allowance() const;

private:
  struct recent {
    std::deque<double> runs; ///< most recent last, at most `keep` entries
    void push(double r, std::size_t keep);
  };
  struct user_state {
    recent runs;   ///< run times
    recent ratios; ///< run / requested
    recent hit;    ///< 1 when a run reached 90 % of its request, else 0
    double last_submit = -1;
    double last_end = -1;
    std::int64_t submitted = 0;
    std::int64_t finished = 0;
    std::unordered_map<std::int64_t, recent> by_req, by_procs, by_exe, by_req_procs;
  };
  std::unordered_map<std::int64_t, user_state> users_;
  std::deque<double> global_recent_;     ///< last finished run times
  std::deque<double> global_ratio_;      ///< last finished run / requested
  mutable std::vector<double> overruns_; ///< positive run - requested, sorted when needed
  mutable bool overruns_sorted_ = true;
  std::priority_queue<double> low_; ///< lower half of all finished run times
  std::priority_queue<double, std::vector<double>, std::greater<double>> high_; ///< upper half
  std::size_t n_finished_ = 0;
  std::size_t n_with_req_ = 0, n_over_req_ = 0;
};

/// One row produced by `replay()`.
struct replay_row {
  std::size_t index; ///< into the records
  feature_vector x;
  double last2;        ///< baseline, seconds
  double median;       ///< baseline, seconds
  bool cap_at_request; ///< no finished job has run past its request so far
  double cap_s;        ///< request + overrun allowance (-1 without a request)
};

/// Walks `jobs` (sorted by submit) in event order: before each submission, every
/// finish with end < submit, earliest first (ties by index); remaining finishes last.
void for_each_event(const std::vector<trace_job>& jobs,
                    const std::function<void(std::size_t)>& on_submit,
                    const std::function<void(std::size_t)>& on_finish);

/// Replays `jobs` (sorted by submit) through `h`: for each job, applies every finish
/// with end < submit (calling `on_finish(index)` after each), calls `on_submit` with the
/// job's features, then records the submission. Finishes left at the end are applied.
void replay(const std::vector<trace_job>& jobs, job_history& h,
            const std::function<void(const replay_row&)>& on_submit,
            const std::function<void(std::size_t)>& on_finish = {});

} // namespace tender
