#pragma once
/// `tender bench negotiate`: N negotiations against P providers with R rounds, driven
/// through the agent's own classes — round actors over auction_book and offer_scorer,
/// provider actors over the configured providers' bidding strategies, and the
/// journal (group commit: one WAL commit per interval, not one per message).
///
/// A negotiation here is what a job does between its profile and its allocation:
/// call for offers, rounds, award, confirm. Each one is its own actor, as a job is;
/// after the commit it releases the allocation so capacity does not run out.

#include "protocol/allocation.hpp"
#include "protocol/amounts.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace tender {

struct negotiate_bench_options {
  int providers = 8;
  int rounds = 2;
  int jobs = 20000;
  std::string transport = "inproc"; ///< "inproc": one process, CAF messages, no ZeroMQ
  double rate = 0;   ///< offered negotiations/s (open loop); 0 = closed loop
  int window = 256;  ///< closed loop: negotiations in flight
  usec group_commit = 5'000; ///< journal commit interval
  std::string data_dir;      ///< "" = a temporary directory, removed afterwards
  bool journal = true;
  /// Instead of the generated P providers: a node config (TOML) whose providers bid.
  std::string config_toml;
  /// Release each allocation after its commit (the benchmark); false keeps them, and
  /// the result lists them (the no-double-booking property test).
  bool release = true;
};

struct negotiate_bench_result {
  std::string transport;
  int providers = 0, rounds = 0, jobs = 0;
  double offered_rate = 0;
  double seconds = 0;
  double negotiations_per_s = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  double msgs_per_negotiation = 0;
  double rounds_mean = 0;
  std::int64_t committed = 0, refused = 0;
  std::int64_t journal_commits = 0;
  double zmq_raw_msgs_per_s = -1; ///< tcp only
  double mesh_efficiency = -1;    ///< tcp only
  std::vector<allocation> allocations; ///< the commits, when not released
  std::vector<std::string> refusals;   ///< why each refused negotiation was refused

  /// Keys: negotiations_per_s, p50_ms, p99_ms, msgs_per_negotiation, rounds_mean,
  /// zmq_raw_msgs_per_s, mesh_efficiency (null for inproc), and the settings.
  nlohmann::json to_json() const;
  std::string table() const;
};

std::variant<negotiate_bench_result, std::string>
run_negotiate_bench(const negotiate_bench_options& opt);

} // namespace tender
