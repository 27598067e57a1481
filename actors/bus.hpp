#pragma once
/// The message bus: producers stream `bus_submit` from DEALERs to the node's bus
/// ROUTER (`[bus] listen`), and job events go out on its PUB (`[bus] publish`).
///
///   producers (DEALER) ==> ROUTER --[bus I/O thread]--> journal (one transaction per batch)
///                                        +--> intake: accepted_jobs (queued, admission control)
///                                        |   <== bus_ack (after the commit)
///   journal observer --> inproc PUSH --> [bus I/O thread] --> PUB ("job.<state>", ...)
///
/// The I/O thread owns every bus socket (no CAF worker touches ZeroMQ). It reads up
/// to `[bus] batch` submissions without blocking, decodes and validates each (a bad
/// one gets an error ack naming the field), writes the good ones in one journal
/// transaction (`journal::insert_jobs`, deduplicated by (producer, seq)), then hands
/// the new jobs to the intake in one message and sends the acks.
///
/// Backpressure: the ROUTER has ZMQ_ROUTER_MANDATORY set, so an ack to a peer whose
/// pipe is full is kept (EAGAIN) rather than dropped, and the thread stops reading
/// new submissions until the backlog is sent. Reading at most one batch per commit
/// lets the high-water marks fill, so producers block instead of losing messages.

#include "actors/context.hpp"
#include "protocol/envelope.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tender {

/// Bus -> intake: jobs the bus has committed to the journal (state `submitted`).
struct accepted_jobs {
  std::vector<job_status> jobs;
};

/// Server-side checks of a submitted spec; the error names `type` and the field
/// ("spec.command"). Shared by job_submit (intake) and bus_submit (bus).
std::optional<error> validate_spec(const job_spec& s, const std::string& type);

/// The running bus. `stop` joins the I/O thread and detaches the journal observer.
struct bus_handle {
  std::string endpoint;         ///< bound ROUTER endpoint
  std::string publish_endpoint; ///< bound PUB endpoint ("" = none)
  std::function<void()> stop;
  std::shared_ptr<void> keep;
};

/// Binds `[bus] listen` (and `publish`) and starts the I/O thread. Errors name the
/// endpoint and the cause.
std::variant<bus_handle, std::string>
start_bus(caf::actor_system& sys, std::shared_ptr<node_context> ctx, caf::actor intake);

} // namespace tender

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::accepted_jobs)
