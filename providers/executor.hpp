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
/// present and delegated, rlimits otherwise (`mode()` tells which).

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

struct exec_request {
  std::string job_id;
  std::vector<std::string> argv; ///< argv[0] is resolved through PATH
  std::string workdir;           ///< empty = run_dir
  std::map<std::string, std::string> env; ///< added to a minimal inherited environment
  exec_limits limits;
};

/// What the executor knows of a launched job; persisted in `<run_dir>/state`.
struct exec_state {
  std::string job_id;
  std::string run_dir;
  int shim_pid = 0;
  int pid = 0;                    ///< the job's own pid
  unsigned long long start_ticks = 0; ///< /proc/<pid>/stat starttime, guards against pid reuse
  usec started_at = 0;
  std::string cgroup;             ///< cgroup path(s) or empty
  exec_limits limits;
};

struct exit_info {
  std::int32_t exit_code = -1; ///< -1 when killed by a signal
  std::int32_t signal = 0;
  std::string reason; ///< "exited 0", "killed by signal 9", "out of memory", "walltime exceeded", ...
  usec finished_at = 0;
};

/// One poll's news about one job.
struct exec_event {
  std::string job_id;
  std::optional<usage_sample> sample;
  std::optional<exit_info> exited;
};

class executor {
public:
  /// `root` holds one run dir per job (`root/<job_id>`), created on demand.
  explicit executor(std::string root);
  ~executor();
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;

  /// "cgroup-v1", "cgroup-v2" or "rlimit".
  std::string mode() const;

  /// Starts the job. Errors (command not found, not executable, run dir not
  /// writable) come back as a message naming what failed.
  std::variant<exec_state, std::string> launch(const exec_request& req, usec now);

  /// Re-adopts a job launched by an earlier process from its run dir. Returns the
  /// state if the job is still running, or its exit_info if it ended meanwhile;
  /// a message when the run dir holds nothing usable.
  std::variant<exec_state, exit_info, std::string> adopt(const std::string& job_id, usec now);

  /// Samples every running job and reaps finished ones. Call at >= 10 Hz.
  std::vector<exec_event> poll(usec now);

  /// Changes a running job's limits in place (cgroup); false with `why` if it cannot.
  bool set_limits(const std::string& job_id, const exec_limits& limits, std::string& why);

  /// SIGTERM, then SIGKILL after `grace`; the exit shows up in a later poll().
  void kill(const std::string& job_id, const std::string& reason, usec grace, usec now);

  bool running(const std::string& job_id) const;
  std::vector<std::string> running_jobs() const;
  /// Path of the job's captured stdout / stderr.
  std::string stdout_path(const std::string& job_id) const;
  std::string stderr_path(const std::string& job_id) const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace tender
