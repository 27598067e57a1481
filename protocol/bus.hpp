#pragma once
/// Message-bus messages: producers stream job submissions to the node's bus ROUTER
/// from a DEALER, and subscribers read job events from its PUB endpoint.
///
///   producer (DEALER) --bus_submit{producer, seq, spec}--> node (ROUTER)
///   producer (DEALER) <--bus_ack{producer, seq, job_id}--- node, after the journal commit
///
/// Delivery: at-least-once from the producer (it resends what is not acknowledged),
/// exactly-once into the journal — (producer, seq) is the job's deduplication key, so
/// a resubmission is acknowledged with the job it already made (`duplicate = true`).

#include "protocol/control.hpp"
#include "protocol/job.hpp"

#include <cstdint>
#include <string>

namespace tender {

/// Producer -> node (bus): one job. `seq` is unique within `producer`'s stream.
/// History: v1.
struct bus_submit {
  std::string producer;
  std::uint64_t seq = 0;
  job_spec spec;
  MSGPACK_DEFINE_MAP(producer, seq, spec)
};

/// Node -> producer (bus): the submission is in the journal as `job_id` (or was
/// refused: `error.code` is set and `job_id` is empty). Sent only after the commit.
/// History: v1.
struct bus_ack {
  std::string producer;
  std::uint64_t seq = 0;
  std::string job_id;
  bool duplicate = false; ///< (producer, seq) was already in the journal
  tender::error error;    ///< code empty = accepted
  MSGPACK_DEFINE_MAP(producer, seq, job_id, duplicate, error)
};

/// Node -> subscribers (PUB): something committed to the journal about a job.
/// Topic frame: "job.<to-state>" for a transition, "job.allocation", "job.scaling".
/// Never carries a lease token.
/// History: v1.
struct job_event {
  std::string kind; ///< "transition", "allocation", "scaling"
  std::string job_id;
  job_state from = job_state::submitted;
  job_state to = job_state::submitted;
  std::string reason;        ///< transition reason, or the scaling decision's
  std::string provider;      ///< allocation / scaling: the provider
  std::string allocation_id; ///< allocation / scaling
  micros price = 0;          ///< allocation: agreed price; scaling: price delta
  std::string action;        ///< scaling: action ("grow_memory", ...)
  std::string outcome;       ///< scaling: outcome
  usec at = 0;
  MSGPACK_DEFINE_MAP(kind, job_id, from, to, reason, provider, allocation_id, price, action,
                     outcome, at)
};

} // namespace tender
