#pragma once
/// The resource profile: what the profiler and predictor believe a job needs.

#include "protocol/resources.hpp"

#include <msgpack.hpp>

#include <string>
#include <vector>

namespace tender {

/// One piece of evidence from static or dynamic analysis.
/// History: v1.
struct finding {
  std::string kind;     ///< "gpu", "network", "cores", "interpreter", "error", ...
  std::string detail;   ///< what it means, e.g. "CUDA runtime 12"
  std::string evidence; ///< where it was seen: file, symbol or line
  MSGPACK_DEFINE_MAP(kind, detail, evidence)
};

/// `[cpu_mean, cpu_stddev, mem_mean, mem_stddev, gpu_type, net_bandwidth, software_stack]`
/// plus runtime; the `_lo`/`_hi` fields bound the 90 % interval.
/// History: v1.
struct resource_profile {
  std::string job_id;
  double cpu_mean = 0.0; ///< cores
  double cpu_stddev = 0.0;
  double cpu_lo = 0.0;
  double cpu_hi = 0.0;
  bytes_t mem_mean = 0;
  bytes_t mem_stddev = 0;
  bytes_t mem_peak = 0;
  bytes_t mem_lo = 0;
  bytes_t mem_hi = 0;
  std::string gpu_type;
  std::int32_t gpus = 0;
  std::int64_t net_bandwidth_bps = 0;
  bytes_t io_read = 0;
  bytes_t io_write = 0;
  bytes_t net_bytes = 0;
  std::vector<std::string> software_stack;
  usec runtime = 0;
  usec runtime_lo = 0;
  usec runtime_hi = 0;
  double confidence = 0.9;
  std::string source;        ///< "sandbox+hints", "hints", "baseline", ...
  std::string model_version; ///< predictor that produced runtime
  bool partial = false;      ///< the measurement was cut short
  usec profile_time = 0;     ///< time the profile stage took
  std::vector<finding> findings;
  MSGPACK_DEFINE_MAP(job_id, cpu_mean, cpu_stddev, cpu_lo, cpu_hi, mem_mean, mem_stddev, mem_peak,
                     mem_lo, mem_hi, gpu_type, gpus, net_bandwidth_bps, io_read, io_write, net_bytes,
                     software_stack, runtime, runtime_lo, runtime_hi, confidence, source,
                     model_version, partial, profile_time, findings)
};

} // namespace tender
