#pragma once
/// Batches: several envelopes to one peer in one ZeroMQ frame.
///
/// Under load a node's outbox holds a dozen frames for the same provider when its I/O
/// thread gets to them, and a provider process reads about thirty messages each time
/// it wakes (measured in `tender bench negotiate --transport tcp`, 128 in flight). One
/// frame each costs a ZeroMQ message, a wake-up of ZeroMQ's I/O thread on both sides
/// and a receive call; one frame for all of them costs one.
///
/// A batch is a MessagePack array of bin, each bin one envelope's bytes exactly as
/// `encode` writes them:
///
///   [bin(envelope 1), bin(envelope 2), ...]
///
/// An envelope is a map, so a frame's first byte tells the two apart. Batches are read
/// from anyone; they are sent only to a peer that lists "batch" in its `wire`
/// capabilities (provider_hello from a provider, welcome from a node).

#include "protocol/control.hpp"

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tender {

/// The `wire` capability naming batches.
inline constexpr const char* wire_batch = "batch";
/// A batch holds at most this many envelopes and is at most this many bytes (far under
/// what a node reads in one frame, `default_max_frame`).
inline constexpr std::size_t max_batch_envelopes = 4096;
inline constexpr std::size_t max_batch_bytes = 1u << 20;

/// Whether `frame` is a batch (it starts with an array header), not one envelope.
bool is_batch(std::string_view frame);

/// A batch frame read: its envelopes as views into the frame, or what is wrong with it
/// (`failure`: code "malformed", field "batch" or "batch[i]").
struct split_batch_result {
  std::vector<std::string_view> envelopes;
  std::optional<error> failure;
};
split_batch_result split_batch(std::string_view frame);

/// What a sender holding `queued` (peer, encoded envelope), in order, sends: to a
/// peer for which `batches(peer)` is true its envelopes as batch frames (a lone
/// envelope stays a plain frame), to any other peer one frame each. Each peer's
/// envelopes keep their order; peers come in the order of their first envelope.
/// `batches` is asked once per peer. `queued`'s strings are moved from.
struct outgoing_frame {
  std::string peer;
  std::string bytes;
  std::size_t envelopes = 1;      ///< how many envelopes the frame carries
  std::size_t envelope_bytes = 0; ///< their bytes (without the batch's own)
};
std::vector<outgoing_frame> frames_for(std::vector<std::pair<std::string, std::string>>& queued,
                                       const std::function<bool(const std::string&)>& batches);

/// Whether a `wire` capability list names batches.
bool reads_batches(const std::vector<std::string>& wire);

} // namespace tender
