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

/// One scaling decision of a running job, as the journal keeps it and `tender explain`
/// shows it: what the deviation detector saw (`need`, `reason`), what was tried
/// (`action`), and how it ended (`outcome`, by whom, with which amounts).
///
///   need    "grow_memory", "grow_cpu", "shrink", "overrun_runtime"
///   action  "in_place" (the current provider resizes the running job), "move" (a new
///           allocation elsewhere, the job restarted on it), "extend" (the predicted
///           end moved; no provider involved), "none" (nothing could be tried)
///   outcome "granted", "refused", "moved", "move_failed", "noted"
///
/// History: v1 (added with the scaling issue; not yet carried by any message).
struct scaling_decision {
  std::string job_id;
  usec at = 0;
  std::string need;
  std::string action;
  std::string outcome;
  std::string by;            ///< provider that granted or refused, or "tender"
  std::string allocation_id; ///< the allocation the decision applied to (after a move: the new one)
  resources held;            ///< before
  resources wanted;          ///< asked for
  resources granted;         ///< after (== held when refused)
  micros price_delta = 0;    ///< what the change costs over the predicted remaining run time
  bool disruptive = false;   ///< a restart: counts against the one-per-job-hour budget
  std::string reason;        ///< the detector's account: what was seen and why this amount
  std::string detail;        ///< the provider's (or the move's) answer
  MSGPACK_DEFINE_MAP(job_id, at, need, action, outcome, by, allocation_id, held, wanted, granted,
                     price_delta, disruptive, reason, detail)
  friend bool operator==(const scaling_decision&, const scaling_decision&) = default;
};

} // namespace tender
