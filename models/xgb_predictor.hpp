#pragma once
/// The XGBoost run-time predictor behind the `predictor` interface.
///
/// A live job maps onto the trace features: `walltime` is the requested time, `user`
/// the user (by a stable hash of the name), `hints.cpu` the processors (whole cores,
/// rounded up). The predictor keeps its own history of submitted (`submitted`) and
/// finished jobs (`observe`) and recalibrates its intervals from the finished ones. When the model
/// file is missing, damaged or built for other features it says why in `load_error()` and every
/// prediction comes from the baseline predictor instead. Not thread-safe: one owner calls it.

#include "models/predictor.hpp"
#include "models/runtime_model.hpp"

#include <cstdint>
#include <string>
#include <unordered_map>

namespace tender {

class xgb_predictor final : public predictor {
public:
  /// Loads the model at `model_path`.
  explicit xgb_predictor(const std::string& model_path);
  /// Uses a trained model (an unusable one falls back to the baseline).
  explicit xgb_predictor(runtime_model model);

  prediction predict(const job_spec& spec, const resource_profile& measured,
                     usec now) const override;
  void observe(const finished_job& job) override;
  /// Records the submission in the history (the user's jobs in flight, the time since
  /// their last submission), as the trace replay does at submit time. Call it after
  /// the job's own prediction: its features, as in the replay, do not include itself.
  void submitted(const job_spec& spec, usec at) override;
  /// Takes a job announced by `submitted` out of its user's jobs in flight.
  void withdrawn(const job_spec& spec) override;
  std::string version() const override;

  bool model_usable() const { return model_.usable(); }
  /// Why the model is not used (empty when it is).
  const std::string& load_error() const { return error_; }

  /// The model's view of a live job submitted at `now`.
  static trace_job to_record(const job_spec& spec, usec now);
  /// The features `predict` gives the model for a job submitted at `now`.
  feature_vector features(const job_spec& spec, usec now) const;

private:
  runtime_model model_;
  std::string error_;
  baseline_predictor baseline_;
  job_history history_;
  conformal_window window_{500};
  /// Per user, submissions recorded by `submitted` whose jobs have not been observed
  /// finishing (their `observe` does not count the submission again).
  std::unordered_map<std::int64_t, std::int64_t> in_flight_;
};

} // namespace tender
