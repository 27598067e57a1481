/// libFuzzer target for the wire decoder (`tender::decode`), the first code that
/// touches every frame a peer sends. For each input it checks:
///
///  - decoding never crashes, hangs or throws (the sanitizers and libFuzzer's
///    -timeout / -rss_limit_mb / -malloc_limit_mb catch the rest);
///  - a refusal carries a known error code and a message a person can act on;
///  - an accepted frame is stable: encode -> decode -> encode gives the same
///    bytes, and the type and envelope fields survive;
///  - the decoded body can be shown as JSON (`tender status --json` and friends
///    print what came over the wire), and that JSON serializes;
///  - decode's fast path and its general path (`decode_general`) agree: the same
///    refusal, or messages that encode to the same bytes;
///  - encode's fast path writes what msgpack-c's packer (`encode_general`) writes;
///  - a batch frame (protocol/batch.hpp) is refused as "malformed" naming the batch or
///    its element, or splits into envelopes that lie inside it, each of which then
///    passes every check above.
///
/// Any violation aborts, so libFuzzer saves the input as a crash. Build and run:
/// protocol/fuzz/build-and-run.sh (see README.md, "Fuzzing").

#include "protocol/batch.hpp"
#include "protocol/envelope.hpp"
#include "protocol/json.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <variant>

namespace {

[[noreturn]] void violated(const char* what, const std::string& detail) {
  std::fprintf(stderr, "decode_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

void check_refusal(const tender::decoded& d) {
  static const std::set<std::string> codes{"oversized",  "truncated", "invalid",
                                           "wrong_type", "version",   "unknown_type"};
  if (!codes.contains(d.failure.code))
    violated("unknown error code", "'" + d.failure.code + "': " + d.failure.message);
  if (d.failure.message.empty())
    violated("error without a message", d.failure.code);
}

/// Renders the body as JSON where protocol/json.hpp has a view of it.
void render_json(const tender::body& b) {
  std::visit(
      [](const auto& m) {
        if constexpr (requires { tender::to_json_value(m); }) {
          std::string text;
          try {
            text = tender::to_json_value(m).dump(2);
          } catch (const std::exception& e) {
            violated("JSON view of a decoded body throws", e.what());
          }
          if (text.empty())
            violated("empty JSON view", tender::type_name(tender::body(m)));
        }
      },
      b);
}

int check_frame(std::string_view bytes);

/// A batch: refused with a reason, or envelopes inside it, each checked as a frame.
void check_batch(std::string_view bytes) {
  auto s = tender::split_batch(bytes);
  if (s.failure) {
    if (s.failure->code != "malformed" || s.failure->message.empty() ||
        s.failure->field.rfind("batch", 0) != 0 || !s.envelopes.empty())
      violated("a refused batch without its reason", s.failure->message);
    return;
  }
  if (s.envelopes.empty() || s.envelopes.size() > tender::max_batch_envelopes)
    violated("a batch accepted with no or too many envelopes", std::to_string(s.envelopes.size()));
  const char* at = bytes.data();
  for (auto e : s.envelopes) {
    if (e.data() < at || e.data() + e.size() > bytes.data() + bytes.size())
      violated("a batch's envelope outside the frame or out of order", "");
    at = e.data() + e.size();
    check_frame(e);
  }
  if (at != bytes.data() + bytes.size())
    violated("bytes after a batch's last envelope accepted", "");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (tender::is_batch(bytes))
    check_batch(bytes);
  return check_frame(bytes);
}

namespace {

int check_frame(std::string_view bytes) {
  tender::decoded d = tender::decode(bytes);
  tender::decoded general = tender::decode_general(bytes);
  if (static_cast<bool>(d) != static_cast<bool>(general))
    violated("the fast and the general path disagree",
             d ? "only the fast path accepts it: " + general.failure.message
               : "only the general path accepts it: " + d.failure.message);
  if (!d) {
    if (d.failure.code != general.failure.code || d.failure.message != general.failure.message ||
        d.failure.field != general.failure.field || d.id != general.id || d.type != general.type)
      violated("the two paths refuse differently",
               d.failure.message + " / " + general.failure.message);
    check_refusal(d);
    return 0;
  }
  if (tender::encode(*d.message) != tender::encode(*general.message) || d.id != general.id ||
      d.type != general.type)
    violated("the fast and the general path decode to different messages", d.type);
  const tender::envelope& first = *d.message;
  if (d.type != tender::type_name(first.body))
    violated("type mismatch", d.type + " decoded as " + tender::type_name(first.body));

  std::string encoded = tender::encode(first);
  if (encoded != tender::encode_general(first))
    violated("encode's fast path and msgpack-c's packer wrote different bytes", d.type);
  // Re-encoding writes every field, so it may be longer than the frame that came in.
  tender::decoded again = tender::decode(encoded, std::numeric_limits<std::size_t>::max());
  if (!again)
    violated("re-encoded message does not decode",
             again.failure.code + ": " + again.failure.message);
  const tender::envelope& second = *again.message;
  if (second.body.index() != first.body.index() || second.id != first.id ||
      second.correlation_id != first.correlation_id || second.sender != first.sender ||
      second.sent_at != first.sent_at || second.v != first.v)
    violated("envelope fields changed in the round trip", d.type);
  if (tender::encode(second) != encoded)
    violated("encode -> decode -> encode is not stable", d.type);

  render_json(first.body);
  return 0;
}

} // namespace
