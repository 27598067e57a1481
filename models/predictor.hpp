#pragma once
/// Predictors: run time and resource estimates with intervals, from what is known
/// at submit time. The XGBoost model (models issue) plugs in behind the same
/// interface; until a model is configured the history-based baseline fills the slot.

#include "protocol/job.hpp"
#include "protocol/profile.hpp"

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tender {

/// A prediction with its 90 % interval.
struct prediction {
  usec runtime = 0;
  usec runtime_lo = 0;
  usec runtime_hi = 0;
  std::string model_version; ///< "baseline:last2", "baseline:walltime", "xgboost:<digest>"
  std::string basis;         ///< a person-readable account of what drove it
};

/// A finished job, as a predictor learns from it.
struct finished_job {
  job_spec spec;
  usec submitted_at = 0;
  usec runtime = 0;
  usec finished_at = 0; ///< 0 = unknown (then submitted_at + runtime)
  double cpu_mean = 0.0;
  bytes_t mem_peak = 0;
};

class predictor {
public:
  virtual ~predictor();
  virtual prediction predict(const job_spec& spec, const resource_profile& measured,
                             usec now) const = 0;
  virtual void observe(const finished_job& job) = 0;
  /// A job was accepted at `at`, before it runs: predictors with per-user state (jobs
  /// of the user in flight, time since the last submission) learn of it now; the same
  /// job's `observe` later carries `submitted_at == at`. The default ignores it.
  virtual void submitted(const job_spec& spec, usec at);
  /// A job announced by `submitted` ended without a run to `observe` (refused, cancelled
  /// or failed before it started, or lost with its provider): it is no longer in flight.
  /// The default ignores it.
  virtual void withdrawn(const job_spec& spec);
  virtual std::string version() const = 0;
};

/// The history baseline: the same user's last two run times (Tsafrir, Etsion and
/// Feitelson 2007), else the sandbox measurement extrapolated, else the user's
/// walltime, else a global default. The interval is widened from the spread of
/// that user's recent errors.
class baseline_predictor final : public predictor {
public:
  prediction predict(const job_spec& spec, const resource_profile& measured,
                     usec now) const override;
  void observe(const finished_job& job) override;
  std::string version() const override { return "baseline:last2"; }

private:
  std::map<std::string, std::deque<usec>> by_user_; ///< most recent last
};

/// The users' requested times, as classic EASY plans (`[models] runtime = "requested"`;
/// `tender replay --policy easy` plans the same way): the walltime when the job has
/// one, else the median run time of the jobs finished so far, else an hour. The
/// interval is that one point: a job that outlives it is corrected by the plan.
class requested_predictor final : public predictor {
public:
  prediction predict(const job_spec& spec, const resource_profile& measured,
                     usec now) const override;
  void observe(const finished_job& job) override;
  std::string version() const override { return "requested"; }

private:
  std::vector<usec> finished_; ///< run times, sorted
};

} // namespace tender
