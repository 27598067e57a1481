#pragma once
/// A tender node: the actor system, the ZeroMQ gateway, intake, profiler, job,
/// auction and provider actors, and the journal. CAF stays behind this header.
///
///            ZeroMQ ROUTER (tcp/inproc)                      +-----------+
///  CLI / peers / remote providers <--> [gateway] --> [intake] --> [job]* --> [profiler]
///                                          |            |          |
///                                          |            |          +--> [round]* --> [provider]*
///                                          +--> [remote provider proxy]*  (award / confirm /
///                                                                            launch / usage)

#include "config/node_config.hpp"
#include "providers/factory.hpp"

#include <functional>
#include <memory>
#include <string>
#include <variant>

namespace zmq {
class context_t;
}

namespace tender {

struct node_options {
  std::string listen;   ///< overrides the config's endpoint ("tcp://127.0.0.1:*" picks a free port)
  std::string data_dir; ///< overrides the config's; empty and none configured = a temporary dir
  bool quiet = false;   ///< no log lines on stderr
  std::string log_level = "info";
  /// Security (protocol/curve.hpp): `key` overrides `[security] key`; `dev` or
  /// `insecure` allow plaintext on a loopback endpoint when there is no key.
  std::string key;
  bool dev = false;
  bool insecure = false;
  /// Virtual time (a replay through the agent): the node's clock, and the executors its
  /// local and market providers run jobs with (providers/virtual_executor.hpp). Empty:
  /// the wall clock and real processes. Timeouts still count wall time.
  std::function<usec()> clock;
  executor_maker make_executor;
};

class node {
public:
  /// Opens the journal, starts every actor, binds the gateway and resumes the
  /// journal's unfinished jobs. Errors: one line naming what failed.
  static std::variant<std::unique_ptr<node>, std::string> start(node_config cfg, node_options opt);
  ~node();

  /// The bound endpoint ("tcp://127.0.0.1:45123").
  std::string endpoint() const;
  std::string data_dir() const;
  /// The console's bound "HOST:PORT" ("" when `[console]` is not configured).
  std::string console_address() const;
  /// The gateway's ZeroMQ context: in-process clients of an `inproc://` endpoint use it.
  zmq::context_t& zmq_context() const;
  /// Stops the gateway and the actors. Running jobs keep running under their shims
  /// and are re-adopted at the next start on the same data dir.
  void stop();

  struct impl;

private:
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace tender
