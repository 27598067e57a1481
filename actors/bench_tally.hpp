#pragma once
/// What the negotiations of `tender bench negotiate` (actors/bench.cpp) and of its
/// `--floor` (actors/bench_floor.cpp) report to the bench's main thread.

#include "actors/bench.hpp"
#include "actors/task_cpu.hpp"
#include "protocol/allocation.hpp"

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace tender {

struct bench_tally {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<double> latency_ms;
  std::int64_t committed = 0, refused = 0, done = 0;
  std::int64_t expected = 0; ///< negotiations the main thread waits for
  std::int64_t rounds = 0, msgs = 0;
  std::vector<allocation> kept;
  std::vector<std::string> refusals;
};

/// The machine's counters at one moment (-1: could not be read): this process's CPU
/// seconds, the CPU seconds stolen from the VM (/proc/stat), bytes this process sent to
/// storage (/proc/self/io), and the CPU of every thread of this process and of
/// `others` (the provider processes over tcp).
struct machine_reading {
  double cpu_s = -1, steal_s = -1, write_bytes = -1;
  std::vector<task_sample> tasks;
};
machine_reading read_machine(const std::vector<int>& others = {});
/// Which part of a run thread `t` is: this process's CAF workers, gateway I/O thread,
/// ZeroMQ I/O thread, journal committer or checkpointer, CAF clock, "other"; another
/// process's ("providers", "providers: ZeroMQ I/O").
std::string bench_part(const task_sample& t, int self);
/// The run's share of the counters (`after` - `before`) into `res`.
void set_machine(const machine_reading& before, const machine_reading& after,
                 negotiate_bench_result& res);

/// p50, p99 and max of the tally's submit-to-commit latencies into `res`.
void set_latencies(const bench_tally& t, negotiate_bench_result& res);

} // namespace tender
