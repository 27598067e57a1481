#pragma once
/// Continuous learning: the node retrains its run-time model on its own finished jobs
/// and keeps the new model only when it is better on the most recent of them.
///
///   finished jobs (time order) ── older part ──> train candidate
///                              └─ newest `holdout_frac` ──> MAE of candidate vs current
///                                                            └─ lower wins (ties keep current)
///
/// Features come from one replay of the node's history, so every job is scored with
/// what was known when it was submitted (no leakage); the candidate trains only on
/// jobs that had finished before the first held-out job was submitted.

#include "models/features.hpp"
#include "models/predictor.hpp"
#include "models/runtime_model.hpp"

#include <string>
#include <vector>

namespace tender {

struct retrain_options {
  std::size_t min_jobs = 200;  ///< fewer finished jobs: no retraining
  double holdout_frac = 0.2;   ///< newest share of the jobs the two models are compared on
  std::size_t min_holdout = 20;
  model_config model;
};

struct retrain_outcome {
  bool trained = false;  ///< a candidate was trained and compared
  bool replaced = false; ///< ... and it beat the current predictor
  std::string reason;    ///< what happened, in words
  std::string old_version, new_version;
  double old_mae_s = -1, new_mae_s = -1;
  std::size_t n_train = 0, n_holdout = 0;
};

/// A node's finished job as the models see it (the same mapping as a live job, see
/// xgb_predictor::to_record); `end` is when it finished.
trace_job history_record(const finished_job& j);
/// All of them, sorted by submission.
std::vector<trace_job> history_records(const std::vector<finished_job>& jobs);

/// Trains a candidate on the older jobs and compares it with `current` (null or an
/// unusable model: the user's-last-two baseline the node falls back to) on the newest.
/// On `replaced`, `candidate` holds the new model.
retrain_outcome retrain_runtime(const std::vector<finished_job>& jobs,
                                const runtime_model* current, const retrain_options& opt,
                                runtime_model& candidate);

} // namespace tender
