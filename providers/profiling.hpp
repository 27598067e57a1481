#pragma once
/// The profile stage as plain code: the sandboxed request for a job's profile run, a
/// blocking driver for it (for `tender profile` and tests; the profiler actor polls on
/// its own timers instead), and the measured part of the resource profile built from the
/// samples, the static findings and the job's hints.
///
///     spec ──► static_analyzer ──► static_report ─┐
///     spec + report ──► profile_request ──► executor ──► samples ──► measure_profile ──► resource_profile
///                                                                         (summarize + project)
///
/// The runtime and its interval come from the predictor, which the caller applies
/// afterwards (it needs the measured profile as input); `apply_projection` then scales the
/// run's totals to that runtime.

#include "protocol/job.hpp"
#include "protocol/profile.hpp"
#include "providers/executor.hpp"
#include "providers/profile_stats.hpp"
#include "providers/static_analysis.hpp"

#include <functional>
#include <optional>

namespace tender {

/// Static analysis of a job: its profile command (or its command), then its own command
/// when that differs (the real run's needs count; findings already made are not repeated).
/// Uses the job's env (PATH, LD_LIBRARY_PATH) and workdir.
static_report analyze_job(const job_spec& spec, static_options opts = {});

/// Sandbox limits of a profile run.
struct profile_limits {
  usec budget = 10 * sec_us;        ///< the job's `profile.budget`, else this
  bytes_t memory = 2LL << 30;       ///< twice the memory hint when there is one
  std::int64_t pids = 256;          ///< fork bombs stop here
  bytes_t max_output = 512LL << 20; ///< runaway output stops here (RLIMIT_FSIZE: any one file)
  usec kill_grace = 500 * ms_us;    ///< SIGTERM to SIGKILL at the budget
};

/// The executor request for a job's profile run: its profile command (or, without one,
/// its command under the budget), the job's workdir and env, limits, and the sandbox: its
/// own network namespace (loopback only; plus a measured link to the host when static
/// analysis says it needs the network), bubblewrap's mount view when installed. The
/// walltime is a backstop behind the budget kill.
exec_request profile_request(const std::string& run_id, const job_spec& spec,
                             const static_report& report, const profile_limits& limits = {});

/// What one profile run gave.
struct profile_run {
  std::vector<usage_sample> samples;
  std::optional<exit_info> exit;
  std::string error;   ///< launch failed: nothing ran
  std::string sandbox; ///< isolation it got ("netns+bwrap", "netns+link+bwrap", ...)
  // Added with the measured link (additive):
  std::string net_link;       ///< the link it got ("tnd42 10.213.0.169/30 <-> eth0 ...")
  std::string net_link_error; ///< why a link the job needed could not be made
  std::string stderr_tail;    ///< last line the job wrote to stderr (failed runs explain)
  usec started = 0;
  usec budget = 0;
  bool cut = false;    ///< stopped at the budget (the job did not end by itself)
  usec took = 0;
};

/// Runs `req` to its end or its budget, sampling every `period`. `clock` and `sleep` are
/// injected so nothing here reads the time itself.
profile_run run_profile(executor& ex, const exec_request& req, usec budget, usec period,
                        const std::function<usec()>& clock,
                        const std::function<void(usec)>& sleep, usec kill_grace = 500 * ms_us);

/// The pids limit checked from a sample's task count: a message when exceeded, else empty.
/// A backstop for the rlimit fallback, where RLIMIT_NPROC does not bind root (cgroups
/// enforce `pids.max` themselves); the caller kills the run.
std::string over_task_limit(const exec_request& req, const usage_sample& s);

/// Why the job's command must not be run at all, from its static findings (an entry script
/// that does not compile); empty when it may run. A run would only fail the same way and
/// spend the budget, so the profile is then static only and marked partial.
std::string dynamic_run_blocker(const static_report& report);

/// How the run ended, as a finding ("profile" kind, or "error" for failures to start,
/// crashes at once and sandbox limits).
finding run_finding(const profile_run& run, const std::string& command);

/// The measured profile: statistics of the samples (cpu, memory, I/O, network, with 90 %
/// intervals), the static findings, GPU type from hints or analysis, software stack, and
/// the sources. Runtime is left to the predictor. `run` may be null (no dynamic run).
/// A job that needs the network is told apart: measured over its link, or (when the
/// link could not be made) a finding that its network bytes were not measured.
resource_profile measure_profile(const std::string& job_id, const job_spec& spec,
                                 const static_report& report, const profile_run* run);

/// Extrapolates the run to `p.runtime` (or the job's walltime when larger): memory growth,
/// I/O and network totals; adds the basis as a finding. No-op without samples.
void apply_projection(resource_profile& p, const job_spec& spec, const profile_run& run);

} // namespace tender
