#pragma once
/// Runs jobs as real child processes with enforced limits and samples their usage.
/// Plain class: no actors, no sockets. Time comes in as `now`.
///
/// Each job runs under a small shim: the executor forks a shim process (its own
/// session) that forks the job, waits for it and writes the exit status to
/// `<run_dir>/exit` atomically. The shim outlives the agent, so after `kill -9`
/// and a restart the executor can `adopt()` a still-running job from its run dir
/// and still learn its exit code.
///
/// Limits: cgroup v1 (memory, cpu, cpuacct, pids) where writable, cgroup v2 where
/// present and delegated, rlimits otherwise (`mode()` tells which). Under rlimits:
/// RLIMIT_AS for memory, RLIMIT_NPROC for pids (it counts all of the user's tasks, so
/// it is set to those plus `pids`), RLIMIT_CPU = walltime x cores as a backstop when
/// no executor is left to enforce walltime, no cpu cap. RLIMIT_FSIZE = `max_output`
/// in every mode (it caps every file the job writes, not only stdout/stderr).
///
/// Files in `<root>/<job_id>/`: `state` (JSON, written by the executor), `pid` and
/// `exit` (key=value lines, written by the shim), `stdout`, `stderr`.
///
/// Environment: `TENDER_EXECUTOR_MODE=rlimit` forces the rlimit fallback (also
/// `cgroup-v1` / `cgroup-v2` to insist on one kind, falling back to rlimits when it
/// is unusable). Job cgroups go to `<own cgroup>/tender/<job_id>` in each hierarchy,
/// i.e. below the agent's own cgroup, so jobs stay inside whatever contains the
/// agent; `TENDER_CGROUP_PARENT=/some/path` (relative to the hierarchy root) puts
/// them under a delegated subtree instead.
///
/// Job lifecycle as seen by `poll()`:
///
///     launch ──► running ──(exit file appears)──────────────► exited (reason)
///                  │ walltime reached / kill(): SIGTERM
///                  ▼
///              terminating ──(grace over)── SIGKILL ──► exited (reason)

#include "protocol/usage.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tender {

struct exec_limits {
  millicores cpu = 0;     ///< 0 = unlimited; enforced by CFS quota (or not at all under rlimits)
  bytes_t memory = 0;     ///< 0 = unlimited; cgroup limit, or RLIMIT_AS under rlimits
  std::int64_t pids = 0;  ///< 0 = unlimited
  usec walltime = 0;      ///< 0 = unlimited; the executor kills the job when exceeded
  bytes_t max_output = 0; ///< 0 = unlimited; RLIMIT_FSIZE for stdout/stderr files
};

/// Isolation beyond limits, for runs of untrusted or unknown code (profile runs).
/// Added with the profiler (additive; both default off).
struct exec_sandbox {
  /// A private network namespace holding only `lo` (brought up): the job cannot reach any
  /// other host, and `net_bytes` is measured from the namespace's own counters (bytes
  /// sent on `lo`, plus received and sent on any other interface). Needs root: without it the
  /// job keeps the host network and `exec_state::sandbox` does not name "netns".
  bool own_network = false;
  /// Runs the job under bubblewrap when `bwrap` is installed: `/` read-only, private
  /// `/dev`, `/proc` and `/tmp`, only the workdir writable. Ignored (and reported in
  /// `exec_state::sandbox`) when bwrap is missing.
  bool mount_view = false;
  /// With `own_network`: a measured link out of the namespace, for jobs that need the
  /// network. A veth pair joins the job's namespace (its end is `eth0`, with a default
  /// route through the pair) to the host's (its end is `tnd<N>`), on a private /30 in
  /// 10.213.0.0/16 that is unique per run (the kernel's interface names reserve it, so
  /// concurrent runs never share one). The job finds the addresses in
  /// `TENDER_NET_HOST` / `TENDER_NET_ADDR`. It reaches the host through the link, and
  /// farther only where the host routes 10.213.0.0/16 (tender does not set up NAT).
  /// `net_bytes` = bytes through the host's end (both directions, from
  /// /sys/class/net/tnd<N>/statistics) plus bytes sent on the job's own `lo`.
  /// Nothing outlives the job: the namespace is held only by the job's processes and its
  /// shim (which reads the final counters when the job exits), so the kernel removes the
  /// pair when the last of them is gone, however the job ended. Needs root and `ip`
  /// (iproute2; `TENDER_IP_TOOL` names another binary). When the link cannot be made the
  /// job keeps the host network, unmeasured, and `exec_state::net_link_error` says why.
  /// Added with the profiler's measured link (additive).
  bool network_link = false;
};

struct exec_request {
  std::string job_id;
  std::vector<std::string> argv; ///< argv[0] is resolved through PATH
  std::string workdir;           ///< empty = run_dir
  std::map<std::string, std::string> env; ///< added to a minimal inherited environment
  exec_limits limits;
  exec_sandbox sandbox; ///< added with the profiler
};

/// What the executor knows of a launched job; persisted in `<run_dir>/state`.
struct exec_state {
  std::string job_id;
  std::string run_dir;
  int shim_pid = 0;
  int pid = 0;                    ///< the job's own pid
  unsigned long long start_ticks = 0; ///< /proc/<pid>/stat starttime, guards against pid reuse
  usec started_at = 0;
  std::string cgroup;             ///< cgroup dir(s), ':'-separated, or empty
  exec_limits limits;
  // Added with the first implementation (additive):
  std::string mode;                        ///< "cgroup-v1", "cgroup-v2" or "rlimit" at launch
  unsigned long long shim_start_ticks = 0; ///< guards `shim_pid` against pid reuse
  // Added with the profiler (additive):
  bool own_network = false; ///< runs in its own network namespace
  std::string sandbox;      ///< what isolation it got: "netns", "bwrap", "netns+bwrap" or ""
                            ///< ("netns+link", "netns+link+bwrap" with a measured link)
  // Added with the measured link (additive):
  std::string net_link;       ///< host end of the link ("tnd42"), empty without one
  std::string net_link_info;  ///< "tnd42 10.213.0.169/30 <-> eth0 10.213.0.170/30"
  std::string net_link_error; ///< why a requested link could not be made (host network kept)
};

struct exit_info {
  std::int32_t exit_code = -1; ///< -1 when killed by a signal
  std::int32_t signal = 0;
  /// "exited N", "killed by signal S", "out of memory" (cgroup OOM kill), "walltime
  /// exceeded", "cancelled: <why>", "output limit exceeded" (SIGXFSZ), "failed to
  /// start: <stage>: <error>", "lost: ..." (no exit status could be recovered).
  std::string reason;
  usec finished_at = 0;
  // Added with the profiler (additive): the job's cumulative I/O read by the shim from
  // /proc/<pid>/io just before reaping it (0 when unknown). Later than the last sample.
  bytes_t io_read = 0;
  bytes_t io_write = 0;
  /// Added with the measured link (additive): the job's cumulative network bytes at its
  /// exit (with a link, the host end's final counters read by the shim), 0 when unknown.
  bytes_t net_bytes = 0;
};

/// One poll's news about one job.
struct exec_event {
  std::string job_id;
  std::optional<usage_sample> sample;
  std::optional<exit_info> exited;
};

/// The real executor. Its operations are virtual so that a replay through a live
/// agent can put jobs on virtual time instead (providers/virtual_executor.hpp); the
/// providers hold an `executor&` either way.
class executor {
public:
  /// Time between SIGTERM and SIGKILL when a job exceeds its walltime.
  static constexpr usec walltime_grace = 5 * sec_us;

  /// `root` holds one run dir per job (`root/<job_id>`), created on demand.
  explicit executor(std::string root);
  virtual ~executor();
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;

  /// "cgroup-v1", "cgroup-v2" or "rlimit".
  virtual std::string mode() const;

  /// Starts the job. Errors (command not found, not executable, run dir not
  /// writable) come back as a message naming what failed.
  virtual std::variant<exec_state, std::string> launch(const exec_request& req, usec now);

  /// Re-adopts a job launched by an earlier process from its run dir. Returns the
  /// state if the job is still running, or its exit_info if it ended meanwhile;
  /// a message when the run dir holds nothing usable.
  virtual std::variant<exec_state, exit_info, std::string> adopt(const std::string& job_id, usec now);

  /// Samples every running job and reaps finished ones. Call at >= 10 Hz.
  /// Also enforces walltime (SIGTERM, SIGKILL `walltime_grace` later) and due kills.
  /// One event per tracked job: a sample while it runs; the event that reports the
  /// exit carries no sample. After the exit, processes the job left behind (in its
  /// cgroup or process group) are killed and its cgroups removed.
  ///
  /// Sample fields: `cpu` = CPU time used / `now` elapsed since the previous sample
  /// (cgroup cpuacct.usage or cpu.stat; else utime+stime+cutime+cstime summed over
  /// the job's processes: its pid, descendants, orphans the shim adopted, its process
  /// group). `rss`: cgroup total_rss (v1) / anon (v2), else the sum of VmRSS.
  /// `io_read`/`io_write`: cumulative, per process max(read_bytes, rchar) and
  /// max(write_bytes, wchar) from /proc/<pid>/io — storage traffic when the disk sees
  /// it, syscall bytes when the page cache or a pipe absorbs it; never decreasing.
  /// `threads`: summed. `net_bytes` is measured only for jobs in their own network
  /// namespace (`exec_sandbox::own_network`), cumulative; 0 otherwise (jobs share the
  /// host network). With a measured link (`exec_sandbox::network_link`) it is the link's
  /// host end plus the job's `lo`.
  virtual std::vector<exec_event> poll(usec now);

  /// Changes a running job's limits in place (cgroup); false with `why` if it cannot.
  virtual bool set_limits(const std::string& job_id, const exec_limits& limits, std::string& why);

  /// SIGTERM, then SIGKILL after `grace`; the exit shows up in a later poll().
  virtual void kill(const std::string& job_id, const std::string& reason, usec grace, usec now);

  virtual bool running(const std::string& job_id) const;
  virtual std::vector<std::string> running_jobs() const;
  /// Path of the job's captured stdout / stderr.
  virtual std::string stdout_path(const std::string& job_id) const;
  virtual std::string stderr_path(const std::string& job_id) const;

protected:
  /// For executors that run nothing real (no run dirs, no processes).
  executor();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace tender
