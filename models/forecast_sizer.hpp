#pragma once
/// The forecast sizer: the CPU size for the next interval, forecast from the job's own
/// past, used by the deviation detector (models/deviation.hpp) when
/// `deviation_options::forecast.enabled`; so by the scaler on a live job and by
/// `tender replay-usage` on real usage series alike.
///
/// Usage is kept in buckets of `step` (5 min): a bucket's value is the highest CPU seen
/// in it, and whether the job was held at its limit in it. A bucket is complete once
/// time has passed its end; each completed bucket b is the history a forecast for
/// bucket b + 1 is made from (only the past: nothing later is read).
///
///   level        the `level_quantile` (median) of the last `level_window` buckets
///   forecasters  "level" alone, and for each period P of `periods` (1 h, 2 h, 3 h,
///                4 h, 8 h, 12 h, 24 h): max(level, a recurring rise), where the
///                recurring rise is the least, over the last `repeats` periods, of the
///                highest bucket within `jitter` buckets of the same phase. A rise
///                that came back at the same time of the hour or day in each of the last
///                two periods is expected again: the size grows before it, not after.
///   headroom     for each forecaster, its residuals (value - forecast) over the last
///                `residual_window` buckets (one day); the headroom h >= 0 minimises
///                h + short_cost * P(residual > h): one more millicore of headroom is
///                worth it while it saves more than 1/short_cost of the buckets from
///                running short. A job whose spikes are cheap to cover gets them covered;
///                one whose spikes would need cores of idle headroom is not given them.
///   choice       the forecaster with the least mean forecast + headroom cost over
///                that window (the one that has explained the recent past best) gives
///                the size: its forecast + its headroom.
///   linear       for each forgetting factor of `linear_forgetting` (0.97, 0.995), an
///                online least-squares fit (recursive least squares, exponentially
///                forgetting older buckets) of the next bucket on the last three buckets,
///                the median of three, the mean of twelve, the highest of six, the lowest
///                of three, the same time yesterday (four buckets around it) and a week
///                ago (yesterday while there is no week of history): a weighted mix of
///                the recent level and the daily shape, refit after every bucket, so
///                each job gets its own weights. It is one more forecaster: chosen only
///                when it explained the last day best. Its forecast stays within 0 and
///                1.5 x the last day's highest bucket + 1 core, and its fit's inverse
///                covariance is capped (a flat series would grow it without end).
///   scale        each forecaster's residuals are divided by its recent error scale (an
///                exponential mean of its absolute residuals, `scale_smoothing`, plus
///                `scale_floor`) when made: the headroom is chosen on these normalised
///                residuals and multiplied back by the current scale, so a job gets more
///                headroom while its forecasts are missing by more, less while they hit
///                (`scale_smoothing` 0: unscaled residuals, the headroom in millicores).
///   throttled    a bucket held at the limit hides how much more the job wanted: the
///                size is then at least the held size * `throttled_step`.
///
/// Until `min_buckets` buckets have residuals the sizer has no opinion (the detector's
/// reactive rules apply), and a period's forecaster is the level alone until the
/// history reaches `repeats` periods back (a live job gets the daily lookback after two
/// days).
///
/// Plain class: no clocks, no randomness; exact integers (millicores) for amounts,
/// doubles only inside the linear fits and the error scales.

#include "protocol/amounts.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace tender {

struct forecast_options {
  bool enabled = false;
  usec step = 5 * 60 * sec_us;       ///< bucket length
  std::size_t level_window = 3;      ///< buckets the level is the quantile of ...
  double level_quantile = 0.5;       ///< ... at this quantile
  std::size_t residual_window = 288; ///< buckets of residuals the headroom is chosen on
  double short_cost = 1000;          ///< millicores of headroom one short bucket is worth
  std::vector<usec> periods = {3600 * sec_us,     2 * 3600 * sec_us, 3 * 3600 * sec_us,
                               4 * 3600 * sec_us, 8 * 3600 * sec_us, 12 * 3600 * sec_us,
                               24 * 3600 * sec_us};
  std::size_t repeats = 2;      ///< a rise must have recurred in each of this many periods
  std::size_t jitter = 1;       ///< buckets either side of the phase
  double throttled_step = 1.2;  ///< after a bucket at the limit: at least held * this
  std::size_t min_buckets = 12; ///< residuals needed before the sizer has an opinion
  /// One online linear forecaster per forgetting factor (empty: none).
  std::vector<double> linear_forgetting = {0.97, 0.995};
  double scale_smoothing = 0.1; ///< weight of the newest |residual| in the error scale
  double scale_floor = 50;      ///< millicores added to every error scale
  friend bool operator==(const forecast_options&, const forecast_options&) = default;
};

/// What the sizer proposes for the next bucket, and why.
struct forecast_size {
  millicores cpu = 0;      ///< forecast + headroom (before the throttled step)
  millicores forecast = 0; ///< the chosen forecaster's value
  millicores headroom = 0;
  millicores level = 0;
  usec period = 0;        ///< the chosen forecaster's period (0: the level alone)
  double forgetting = 0;  ///< the chosen linear forecaster's forgetting (0: not linear)
  double short_share = 0; ///< its residuals above the headroom, over the window
  bool throttled = false; ///< the last bucket was held at the limit
};

class forecast_sizer {
public:
  explicit forecast_sizer(forecast_options o = {});

  /// One observation ending at `at`: the CPU seen (a peak or a mean) and whether the
  /// job was held at its limit. Out-of-order observations are ignored.
  void observe(usec at, millicores cpu, bool throttled);
  /// Completes every bucket that ended at or before `now`.
  void advance(usec now);
  /// The size for the bucket after the last complete one; nothing before
  /// `min_buckets` residuals exist.
  std::optional<forecast_size> size() const;
  /// Complete buckets held (for tests).
  std::size_t buckets() const { return values_.size(); }
  const forecast_options& options() const { return opt_; }

private:
  static constexpr std::size_t features = 13; ///< of a linear forecaster
  struct forecaster {
    std::size_t period = 0;      ///< in buckets (0: the level alone)
    double forgetting = 0;       ///< > 0: a linear forecaster
    std::deque<std::int64_t> fc; ///< forecasts of the window's buckets
    std::deque<double> scale;    ///< the error scale each was made with
    std::deque<double> z;        ///< their residuals / that scale, same order
    std::vector<double> sorted;  ///< `z`, sorted
    std::int64_t fc_sum = 0;
    double scale_sum = 0;
    std::int64_t next = 0; ///< the forecast for the next bucket
    double next_scale = 1; ///< the error scale it is made with
    double abs_error = -1; ///< exponential mean of |residual| (-1: none yet)
    std::vector<double> w; ///< linear: weights
    std::vector<double> p; ///< linear: inverse-covariance (features x features)
    std::vector<double> x; ///< linear: the features the forecast `next` was made from
  };
  void complete();      ///< closes the open bucket
  void forecast_next(); ///< every forecaster's forecast for the next bucket
  std::int64_t value_at(std::int64_t bucket) const; ///< -1: missing or not kept
  std::int64_t level_of(std::int64_t next, std::size_t window, double q) const;
  void fit(forecaster& f, double value) const; ///< one recursive least-squares step
  void linear_features(std::int64_t next, std::int64_t level, double* x) const;
  /// The normalised headroom minimising scale * z + short_cost * P(z' > z) over `s`.
  double headroom_z(const std::vector<double>& s, double scale, double& cost,
                    std::size_t& above) const;

  forecast_options opt_;
  std::vector<forecaster> f_;
  std::int64_t open_ = -1; ///< the open bucket's index (-1: none)
  std::int64_t open_value_ = 0;
  bool open_throttled_ = false;
  usec last_at_ = -1;
  std::int64_t first_ = 0;          ///< index of values_.front()
  std::deque<std::int64_t> values_; ///< complete buckets (-1: no sample)
  std::deque<bool> throttled_;
  bool have_forecast_ = false; ///< `next` of every forecaster is for bucket first_+size
  std::size_t keep_ = 0;
  std::int64_t day_ = 0; ///< buckets per day and week (the linear forecasters' lags)
  std::int64_t week_ = 0;
};

} // namespace tender
