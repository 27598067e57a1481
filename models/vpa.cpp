#include "models/vpa.hpp"

#include <algorithm>
#include <cmath>

namespace tender {

namespace {

// When the decay factor would exceed 2^100 the reference time moves forward (VPA's
// `maxDecayExponent`).
constexpr double max_decay_exponent = 100;

} // namespace

std::size_t vpa_buckets::count() const {
  return static_cast<std::size_t>(
             std::ceil(std::log(max_value * (ratio - 1) / first_bucket + 1) / std::log(ratio))) +
         1;
}

std::size_t vpa_buckets::find(double value) const {
  if (!(value >= first_bucket)) // also NaN
    return 0;
  auto b = static_cast<std::size_t>(std::log(value * (ratio - 1) / first_bucket + 1) /
                                    std::log(ratio));
  return std::min(b, count() - 1);
}

double vpa_buckets::start(std::size_t bucket) const {
  if (bucket == 0)
    return 0.0;
  return first_bucket * (std::pow(ratio, static_cast<double>(bucket)) - 1) / (ratio - 1);
}

decaying_histogram::decaying_histogram(const vpa_buckets& b, double half_life_s)
    : b_(b), half_life_(half_life_s) {}

bool decaying_histogram::empty() const { return w_.empty() || w_[min_] < b_.epsilon; }

void decaying_histogram::add_sample(double value, double weight, double t_s) {
  if (!(weight > 0) || std::isnan(value))
    return;
  if (w_.empty()) {
    w_.assign(b_.count(), 0.0);
    min_ = w_.size() - 1;
    max_ = 0;
  }
  if (t_s > ref_ + half_life_ * max_decay_exponent) {
    // Renormalise: the reference becomes t rounded to a whole number of half-lives
    // and the weights shrink by the same factor the new samples do.
    double new_ref = std::round(t_s / half_life_) * half_life_;
    scale(std::ldexp(1.0, static_cast<int>(std::round((ref_ - new_ref) / half_life_))));
    ref_ = new_ref;
  }
  const double w = weight * std::exp2((t_s - ref_) / half_life_);
  const std::size_t b = b_.find(value);
  w_[b] += w;
  total_ += w;
  if (w_[b] >= b_.epsilon) {
    min_ = std::min(min_, b);
    max_ = std::max(max_, b);
  }
}

void decaying_histogram::scale(double factor) {
  for (auto& w : w_)
    w *= factor;
  total_ *= factor;
  update_min_max();
}

void decaying_histogram::update_min_max() {
  const std::size_t last = w_.size() - 1;
  min_ = last;
  max_ = 0;
  for (std::size_t b = 0; b <= last; ++b)
    if (w_[b] >= b_.epsilon) {
      min_ = std::min(min_, b);
      max_ = std::max(max_, b);
    }
}

double decaying_histogram::percentile(double p) const {
  if (empty())
    return 0.0;
  const double threshold = p * total_;
  double sum = 0;
  std::size_t b = min_;
  for (; b < max_; ++b) {
    sum += w_[b];
    if (sum >= threshold)
      break;
  }
  // The end of the bucket; the last bucket has no end, so its start.
  return b + 1 < w_.size() ? b_.start(b + 1) : b_.start(b);
}

vpa_recommender::vpa_recommender(vpa_options o)
    : opt_(o), global_(o.buckets, o.half_life_s) {}

std::uint64_t vpa_recommender::key(std::int64_t user, std::int64_t exe) {
  return static_cast<std::uint64_t>(user) * 1000003ull ^ static_cast<std::uint64_t>(exe);
}

void vpa_recommender::observe(std::int64_t user, std::int64_t exe, double value, double t_s) {
  if (!(value >= 0))
    return;
  auto hist = [&] { return decaying_histogram(opt_.buckets, opt_.half_life_s); };
  if (exe >= 0)
    by_user_exe_.try_emplace(key(user, exe), hist()).first->second.add_sample(value, 1.0, t_s);
  by_user_.try_emplace(user, hist()).first->second.add_sample(value, 1.0, t_s);
  global_.add_sample(value, 1.0, t_s);
}

const decaying_histogram* vpa_recommender::pick(std::int64_t user, std::int64_t exe,
                                                vpa_basis& basis) const {
  if (exe >= 0)
    if (auto it = by_user_exe_.find(key(user, exe)); it != by_user_exe_.end() &&
                                                     !it->second.empty()) {
      basis = vpa_basis::user_exe;
      return &it->second;
    }
  if (auto it = by_user_.find(user); it != by_user_.end() && !it->second.empty()) {
    basis = vpa_basis::user;
    return &it->second;
  }
  if (!global_.empty()) {
    basis = vpa_basis::global;
    return &global_;
  }
  basis = vpa_basis::none;
  return nullptr;
}

double vpa_recommender::percentile(std::int64_t user, std::int64_t exe, double p) const {
  vpa_basis b;
  auto* h = pick(user, exe, b);
  return h ? h->percentile(p) : -1.0;
}

vpa_recommendation vpa_recommender::recommend(std::int64_t user, std::int64_t exe) const {
  vpa_recommendation r;
  auto* h = pick(user, exe, r.basis);
  if (!h)
    return r;
  r.value = std::max(h->percentile(opt_.percentile) * (1 + opt_.margin), opt_.min_value);
  return r;
}

const char* to_string(vpa_basis b) {
  switch (b) {
  case vpa_basis::user_exe:
    return "user+executable";
  case vpa_basis::user:
    return "user";
  case vpa_basis::global:
    return "all jobs";
  case vpa_basis::none:
    break;
  }
  return "none";
}

} // namespace tender
