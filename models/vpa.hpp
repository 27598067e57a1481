#pragma once
/// A Kubernetes-VPA-style resource recommender: the P90 of an exponentially decaying
/// histogram of past usage plus a 15 % safety margin, the baseline tender's resource
/// models are measured against (and the recommender the usage replay reuses).
///
/// The maths follow the VPA recommender (kubernetes/autoscaler,
/// `vertical-pod-autoscaler/pkg/recommender/util/{histogram,histogram_options,
/// decaying_histogram}.go` and `logic/{recommender,estimator}.go`):
///
///   buckets    exponential: bucket 0 is [0, first); bucket b >= 1 starts at
///              first * (ratio^b - 1) / (ratio - 1); ratio 1.05 (each bucket 5 % wider
///              than the one before); n = ceil(log(max * (ratio - 1) / first + 1) /
///              log(ratio)) + 1 buckets, the last one open-ended.
///              Memory: first 10 MB (1e7 bytes), max 1 TB; CPU: first 0.01 core, max 1000.
///   decay      a sample at time t weighs w * 2^((t - ref) / half_life) (half-life 24 h):
///              newer samples weigh more, so older ones decay relative to them. When
///              t - ref exceeds 100 half-lives, `ref` moves to t rounded to a multiple
///              of the half-life and every weight is scaled by 2^-(shift / half_life).
///              Weights below `epsilon` (1e-4) count as empty.
///   percentile the end of the first bucket at which the running weight reaches
///              p * total (the start of the last bucket when it is that one); 0 when empty.
///   target     percentile(0.9) * (1 + 0.15).
///
/// What tender adds: a job is one sample (its memory peak, its mean cores), taken
/// when it finishes; samples weigh 1 (VPA weighs CPU samples by the container's CPU
/// request, a per-minute notion a finished job does not have). Histograms are keyed
/// per (user, executable) where the executable is known — the VPA's "container of a
/// workload" — else per user; a key with no history falls back to the user's
/// histogram, then to one over all jobs. VPA's minimum recommendation (25 millicores,
/// 250 MiB per pod) is available as `min_value` and off by default, so the comparison
/// is with the estimator itself. Plain class: time is the caller's (seconds).

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace tender {

/// An exponential bucketing scheme (VPA's `exponentialHistogramOptions`).
struct vpa_buckets {
  double max_value = 1e12;
  double first_bucket = 1e7;
  double ratio = 1.05;
  double epsilon = 1e-4;

  /// VPA's memory histogram (bytes) and CPU histogram (cores).
  static vpa_buckets memory() { return {1e12, 1e7, 1.05, 1e-4}; }
  static vpa_buckets cpu() { return {1000.0, 0.01, 1.05, 1e-4}; }

  std::size_t count() const;
  std::size_t find(double value) const;
  double start(std::size_t bucket) const;
};

/// A histogram whose samples decay with a half-life (VPA's `decayingHistogram`).
class decaying_histogram {
public:
  explicit decaying_histogram(const vpa_buckets& b = vpa_buckets::memory(),
                              double half_life_s = 86400.0);

  /// Adds `value` with `weight` observed at `t_s` (seconds, any epoch).
  void add_sample(double value, double weight, double t_s);
  /// The `p`-quantile as VPA computes it (a bucket's end); 0 when empty.
  double percentile(double p) const;
  bool empty() const;
  /// Sum of the (decay-scaled) weights, relative to the reference time.
  double total_weight() const { return total_; }
  double reference_time() const { return ref_; }
  /// Weight held by one bucket (relative to the reference time).
  double bucket_weight(std::size_t b) const { return w_.empty() ? 0.0 : w_[b]; }
  const vpa_buckets& buckets() const { return b_; }

private:
  void scale(double factor);
  void update_min_max();

  vpa_buckets b_;
  double half_life_;
  double ref_ = 0;
  double total_ = 0;
  std::vector<double> w_; ///< allocated on the first sample
  std::size_t min_ = 0, max_ = 0;
};

struct vpa_options {
  vpa_buckets buckets = vpa_buckets::memory();
  double half_life_s = 86400.0;
  double percentile = 0.9;
  double margin = 0.15;
  double min_value = 0; ///< VPA's floor (250 MiB, 0.025 cores); 0 = none
};

/// Which histogram a recommendation came from.
enum class vpa_basis { user_exe, user, global, none };

struct vpa_recommendation {
  double value = -1; ///< -1 when nothing has been observed at all
  vpa_basis basis = vpa_basis::none;
};

/// Per-(user, executable) / per-user / global decaying histograms and their target.
class vpa_recommender {
public:
  explicit vpa_recommender(vpa_options o = {});

  /// A job of `user` running `exe` (-1 when unknown) finished at `t_s` having used `value`.
  void observe(std::int64_t user, std::int64_t exe, double value, double t_s);
  /// The target for a new job: P(percentile) * (1 + margin), at least `min_value`.
  vpa_recommendation recommend(std::int64_t user, std::int64_t exe) const;
  /// The raw percentile of the histogram `recommend` would use (no margin); -1 if none.
  double percentile(std::int64_t user, std::int64_t exe, double p) const;
  const vpa_options& options() const { return opt_; }

private:
  const decaying_histogram* pick(std::int64_t user, std::int64_t exe, vpa_basis& basis) const;
  static std::uint64_t key(std::int64_t user, std::int64_t exe);

  vpa_options opt_;
  std::unordered_map<std::uint64_t, decaying_histogram> by_user_exe_;
  std::unordered_map<std::int64_t, decaying_histogram> by_user_;
  decaying_histogram global_;
};

const char* to_string(vpa_basis b);

} // namespace tender
