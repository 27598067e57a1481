#pragma once
/// `tender bench negotiate`: N negotiations against P providers with R rounds, driven
/// through the agent's own classes — round actors over auction_book and offer_scorer,
/// provider actors over the configured providers' bidding strategies, and the
/// journal (group commit: one WAL commit per interval, not one per message).
///
/// A negotiation here is what a job does between its profile and its allocation:
/// call for offers, rounds, award, confirm. Each one is its own actor, as a job is;
/// after the commit it releases the allocation so capacity does not run out.

#include "actors/task_cpu.hpp"
#include "protocol/allocation.hpp"
#include "protocol/amounts.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace caf {
class actor_system;
}

namespace tender {

struct node_context;
struct provider_directory;

struct negotiate_bench_options {
  int providers = 8;
  int rounds = 2;
  int jobs = 20000;
  std::string transport = "inproc"; ///< "inproc": one process, CAF messages, no ZeroMQ
  double rate = 0;   ///< offered negotiations/s (open loop); 0 = closed loop
  int window = 32;   ///< closed loop: negotiations in flight (the CLI: `default_window`)
  usec group_commit = 5'000; ///< journal commit interval
  std::string data_dir;      ///< "" = a temporary directory, removed afterwards
  bool journal = true;
  /// Instead of the generated P providers: a node config (TOML) whose providers bid.
  std::string config_toml;
  /// Release each allocation after its commit (the benchmark); false keeps them, and
  /// the result lists them (the no-double-booking property test).
  bool release = true;
  /// tcp: messages of the raw ZeroMQ measurement that follows the negotiations.
  std::int64_t raw_messages = 1'000'000;
  /// The same actors and messages with none of the work (actors/bench_floor.cpp): what
  /// the actor framework alone costs on this machine.
  bool floor = false;
};

/// `tender bench negotiate`'s closed-loop window when none is given: 32 negotiations in
/// flight in process; 128 over tcp, where each one mostly waits for wake-ups of the
/// provider processes and more in flight share them (2,636-2,759/s at 128 or 256 against
/// 1,796/s at 32 in one sitting; in process 64 or 128 gave no more than 32).
int default_window(const std::string& transport);

struct negotiate_bench_result {
  std::string transport;
  bool floor = false; ///< `--floor`: actors and messages only
  int providers = 0, rounds = 0, jobs = 0;
  double offered_rate = 0;
  int window = 0; ///< closed loop: negotiations in flight; 0 in the open loop
  double seconds = 0;
  double negotiations_per_s = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  double msgs_per_negotiation = 0;
  double rounds_mean = 0;
  std::int64_t committed = 0, refused = 0;
  std::int64_t journal_commits = 0;
  /// Journal writes that failed during the run (0 in a sound run: every offer,
  /// negotiation, award and SLA event is recorded).
  std::int64_t journal_errors = 0;
  std::string first_journal_error;
  /// What the machine did during the measured run (-1: could not be read): CPU time of
  /// this process (all its threads; over tcp not the provider processes'), CPU time the
  /// hypervisor took from this VM's CPUs (/proc/stat steal: on this kind of VM the
  /// journal's disk writes come with it, and a stolen millisecond is a millisecond on
  /// some negotiation's latency), and megabytes this process sent to storage
  /// (/proc/self/io write_bytes: the journal's WAL and its checkpoints).
  double cpu_s = -1, steal_s = -1, write_mb = -1;
  /// The CPU by part (/proc/<pid>/task/<tid>/schedstat): this process's threads by role
  /// and, over tcp, the provider processes; `cpu_all_s` is their sum (-1: not read).
  std::vector<cpu_part> cpu_parts;
  double cpu_all_s = -1;
  double zmq_raw_msgs_per_s = -1; ///< tcp only
  double mesh_efficiency = -1;    ///< tcp only
  double wire_mean_bytes = 0;     ///< tcp: mean size of a message (envelope) on the wire
  /// tcp: ZeroMQ frames per negotiation, both ways; fewer than the messages when
  /// several go to or come from a provider together (batch frames, protocol/batch.hpp).
  double frames_per_negotiation = -1;
  std::vector<int> provider_pids; ///< tcp: the provider processes (gone when this returns)
  std::vector<allocation> allocations; ///< the commits, when not released
  std::vector<std::string> refusals;   ///< why each refused negotiation was refused

  /// Keys: negotiations_per_s, p50_ms, p99_ms, msgs_per_negotiation, rounds_mean,
  /// zmq_raw_msgs_per_s, mesh_efficiency (null for inproc), and the settings.
  nlohmann::json to_json() const;
  std::string table() const;
};

std::variant<negotiate_bench_result, std::string>
run_negotiate_bench(const negotiate_bench_options& opt);

/// `--floor` (actors/bench_floor.cpp): the negotiation's shape — a negotiation actor per
/// job, a round actor per round, P provider actors, the same message types and count —
/// with no scoring, validation or journal; in process no bidding either, over tcp the
/// real provider processes. Closed loop. `ctx` is the bench's (config, data dir, clock).
std::variant<negotiate_bench_result, std::string>
run_floor_bench(const negotiate_bench_options& opt, std::shared_ptr<node_context> ctx,
                const std::string& config_toml);

/// `--transport tcp` (actors/bench_tcp.cpp): the providers of `config_toml` as P
/// `tender provider` processes (fork/exec of /proc/self/exe) joined to a gateway on a
/// loopback port; their proxies are appended to `dirs`, so the inproc driver runs
/// unchanged over the wire. Destroying it stops and reaps every child and the gateway
/// (before the actor system goes).
class bench_wire {
public:
  virtual ~bench_wire() = default;
  /// The measured run starts: frames from now on are counted.
  virtual void begin() = 0;
  /// The provider processes (their CPU is part of the run's).
  virtual std::vector<int> pids() const = 0;
  /// The run is over: wire messages (both directions) per negotiation, their mean size,
  /// then the raw ZeroMQ rate at that size between this process and a child, and the
  /// mesh efficiency.
  virtual std::optional<std::string> finish(negotiate_bench_result& res,
                                            const negotiate_bench_options& opt) = 0;
};
std::variant<std::unique_ptr<bench_wire>, std::string>
start_bench_wire(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                 const std::string& config_toml, provider_directory& dirs);

/// `tender bench zmq-raw` (hidden): the raw measurement's sender, `count` messages of
/// `size` bytes on a DEALER connected to `endpoint`, pipelined.
int run_zmq_raw_sender(const std::string& endpoint, std::size_t size, std::int64_t count);

} // namespace tender
