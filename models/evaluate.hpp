#pragma once
/// `tender model eval`: a time-ordered split of a trace, tender's model against the
/// baselines on the later part.
///
/// The model trains on the first `train_frac` of the jobs by submit time, using only
/// those that had finished when the first test job was submitted. Features of every
/// job come from one replay, so history rolls forward through the test period as jobs
/// finish; the intervals are recalibrated online from test jobs that have finished.

#include "models/features.hpp"
#include "models/runtime_model.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace tender {

struct point_metrics {
  double mae_s = 0;
  double medae_s = 0;
  double under_rate = 0; ///< share of predictions below the actual run time
};

struct interval_metrics {
  double coverage90 = 0, width90_s = 0;
  double coverage80 = 0, width80_s = 0;
};

struct eval_options {
  double train_frac = 0.7;
  model_config model;
  std::size_t recal_window = 2000; ///< finished jobs kept for online recalibration
  /// Refit the boosters on every job finished so far after this many test
  /// submissions (0 = never), as the agent retrains on its finished jobs.
  std::size_t retrain_every = 4000;
  /// Refits use at most this many of the most recent finished jobs (0 = all).
  std::size_t max_train_rows = 0;
};

struct eval_report {
  std::string trace;
  std::size_t n_train = 0, n_test = 0;
  point_metrics tender, last2, user_estimate, median;
  interval_metrics tender_iv;        ///< with online recalibration
  interval_metrics tender_static_iv; ///< calibration from the training slice only
  double train_seconds = 0;
  std::size_t refits = 0;

  /// Keys as in the issue: trace, n_train, n_test, runtime.{tender,last2,user_estimate,
  /// median}.{mae_s,medae_s,under_rate}, runtime.tender.{coverage90,width90_s,...}.
  nlohmann::json to_json() const;
  std::string table() const;
};

/// Point metrics of predictions against actual run times.
point_metrics score_points(const std::vector<double>& pred, const std::vector<double>& actual);

/// The user-estimate baseline: the requested time, else the history's median, else 0.
double user_estimate(const trace_job& j, double history_median);

/// Features and targets of every job with a replay (for training on a whole trace).
void training_rows(const std::vector<trace_job>& jobs, std::vector<feature_vector>& x,
                   std::vector<double>& y);

bool evaluate(const std::vector<trace_job>& jobs, const eval_options& opt, eval_report& out,
              std::string& error, const progress_fn& progress = {});

} // namespace tender
