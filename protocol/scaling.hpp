#pragma once
/// Scaling messages: renegotiating a running job's resources.

#include "protocol/resources.hpp"

#include <msgpack.hpp>

#include <string>

namespace tender {

/// Node -> provider: change a running job's resources.
/// History: v1.
struct scale_request {
  std::string job_id;
  std::string allocation_id;
  resources wanted;
  std::string reason;
  bool in_place_only = true;
  MSGPACK_DEFINE_MAP(job_id, allocation_id, wanted, reason, in_place_only)
};

/// Provider -> node: what the change would cost, or that it was done.
/// History: v1.
struct scale_offer {
  std::string job_id;
  std::string allocation_id;
  std::string provider;
  bool in_place = true;
  bool applied = false;
  resources granted;
  micros price_delta = 0;
  usec delay = 0;
  std::string reason;
  MSGPACK_DEFINE_MAP(job_id, allocation_id, provider, in_place, applied, granted, price_delta,
                     delay, reason)
};

} // namespace tender
