#pragma once
/// A producer of the node's message bus (protocol/bus.hpp): one ZeroMQ DEALER that
/// streams `bus_submit` messages with consecutive sequence numbers and keeps a
/// window of unacknowledged submissions. What is not acknowledged within
/// `resend_after` (the node restarted, the connection dropped) is sent again, so
/// delivery is at-least-once; the node deduplicates by (producer, seq), so every
/// submission is one job in its journal. Single-threaded: one producer per thread.

#include "protocol/curve.hpp"
#include "protocol/envelope.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace zmq {
class context_t;
}

namespace tender {

struct producer_options {
  std::string endpoint;    ///< the node's `[bus] listen`
  std::string producer_id; ///< unique per stream of sequence numbers
  std::uint64_t first_seq = 1;
  std::size_t window = 1000;      ///< unacknowledged submissions at most
  usec resend_after = 3 * sec_us; ///< resend a submission unacknowledged this long
  /// When the node has answered nothing for this long, resend what has waited this
  /// long (doubling while it stays silent, up to `resend_after`).
  usec stall_after = 1 * sec_us;
  int hwm = 20000; ///< DEALER high-water marks
  /// CurveZMQ: this producer's key pair and the node's public key (Z85). Without a
  /// pair the producer speaks plaintext, which a node accepts only on loopback with
  /// --dev or --insecure.
  std::optional<curve::key_pair> key;
  std::string server_public;
};

/// The outcome of one submission, given to the ack callback.
struct producer_result {
  std::uint64_t seq = 0;
  std::string job_id;     ///< empty when refused
  bool duplicate = false; ///< the node already had it (a resend)
  tender::error error;    ///< code set when refused (a bad spec: not resent)
  usec latency = 0;       ///< first send to ack
  int sends = 0;          ///< how many times it was sent
};

/// Thrown by submit/poll/flush when the node refused this producer's handshake (its
/// key is not allowed, plaintext to a CurveZMQ node, a wrong server key): resending
/// cannot help. what() says why.
struct producer_refused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class producer {
public:
  /// `shared` may be null: the producer then has its own ZeroMQ context. Throws
  /// std::invalid_argument for a window of 0.
  producer(producer_options opt, zmq::context_t* shared = nullptr);
  ~producer();
  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;

  /// Called for each acknowledged (or refused) submission, from the calling thread.
  void on_result(std::function<void(const producer_result&)> f);

  /// Sends one job; first waits (handling acks, resending) while the window is full.
  /// Returns its sequence number.
  std::uint64_t submit(const job_spec& spec);
  /// Handles acks for up to `wait`, and resends what is overdue.
  void poll(std::chrono::milliseconds wait);
  /// Polls until nothing is unacknowledged or `timeout` passes; true when all acked.
  bool flush(std::chrono::milliseconds timeout);

  std::size_t unacknowledged() const;
  std::uint64_t resent() const; ///< submissions sent more than once
  /// Acks saying "already in the journal" (resends the node had already accepted),
  /// also those arriving after the submission was acknowledged.
  std::uint64_t duplicates() const;
  std::uint64_t refused() const; ///< error acks (bad submissions)

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace tender
