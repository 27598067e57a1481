#pragma once
/// CPU time by thread, from /proc: what each part of a benchmark run cost (the CAF
/// workers, the gateway's I/O thread, ZeroMQ's I/O threads, the journal's committer,
/// the provider processes). A thread's `schedstat` gives, in nanoseconds, the time it
/// ran on a CPU and the time it waited, runnable, for one: on two cores shared by a
/// dozen threads the second is the scheduling delay in every message's latency.
///
/// Plain Linux code (no CAF): tests read a tree laid out like /proc.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tender {

/// One thread at one moment.
struct task_sample {
  int pid = 0;
  int tid = 0;
  std::string comm;         ///< the thread's name (`comm`, at most 15 characters)
  std::int64_t run_ns = 0;  ///< on a CPU since it started
  std::int64_t wait_ns = 0; ///< runnable, waiting for a CPU, since it started
};

/// Every thread of `pid` under `proc` ("/proc", or a test's tree). A thread that ends
/// between the listing and the reading is left out; a process that is gone gives none.
std::vector<task_sample> read_tasks(const std::string& proc, int pid);

/// What one part cost between two samples.
struct cpu_part {
  std::string part;
  double cpu_s = 0;  ///< on a CPU
  double wait_s = 0; ///< runnable, waiting for a CPU
  int threads = 0;
};

/// The threads' CPU between `before` and `after`, summed by `part_of` (in the order the
/// parts are first met in `after`). A thread only in `after` counts from zero; one only
/// in `before` (it ended) is not counted: its last figures are not known.
std::vector<cpu_part> cpu_by_part(const std::vector<task_sample>& before,
                                  const std::vector<task_sample>& after,
                                  const std::function<std::string(const task_sample&)>& part_of);

} // namespace tender
