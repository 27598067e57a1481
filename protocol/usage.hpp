#pragma once
/// Usage reports: what a running job really uses.

#include "protocol/amounts.hpp"

#include <msgpack.hpp>

#include <string>
#include <vector>

namespace tender {

/// One sample of a job's usage.
/// History: v1.
struct usage_sample {
  usec at = 0;
  millicores cpu = 0; ///< cores in use over the last interval
  bytes_t rss = 0;
  bytes_t io_read = 0;  ///< cumulative
  bytes_t io_write = 0; ///< cumulative
  bytes_t net_bytes = 0;
  std::int32_t threads = 0;
  MSGPACK_DEFINE_MAP(at, cpu, rss, io_read, io_write, net_bytes, threads)
  friend bool operator==(const usage_sample&, const usage_sample&) = default;
};

/// Provider -> node: samples of a running job; `final` once the job has ended.
/// History: v1.
struct usage_report {
  std::string job_id;
  std::string allocation_id;
  std::string provider;
  std::vector<usage_sample> samples;
  bool final = false;
  std::int32_t exit_code = -1;
  std::string reason; ///< how it ended, when final
  usec started_at = 0;
  usec finished_at = 0;
  /// When final: the job ran out of GPU memory (its stderr said so) and needs at least
  /// this much per GPU; 0 otherwise. Added with GPU moves (additive).
  bytes_t gpu_memory_needed = 0;
  MSGPACK_DEFINE_MAP(job_id, allocation_id, provider, samples, final, exit_code, reason,
                     started_at, finished_at, gpu_memory_needed)
};

} // namespace tender
