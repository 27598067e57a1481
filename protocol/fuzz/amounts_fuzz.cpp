/// libFuzzer target for the text parsers of protocol/amounts.hpp, which read
/// what people write in job files and configurations (`max_cost = 0.50`,
/// `deadline = "30m"` or an RFC 3339 instant, `memory = "1GiB"`). For each input
/// it checks that no parser crashes (or overflows: UBSan), and that what parses
/// round-trips through its formatter:
///
///  - parse_usd(format_usd(x)) == x;
///  - parse_duration(format_duration(d)) == d (parsed durations are never negative);
///  - parse_time(format_time(t)) == t floored to the millisecond, for years 0000-9999;
///  - format_bytes never throws (it rounds, so there is no exact round trip).
///
/// Any violation aborts. Build and run: protocol/fuzz/build-and-run.sh.

#include "protocol/amounts.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

[[noreturn]] void violated(const char* what, const std::string& input, const std::string& got) {
  std::fprintf(stderr, "amounts_fuzz: %s: input '%s', got '%s'\n", what, input.c_str(),
               got.c_str());
  std::abort();
}

/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z in microseconds.
constexpr tender::usec first_instant = -62'167'219'200'000'000;
constexpr tender::usec end_instant = 253'402'300'800'000'000;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  tender::micros money = 0;
  if (tender::parse_usd(text, money)) {
    std::string shown = tender::format_usd(money);
    tender::micros back = 0;
    if (!tender::parse_usd(shown, back) || back != money)
      violated("usd round trip", text, shown);
  }

  tender::usec duration = 0;
  if (tender::parse_duration(text, duration)) {
    if (duration < 0)
      violated("negative duration", text, std::to_string(duration));
    std::string shown = tender::format_duration(duration);
    tender::usec back = 0;
    if (!tender::parse_duration(shown, back) || back != duration)
      violated("duration round trip", text, shown);
  }

  tender::usec instant = 0;
  if (tender::parse_time(text, instant) && instant >= first_instant && instant < end_instant) {
    std::string shown = tender::format_time(instant);
    tender::usec floored = instant / 1000 * 1000 - (instant % 1000 < 0 ? 1000 : 0);
    tender::usec back = 0;
    if (!tender::parse_time(shown, back) || back != floored)
      violated("time round trip", text, shown);
  }

  tender::bytes_t amount = 0;
  if (tender::parse_bytes(text, amount)) {
    if (amount < 0)
      violated("negative size", text, std::to_string(amount));
    if (tender::format_bytes(amount).empty())
      violated("empty size", text, "");
  }
  return 0;
}
