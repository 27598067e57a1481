#pragma once
/// Allocations: committed capacity with its access credentials.

#include "protocol/job.hpp"
#include "protocol/resources.hpp"

#include <msgpack.hpp>

#include <string>

namespace tender {

/// What a confirmed commit becomes. `lease_token` is the access credential:
/// unguessable, scoped to this allocation, never logged.
/// History: v1.
struct allocation {
  std::string allocation_id;
  std::string job_id;
  std::string offer_id;
  std::string provider;
  resources granted;
  micros price = 0;
  micros rate_per_hour = 0;
  sla terms;
  std::string lease_token;
  usec lease_expires = 0; ///< launch must happen before this
  usec start_at = 0;      ///< reserved start
  std::string instance_type;
  /// When the provider committed it: its place in the provider's queue, kept across a
  /// restart (0: not known). Added with ordered re-adoption (additive).
  usec committed_at = 0;
  MSGPACK_DEFINE_MAP(allocation_id, job_id, offer_id, provider, granted, price, rate_per_hour, terms,
                     lease_token, lease_expires, start_at, instance_type, committed_at)
};

/// Ends an allocation or a hold (by allocation id or offer id).
/// History: v1.
struct release {
  std::string allocation_id;
  std::string offer_id;
  std::string job_id;
  std::string reason;
  MSGPACK_DEFINE_MAP(allocation_id, offer_id, job_id, reason)
};

/// Node -> provider: start the job on its allocation. The provider checks the
/// lease token and refuses a wrong or expired one.
/// History: v1.
struct launch {
  std::string job_id;
  std::string allocation_id;
  std::string lease_token;
  job_spec spec;
  MSGPACK_DEFINE_MAP(job_id, allocation_id, lease_token, spec)
};

} // namespace tender
