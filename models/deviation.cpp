#include "models/deviation.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace tender {

namespace {

constexpr bytes_t mib = bytes_t{1} << 20;
/// Pairwise slopes grow with the square of the samples: the trend uses at most this
/// many, evenly spaced over the window (a 10 Hz stream has 18,000 in 30 minutes).
constexpr std::size_t max_trend_points = 48;

double median(std::vector<double>& v) {
  auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  double hi = *mid;
  if (v.size() % 2 == 1)
    return hi;
  double lo = *std::max_element(v.begin(), mid);
  return (lo + hi) / 2;
}

bytes_t round_up_mib(double b) {
  auto m = static_cast<bytes_t>(std::ceil(b / static_cast<double>(mib)));
  return std::max<bytes_t>(m, 1) * mib;
}

std::string fmt(const char* f, auto... args) {
  char buf[320];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

double cores(millicores m) {
  return static_cast<double>(m) / 1000.0;
}
double mibs(bytes_t b) {
  return static_cast<double>(b) / static_cast<double>(mib);
}
double minutes(usec d) {
  return static_cast<double>(d) / (60.0 * sec_us);
}

/// Rounds up, forgiving the last bits of a product (850 * 1.1 is 935, not 936).
std::int64_t up(double x) {
  return static_cast<std::int64_t>(std::ceil(x - 1e-6));
}

millicores peak_of(const usage_point& p) {
  return std::max(p.cpu_peak, p.cpu);
}

} // namespace

const char* to_string(scaling_kind k) {
  switch (k) {
  case scaling_kind::grow_memory:
    return "grow_memory";
  case scaling_kind::grow_cpu:
    return "grow_cpu";
  case scaling_kind::shrink:
    return "shrink";
  case scaling_kind::overrun_runtime:
    return "overrun_runtime";
  case scaling_kind::grow_gpu_memory:
    return "grow_gpu_memory";
  }
  return "?";
}

deviation_detector::deviation_detector(job_holding held, deviation_options o)
    : held_(held), opt_(o), sizer_(o.forecast) {}

void deviation_detector::observe(const usage_point& p) {
  if (!samples_.empty() && p.at <= samples_.back().at)
    return; // out of order or repeated: the windows assume increasing times
  samples_.push_back(p);
  if (opt_.forecast.enabled)
    sizer_.observe(p.at, peak_of(p), p.throttled || (held_.cpu > 0 && peak_of(p) >= held_.cpu));
  const usec keep = std::max(
      {opt_.memory_window, opt_.throttle_window, opt_.cpu_size_window, opt_.shrink_window});
  while (samples_.size() > 1 && samples_.front().at < p.at - keep)
    samples_.pop_front();
}

double deviation_detector::memory_slope() const {
  if (samples_.empty())
    return 0;
  const usec from = samples_.back().at - opt_.memory_window;
  std::vector<const usage_point*> w;
  for (const auto& s : samples_)
    if (s.at >= from && s.memory > 0)
      w.push_back(&s);
  if (w.size() < std::max<std::size_t>(opt_.memory_min_samples, 2))
    return 0;
  if (w.size() > max_trend_points) {
    std::vector<const usage_point*> thin;
    for (std::size_t i = 0; i < max_trend_points; ++i)
      thin.push_back(w[i * (w.size() - 1) / (max_trend_points - 1)]);
    w.swap(thin);
  }
  std::vector<double> slopes;
  for (std::size_t i = 0; i < w.size(); ++i)
    for (std::size_t j = i + 1; j < w.size(); ++j)
      slopes.push_back(static_cast<double>(w[j]->memory - w[i]->memory) /
                       (static_cast<double>(w[j]->at - w[i]->at) / sec_us));
  return median(slopes);
}

std::optional<scaling_need> deviation_detector::memory_need(usec now) const {
  if (held_.memory <= 0 || samples_.empty() || samples_.back().memory <= 0)
    return std::nullopt;
  const double slope = memory_slope(); // bytes per second
  // The fitted level at `now`: the median of the samples moved along the slope.
  std::vector<double> level;
  for (const auto& s : samples_)
    if (s.at >= samples_.back().at - opt_.memory_window && s.memory > 0)
      level.push_back(static_cast<double>(s.memory) -
                      slope * static_cast<double>(s.at - now) / sec_us);
  const double at_now = median(level);
  const double last = static_cast<double>(samples_.back().memory);
  const double horizon_s = static_cast<double>(opt_.memory_horizon) / sec_us;
  const double projected = at_now + std::max(slope, 0.0) * horizon_s;
  const double limit = static_cast<double>(held_.memory);
  if (std::max(projected, last) < limit)
    return std::nullopt;
  // Size for the trend until the next disruptive change could be made, at least.
  const double cover_s =
      static_cast<double>(std::max(opt_.memory_horizon, opt_.disruptive_gap)) / sec_us;
  const double want = std::max(last, at_now + std::max(slope, 0.0) * cover_s);
  scaling_need n;
  n.kind = scaling_kind::grow_memory;
  n.cpu = held_.cpu;
  n.memory = round_up_mib(want * (1 + opt_.memory_margin));
  n.runtime_hi = held_.runtime_hi;
  n.disruptive = !held_.memory_in_place;
  n.reason = slope > 0 && last < limit
                 ? fmt("memory at %.0f MiB grows %.2f MiB/min: reaches the %.0f MiB limit in "
                       "%.1f min (horizon %.0f min); %.0f MiB covers the trend for %.0f min "
                       "plus %.0f %%",
                       mibs(samples_.back().memory), slope * 60 / mib, mibs(held_.memory),
                       (limit - at_now) / slope / 60, minutes(opt_.memory_horizon), mibs(n.memory),
                       cover_s / 60, opt_.memory_margin * 100)
                 : fmt("memory at %.0f MiB is at its %.0f MiB limit; %.0f MiB gives %.0f %% "
                       "headroom",
                       mibs(samples_.back().memory), mibs(held_.memory), mibs(n.memory),
                       opt_.memory_margin * 100);
  return n;
}

std::optional<scaling_need> deviation_detector::runtime_need(usec now) const {
  if (held_.runtime_hi <= 0)
    return std::nullopt;
  const usec elapsed = now - held_.started_at;
  if (elapsed <= held_.runtime_hi)
    return std::nullopt;
  scaling_need n;
  n.kind = scaling_kind::overrun_runtime;
  n.cpu = held_.cpu;
  n.memory = held_.memory;
  n.runtime_hi =
      static_cast<usec>(std::ceil(static_cast<double>(elapsed) * (1 + opt_.runtime_extension)));
  n.reason = fmt("running for %.1f min, past the predicted upper end of %.1f min; "
                 "extending it to %.1f min (+%.0f %% of the elapsed time)",
                 minutes(elapsed), minutes(held_.runtime_hi), minutes(n.runtime_hi),
                 opt_.runtime_extension * 100);
  return n;
}

millicores deviation_detector::cap_cpu(millicores c) const {
  c = std::max<millicores>(c, 1);
  return held_.cpu_max > 0 ? std::min(c, held_.cpu_max) : c;
}

millicores deviation_detector::cpu_size(usec from) const {
  std::vector<millicores> peaks;
  for (const auto& s : samples_)
    if (s.at > from)
      peaks.push_back(peak_of(s));
  if (peaks.empty())
    return 0;
  std::sort(peaks.begin(), peaks.end());
  // The smallest value with at least `cpu_quantile` of the peaks at or below it.
  auto k =
      static_cast<std::size_t>(std::ceil(opt_.cpu_quantile * static_cast<double>(peaks.size())));
  const millicores q = peaks[std::clamp<std::size_t>(k, 1, peaks.size()) - 1];
  return up(static_cast<double>(q) * (1 + opt_.cpu_margin));
}

std::optional<scaling_need> deviation_detector::cpu_grow_need(usec now) const {
  if (held_.cpu <= 0)
    return std::nullopt;
  std::size_t seen = 0, throttled = 0;
  for (const auto& s : samples_)
    if (s.at > now - opt_.throttle_window && s.at > last_change_) {
      ++seen;
      throttled += s.throttled || peak_of(s) >= held_.cpu;
    }
  if (now - std::max(last_change_, held_.started_at) < opt_.throttle_min_span)
    return std::nullopt; // a start-up burst, not yet sustained
  if (seen == 0 || static_cast<double>(throttled) < opt_.throttle_share * static_cast<double>(seen))
    return std::nullopt;
  const millicores stepped = up(static_cast<double>(held_.cpu) * opt_.grow_step);
  scaling_need n;
  n.kind = scaling_kind::grow_cpu;
  n.cpu = cap_cpu(std::max(cpu_size(now - opt_.cpu_size_window), stepped));
  n.memory = held_.memory;
  n.runtime_hi = held_.runtime_hi;
  n.disruptive = !held_.cpu_in_place;
  n.reason = fmt("CPU held at its %.3f-core limit in %zu of %zu samples over %.0f min; "
                 "%.3f cores (recent peaks + %.0f %%, at least x%.2f)",
                 cores(held_.cpu), throttled, seen, minutes(opt_.throttle_window), cores(n.cpu),
                 opt_.cpu_margin * 100, opt_.grow_step);
  return n;
}

std::optional<scaling_need> deviation_detector::cpu_forecast_need(const forecast_size& f) const {
  if (held_.cpu <= 0)
    return std::nullopt;
  const millicores want = cap_cpu(f.cpu);
  if (want == held_.cpu)
    return std::nullopt;
  scaling_need n;
  n.kind = want > held_.cpu ? scaling_kind::grow_cpu : scaling_kind::shrink;
  n.cpu = want;
  n.memory = held_.memory;
  n.runtime_hi = held_.runtime_hi;
  n.disruptive = !held_.cpu_in_place;
  const std::string basis =
      f.forgetting > 0
          ? fmt("a linear fit of the recent and same-time-yesterday buckets (forgetting %.3f; "
                "%.3f cores)",
                f.forgetting, cores(f.forecast))
      : f.period > 0 ? fmt("a rise recurring every %.0f min (%.3f cores)", minutes(f.period),
                           cores(f.forecast))
                     : std::string("the recent level");
  n.reason = fmt("forecast for the next %.0f min: %s, level %.3f cores, + %.3f cores of headroom "
                 "(short in %.1f %% of the last %zu intervals)%s; %.3f cores",
                 minutes(opt_.forecast.step), basis.c_str(), cores(f.level), cores(f.headroom),
                 f.short_share * 100, opt_.forecast.residual_window,
                 f.throttled ? fmt(", at least x%.2f after an interval at the limit",
                                   opt_.forecast.throttled_step)
                                   .c_str()
                             : "",
                 cores(n.cpu));
  return n;
}

std::optional<scaling_need> deviation_detector::shrink_need(usec now) const {
  if (samples_.empty())
    return std::nullopt;
  const usec since = std::max(last_change_, samples_.front().at);
  if (now - since < opt_.shrink_window)
    return std::nullopt;
  const usec from = std::max(now - opt_.shrink_window, last_change_);
  bytes_t mem_peak = 0;
  for (const auto& s : samples_)
    if (s.at > from) {
      if (s.throttled || (held_.cpu > 0 && peak_of(s) >= held_.cpu))
        return std::nullopt; // not low use
      mem_peak = std::max(mem_peak, s.memory);
    }
  scaling_need n;
  n.kind = scaling_kind::shrink;
  n.cpu = held_.cpu;
  n.memory = held_.memory;
  n.runtime_hi = held_.runtime_hi;
  if (held_.cpu > 0 && !forecast_) // with a forecast, the sizer alone sizes CPU
    n.cpu = std::min(held_.cpu, cap_cpu(cpu_size(from)));
  // Memory that is still rising is not low use, even under its limit: a shrink now
  // would be undone by a grow later.
  const double rise = memory_slope() * static_cast<double>(opt_.shrink_window) / sec_us;
  if (held_.memory > 0 && mem_peak > 0 && rise < opt_.min_gain * static_cast<double>(held_.memory))
    n.memory = std::min(held_.memory,
                        round_up_mib(static_cast<double>(mem_peak) * (1 + opt_.memory_margin)));
  n.disruptive = (n.cpu != held_.cpu && !held_.cpu_in_place) ||
                 (n.memory != held_.memory && !held_.memory_in_place);
  n.reason = fmt("low use for %.0f min: CPU peaks need %.3f of %.3f cores, memory peaked at "
                 "%.0f of %.0f MiB (+%.0f %% / +%.0f %% headroom)",
                 minutes(now - from), cores(n.cpu), cores(held_.cpu), mibs(mem_peak),
                 mibs(held_.memory), opt_.cpu_margin * 100, opt_.memory_margin * 100);
  return n;
}

bool deviation_detector::gate(scaling_need& n, usec now) {
  // Only the first candidate held back is reported: it is the most urgent one.
  auto hold = [this](std::string why) {
    if (held_back_.empty())
      held_back_ = std::move(why);
    return false;
  };
  // The 5 % rule, per resource: an amount that moves less keeps its held value.
  auto worth = [&](std::int64_t held, std::int64_t proposed) {
    return held <= 0 ? proposed > 0
                     : std::abs(static_cast<double>(proposed - held)) >=
                           opt_.min_gain * static_cast<double>(held);
  };
  if (n.kind != scaling_kind::overrun_runtime) {
    if (!worth(held_.cpu, n.cpu))
      n.cpu = held_.cpu;
    if (!worth(held_.memory, n.memory))
      n.memory = held_.memory;
    if (n.cpu == held_.cpu && n.memory == held_.memory) {
      return hold(std::string(to_string(n.kind)) + ": less than " +
                  fmt("%.0f", opt_.min_gain * 100) + " % change");
    }
    n.disruptive = (n.cpu != held_.cpu && !held_.cpu_in_place) ||
                   (n.memory != held_.memory && !held_.memory_in_place);
  }
  if (n.disruptive && last_disruptive_ >= 0 && now - last_disruptive_ < opt_.disruptive_gap) {
    return hold(std::string(to_string(n.kind)) + ": disruptive, and the last disruptive " +
                fmt("action was %.0f min ago (at most one per %.0f min)",
                    minutes(now - last_disruptive_), minutes(opt_.disruptive_gap)));
  }
  if (!n.disruptive && n.kind != scaling_kind::overrun_runtime && last_change_ >= 0 &&
      now - last_change_ < opt_.in_place_gap) {
    return hold(std::string(to_string(n.kind)) + ": the last change was " +
                fmt("%.0f min ago", minutes(now - last_change_)));
  }
  return true;
}

std::optional<scaling_need> deviation_detector::check(usec now) {
  held_back_.clear();
  forecast_.reset();
  if (opt_.forecast.enabled) {
    sizer_.advance(now);
    forecast_ = sizer_.size();
  }
  for (auto candidate :
       {memory_need(now), runtime_need(now),
        forecast_ ? cpu_forecast_need(*forecast_) : cpu_grow_need(now), shrink_need(now)})
    if (candidate && gate(*candidate, now))
      return candidate;
  return std::nullopt;
}

void deviation_detector::applied(const scaling_need& need, const job_holding& granted, usec now) {
  const bool resized = granted.cpu != held_.cpu || granted.memory != held_.memory;
  held_ = granted;
  if (resized)
    last_change_ = now;
  if (need.disruptive)
    last_disruptive_ = now;
}

} // namespace tender
