#pragma once
/// A real single-node Slurm cluster for tests: munged, slurmctld and slurmd started
/// as child processes (no systemd) in a private temporary directory, on two free
/// loopback ports, with its own munge key and `SLURM_CONF` (never /etc/slurm).
///
///   slurm_cluster c;            // starts the daemons, waits until the node is idle
///   if (!c.up()) FAIL() << c.error();   // the error carries the daemons' logs
///   c.run("sbatch", {...});     // any Slurm tool, against this cluster only
///   ...                         // ~slurm_cluster: cancels every job, stops the daemons
///                               // by PID (SIGTERM, then SIGKILL), removes the directory
///
/// The daemons are also killed by the kernel if the test process dies
/// (PR_SET_PDEATHSIG). Set TENDER_KEEP_TEST_DIRS=1 to keep the directory and its logs.
/// See ../shared/notes/slurm-and-sandbox.md for the recipe this follows.

#include "providers/provider_config.hpp"
#include "providers/slurm.hpp"

#include <map>
#include <string>
#include <variant>
#include <vector>

namespace tender::test {

class slurm_cluster {
public:
  /// The Slurm and munge programs that are not installed ("" when all are).
  static std::string missing_tools();

  /// A node with `cpus` cores and `memory_mib` MiB of schedulable memory.
  explicit slurm_cluster(int cpus = 2, int memory_mib = 4000);
  ~slurm_cluster();
  slurm_cluster(const slurm_cluster&) = delete;
  slurm_cluster& operator=(const slurm_cluster&) = delete;

  /// True once the node is registered and idle.
  bool up() const { return error_.empty(); }
  /// Why it is not up, with the daemons' logs.
  const std::string& error() const { return error_; }
  const std::string& dir() const { return dir_; }
  std::string conf() const { return dir_ + "/slurm.conf"; }
  /// The controller's and the node daemon's logs (their last lines), for failure messages.
  std::string logs() const;

  /// Runs a Slurm tool against this cluster (10 s deadline).
  std::variant<command_output, std::string> run(const std::string& tool,
                                                const std::vector<std::string>& args) const;
  /// `scontrol show job|reservation ID --oneliner` as key -> value; empty when unknown.
  std::map<std::string, std::string> show(const std::string& what, const std::string& id) const;
  /// Cancels every job and deletes every reservation (between tests).
  void reset();

  /// A slurm provider's configuration for this cluster (queries at every poll).
  provider_config provider(const std::string& name = "hpc") const;

private:
  int spawn(const std::vector<std::string>& argv, const std::string& log);
  void stop();

  std::string dir_;
  std::string error_;
  std::vector<int> pids_; // munged, slurmctld, slurmd: stopped in reverse order
};

} // namespace tender::test
