#pragma once
/// `tender replay-usage`: real CPU usage series drive jobs whose allocation three
/// policies keep right, each seeing only the past, on virtual time.
///
/// The data: ../shared/data/usage/azure-vm-cpu-{avg,max}-100vms-5min.csv.gz, 100 Azure
/// VMs (Azure Public Dataset V1, Cortez et al., SOSP 2017), 8,004 five-minute readings
/// of CPU utilisation in percent: the mean over each five minutes (`avg`) and the peak
/// within it (`max`). First row: VM ids; first column: the reading index.
///
/// Jobs and units: each VM is one job, running for the whole series. A reading of p %
/// on a VM of `vm_cores` cores is p * vm_cores * 10 millicores (4 cores by default; the
/// data does not say each VM's size, and every metric below is a ratio, so the choice
/// only moves integer rounding and the 25-millicore floor). Allocations are whole
/// millicores between that floor and the VM's size.
///
/// Time: reading i covers [i * 5 min, (i + 1) * 5 min). The first day (`warmup`, 288
/// readings) is every policy's profile: all of them see it unthrottled, and it is not
/// scored. From then on, the allocation for reading i is decided from readings < i
/// only, and a policy sees its job's usage as the provider would measure it: capped at
/// the allocation (a throttled job cannot show more), with a throttled flag when the
/// peak reached the limit.
///
/// Policies:
///   static  the P90 of the first day's mean readings, fixed.
///   vpa     Kubernetes VPA's recommender and updater: a decaying histogram (24 h
///           half-life, models/vpa.hpp, CPU buckets) of the usage samples (the mean
///           series, as VPA samples usage rates; `vpa_peak_samples` feeds peaks);
///           target P90 * 1.15, lower bound P50 * 1.15 * (1 + 0.001/d)^-2, upper bound
///           P95 * 1.15 * (1 + 1/d) with d the days of history (VPA's confidence). The
///           updater evicts and recreates the job at the target when its allocation is
///           outside [lower, upper], or when it has run 12 h since its last start and
///           the target differs by 10 % or more. Every eviction is disruptive.
///   tender  the deviation detector (models/deviation.hpp) fed every reading; each need
///           it raises is granted. A CPU limit up to the VM's size changes in place (a
///           cgroup `cpu.max` write, a hypervisor CPU cap), so no tender resize is
///           disruptive here; `tender_restarts` counts every tender resize as a
///           restart instead (the detector then keeps to one per job-hour).
///
/// Metrics, over the scored readings of every job:
///   slack        sum(alloc - min(mean, alloc)) / sum(alloc): what is held and not used,
///                against the mean (the CPU time a job really consumes; Autopilot's slack).
///   slack_peak   the same against the peak.
///   time_short   share of readings whose peak exceeds the allocation: the job wanted
///                more than it held at some moment of those five minutes (the demanding
///                user's view; with no peak series, the mean).
///   time_short_mean  share of readings whose mean exceeds the allocation.
///   disruptive_per_job_hour  restarts and moves per hour of job run time.
///   resizes_per_job_hour     every allocation change, disruptive or not.
///
/// Measured on all 100 VMs (771,600 scored readings per policy, 4 cores per VM):
///
///   policy  slack  slack/peak  short/peak  short/mean  disruptive/job-h  resizes/job-h
///   static  30.1 %   13.8 %      79.0 %      24.6 %        0                 0
///   vpa     38.7 %   16.6 %      66.0 %       5.7 %        0.0145            0.0145
///   tender  43.0 %    6.1 %      52.5 %       5.7 %        0                 5.70
///
/// The target (slack under 20 % with less time short than vpa) is met only if
/// slack is also counted against the peak; against the mean it is not, and cannot be
/// for any policy that covers peaks: the peaks sum to 2.02 times the means, so an
/// allocation above the peak wastes half of itself against the mean.

#include "models/deviation.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace tender {

/// One usage file: per VM, its readings in percent.
struct usage_series {
  std::string path;
  std::vector<std::string> ids;
  std::vector<std::vector<double>> percent; ///< [vm][reading]
  std::size_t readings() const { return percent.empty() ? 0 : percent.front().size(); }
};

/// Reads a usage file (plain or gzip). A malformed file is an error naming the file,
/// the line and what was expected.
bool read_usage_series(const std::string& path, usage_series& out, std::string& error);

/// The detector's knobs for the replay, chosen on the first 50 VMs only (all readings)
/// by the target: the least slack whose time short stays below the VPA-style
/// policy's on those VMs, at most one disruptive action per job-hour. Grid searched:
/// grow_step {1.1, 1.2, 1.3, 1.5}, cpu_quantile {0.1, 0.25, 0.5, 0.75, 0.9, 1},
/// cpu_margin {0, 0.05, 0.1, 0.25}, cpu_size_window {30, 60, 180} min, shrink_window
/// {10, 15, 30, 60, 180} min, throttle window/share {5 min/0.5, 15 min/0.6, 15 min/1}.
/// The winner hugs the usage: it sizes to the 10th percentile of the last hour's
/// peaks, grows 10 % only after 15 minutes held at the limit, and shrinks after 10
/// minutes of low use. It reacts slowly to a step up in demand (each grow is 10 %);
/// the metric counts short readings, not how short they were.
deviation_options replay_tuned_detector();

struct usage_replay_options {
  std::int64_t vm_cores = 4;       ///< p % of a VM = p * vm_cores * 10 millicores
  std::size_t warmup = 288;        ///< readings of profile, not scored (one day)
  std::size_t first_vm = 0;        ///< a slice of the VMs ...
  std::size_t vms = std::numeric_limits<std::size_t>::max();
  std::size_t readings = std::numeric_limits<std::size_t>::max(); ///< ... and of the readings
  usec interval = 5 * 60 * sec_us;
  millicores min_cpu = 25;         ///< every policy's floor (VPA's pod minimum)
  double static_quantile = 0.9;
  bool vpa_peak_samples = false;   ///< feed VPA's histogram the peaks instead of the means
  bool tender_restarts = false;    ///< count every tender resize as a restart
  deviation_options tender = replay_tuned_detector(); ///< the detector's knobs
};

struct usage_policy_result {
  std::string policy;
  double slack = 0;
  double slack_peak = 0;
  double time_short = 0;
  double time_short_mean = 0;
  double disruptive_per_job_hour = 0;
  double resizes_per_job_hour = 0;
  std::size_t jobs = 0;
  std::size_t readings = 0; ///< scored readings over all jobs
  std::int64_t disruptive = 0;
  std::int64_t resizes = 0;
};

struct usage_replay_report {
  std::string usage_path, peak_path;
  std::vector<usage_policy_result> policies; ///< static, vpa, tender
  /// `{"static": {...}, "vpa": {...}, "tender": {...}, "usage": ..., "peak": ...}`
  nlohmann::json to_json() const;
  std::string table() const;
};

/// Replays every job of `mean` (with the peaks of `peak` when not null: same VMs, same
/// readings) under the three policies.
bool replay_usage(const usage_series& mean, const usage_series* peak,
                  const usage_replay_options& o, usage_replay_report& out, std::string& error);

/// One job under one policy, reading by reading: the allocation each scored reading
/// had (for tests and plots). `policy` is "static", "vpa" or "tender".
bool replay_allocations(const std::vector<millicores>& mean, const std::vector<millicores>& peak,
                        const std::string& policy, const usage_replay_options& o,
                        std::vector<millicores>& alloc, std::int64_t& disruptive,
                        std::int64_t& resizes, std::string& error);

} // namespace tender
