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
///   throttled    a bucket held at the limit hides how much more the job wanted: the
///                size is then at least the held size * `throttled_step`.
///
/// Until `min_buckets` buckets have residuals the sizer has no opinion (the detector's
/// reactive rules apply), and a period's forecaster is the level alone until the
/// history reaches `repeats` periods back (a live job gets the daily lookback after two
/// days).
///
/// Plain class: no clocks, no randomness; exact integers (millicores).

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
  friend bool operator==(const forecast_options&, const forecast_options&) = default;
};

/// What the sizer proposes for the next bucket, and why.
struct forecast_size {
  millicores cpu = 0;      ///< forecast + headroom (before the throttled step)
  millicores forecast = 0; ///< the chosen forecaster's value
  millicores headroom = 0;
  millicores level = 0;
  usec period = 0;        ///< the chosen forecaster's period (0: the level alone)
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
  struct forecaster {
    std::size_t period = 0;           ///< in buckets (0: the level alone)
    std::deque<std::int64_t> fc;      ///< forecasts of the window's buckets
    std::deque<std::int64_t> res;     ///< their residuals, same order
    std::vector<std::int64_t> sorted; ///< `res`, sorted
    std::int64_t fc_sum = 0;
    std::int64_t next = 0; ///< the forecast for the next bucket
  };
  void complete();      ///< closes the open bucket
  void forecast_next(); ///< every forecaster's forecast for the next bucket
  std::int64_t value_at(std::int64_t bucket) const; ///< -1: missing or not kept

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
};

} // namespace tender
