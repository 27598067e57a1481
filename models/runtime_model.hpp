#pragma once
/// The run-time model: two XGBoost boosters over submit-time features.
///
///   point   reg:absoluteerror on run time over a per-job scale, weighted by the scale
///           (exactly the absolute error in seconds: the MAE-optimal point prediction)
///   spread  reg:squarederror on |log1p(run) - log1p(point)|: how uncertain a job is
///
/// Intervals are normalized split-conformal around the point prediction in log space:
/// [m - lo * s, m + hi * s] with m = log1p(point), s = spread, and lo, hi the conformal
/// quantiles of (m - y) / s and (y - m) / s (half the miss rate on each side). The
/// static multipliers come from a later slice of the training rows (boosters fitted on
/// the earlier part); `conformal_window` recalibrates them online from finished jobs.
///
/// Predictions walk the trees in a flat array (`flat_forest`) loaded from the boosters'
/// own JSON; it gives exactly XGBoost's outputs without building a DMatrix per call.
///
/// Model file (JSON): `format`, `format_version`, `xgboost_version`, `features`,
/// `train_digest`, `n_train`, `metrics`, `config`, `calibration`, `model_digest`,
/// and the boosters as XGBoost JSON text under `boosters`. Loading checks all of it.
/// Version 3 (this one): 44 features (the anchors added), boosters `point` and
/// `spread`, normalized calibration. Version 2 had 36 features, version 1 six boosters
/// (median, quantiles); both are refused with a clear error.

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
  int rounds = 10;
  int max_depth = 3;
  double eta = 0.15;
  double min_child_weight = 5;
  double subsample = 0.8;
  double colsample = 0.8;
  int max_bin = 256;
  int nthread = 2;
  int spread_rounds = 40;
  int spread_max_depth = 3; ///< tree depth of the spread booster
  /// What the point booster fits with absolute error, weighted by the scale so that the
  /// loss is the absolute error in seconds: "anchor" (run time over the job's anchor,
  /// feature `anchor_log`: the median of the user's template median, request times
  /// median ratio, and last-two), "ratio" (over the requested time, else the recent
  /// global median), "last2" (over the user's last-two average, else the requested
  /// time, else the global median), "seconds", "log" (log1p seconds), or "auto":
  /// "ratio", "last2" or "anchor", whichever has the lower absolute error on the later
  /// slice of the training rows (the choice is kept by refits and saved). Few shallow
  /// trees (10 rounds of depth 3): the booster is a light correction of the anchor;
  /// deeper or longer boosting fitted the training period and lost on the test period.
  std::string point_target = "anchor";
  /// Row weights halve every this many rows back in time (0 = all rows weigh the same).
  double recency_halflife = 0;
  double calibration_frac = 0.2; ///< later part of the training slice used to calibrate
  std::uint64_t seed = 1;
  nlohmann::json to_json() const;
};

/// Interval calibration. `lo90`..`hi80` multiply the spread (normalized conformal);
/// `add90`, `add80` widen the raw bounds in log space (kept for callers of the
/// five-number `to_estimate`; 0 for this model, whose raw bounds are calibrated).
struct calibration {
  double add90 = 0;
  double add80 = 0;
  std::size_t n = 0;
  double lo90 = 1.645, hi90 = 1.645, lo80 = 1.282, hi80 = 1.282;
};

/// The outputs for one job in log(1 + seconds): the point prediction, the bounds with
/// the model's static calibration, and the spread they are built from.
struct raw_prediction {
  double median = 0, q05 = 0, q95 = 0, q10 = 0, q90 = 0;
  double spread = 1;
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
/// The scale of a job for a point target (1 for "seconds" and "log"); for "anchor" the
/// anchor (at least 1 s), else as "last2".
double target_scale(const feature_vector& x, const std::string& point_target);

/// Conformity score of a job: how far outside [lo, hi] (log space) its run time fell.
double cqr_score(double lo, double hi, double y_log);
/// The split-conformal correction: the ceil((n+1)(1-alpha))-th smallest score.
double conformal_quantile(std::vector<double> scores, double alpha);

/// Turns raw bounds into seconds: widens them by `add90`/`add80`, caps the median at
/// the requested time where known (`req` <= 0: unknown) and the interval too when
/// `cap_interval`, orders lo <= median <= hi.
runtime_estimate to_estimate(const raw_prediction& r, double add90, double add80, double req,
                             bool cap_interval = true);
/// Turns a raw prediction into seconds with normalized calibration `c`: the bounds are
/// m -/+ multiplier * spread; the median is capped at `req` (if > 0) and the interval
/// at `cap_s` (if > 0: the request plus how far jobs have been seen to run past it).
runtime_estimate to_estimate(const raw_prediction& r, const calibration& c, double req,
                             double cap_s);

/// Online recalibration: normalized scores of the most recently finished jobs.
class conformal_window {
public:
  explicit conformal_window(std::size_t size = 2000) : size_(size) {}
  void add(const raw_prediction& r, double runtime_s);
  std::size_t size() const { return lo_.size(); }
  /// Current multipliers; `fallback` until `min_n` scores are in.
  calibration current(const calibration& fallback, std::size_t min_n = 200) const;

private:
  std::size_t size_;
  std::deque<double> lo_, hi_; ///< (m - y) / s and (y - m) / s
};

/// Normalized calibration from scores (m - y) / s and (y - m) / s: each side misses
/// alpha / 2.
calibration normalized_calibration(const std::vector<double>& lo, const std::vector<double>& hi);

/// A tree ensemble in flat arrays, evaluated exactly as XGBoost's CPU predictor does
/// (float sums in tree order, `value < split` goes left, missing goes the default way).
class flat_forest {
public:
  /// Reads an XGBoost 1.7 gbtree JSON model; false with a reason on anything else.
  bool load_json(const std::string& text, std::string& error);
  float predict(const float* x) const;
  std::size_t trees() const { return roots_.size(); }

private:
  struct node {
    std::int32_t left; ///< -1 for a leaf
    std::int32_t right;
    std::uint32_t feature;
    float value; ///< split condition, or the leaf value
    bool default_left;
  };
  std::vector<node> nodes_;
  std::vector<std::int32_t> roots_;
  float base_ = 0;
};

using progress_fn = std::function<void(int done, int total)>;

class runtime_model {
public:
  runtime_model();
  ~runtime_model();
  runtime_model(runtime_model&&) noexcept;
  runtime_model& operator=(runtime_model&&) noexcept;

  /// Trains on rows in time order (`y` in seconds).
  static bool train(const std::vector<feature_vector>& x, const std::vector<double>& y,
                    const model_config& cfg, runtime_model& out, std::string& error,
                    const progress_fn& progress = {});

  bool usable() const;
  /// Retrains both boosters on newer rows, keeping the static calibration (the
  /// periodic retraining on finished jobs; intervals follow the online window).
  bool refit(const std::vector<feature_vector>& x, const std::vector<double>& y,
             const model_config& cfg, std::string& error);
  /// The same as `refit` (the name used before the spread booster existed).
  bool refit_point(const std::vector<feature_vector>& x, const std::vector<double>& y,
                   const model_config& cfg, std::string& error) {
    return refit(x, y, cfg, error);
  }
  /// Raw outputs for many rows at once (bounds with the static calibration).
  bool predict_raw(const std::vector<feature_vector>& x, std::vector<raw_prediction>& out,
                   std::string& error) const;
  /// One row, without allocating.
  raw_prediction predict_one(const feature_vector& x) const;
  /// The same through XGBoost itself (a DMatrix per call): the reference the flat
  /// evaluator is tested against.
  bool predict_raw_reference(const std::vector<feature_vector>& x, std::vector<raw_prediction>& out,
                             std::string& error) const;
  /// One row, with the model's static calibration.
  bool predict(const feature_vector& x, double req, runtime_estimate& out,
               std::string& error) const;

  const calibration& static_calibration() const { return cal_; }
  const std::string& point_target() const { return point_target_; }
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
  raw_prediction finish(const feature_vector& x, float point, float spread) const;

  struct impl;
  std::unique_ptr<impl> impl_;
  calibration cal_;
  std::string point_target_ = "log";
  nlohmann::json meta_;
};

} // namespace tender
