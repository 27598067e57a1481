#pragma once
/// The wire envelope and codec. Every frame that crosses a process boundary is
/// one MessagePack map:
///
///   {v, type, id, correlation_id, sender, sent_at, body}
///
/// `body` is the message's own map (a `MSGPACK_DEFINE_MAP` struct). In-process
/// actors exchange the body structs directly; only the gateway and clients encode.
///
/// Versioning: `v` is the envelope version (1). Bodies grow additively: a missing
/// key keeps its default, an unknown key is ignored, a key is never reused with a
/// new meaning. Each struct's "History:" line records what was added when.

#include "protocol/allocation.hpp"
#include "protocol/bus.hpp"
#include "protocol/control.hpp"
#include "protocol/job.hpp"
#include "protocol/negotiation.hpp"
#include "protocol/profile.hpp"
#include "protocol/scaling.hpp"
#include "protocol/usage.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace tender {

constexpr std::uint32_t wire_version = 1;
/// Frames above this size are refused before decoding.
constexpr std::size_t default_max_frame = 4u << 20;

/// Every message body that can cross the wire. Append only.
using body = std::variant<job_submit, job_status, job_query, jobs_query, job_list, job_cancel,
                          resource_profile, resource_request, offer, decline, award,
                          commit_confirm, commit_refuse, allocation, release, launch,
                          usage_report, scale_request, scale_offer, provider_hello, welcome,
                          providers_query, provider_list, error, model_query,
                          model_status, explain_query, explanation, bus_submit, bus_ack,
                          job_event>;

/// The wire name of the body's type ("job_submit", ...).
const char* type_name(const body& b);

/// X(T) for every body type, in the variant's order.
// clang-format off
#define TENDER_FOR_EACH_MESSAGE(X)                                                                 \
  X(job_submit) X(job_status) X(job_query) X(jobs_query) X(job_list) X(job_cancel)                \
  X(resource_profile) X(resource_request) X(offer) X(decline) X(award) X(commit_confirm)           \
  X(commit_refuse) X(allocation) X(release) X(launch) X(usage_report) X(scale_request)             \
  X(scale_offer) X(provider_hello) X(welcome) X(providers_query) X(provider_list) X(error)         \
  X(model_query) X(model_status) X(explain_query) X(explanation) X(bus_submit) X(bus_ack)          \
  X(job_event)
// clang-format on

/// Maps a body type to its wire name at compile time.
template <class T> struct message_name;
#define TENDER_MESSAGE_NAME(T)                                                                     \
  template <> struct message_name<T> {                                                             \
    static constexpr const char* value = #T;                                                       \
  };
TENDER_MESSAGE_NAME(job_submit)
TENDER_MESSAGE_NAME(job_status)
TENDER_MESSAGE_NAME(job_query)
TENDER_MESSAGE_NAME(jobs_query)
TENDER_MESSAGE_NAME(job_list)
TENDER_MESSAGE_NAME(job_cancel)
TENDER_MESSAGE_NAME(resource_profile)
TENDER_MESSAGE_NAME(resource_request)
TENDER_MESSAGE_NAME(offer)
TENDER_MESSAGE_NAME(decline)
TENDER_MESSAGE_NAME(award)
TENDER_MESSAGE_NAME(commit_confirm)
TENDER_MESSAGE_NAME(commit_refuse)
TENDER_MESSAGE_NAME(allocation)
TENDER_MESSAGE_NAME(release)
TENDER_MESSAGE_NAME(launch)
TENDER_MESSAGE_NAME(usage_report)
TENDER_MESSAGE_NAME(scale_request)
TENDER_MESSAGE_NAME(scale_offer)
TENDER_MESSAGE_NAME(provider_hello)
TENDER_MESSAGE_NAME(welcome)
TENDER_MESSAGE_NAME(providers_query)
TENDER_MESSAGE_NAME(provider_list)
TENDER_MESSAGE_NAME(error)
TENDER_MESSAGE_NAME(model_query)
TENDER_MESSAGE_NAME(model_status)
TENDER_MESSAGE_NAME(explain_query)
TENDER_MESSAGE_NAME(explanation)
TENDER_MESSAGE_NAME(bus_submit)
TENDER_MESSAGE_NAME(bus_ack)
TENDER_MESSAGE_NAME(job_event)
#undef TENDER_MESSAGE_NAME

/// A whole message: envelope fields plus the typed body.
struct envelope {
  std::uint32_t v = wire_version;
  std::string id;             ///< unique per message
  std::string correlation_id; ///< id of the message this answers (or empty)
  std::string sender;         ///< node, provider or client name
  usec sent_at = 0;
  tender::body body;
};

/// Encodes to MessagePack bytes. Never throws for a well-formed envelope.
/// The fast path writes the bytes itself (protocol/envelope.cpp, "The fast encoder");
/// what it cannot write exactly as msgpack-c does takes msgpack-c's packer.
std::string encode(const envelope& e);
/// encode(make_envelope(b, sender, sent_at, id, correlation_id)) without copying `b`
/// into an envelope first (the same bytes): for a sender that keeps the body, such as
/// a provider's proxy passing on a call for offers shared by every provider.
template <class T>
std::string encode_message(const T& b, const std::string& sender, usec sent_at,
                           const std::string& id, const std::string& correlation_id = {});
/// msgpack-c's packer alone: the same bytes as encode() (tests and the fuzz target
/// compare).
std::string encode_general(const envelope& e);
/// Whether encode() writes `e` without msgpack-c.
bool fast_path_writes(const envelope& e);

/// The outcome of decoding: either a message or the `error` body describing what
/// was wrong (code, type, field). Decoding never throws.
struct decoded {
  std::optional<envelope> message;
  tender::error failure; ///< meaningful when !message
  /// Best-effort envelope fields read before the failure (for the error reply).
  std::string id;
  std::string type;
  explicit operator bool() const { return message.has_value(); }
};

decoded decode(std::string_view bytes, std::size_t max_frame = default_max_frame);

/// `decode` without its fast path (a message as tender writes it, read in one pass
/// straight into its structs): the general path alone, which every frame the fast path
/// declines goes to. For the tests and the fuzz target that hold the two to one result.
decoded decode_general(std::string_view bytes, std::size_t max_frame = default_max_frame);

/// Whether decode's fast path reads `bytes` itself (for tests: tender's own frames
/// should not fall to the general path).
bool fast_path_reads(std::string_view bytes);

/// Convenience: builds an envelope around a body.
envelope make_envelope(tender::body b, std::string sender, usec sent_at, std::string id,
                       std::string correlation_id = {});

} // namespace tender
