#pragma once
/// Concrete resources: what a job asks for and what an offer gives.

#include <msgpack.hpp>

#include "protocol/amounts.hpp"

#include <string>
#include <vector>

namespace tender {

/// A bundle of resources. `gpu_type` is empty when no GPU is wanted/offered.
/// History: v1.
struct resources {
  millicores cpu = 0;
  bytes_t memory = 0;
  std::int32_t gpus = 0;
  std::string gpu_type;
  bytes_t gpu_memory = 0; ///< per GPU
  MSGPACK_DEFINE_MAP(cpu, memory, gpus, gpu_type, gpu_memory)
  friend bool operator==(const resources&, const resources&) = default;
};

/// True when `have` covers `want` (GPU type must match when `want` names one).
bool covers(const resources& have, const resources& want);

/// Service-level terms of an offer or allocation.
/// History: v1.
struct sla {
  double availability = 0.0;           ///< probability the resources are up for the run
  double preemption_probability = 0.0; ///< probability of preemption per hour
  usec latency = 0;                    ///< promised answer latency of the provider
  MSGPACK_DEFINE_MAP(availability, preemption_probability, latency)
  friend bool operator==(const sla&, const sla&) = default;
};

} // namespace tender
