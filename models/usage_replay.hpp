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
///           it raises is granted. Its CPU size comes from the forecast sizer
///           (models/forecast_sizer.hpp, the same code the scaler runs on a live job):
///           forecasters = the median of the last 3 readings, that raised to a rise that
///           recurred at the same phase in each of the last 2 periods (1-24 h), and two
///           online linear fits (recursive least squares, forgetting 0.97 and 0.995) of
///           the next reading on the recent readings and the same time yesterday / a
///           week ago; each with the headroom h minimising h + short_cost * P(residual >
///           h) over the last day's residuals, measured relative to the forecaster's
///           recent error scale (so the headroom shrinks while its forecasts hit and
///           grows while they miss); the forecaster that explained the last day best
///           sizes; at least x1.2 after a reading at the limit (short_cost 1000).
///           A CPU limit up to the VM's size changes in place (a cgroup `cpu.max`
///           write, a hypervisor CPU cap), so no tender resize is disruptive here;
///           `tender_restarts` counts every tender resize as a restart instead (the
///           detector then keeps to one per job-hour).
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
/// Measured (4 cores per VM; "mean view": one usage series, the mean, for slack and
/// shortage alike; "peak view", `--max`: shortage against the 5-minute peak):
///
///   VMs       view  static           vpa              tender (slack / short)
///   0-49      mean  34.1 % / 24.8 %  40.7 % / 6.4 %   20.2 % / 6.1 %
///   50-99     mean  25.9 % / 24.5 %  36.7 % / 5.1 %   19.5 % / 5.1 % (5.13 vs 5.10)
///   all 100   mean  30.1 % / 24.6 %  38.7 % / 5.7 %   19.9 % / 5.6 %
///   all 100   peak  30.1 % / 79.0 %  38.7 % / 66.0 %  56.6 % / 14.7 %
///
/// tender: no disruptive action (4.3 in-place resizes per job-hour); with every resize
/// counted as a restart (`tender_restarts`) 0.83 per job-hour, 19.8 % / 9.3 %.
/// The target (slack under 20 % with less time short than vpa) is met on all
/// 100 VMs, narrowly, and on neither half alone: VMs 0-49 hold 0.2 points too much
/// slack, VMs 50-99 are short 0.03 points more often than vpa.

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

/// The detector's knobs for the replay: the forecast sizer on (its defaults, see
/// models/forecast_sizer.hpp, the agent's: short_cost 1000, throttled step 1.2; the
/// design chosen on the first 50 VMs in the mean view), and for the first hour, before
/// the sizer has history,
/// the reactive rules sized to hug the usage: the 10th percentile of the last hour's
/// peaks, grown 10 % after 15 minutes held at the limit, shrunk after 10 minutes of low
/// use (chosen earlier on the same 50 VMs in the peak view).
deviation_options replay_tuned_detector();

struct usage_replay_options {
  std::int64_t vm_cores = 4; ///< p % of a VM = p * vm_cores * 10 millicores
  std::size_t warmup = 288;  ///< readings of profile, not scored (one day)
  std::size_t first_vm = 0;  ///< a slice of the VMs ...
  std::size_t vms = std::numeric_limits<std::size_t>::max();
  std::size_t readings = std::numeric_limits<std::size_t>::max(); ///< ... and of the readings
  usec interval = 5 * 60 * sec_us;
  millicores min_cpu = 25; ///< every policy's floor (VPA's pod minimum)
  double static_quantile = 0.9;
  bool vpa_peak_samples = false; ///< feed VPA's histogram the peaks instead of the means
  bool tender_restarts = false;  ///< count every tender resize as a restart
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
bool replay_usage(const usage_series& mean, const usage_series* peak, const usage_replay_options& o,
                  usage_replay_report& out, std::string& error);

/// One job under one policy, reading by reading: the allocation each scored reading
/// had (for tests and plots). `policy` is "static", "vpa" or "tender".
bool replay_allocations(const std::vector<millicores>& mean, const std::vector<millicores>& peak,
                        const std::string& policy, const usage_replay_options& o,
                        std::vector<millicores>& alloc, std::int64_t& disruptive,
                        std::int64_t& resizes, std::string& error);

} // namespace tender
