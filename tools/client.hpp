#pragma once
/// A synchronous client of a tender node: one ZeroMQ DEALER, one request at a
/// time, answered by correlation id. Used by the CLI, the demo and the tests.

#include "protocol/envelope.hpp"

#include <memory>
#include <string>
#include <variant>

namespace zmq {
class context_t;
}

namespace tender {

class client {
public:
  /// Connects lazily; `name` is the envelope's sender.
  client(std::string endpoint, std::string name = "cli");
  /// Uses `shared` (a node's context), which `inproc://` endpoints require.
  client(std::string endpoint, std::string name, zmq::context_t& shared);
  ~client();

  /// Sends `request` and waits up to `timeout` for its answer. The error string
  /// names the endpoint and what went wrong (no answer, undecodable answer).
  std::variant<envelope, std::string> call(body request, usec timeout = 10 * sec_us);

  /// Sends raw bytes (tests: garbage) and waits for any answer.
  std::variant<envelope, std::string> call_raw(const std::string& bytes, usec timeout);

  const std::string& endpoint() const { return endpoint_; }

private:
  client(std::string endpoint, std::string name, zmq::context_t* shared);
  struct impl;
  std::unique_ptr<impl> impl_;
  std::string endpoint_;
  std::string name_;
};

/// Current wall-clock time in microseconds since the epoch.
usec wall_now();

} // namespace tender
