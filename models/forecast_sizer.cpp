#include "models/forecast_sizer.hpp"

#include <algorithm>
#include <cmath>

namespace tender {

forecast_sizer::forecast_sizer(forecast_options o) : opt_(std::move(o)) {
  if (opt_.step <= 0)
    opt_.step = 5 * 60 * sec_us;
  opt_.level_window = std::max<std::size_t>(opt_.level_window, 1);
  opt_.residual_window = std::max<std::size_t>(opt_.residual_window, 1);
  opt_.repeats = std::max<std::size_t>(opt_.repeats, 1);
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

void forecast_sizer::complete() {
  if (open_ < 0)
    return;
  auto push = [&](std::int64_t v, bool thr) {
    if (have_forecast_ && v >= 0)
      for (auto& f : f_) {
        const std::int64_t r = v - f.next + (thr ? 1 : 0);
        f.fc.push_back(f.next);
        f.res.push_back(r);
        f.sorted.insert(std::upper_bound(f.sorted.begin(), f.sorted.end(), r), r);
        f.fc_sum += f.next;
        if (f.res.size() > opt_.residual_window) {
          f.sorted.erase(std::lower_bound(f.sorted.begin(), f.sorted.end(), f.res.front()));
          f.fc_sum -= f.fc.front();
          f.res.pop_front();
          f.fc.pop_front();
        }
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

void forecast_sizer::forecast_next() {
  const std::int64_t next = first_ + static_cast<std::int64_t>(values_.size());
  std::vector<std::int64_t> recent;
  for (std::int64_t k = next - 1; k >= first_ && recent.size() < opt_.level_window; --k)
    if (auto v = value_at(k); v >= 0)
      recent.push_back(v);
  std::int64_t level = 0;
  if (!recent.empty()) {
    std::sort(recent.begin(), recent.end());
    auto k = static_cast<std::size_t>(
        std::ceil(opt_.level_quantile * static_cast<double>(recent.size()) - 1e-9));
    level = recent[std::clamp<std::size_t>(k, 1, recent.size()) - 1];
  }
  const auto jit = static_cast<std::int64_t>(opt_.jitter);
  for (auto& f : f_) {
    f.next = level;
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

std::optional<forecast_size> forecast_sizer::size() const {
  if (!have_forecast_ || f_.front().res.size() < std::max<std::size_t>(opt_.min_buckets, 1))
    return std::nullopt;
  forecast_size best;
  double best_cost = 0;
  bool first = true;
  for (const auto& f : f_) {
    const auto& s = f.sorted;
    const double n = static_cast<double>(s.size());
    // h = 0, then every residual value >= 0 (the cost only changes there).
    std::size_t above = s.end() - std::upper_bound(s.begin(), s.end(), std::int64_t{0});
    std::int64_t h_best = 0;
    double c_best = opt_.short_cost * static_cast<double>(above) / n;
    std::size_t above_best = above;
    for (std::size_t p = 0; p < s.size(); ++p) {
      if (s[p] <= 0 || (p + 1 < s.size() && s[p + 1] == s[p]))
        continue;
      const std::size_t a = s.size() - (p + 1);
      const double c = static_cast<double>(s[p]) + opt_.short_cost * static_cast<double>(a) / n;
      if (c < c_best) {
        c_best = c;
        h_best = s[p];
        above_best = a;
      }
    }
    const double cost = static_cast<double>(f.fc_sum) / n + c_best;
    if (first || cost < best_cost) {
      first = false;
      best_cost = cost;
      best.forecast = f.next;
      best.headroom = h_best;
      best.period = static_cast<usec>(f.period) * opt_.step;
      best.short_share = static_cast<double>(above_best) / n;
    }
  }
  best.level = f_.front().next;
  best.cpu = best.forecast + best.headroom;
  best.throttled = !throttled_.empty() && throttled_.back();
  if (best.throttled && values_.back() >= 0) // kept as the limit * throttled_step
    best.cpu = std::max<std::int64_t>(best.cpu, values_.back());
  return best;
}

} // namespace tender
