#pragma once
/// A synchronous client of a tender node: one ZeroMQ DEALER, one request at a
/// time, answered by correlation id. Used by the CLI, the demo and the tests.

#include "protocol/curve.hpp"
#include "protocol/envelope.hpp"

#include <memory>
#include <string>
#include <variant>

namespace zmq {
class context_t;
}

namespace tender {

/// CurveZMQ for a client (protocol/curve.hpp): its own key pair and the node's public
/// key. No pair = plaintext (which a node accepts only on loopback, with --dev or
/// --insecure).
struct client_keys {
  std::optional<curve::key_pair> mine;
  std::string server_public; ///< Z85
};

/// The keys of `--key FILE` (this client's secret key file) and `--server-key KEY` (the
/// node's public key: Z85 or a .pub file). Both empty: plaintext. Errors name the file
/// or say which option is missing.
std::variant<client_keys, std::string> load_client_keys(const std::string& key_file,
                                                        const std::string& server_key);

class client {
public:
  /// Connects lazily; `name` is the envelope's sender.
  client(std::string endpoint, std::string name = "cli");
  /// Uses `shared` (a node's context), which `inproc://` endpoints require.
  client(std::string endpoint, std::string name, zmq::context_t& shared);
  /// A CURVE client when `keys.mine` is set. A node that refuses the handshake (unknown
  /// key, plaintext against CURVE, wrong server key) makes call() fail at once with why.
  client(std::string endpoint, std::string name, const client_keys& keys);
  ~client();

  /// Sends `request` and waits up to `timeout` for its answer. The error string
  /// names the endpoint and what went wrong (no answer, undecodable answer).
  std::variant<envelope, std::string> call(body request, usec timeout = 10 * sec_us);

  /// Sends raw bytes (tests: garbage) and waits for any answer.
  std::variant<envelope, std::string> call_raw(const std::string& bytes, usec timeout);

  const std::string& endpoint() const { return endpoint_; }

private:
  client(std::string endpoint, std::string name, zmq::context_t* shared, const client_keys* keys);
  struct impl;
  std::unique_ptr<impl> impl_;
  std::string endpoint_;
  std::string name_;
};

/// Current wall-clock time in microseconds since the epoch.
usec wall_now();

} // namespace tender
