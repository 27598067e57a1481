#pragma once
/// Statistics of a profile run and their extrapolation to the full run. Plain functions of
/// the samples: no clock, no processes.
///
/// A profile run sees the first seconds of a job. What is flat stays flat; what grows keeps
/// growing: the memory growth slope is a least-squares line through the second half of the
/// run (the start-up transient is left out, and a job that ramped and then settled shows a
/// flat second half), and when the run was cut by its budget the peak is extrapolated along
/// that line to the full runtime. I/O and network totals scale with the runtime at the
/// rates seen.

#include "protocol/usage.hpp"

#include <string>
#include <vector>

namespace tender {

/// Mean, population standard deviation, 95th percentile (nearest rank) and peak.
struct series_stats {
  double mean = 0;
  double stddev = 0;
  double p95 = 0;
  double peak = 0;
  std::size_t n = 0;
  friend bool operator==(const series_stats&, const series_stats&) = default;
};

series_stats describe(std::vector<double> values);

/// A least-squares line y = intercept + slope * t (t in seconds).
struct line_fit {
  double slope = 0;     ///< per second
  double intercept = 0;
  double r2 = 0;        ///< coefficient of determination; 0 when y is constant
  std::size_t n = 0;
};

line_fit least_squares(const std::vector<double>& t, const std::vector<double>& y);

/// Everything one profile run measured.
struct profile_summary {
  series_stats cpu;         ///< cores (samples after the first, which has no CPU delta)
  series_stats rss;         ///< bytes
  series_stats threads;
  series_stats io_read_rate;  ///< bytes/s between samples
  series_stats io_write_rate; ///< bytes/s between samples
  series_stats net_rate;      ///< bytes/s between samples
  bytes_t io_read = 0;      ///< cumulative at the last sample
  bytes_t io_write = 0;
  bytes_t net_bytes = 0;
  line_fit mem_growth;      ///< rss over seconds since `start`, second half of the run
  line_fit mem_growth_all;  ///< the same over the whole run but its first 10 %
  usec start = 0;           ///< when the run started (the launch)
  usec duration = 0;        ///< start to the last sample
  std::size_t samples = 0;
};

/// `start` is the launch instant (0: the first sample's time).
profile_summary summarize(const std::vector<usage_sample>& samples, usec start = 0);

/// The run projected onto the job's full runtime.
struct projection {
  bytes_t mem_peak = 0;
  bytes_t mem_mean = 0;
  bytes_t io_read = 0;
  bytes_t io_write = 0;
  bytes_t net_bytes = 0;
  bool grows = false;  ///< memory keeps growing: the peak was extrapolated
  std::string basis;   ///< one sentence saying how
};

/// `full_runtime`: the job's expected runtime (walltime or the predictor's); `completed`:
/// the profile run ended by itself. A completed run of the job's own command was the whole
/// job: nothing is extrapolated. `scale_up`: the run was a smaller representative workload
/// (its own `profile` command) that completed; its trend over the whole run (not only its
/// second half, which a representative workload may spend settling) is scaled to the job's
/// runtime. A cut run continues its recent trend (second half).
projection project(const profile_summary& s, usec full_runtime, bool completed,
                   bool scale_up = false);

} // namespace tender
