#pragma once
/// Memory-peak and CPU models: XGBoost over submit-time features, set high enough
/// that few jobs use more than predicted, measured against the VPA-style recommender.
///
/// Targets (what a job is allocated, so per job, not per processor):
///   memory  the job's peak memory in bytes. From SWF: field 7 (used memory, KB per
///           processor) x 1024 x allocated processors (field 5, else requested);
///           from the node's history: `finished_job::mem_peak`.
///   cpu     the job's mean cores over its run. From SWF: field 6 (average CPU time
///           per processor, s) x processors / run time (field 4 > 0); from the
///           node's history: `finished_job::cpu_mean` (0 = not measured).
///
/// Prediction = exp(anchor + f(x) + margin), in log space:
///   anchor  the user's usual log usage — either their recent mean total, or their
///           recent mean per processor plus log(processors), whichever was closer on
///           the training slice (on HPC2N memory the total, CPU the per-processor
///           form); the recent global median for a user without history;
///   f       an XGBoost booster (squared error in log space) correcting the anchor
///           from the features below;
///   margin  a one-sided split-conformal correction: the ceil((n + 1)(1 - target))-th
///           smallest residual log(actual) - (anchor + f) of jobs the booster had not
///           trained on — first the later `calibration_frac` of the training slice,
///           then, online, the `window` most recently finished jobs. Either flat, or
///           scaled by the user's recent spread of log usage (residuals divided by it,
///           margin multiplied by it), whichever had the smaller absolute error at the
///           target on the calibration slice. It aims the under-prediction rate
///           (prediction < actual) at `target_under_memory` / `target_under_cpu`.
///
/// Features: the 30 run-time features of `job_history` (features.hpp) plus the
/// usage history of `usage_history` below (the user's recent usage, the same user's
/// jobs with the same processor count / executable / requested time, the recent
/// global median and spread, the VPA recommender's P50 and P90 for the job, the
/// requested memory, both anchors).
///
/// Evaluation (`evaluate_resources`) as for run time, over the jobs with a measured
/// target (on HPC2N memory is recorded only from the ~2000th job on): in submit order,
/// train on the first `train_frac` of them that had finished when the first test job
/// was submitted; history (features, VPA histograms, the margin's window) rolls
/// forward through the test period as jobs finish, and the booster is refitted every
/// `refit_every` test jobs on every job finished by then. A job's usage is known only
/// after it finished (`end`), never at its own submission.

#include "models/features.hpp"
#include "models/predictor.hpp"
#include "models/vpa.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace tender {

/// A job with its measured usage. -1 = unknown.
struct usage_job {
  trace_job job;             ///< submit-time fields, run time and finish instant
  double mem_bytes = -1;     ///< peak memory of the whole job
  double cpu_cores = -1;     ///< mean cores over the run
  double mem_req_bytes = -1; ///< requested memory of the whole job (a feature)
};

/// The trace's jobs (the same records, in the same order, as `to_records`) with
/// their usage where the trace has it.
std::vector<usage_job> usage_records(const swf_trace& t);
/// The node's own finished jobs, sorted by submission. A finished job carries no
/// start time: it is taken to have finished `runtime` after it was submitted.
std::vector<usage_job> usage_records(const std::vector<finished_job>& history);

enum class resource_kind { memory, cpu };
const char* to_string(resource_kind k);

/// The target of `k` for a job (-1 when unknown).
double usage_target(const usage_job& j, resource_kind k);

constexpr std::size_t n_usage_features = 19;
constexpr std::size_t n_resource_features = n_features + n_usage_features;
using resource_features = std::array<float, n_resource_features>;
/// Names of the usage features (after the 30 of `feature_names()`).
const std::vector<std::string>& usage_feature_names();

/// What is known about past jobs' usage at an instant: per-user and template
/// histories and the VPA-style recommenders, fed as jobs finish.
class usage_history {
public:
  explicit usage_history(const vpa_options& mem = {}, const vpa_options& cpu = cpu_vpa());
  static vpa_options cpu_vpa();

  /// A job finished at `j.job.end`; its known usage is recorded.
  void finished(const usage_job& j);
  /// Usage features of `k` for a job about to be submitted (reads only submit-time fields).
  std::array<float, n_usage_features> features(const usage_job& j, resource_kind k) const;
  /// The VPA-style target for `k` (-1 when nothing has finished yet).
  double vpa(const usage_job& j, resource_kind k) const;
  const vpa_recommender& recommender(resource_kind k) const;

private:
  struct series {
    std::deque<double> v; ///< log of the target, most recent last
    void push(double x, std::size_t keep);
  };
  struct user_state {
    series value, per_proc;
    std::unordered_map<std::int64_t, series> by_procs, by_exe, by_req;
  };
  std::array<std::unordered_map<std::int64_t, user_state>, 2> users_;
  std::array<std::deque<double>, 2> global_;
  std::array<vpa_recommender, 2> vpa_;
};

struct resource_config {
  int rounds = 150;
  int max_depth = 4;
  double eta = 0.08;
  double min_child_weight = 3;
  double subsample = 0.8;
  double colsample = 0.8;
  int nthread = 1; ///< the boosters are small: one thread beats two here
  std::uint64_t seed = 1;
  /// The under-prediction rates the margins aim at: 1.5 % for memory (a job over its
  /// memory is killed), 10 % for CPU (a job over its cores is slowed; VPA's own P90).
  double target_under_memory = 0.015;
  double target_under_cpu = 0.10;
  double spread_floor = 0.05; ///< added to the user's log-usage spread the margin scales with
  double calibration_frac = 0.25; ///< later part of the training slice for the margin
  std::size_t window = 300;       ///< recent finished jobs the online margin uses
  std::size_t refit_every = 100;  ///< test jobs between refits (0 = never)
  double train_frac = 0.7;
  std::size_t min_jobs = 30;      ///< fewer jobs with the target: no evaluation
  nlohmann::json to_json() const;
};

struct resource_metrics {
  double mae = 0;   ///< bytes or cores
  double medae = 0;
  double under_rate = 0; ///< share of jobs that used more than predicted
  double mean_pred = 0, mean_actual = 0;
};

struct resource_eval {
  bool available = false;
  std::string why; ///< when not available: what the data lacks
  std::size_t n_jobs = 0, n_train = 0, n_test = 0;
  resource_metrics tender, vpa;
  double final_margin = 0; ///< the log-space margin in force at the end
  std::string anchor;      ///< the starting point the booster corrects
  bool margin_scaled = false; ///< margin proportional to the user's spread (else flat)
  std::size_t refits = 0;
};

struct resource_report {
  std::string source;
  resource_eval memory, cpu;
  /// `memory.{tender,vpa}.{mae_bytes,medae_bytes,under_rate}` and
  /// `cpu.{tender,vpa}.{mae_cores,medae_cores,under_rate}`, plus n_train/n_test;
  /// a target the data lacks is null and `memory_unavailable` / `cpu_unavailable`
  /// say why.
  nlohmann::json to_json() const;
  std::string table() const;
};

resource_metrics score_usage(const std::vector<double>& pred, const std::vector<double>& actual);

/// Features and the VPA-style target of `k` for every job, from one replay: each row
/// sees only jobs that finished before the job's submission (no leakage).
struct usage_rows {
  std::vector<resource_features> x;
  std::vector<double> vpa; ///< -1 before any job with the target has finished
};
usage_rows replay_usage(const std::vector<usage_job>& jobs, resource_kind k);

/// Evaluates memory and CPU on `jobs` (sorted by submit time). Returns false only on
/// a library error; a target the data lacks is reported unavailable with the reason.
bool evaluate_resources(const std::vector<usage_job>& jobs, const resource_config& cfg,
                        resource_report& out, std::string& error);

/// Reads an SWF trace (`read_swf`) and evaluates it.
bool evaluate_swf_resources(const std::string& path, const swf_options& opt,
                            const resource_config& cfg, resource_report& out,
                            std::string& error);

/// The same evaluation on the node's own finished jobs.
bool evaluate_history(const std::vector<finished_job>& history, const resource_config& cfg,
                      resource_report& out, std::string& error);

} // namespace tender
