#include "models/forecast_sizer.hpp"

#include <algorithm>
#include <cmath>

namespace tender {

namespace {

/// A linear forecaster's inverse covariance is capped at this trace: with forgetting, a
/// direction the features never move in (a flat series) would otherwise grow without end.
constexpr double max_trace = 1e6;
constexpr double initial_p = 1e3;

} // namespace

forecast_sizer::forecast_sizer(forecast_options o) : opt_(std::move(o)) {
  if (opt_.step <= 0)
    opt_.step = 5 * 60 * sec_us;
  opt_.level_window = std::max<std::size_t>(opt_.level_window, 1);
  opt_.residual_window = std::max<std::size_t>(opt_.residual_window, 1);
  opt_.repeats = std::max<std::size_t>(opt_.repeats, 1);
  opt_.scale_smoothing = std::clamp(opt_.scale_smoothing, 0.0, 1.0);
  opt_.scale_floor = std::max(opt_.scale_floor, 1.0);
  day_ = std::max<std::int64_t>(24 * 3600 * sec_us / opt_.step, 4);
  week_ = 7 * day_;
  f_.push_back({}); // the level alone
  keep_ = opt_.level_window + 1;
  for (usec p : opt_.periods) {
    const auto buckets = static_cast<std::size_t>(p / opt_.step);
    // A period must reach past the jitter, or its "same phase" would include the future.
    if (buckets <= opt_.jitter)
      continue;
    forecaster f;
    f.period = buckets;
    f_.push_back(std::move(f));
    keep_ = std::max(keep_, opt_.repeats * buckets + opt_.jitter + 1);
  }
  for (double g : opt_.linear_forgetting) {
    if (!(g > 0 && g <= 1))
      continue;
    forecaster f;
    f.forgetting = g;
    f.w.assign(features, 0.0);
    f.x.assign(features, 0.0);
    f.p.assign(features * features, 0.0);
    for (std::size_t k = 0; k < features; ++k)
      f.p[k * features + k] = initial_p;
    f_.push_back(std::move(f));
    keep_ = std::max(keep_, static_cast<std::size_t>(week_ + day_ / 48 + 2));
  }
}

std::int64_t forecast_sizer::value_at(std::int64_t bucket) const {
  if (bucket < first_ || bucket >= first_ + static_cast<std::int64_t>(values_.size()))
    return -1;
  return values_[static_cast<std::size_t>(bucket - first_)];
}

void forecast_sizer::observe(usec at, millicores cpu, bool throttled) {
  if (at <= last_at_ || at <= 0)
    return;
  last_at_ = at;
  const std::int64_t b = (at - 1) / opt_.step; // a sample ending at a bucket's end is in it
  if (open_ >= 0 && b > open_)
    complete();
  if (open_ < 0) {
    // A bucket already completed (advance() passed its end) takes no more samples.
    if (b < first_ + static_cast<std::int64_t>(values_.size()))
      return;
    open_ = b;
    open_value_ = 0;
    open_throttled_ = false;
  }
  open_value_ = std::max<std::int64_t>(open_value_, std::max<millicores>(cpu, 0));
  open_throttled_ = open_throttled_ || throttled;
}

void forecast_sizer::advance(usec now) {
  if (open_ >= 0 && (open_ + 1) * opt_.step <= now)
    complete();
}

void forecast_sizer::fit(forecaster& f, double value) const {
  constexpr std::size_t n = features;
  double px[n] = {};
  double den = f.forgetting, pred = 0;
  for (std::size_t a = 0; a < n; ++a) {
    for (std::size_t b = 0; b < n; ++b)
      px[a] += f.p[a * n + b] * f.x[b];
    den += f.x[a] * px[a];
    pred += f.w[a] * f.x[a];
  }
  const double err = value - pred;
  for (std::size_t a = 0; a < n; ++a)
    f.w[a] += px[a] / den * err;
  double trace = 0;
  for (std::size_t a = 0; a < n; ++a) {
    for (std::size_t b = 0; b < n; ++b)
      f.p[a * n + b] = (f.p[a * n + b] - px[a] * px[b] / den) / f.forgetting;
    trace += f.p[a * n + a];
  }
  bool finite = std::isfinite(trace);
  for (double w : f.w)
    finite = finite && std::isfinite(w);
  if (!finite) { // start over rather than forecast from a broken fit
    std::fill(f.w.begin(), f.w.end(), 0.0);
    std::fill(f.p.begin(), f.p.end(), 0.0);
    for (std::size_t k = 0; k < n; ++k)
      f.p[k * n + k] = initial_p;
  } else if (trace > max_trace) {
    for (double& v : f.p)
      v *= max_trace / trace;
  }
}

void forecast_sizer::complete() {
  if (open_ < 0)
    return;
  auto push = [&](std::int64_t v, bool thr) {
    if (have_forecast_ && v >= 0)
      for (auto& f : f_) {
        const std::int64_t r = v - f.next + (thr ? 1 : 0);
        const double z = static_cast<double>(r) / f.next_scale;
        f.fc.push_back(f.next);
        f.scale.push_back(f.next_scale);
        f.z.push_back(z);
        f.sorted.insert(std::upper_bound(f.sorted.begin(), f.sorted.end(), z), z);
        f.fc_sum += f.next;
        f.scale_sum += f.next_scale;
        if (f.z.size() > opt_.residual_window) {
          f.sorted.erase(std::lower_bound(f.sorted.begin(), f.sorted.end(), f.z.front()));
          f.fc_sum -= f.fc.front();
          f.scale_sum -= f.scale.front();
          f.z.pop_front();
          f.fc.pop_front();
          f.scale.pop_front();
        }
        const double e = std::abs(static_cast<double>(r));
        f.abs_error = f.abs_error < 0 ? e : f.abs_error + opt_.scale_smoothing * (e - f.abs_error);
      }
    // A bucket at the limit hides how much more the job wanted: its history keeps
    // the limit * throttled_step, so a rise that was cut short last time is expected
    // higher the next time (its residual above keeps the value seen).
    values_.push_back(thr && v >= 0 ? static_cast<std::int64_t>(std::ceil(
                                          static_cast<double>(v) * opt_.throttled_step - 1e-6))
                                    : v);
    throttled_.push_back(thr);
    while (values_.size() > keep_) {
      values_.pop_front();
      throttled_.pop_front();
      ++first_;
    }
    // The linear forecasters learn from the bucket just kept (as kept: a throttled one
    // at the limit * throttled_step), with the features its forecast was made from.
    if (have_forecast_ && values_.back() >= 0)
      for (auto& f : f_)
        if (f.forgetting > 0)
          fit(f, static_cast<double>(values_.back()) / 1000.0);
    forecast_next();
    have_forecast_ = true;
  };
  if (values_.empty())
    first_ = open_;
  // Buckets without a sample between the last complete one and this one.
  while (first_ + static_cast<std::int64_t>(values_.size()) < open_)
    push(-1, false);
  push(open_value_, open_throttled_);
  open_ = -1;
}

std::int64_t forecast_sizer::level_of(std::int64_t next, std::size_t window, double q) const {
  std::vector<std::int64_t> recent;
  for (std::int64_t k = next - 1; k >= first_ && recent.size() < window; --k)
    if (auto v = value_at(k); v >= 0)
      recent.push_back(v);
  if (recent.empty())
    return 0;
  std::sort(recent.begin(), recent.end());
  auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(recent.size()) - 1e-9));
  return recent[std::clamp<std::size_t>(k, 1, recent.size()) - 1];
}

void forecast_sizer::linear_features(std::int64_t next, std::int64_t level, double* x) const {
  // In cores; a bucket not kept (or without a sample) counts as the level.
  auto at = [&](std::int64_t k) {
    const std::int64_t v = value_at(k);
    return static_cast<double>(v >= 0 ? v : level) / 1000.0;
  };
  double mean12 = 0, max6 = 0;
  for (std::int64_t k = 1; k <= 12; ++k)
    mean12 += at(next - k) / 12.0;
  for (std::int64_t k = 1; k <= 6; ++k)
    max6 = std::max(max6, at(next - k));
  const double week_ago = value_at(next - week_) >= 0 ? at(next - week_) : at(next - day_);
  const double v[features] = {1.0,
                              at(next - 1),
                              at(next - 2),
                              static_cast<double>(level_of(next, 3, 0.5)) / 1000.0,
                              mean12,
                              at(next - day_),
                              at(next - day_ + 1),
                              max6,
                              at(next - 3),
                              at(next - day_ - 1),
                              std::min({at(next - 1), at(next - 2), at(next - 3)}),
                              at(next - day_ + 2),
                              week_ago};
  std::copy(v, v + features, x);
}

void forecast_sizer::forecast_next() {
  const std::int64_t next = first_ + static_cast<std::int64_t>(values_.size());
  const std::int64_t level = level_of(next, opt_.level_window, opt_.level_quantile);
  const auto jit = static_cast<std::int64_t>(opt_.jitter);
  std::int64_t highest = 0; // a linear forecast stays within 1.5 x the last day's highest
  if (opt_.linear_forgetting.size())
    for (std::int64_t k = next - 1; k >= std::max(first_, next - day_); --k)
      highest = std::max(highest, value_at(k));
  for (auto& f : f_) {
    f.next_scale = opt_.scale_smoothing > 0 ? std::max(f.abs_error, 0.0) + opt_.scale_floor : 1.0;
    f.next = level;
    if (f.forgetting > 0) {
      linear_features(next, level, f.x.data());
      double pred = 0;
      for (std::size_t a = 0; a < features; ++a)
        pred += f.w[a] * f.x[a];
      const double mc = std::clamp(pred * 1000.0, 0.0, 1.5 * static_cast<double>(highest) + 1000);
      f.next = std::llround(mc);
      continue;
    }
    if (f.period == 0)
      continue;
    std::int64_t recurring = -1;
    for (std::size_t n = 1; n <= opt_.repeats; ++n) {
      const std::int64_t phase = next - static_cast<std::int64_t>(n * f.period);
      std::int64_t high = -1;
      for (std::int64_t k = phase - jit; k <= phase + jit && k < next; ++k)
        high = std::max(high, value_at(k));
      if (high < 0) { // not enough history (or none at that phase): the level alone
        recurring = -1;
        break;
      }
      recurring = recurring < 0 ? high : std::min(recurring, high);
    }
    f.next = std::max(level, recurring);
  }
}

double forecast_sizer::headroom_z(const std::vector<double>& s, double scale, double& cost,
                                  std::size_t& above) const {
  const double n = static_cast<double>(s.size());
  // z = 0, then every residual value > 0 (the cost only changes there).
  above = s.end() - std::upper_bound(s.begin(), s.end(), 0.0);
  double z_best = 0;
  cost = opt_.short_cost * static_cast<double>(above) / n;
  for (std::size_t p = 0; p < s.size(); ++p) {
    if (s[p] <= 0 || (p + 1 < s.size() && s[p + 1] == s[p]))
      continue;
    const std::size_t a = s.size() - (p + 1);
    const double c = scale * s[p] + opt_.short_cost * static_cast<double>(a) / n;
    if (c < cost) {
      cost = c;
      z_best = s[p];
      above = a;
    }
  }
  return z_best;
}

std::optional<forecast_size> forecast_sizer::size() const {
  if (!have_forecast_ || f_.front().z.size() < std::max<std::size_t>(opt_.min_buckets, 1))
    return std::nullopt;
  // The forecaster with the least mean forecast + headroom cost over the window (the
  // headroom at the window's mean scale) ...
  const forecaster* best_f = nullptr;
  double best_cost = 0;
  for (const auto& f : f_) {
    const double n = static_cast<double>(f.z.size());
    double c = 0;
    std::size_t above = 0;
    headroom_z(f.sorted, f.scale_sum / n, c, above);
    const double cost = static_cast<double>(f.fc_sum) / n + c;
    if (!best_f || cost < best_cost) {
      best_f = &f;
      best_cost = cost;
    }
  }
  // ... sizes the next bucket, its headroom at its current scale.
  const forecaster& f = *best_f;
  double c = 0;
  std::size_t above = 0;
  const double z = headroom_z(f.sorted, f.next_scale, c, above);
  forecast_size best;
  best.forecast = f.next;
  best.headroom = static_cast<std::int64_t>(std::ceil(z * f.next_scale - 1e-6));
  best.period = static_cast<usec>(f.period) * opt_.step;
  best.forgetting = f.forgetting;
  best.short_share = static_cast<double>(above) / static_cast<double>(f.z.size());
  best.level = f_.front().next;
  best.cpu = best.forecast + best.headroom;
  best.throttled = !throttled_.empty() && throttled_.back();
  if (best.throttled && values_.back() >= 0) // kept as the limit * throttled_step
    best.cpu = std::max<std::int64_t>(best.cpu, values_.back());
  return best;
}

} // namespace tender
