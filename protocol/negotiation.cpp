#include "protocol/negotiation.hpp"

#include <charconv>
#include <cstdio>

namespace tender {

namespace {

/// `v` as printf's "%.<decimals>f" prints it (to_chars is defined to print as printf
/// does, several times faster).
void append_fixed(std::string& out, double v, int decimals) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
  if (r.ec == std::errc{}) {
    out.append(buf, r.ptr);
  } else { // beyond 64 characters: not a cost or a probability, but still printed
    char big[512];
    std::snprintf(big, sizeof big, "%.*f", decimals, v);
    out += big;
  }
}

} // namespace

std::string score_account(const score_terms& t) {
  std::string s;
  s.reserve(64);
  s = "E[cost] $";
  append_fixed(s, t.expected_cost / 1e6, 6);
  s += ", P(on time) ";
  append_fixed(s, t.p_deadline, 3);
  s += ", P(breach) ";
  append_fixed(s, t.breach_probability, 3);
  return s;
}

} // namespace tender
