#pragma once
/// Exact amounts. Resources and money are integers everywhere on the wire and in
/// the journal: milli-cores, bytes, micro-dollars, microseconds. Doubles appear
/// only for statistics (means, standard deviations, probabilities).

#include <cstdint>
#include <string>

namespace tender {

/// Micro-dollars (1 USD = 1'000'000).
using micros = std::int64_t;
/// Thousandths of a CPU core.
using millicores = std::int64_t;
/// Bytes.
using bytes_t = std::int64_t;
/// Microseconds since the Unix epoch (UTC) for instants; microseconds for durations.
using usec = std::int64_t;

constexpr micros usd = 1'000'000;
constexpr usec sec_us = 1'000'000;
constexpr usec ms_us = 1'000;

/// "0.500000" style decimal dollars, exact (no floating point).
std::string format_usd(micros amount);
/// Parses "0.5", "12", "0.000001" into micro-dollars; false on anything else
/// (more than six decimals, sign errors, garbage).
bool parse_usd(const std::string& text, micros& out);
/// Dollars as a double, for JSON output only.
double to_usd(micros amount);

/// RFC 3339 UTC with millisecond precision: 2026-11-25T12:53:49.123Z.
std::string format_time(usec t);
/// Parses RFC 3339 (Z or numeric offset, optional fraction); false on error.
bool parse_time(const std::string& text, usec& out);
/// Parses "30m", "10s", "1h30m", "250ms", "2d"; false on error or negative.
bool parse_duration(const std::string& text, usec& out);
/// "1h02m03s" style.
std::string format_duration(usec d);
/// Parses "1GiB", "512MiB", "100MB", "1024" (bytes); false on error.
bool parse_bytes(const std::string& text, bytes_t& out);
/// "1.5 GiB" style, for people.
std::string format_bytes(bytes_t b);

} // namespace tender
