#pragma once
/// The run-time model: five XGBoost boosters over submit-time features.
///
///   point          reg:absoluteerror on run time over a per-job scale, weighted by the
///                  scale (exactly the absolute error in seconds: the MAE-optimal point)
///   q05 q95 q10 q90  quantiles of log1p(run time), each fitted with a custom pinball
///                  (quantile) loss through `XGBoosterBoostOneIter`, starting from the
///                  point prediction (`base_margin` = log1p(point) + the residuals'
///                  overall quantile): they learn how far below and above the point a
///                  job's run time falls, per job
///
/// Intervals are conformalized quantile regression (CQR, Romano, Patterson and Candes
/// 2019) in log space: [q05 - lo90, q95 + hi90] with lo90 = hi90 the split-conformal
/// quantile of the scores max(q05 - y, y - q95) on a later time slice ("symmetric", the
/// default), or each side's own correction from q05 - y and y - q95, each missing
/// alpha / 2 ("asymmetric"); "-scaled" divides the scores by the quantile width
/// (CQR-r). The 80 % interval likewise from q10, q90. The raw quantiles are uncrossed
/// and widened to hold the point prediction before scoring, as the estimates are. The static
/// corrections come from the later slice of the training rows (boosters fitted on the earlier
/// part); `conformal_window` recalibrates them online from finished jobs.
///
/// Pinball loss and its hessian: the gradient of the pinball loss at margin p is
/// 1 - tau where y < p, -tau elsewhere; its true second derivative is zero. A leaf's
/// Newton step is (tau - F(p)) / f(p), f the density of y at p. We use one constant
/// hessian per booster, f at the quantile of an exponential tail,
/// min(tau, 1 - tau) / b with b the residuals' mean excess beyond their overall
/// tau-quantile (the exponential's scale): near the solution each step is the distance
/// to the leaf's quantile; far from it `max_delta_step` caps it. A hessian of 1 moves
/// the 5 % and 95 % quantiles by at most 0.05 eta log units a round on one side.
///
/// Predictions walk the trees in a flat array (`flat_forest`) loaded from the boosters'
/// own JSON; it gives exactly XGBoost's outputs without building a DMatrix per call.
///
/// Model file (JSON): `format`, `format_version`, `xgboost_version`, `features`,
/// `train_digest`, `n_train`, `metrics`, `config`, `calibration`, `model_digest`,
/// and the boosters as XGBoost JSON text under `boosters`. Loading checks all of it.
/// Version 4 (this one): boosters `point`, `q05`, `q95`, `q10`, `q90`, CQR calibration.
/// Version 3 had `point` and `spread` (normalized conformal), version 2 36 features,
/// version 1 six boosters; all are refused with a clear error.

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
  int quantile_rounds = 60;   ///< boosting rounds of each quantile booster
  int quantile_max_depth = 6; ///< tree depth of the quantile boosters
  double quantile_eta = 0.15; ///< learning rate of the quantile boosters
  int quantile_min_rows = 20; ///< fewest rows in a quantile booster's leaf
  /// Conformal scores: "asymmetric" (each side's own correction, alpha / 2 each),
  /// "symmetric" (one correction from the larger side), and either with "-scaled"
  /// (scores over the quantile width, CQR-r).
  /// Symmetric: on the four traces as calibrated as asymmetric and slightly narrower.
  std::string conformal = "symmetric";
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

/// Interval calibration: the conformal corrections added below the lower and above
/// the upper quantile (log units; with `scaled`, multiples of the quantile width).
struct calibration {
  std::size_t n = 0; ///< scores they come from
  double lo90 = 0, hi90 = 0, lo80 = 0, hi80 = 0;
  bool symmetric = false; ///< one correction from max(lo - y, y - hi)
  bool scaled = false;    ///< scores divided by the quantile width (CQR-r)
  /// "asymmetric", "symmetric", "asymmetric-scaled" or "symmetric-scaled".
  std::string mode() const;
  /// Sets the flags from a mode name; false if the name is none of them.
  bool set_mode(const std::string& name);
};

/// The outputs for one job in log(1 + seconds): the point prediction and the four
/// quantile boosters' quantiles before calibration (uncrossed, and widened to hold the
/// point prediction).
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
/// The scale of a job for a point target (1 for "seconds" and "log"); for "anchor" the
/// anchor (at least 1 s), else as "last2".
double target_scale(const feature_vector& x, const std::string& point_target);

/// CQR conformity score of a job: how far outside [lo, hi] (log space) its run time fell.
double cqr_score(double lo, double hi, double y_log);
/// The split-conformal correction: the ceil((n+1)(1-alpha))-th smallest score.
double conformal_quantile(std::vector<double> scores, double alpha);

/// Turns a raw prediction into seconds with calibration `c`: the bounds are the
/// quantiles widened by the corrections, the 90 % interval holding the 80 % one; the
/// median is capped at `req` (if > 0) and the interval at `cap_s` (if > 0: the request
/// plus how far jobs have been seen to run past it); lo <= median <= hi.
runtime_estimate to_estimate(const raw_prediction& r, const calibration& c, double req,
                             double cap_s);

/// Split-conformal calibration from raw predictions and log1p run times, in the mode
/// of `mode` (its flags; the corrections are computed).
calibration conformal_calibration(const std::vector<raw_prediction>& r,
                                  const std::vector<double>& y_log, const calibration& mode);

/// Online recalibration: the raw predictions and run times of the most recently
/// finished jobs.
class conformal_window {
public:
  explicit conformal_window(std::size_t size = 2000) : size_(size) {}
  void add(const raw_prediction& r, double runtime_s);
  std::size_t size() const { return r_.size(); }
  /// Corrections from the window in `fallback`'s mode; `fallback` until `min_n` jobs
  /// are in.
  calibration current(const calibration& fallback, std::size_t min_n = 200) const;

private:
  std::size_t size_;
  std::deque<raw_prediction> r_;
  std::deque<double> y_; ///< log1p run time
};

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
  /// Retrains all boosters on newer rows, keeping the static calibration (the
  /// periodic retraining on finished jobs; intervals follow the online window).
  bool refit(const std::vector<feature_vector>& x, const std::vector<double>& y,
             const model_config& cfg, std::string& error);
  /// The same as `refit` (the name used when only the point booster was refitted).
  bool refit_point(const std::vector<feature_vector>& x, const std::vector<double>& y,
                   const model_config& cfg, std::string& error) {
    return refit(x, y, cfg, error);
  }
  /// Raw outputs for many rows at once.
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
  /// Raw prediction from the boosters' outputs (point, q05, q95, q10, q90).
  raw_prediction finish(const feature_vector& x, const float* out) const;

  struct impl;
  std::unique_ptr<impl> impl_;
  calibration cal_;
  std::string point_target_ = "log";
  nlohmann::json meta_;
};

} // namespace tender
