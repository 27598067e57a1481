#pragma once
/// The admin console: a web page, a JSON API under `/api/` and Prometheus metrics at
/// `/metrics`, served by the node itself (`[console]` in the config).
///
///   browser / curl / Prometheus --HTTP--> [http_server, own Asio thread]   (console_http.hpp)
///                                            | token checked, request parsed
///                                            v
///                                       [console actor, detached] --request + timeout--> [intake]
///                                            |                                 --> [provider]*
///                                            +--> journal reads (usage, SLA history, scaling)
///
/// The HTTP thread never waits on CAF: it hands each request to the console actor with
/// a responder and goes on serving. The actor asks the node with a timeout and answers
/// 504 when the node is too slow, 503 when the actor it needs is gone.
///
/// Routes (all need the token, `/metrics` included: Prometheus sends it with
/// `authorization: {credentials_file: ...}`):
///
///   GET  /                          the console page (embedded, self-contained)
///   GET  /api/jobs                  jobs, newest first (?limit=N, default 500), counts by state
///   GET  /api/jobs/ID               the job's status and its negotiation (tender explain)
///   GET  /api/jobs/ID/usage         CPU and memory samples against the predicted band (?points=N)
///   POST /api/jobs/ID/cancel        cancels the job ({"reason": "..."} optional)
///   GET  /api/providers             providers with their SLA history, risk and drained flag
///   POST /api/providers/NAME/drain  no more offers from NAME; its running jobs go on
///   POST /api/providers/NAME/enable NAME offers again
///   GET  /api/scaling               the latest scaling decisions (?limit=N, default 200)
///   GET  /api/weights               the offer-scoring weights in use
///   POST /api/weights               changes some of them ({"w_risk": 2.5, ...})
///   GET  /metrics                   Prometheus text format

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <functional>
#include <memory>
#include <string>
#include <variant>

namespace tender {

struct node_context;

struct console_handle {
  caf::actor actor;
  std::string address;        ///< the bound "HOST:PORT"
  std::function<void()> stop; ///< stops the HTTP server and joins its thread
};

/// Starts the console on `ctx->cfg.console` (which must be enabled). Errors: one line
/// naming the address and cause.
std::variant<console_handle, std::string>
start_console(caf::actor_system& sys, std::shared_ptr<node_context> ctx, caf::actor intake);

/// The console page: one HTML document with its script and styles, no external URLs.
const std::string& console_page();

} // namespace tender
