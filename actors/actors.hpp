#pragma once
/// Spawn functions of the node's actors. Each actor is thin: it owns its mailbox
/// state, phase and timers and forwards the thinking to plain classes.

#include "actors/context.hpp"
#include "actors/messages.hpp"
#include "providers/provider.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <functional>
#include <memory>
#include <variant>

namespace tender {

using context_ptr = std::shared_ptr<node_context>;

/// Front desk: accepts submissions, answers queries, keeps the provider directory.
caf::actor spawn_intake(caf::actor_system& sys, context_ptr ctx, caf::actor profiler);

/// One per job: the job's state machine. `resume` continues a journaled job.
caf::actor spawn_job(caf::actor_system& sys, context_ptr ctx, job_record rec, caf::actor intake,
                     caf::actor profiler, bool resume);

/// One per auction round: collecting -> evaluating -> committing.
struct round_args {
  std::shared_ptr<class auction_book> book;
  provider_directory providers;
  std::int32_t round = 1;
  micros previous_best = 0;
  caf::actor job;
};
caf::actor spawn_round(caf::actor_system& sys, context_ptr ctx, round_args args);

/// Runs the representative workload in a sandbox and builds the resource profile.
caf::actor spawn_profiler(caf::actor_system& sys, context_ptr ctx);

/// Drives a provider plain class inside the node.
caf::actor spawn_provider(caf::actor_system& sys, context_ptr ctx, std::unique_ptr<provider> p);

/// Queues an encoded frame for a ZeroMQ peer of the gateway; callable from any thread.
/// False when it was dropped (the I/O thread stopped, or 100,000 frames are queued).
using wire_post = std::function<bool(const std::string& peer, std::string bytes)>;

/// Stands in for a provider that lives in another process, over the gateway: it
/// encodes what it sends itself and hands the bytes to `post`.
caf::actor spawn_remote_provider(caf::actor_system& sys, context_ptr ctx, wire_post post,
                                 std::string peer, provider_hello hello);

/// Bridges ZeroMQ and CAF. `bind` is the ROUTER endpoint; the bound one is
/// written to `bound`. Returns an error line when binding fails.
struct gateway_handle {
  caf::actor actor;
  std::string endpoint;
  std::function<void()> stop_io; ///< stops the I/O thread (no more frames in or out)
  std::shared_ptr<void> keep;     ///< keeps the sockets' context alive
  void* zmq_ctx = nullptr;        ///< the bridge's zmq::context_t
  /// Frames that crossed the ROUTER so far (payload frames, both directions) and their
  /// payload bytes: what `tender bench negotiate --transport tcp` counts.
  /// Envelopes in and out and their bytes; ZeroMQ frames in and out (a batch frame
  /// carries several envelopes).
  struct wire_counts {
    std::int64_t in = 0, out = 0, in_bytes = 0, out_bytes = 0;
    std::int64_t in_frames = 0, out_frames = 0;
  };
  std::function<wire_counts()> counts;
};
std::variant<gateway_handle, std::string> start_gateway(caf::actor_system& sys, context_ptr ctx,
                                                        caf::actor intake,
                                                        const std::string& bind);

} // namespace tender
