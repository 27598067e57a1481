#pragma once
/// The deviation detector: compares a running job's usage with what it holds and what
/// was predicted for it, and raises a `scaling_need` before the deviation hurts. The
/// `scaler` actor feeds it the job's usage samples and acts on its needs (in-place
/// resize with the current provider, or a move); `tender replay-usage` runs the same
/// class on real usage series (models/usage_replay.hpp).
///
/// Plain class: no clocks (every call takes `now`), no randomness, exact integers for
/// amounts (millicores, bytes, microseconds); doubles only inside the statistics.
///
/// What one `check(now)` decides, in priority order (the first that fires wins):
///
///   samples (at, cpu mean, cpu peak, memory, throttled) -> windows kept by time
///        |
///        v
///   memory trend: Theil-Sen slope over the last `memory_window` of samples;
///     fitted level at now + slope * `memory_horizon` >= memory limit ?
///        |-- yes --> grow_memory  (to that projection * (1 + memory_margin), MiB-rounded)
///        v
///   run time: now - started_at > runtime_hi ?
///        |-- yes --> overrun_runtime (runtime_hi := elapsed * (1 + runtime_extension))
///        v
///   CPU throttling: >= `throttle_share` of the samples of the last `throttle_window`
///     since the last change (which is at least `throttle_min_span` ago, or the job's
///     start is) had their peak at/above the CPU limit (or were flagged throttled) ?
///        |-- yes --> grow_cpu (to max(q-quantile of peaks * (1 + cpu_margin),
///        |                        limit * grow_step))
///        v
///   (with `forecast.enabled` and a sizer that has history, the two CPU rules are
///    replaced: grow_cpu / shrink to the forecast sizer's size, models/forecast_sizer.hpp)
///        |
///        v
///   sustained low use: a whole `shrink_window` since the last change without
///     throttling, and the q-quantile of its peaks * (1 + cpu_margin) (memory: its
///     peak * (1 + memory_margin)) is below what is held ?
///        |-- yes --> shrink
///        v
///      nothing
///
///   every candidate then passes the hysteresis gate:
///     |new - held| < min_gain * held (5 %)                         -> dropped
///     disruptive (the resource cannot change in place) and the last
///       disruptive action of this job is < `disruptive_gap` (1 h) ago  -> held back
///     an in-place change < `in_place_gap` after the last change      -> held back
///
/// Why these rules: memory is not compressible (crossing the limit kills the job), so
/// it is acted on from its trend, ahead of time; CPU is compressible (crossing the
/// limit only slows the job), so it is acted on once throttling is sustained, not on
/// one spike; a job that outlives its predicted interval needs its lease and plan
/// extended before the capacity behind it is promised to someone else. The Theil-Sen
/// slope (the median of pairwise slopes) ignores a few outliers where a least-squares
/// slope would follow them, so a single spike does not look like a trend.

#include "models/forecast_sizer.hpp"
#include "protocol/amounts.hpp"

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace tender {

/// What a scaling need asks for.
/// `grow_gpu_memory` is not the detector's: a job's run reports it ran out of GPU memory.
enum class scaling_kind { grow_memory, grow_cpu, shrink, overrun_runtime, grow_gpu_memory };

const char* to_string(scaling_kind k);

/// One observation of a running job, over the interval that ends at `at`.
struct usage_point {
  usec at = 0;
  millicores cpu = 0;      ///< mean CPU use over the interval
  millicores cpu_peak = 0; ///< peak CPU use within the interval (0: same as `cpu`)
  bytes_t memory = 0;      ///< resident memory at `at` (0: not measured)
  bool throttled = false;  ///< the provider saw the job held at its CPU limit
};

/// What the job holds now, and what was predicted for it.
struct job_holding {
  millicores cpu = 0; ///< CPU limit (0: not managed)
  bytes_t memory = 0; ///< memory limit (0: not managed)
  usec started_at = 0;
  usec runtime_hi = 0;    ///< upper end of the predicted run-time interval (0: none)
  millicores cpu_max = 0; ///< the most CPU any change may propose (0: no cap)
  /// Whether the current provider can change the resource without restarting the job
  /// (a cgroup limit, `scontrol update`); a change that cannot is disruptive.
  bool cpu_in_place = true;
  bool memory_in_place = true;
  friend bool operator==(const job_holding&, const job_holding&) = default;
};

/// A need to change a running job's resources, with the proposed amounts.
struct scaling_need {
  scaling_kind kind = scaling_kind::grow_cpu;
  millicores cpu = 0;      ///< proposed CPU limit (the held one when unchanged)
  bytes_t memory = 0;      ///< proposed memory limit (the held one when unchanged)
  usec runtime_hi = 0;     ///< proposed upper end of the run time (the held one when unchanged)
  bool disruptive = false; ///< needs a restart or a move: counts against the hourly budget
  std::string reason;      ///< for a person: what was seen and why this amount
  friend bool operator==(const scaling_need&, const scaling_need&) = default;
};

/// The detector's knobs. The defaults are conservative ones for a running job sampled
/// many times a minute: CPU sized to cover every recent peak plus 10 %, shrinking only
/// after an hour of low use. `tender replay-usage` uses its own tuned set
/// (`replay_tuned_detector()` in models/usage_replay.hpp).
struct deviation_options {
  // memory
  usec memory_window = 30 * 60 * sec_us;  ///< trend window
  usec memory_horizon = 10 * 60 * sec_us; ///< act when the limit is this close in time
  std::size_t memory_min_samples = 6;     ///< no trend from fewer samples
  double memory_margin = 0.10;            ///< headroom over the projection / peak
  // run time
  double runtime_extension = 0.25; ///< new upper end = elapsed * (1 + this)
  // CPU
  usec throttle_window = 5 * 60 * sec_us;  ///< the window throttling must fill ...
  double throttle_share = 0.5;             ///< ... at least this share of
  /// No grow_cpu before the job has run this long since it started or last changed: a
  /// process's start-up burst (an interpreter loading: 1 of the first 2 samples at the
  /// limit, sampled every 0.1 s) is not sustained throttling.
  usec throttle_min_span = 5 * sec_us;
  double grow_step = 1.5;                  ///< a throttled job grows at least this much
  double cpu_quantile = 1.0;               ///< the quantile of recent peaks a size covers
  double cpu_margin = 0.10;                ///< headroom over that quantile
  usec cpu_size_window = 60 * 60 * sec_us; ///< the peaks a grown size is drawn from
  // shrink
  usec shrink_window = 60 * 60 * sec_us; ///< sustained low use for this long
  // hysteresis
  double min_gain = 0.05;                 ///< no change for less than 5 %
  usec disruptive_gap = 60 * 60 * sec_us; ///< at most one disruptive action per hour
  usec in_place_gap = 0;                  ///< between two in-place changes
  /// CPU sized by forecast (models/forecast_sizer.hpp) instead of the reactive
  /// grow-when-throttled / shrink-after-low-use rules, once the sizer has history.
  forecast_options forecast;
};

/// Raises scaling needs for one running job. Feed it samples in time order with
/// `observe`, ask `check(now)`, and tell it with `applied` what was done.
class deviation_detector {
public:
  explicit deviation_detector(job_holding held, deviation_options o = {});

  /// Adds one sample; samples older than every window are forgotten.
  void observe(const usage_point& p);
  /// The need to act now, if any (after the hysteresis gate).
  std::optional<scaling_need> check(usec now);
  /// The caller carried out `need` at `now` (possibly granting other amounts, given in
  /// `granted`): the holding changes and the hysteresis clocks restart.
  void applied(const scaling_need& need, const job_holding& granted, usec now);

  const job_holding& holding() const { return held_; }
  const deviation_options& options() const { return opt_; }
  /// Why the last candidate the gate held back was held back ("" when none was).
  const std::string& held_back() const { return held_back_; }
  /// The forecast sizer's proposal at the last check (none when it is off or has too
  /// little history).
  const std::optional<forecast_size>& forecast() const { return forecast_; }
  /// The Theil-Sen memory slope (bytes per second) over the memory window; 0 with
  /// fewer than `memory_min_samples` samples.
  double memory_slope() const;

private:
  std::optional<scaling_need> memory_need(usec now) const;
  std::optional<scaling_need> runtime_need(usec now) const;
  std::optional<scaling_need> cpu_grow_need(usec now) const;
  std::optional<scaling_need> cpu_forecast_need(const forecast_size& s) const;
  std::optional<scaling_need> shrink_need(usec now) const;
  bool gate(scaling_need& n, usec now);
  millicores cpu_size(usec from) const;
  millicores cap_cpu(millicores c) const;

  job_holding held_;
  deviation_options opt_;
  std::deque<usage_point> samples_;
  forecast_sizer sizer_;
  usec last_change_ = -1;
  usec last_disruptive_ = -1;
  std::string held_back_;
  std::optional<forecast_size> forecast_;
};

} // namespace tender
