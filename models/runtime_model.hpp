#pragma once
/// The run-time model: XGBoost boosters over submit-time features, trained on
/// log(1 + run time).
///
///   median  reg:absoluteerror   (the MAE-optimal point prediction)
///   q05 q95 q10 q90             custom pinball objective through XGBoosterBoostOneIter
///
/// The quantile boosters are fitted on the earlier part of the training slice and
/// calibrated by split conformal prediction (conformalized quantile regression) on
/// the later part; `conformal_window` recalibrates online from recently finished jobs.
///
/// Model file (JSON): `format`, `format_version`, `xgboost_version`, `features`,
/// `train_digest`, `n_train`, `metrics`, `config`, `calibration`, `model_digest`,
/// and the boosters as XGBoost JSON text under `boosters`. Loading checks all of it.

#include "models/features.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tender {

struct model_config {
  int rounds = 100;
  int max_depth = 6;
  double eta = 0.15;
  double min_child_weight = 5;
  double subsample = 0.8;
  double colsample = 0.8;
  int nthread = 2;
  /// What the median booster fits with absolute error: "ratio" (run time over a scale —
  /// the requested time, else the recent global median — weighted by that scale, which
  /// is the absolute error in seconds), "seconds", or "log" (log1p seconds).
  std::string point_target = "ratio";
  double calibration_frac = 0.2; ///< later part of the training slice used to calibrate
  std::uint64_t seed = 1;
  nlohmann::json to_json() const;
};

/// Interval calibration in log space: widen [lo, hi] by `add` on both sides.
struct calibration {
  double add90 = 0;
  double add80 = 0;
  std::size_t n = 0;
};

/// The raw outputs of the boosters for one job, log(1 + seconds).
struct raw_prediction {
  double median = 0, q05 = 0, q95 = 0, q10 = 0, q90 = 0;
};

/// A prediction in seconds.
struct runtime_estimate {
  double median = 0;
  double lo90 = 0, hi90 = 0;
  double lo80 = 0, hi80 = 0;
};

/// The scale of a job for the "ratio" target: its requested time, else the recent
/// global median run time, at least 1 s.
double job_scale(const feature_vector& x);

/// Conformity score of a job: how far outside [lo, hi] (log space) its run time fell.
double cqr_score(double lo, double hi, double y_log);
/// The split-conformal correction: the ceil((n+1)(1-alpha))-th smallest score.
double conformal_quantile(std::vector<double> scores, double alpha);

/// Turns raw outputs into seconds: applies the corrections, caps the median at the
/// requested time where known (`req` <= 0: unknown) and the interval too when
/// `cap_interval` (jobs here are stopped at their request), orders lo <= median <= hi.
runtime_estimate to_estimate(const raw_prediction& r, double add90, double add80, double req,
                             bool cap_interval = true);

/// Online recalibration: scores of the most recently finished jobs.
class conformal_window {
public:
  explicit conformal_window(std::size_t size = 2000) : size_(size) {}
  void add(const raw_prediction& r, double runtime_s);
  std::size_t size() const { return s90_.size(); }
  /// Current corrections; `fallback` until `min_n` scores are in.
  calibration current(const calibration& fallback, std::size_t min_n = 200) const;

private:
  std::size_t size_;
  std::deque<double> s90_, s80_;
};

using progress_fn = std::function<void(int done, int total)>;

class runtime_model {
public:
  runtime_model();
  ~runtime_model();
  runtime_model(runtime_model&&) noexcept;
  runtime_model& operator=(runtime_model&&) noexcept;

  /// Trains on rows in time order (`y` in seconds, `req` the requested times).
  static bool train(const std::vector<feature_vector>& x, const std::vector<double>& y,
                    const model_config& cfg, runtime_model& out, std::string& error,
                    const progress_fn& progress = {});

  bool usable() const;
  /// Retrains the point (median) booster on newer rows, keeping the interval boosters
  /// and their calibration (the agent's periodic retraining on finished jobs).
  bool refit_point(const std::vector<feature_vector>& x, const std::vector<double>& y,
                   const model_config& cfg, std::string& error);
  /// Raw booster outputs for many rows at once.
  bool predict_raw(const std::vector<feature_vector>& x, std::vector<raw_prediction>& out,
                   std::string& error) const;
  /// One row, with the model's static calibration.
  bool predict(const feature_vector& x, double req, runtime_estimate& out,
               std::string& error) const;

  const calibration& static_calibration() const { return cal_; }
  /// "xgboost:" and the first 12 hex digits of the model digest.
  std::string version() const;
  /// Metadata as saved (without the boosters).
  const nlohmann::json& metadata() const { return meta_; }
  nlohmann::json& metadata() { return meta_; }

  bool save(const std::string& path, std::string& error) const;
  /// Loads a model file; on any problem returns false with a message naming the file.
  static bool load(const std::string& path, runtime_model& out, std::string& error);

  /// 64-bit FNV-1a hex digest of training rows (feature bytes and targets).
  static std::string digest_rows(const std::vector<feature_vector>& x,
                                 const std::vector<double>& y);
  static std::string library_version();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
  calibration cal_;
  std::string point_target_ = "log";
  nlohmann::json meta_;
};

} // namespace tender
