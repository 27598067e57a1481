#include "protocol/amounts.hpp"

#include <array>
#include <cstdio>
#include <limits>

namespace tender {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool mul_add(std::int64_t& acc, std::int64_t mul, std::int64_t add) {
  std::int64_t t = 0;
  if (__builtin_mul_overflow(acc, mul, &t))
    return false;
  return !__builtin_add_overflow(t, add, &acc);
}

/// |v| as unsigned, correct for INT64_MIN.
std::uint64_t magnitude(std::int64_t v) {
  return v < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
}

/// A decimal number "123" or "1.5" read from the front of `s` at `pos`.
/// `whole` holds the integer part, `frac`/`frac_digits` the fraction's digits
/// (at most 18 kept; further digits are dropped, i.e. truncated).
struct decimal {
  std::int64_t whole = 0;
  std::int64_t frac = 0;
  int frac_digits = 0;
  bool had_fraction = false;
};

bool read_decimal(const std::string& s, std::size_t& pos, decimal& out) {
  std::size_t start = pos;
  while (pos < s.size() && is_digit(s[pos])) {
    if (!mul_add(out.whole, 10, s[pos] - '0'))
      return false;
    ++pos;
  }
  bool int_digits = pos > start;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::size_t fstart = pos;
    while (pos < s.size() && is_digit(s[pos])) {
      if (out.frac_digits < 18) {
        out.frac = out.frac * 10 + (s[pos] - '0');
        ++out.frac_digits;
      }
      ++pos;
    }
    if (pos == fstart)
      return false; // "5." has no fraction digits
    out.had_fraction = true;
  }
  return int_digits || out.had_fraction;
}

std::int64_t pow10(int n) {
  std::int64_t r = 1;
  while (n-- > 0)
    r *= 10;
  return r;
}

/// whole * unit + frac * unit / 10^frac_digits, truncated; false on overflow.
bool scale(const decimal& d, std::int64_t unit, std::int64_t& out) {
  std::int64_t v = 0;
  if (__builtin_mul_overflow(d.whole, unit, &v))
    return false;
  if (d.frac_digits > 0) {
    // frac < 10^18 and unit may be large: use 128-bit arithmetic.
    __int128 part = static_cast<__int128>(d.frac) * unit / pow10(d.frac_digits);
    if (__builtin_add_overflow(v, static_cast<std::int64_t>(part), &v))
      return false;
  }
  out = v;
  return true;
}

// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool is_leap(std::int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> days{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/// Reads exactly `n` digits at `pos`.
bool fixed_digits(const std::string& s, std::size_t& pos, int n, int& out) {
  if (pos + static_cast<std::size_t>(n) > s.size())
    return false;
  out = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[pos++];
    if (!is_digit(c))
      return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

bool expect(const std::string& s, std::size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c)
    return false;
  ++pos;
  return true;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

/// Trims trailing zeros of a fraction "500" -> "5".
std::string trim_zeros(std::string s) {
  while (!s.empty() && s.back() == '0')
    s.pop_back();
  return s;
}

} // namespace

std::string format_usd(micros amount) {
  std::uint64_t m = magnitude(amount);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%llu.%06llu", amount < 0 ? "-" : "",
                static_cast<unsigned long long>(m / usd), static_cast<unsigned long long>(m % usd));
  return buf;
}

bool parse_usd(const std::string& text, micros& out) {
  std::size_t pos = 0;
  bool negative = false;
  if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) {
    negative = text[pos] == '-';
    ++pos;
  }
  decimal d;
  std::size_t digits_start = pos;
  if (!read_decimal(text, pos, d) || pos != text.size())
    return false;
  // More than six decimals would lose money silently: refuse instead.
  std::size_t dot = text.find('.', digits_start);
  if (dot != std::string::npos && text.size() - dot - 1 > 6)
    return false;
  std::int64_t v = 0;
  if (!scale(d, usd, v))
    return false;
  out = negative ? -v : v;
  return true;
}

double to_usd(micros amount) {
  return static_cast<double>(amount / usd) + static_cast<double>(amount % usd) / 1e6;
}

std::string format_time(usec t) {
  // Floor to milliseconds so that instants before 1970 print correctly too.
  std::int64_t ms = t / ms_us - (t % ms_us < 0 ? 1 : 0);
  std::int64_t days = ms / 86'400'000 - (ms % 86'400'000 < 0 ? 1 : 0);
  std::int64_t in_day = ms - days * 86'400'000;
  std::int64_t y = 0;
  unsigned m = 0, d = 0;
  civil_from_days(days, y, m, d);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<long long>(y), m, d, static_cast<long long>(in_day / 3'600'000),
                static_cast<long long>(in_day / 60'000 % 60),
                static_cast<long long>(in_day / 1000 % 60), static_cast<long long>(in_day % 1000));
  return buf;
}

bool parse_time(const std::string& s, usec& out) {
  std::size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!fixed_digits(s, pos, 4, year) || !expect(s, pos, '-') || !fixed_digits(s, pos, 2, month) ||
      !expect(s, pos, '-') || !fixed_digits(s, pos, 2, day))
    return false;
  if (pos >= s.size() || (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' '))
    return false;
  ++pos;
  if (!fixed_digits(s, pos, 2, hour) || !expect(s, pos, ':') || !fixed_digits(s, pos, 2, minute) ||
      !expect(s, pos, ':') || !fixed_digits(s, pos, 2, second))
    return false;
  if (month < 1 || month > 12 || day < 1 ||
      static_cast<unsigned>(day) > days_in_month(year, static_cast<unsigned>(month)) || hour > 23 ||
      minute > 59 || second > 60) // 60: a leap second, counted into the next minute
    return false;
  std::int64_t frac_us = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int n = 0;
    while (pos < s.size() && is_digit(s[pos])) {
      if (n < 6) {
        frac_us = frac_us * 10 + (s[pos] - '0');
        ++n;
      }
      ++pos;
    }
    if (n == 0)
      return false;
    frac_us *= pow10(6 - n);
  }
  if (pos >= s.size())
    return false;
  std::int64_t offset_s = 0;
  char z = s[pos++];
  if (z == 'Z' || z == 'z') {
    // UTC
  } else if (z == '+' || z == '-') {
    int oh = 0, om = 0;
    if (!fixed_digits(s, pos, 2, oh) || !expect(s, pos, ':') || !fixed_digits(s, pos, 2, om) ||
        oh > 23 || om > 59)
      return false;
    offset_s = (oh * 3600 + om * 60) * (z == '-' ? -1 : 1);
  } else {
    return false;
  }
  if (pos != s.size())
    return false;
  std::int64_t days =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  std::int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  out = secs * sec_us + frac_us;
  return true;
}

bool parse_duration(const std::string& s, usec& out) {
  if (s.empty())
    return false;
  std::size_t pos = 0;
  // A plain number means seconds.
  bool all_digits = true;
  for (char c : s)
    all_digits = all_digits && is_digit(c);
  if (all_digits) {
    std::int64_t v = 0;
    decimal d;
    if (!read_decimal(s, pos, d) || !scale(d, sec_us, v))
      return false;
    out = v;
    return true;
  }
  std::int64_t total = 0;
  while (pos < s.size()) {
    decimal d;
    if (!read_decimal(s, pos, d))
      return false;
    std::size_t ustart = pos;
    while (pos < s.size() && ((s[pos] >= 'a' && s[pos] <= 'z') || (s[pos] >= 'A' && s[pos] <= 'Z')))
      ++pos;
    std::string unit = s.substr(ustart, pos - ustart);
    std::int64_t mult = 0;
    if (unit == "us")
      mult = 1;
    else if (unit == "ms")
      mult = ms_us;
    else if (unit == "s")
      mult = sec_us;
    else if (unit == "m")
      mult = 60 * sec_us;
    else if (unit == "h")
      mult = 3600 * sec_us;
    else if (unit == "d")
      mult = 86400 * sec_us;
    else
      return false;
    std::int64_t part = 0;
    if (!scale(d, mult, part) || __builtin_add_overflow(total, part, &total))
      return false;
  }
  out = total;
  return true;
}

std::string format_duration(usec d) {
  if (d < 0)
    return "-" + format_duration(
                     d == std::numeric_limits<usec>::min() ? std::numeric_limits<usec>::max() : -d);
  if (d == 0)
    return "0s";
  char buf[96];
  if (d < sec_us) {
    if (d % ms_us == 0)
      std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(d / ms_us));
    else
      std::snprintf(buf, sizeof buf, "%lldus", static_cast<long long>(d));
    return buf;
  }
  std::int64_t total_s = d / sec_us;
  std::int64_t sub = d % sec_us;
  std::int64_t h = total_s / 3600, m = total_s / 60 % 60, s = total_s % 60;
  std::string frac;
  if (sub != 0) {
    char f[16];
    std::snprintf(f, sizeof f, "%06lld", static_cast<long long>(sub));
    frac = "." + trim_zeros(f);
  }
  if (h > 0)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm%02lld%ss", static_cast<long long>(h),
                  static_cast<long long>(m), static_cast<long long>(s), frac.c_str());
  else if (m > 0)
    std::snprintf(buf, sizeof buf, "%lldm%02lld%ss", static_cast<long long>(m),
                  static_cast<long long>(s), frac.c_str());
  else
    std::snprintf(buf, sizeof buf, "%lld%ss", static_cast<long long>(s), frac.c_str());
  return buf;
}

bool parse_bytes(const std::string& s, bytes_t& out) {
  std::size_t pos = 0;
  decimal d;
  if (!read_decimal(s, pos, d))
    return false;
  if (pos < s.size() && s[pos] == ' ')
    ++pos;
  std::string unit;
  for (; pos < s.size(); ++pos)
    unit += lower(s[pos]);
  std::int64_t mult = 0;
  // "K"/"KB" are decimal (10^3), "Ki"/"KiB" binary (2^10), as in Kubernetes.
  static constexpr std::array<char, 5> prefixes{'k', 'm', 'g', 't', 'p'};
  if (unit.empty() || unit == "b") {
    mult = 1;
  } else {
    std::size_t i = 0;
    while (i < prefixes.size() && prefixes[i] != unit[0])
      ++i;
    if (i == prefixes.size())
      return false;
    std::string rest = unit.substr(1);
    bool binary = rest == "i" || rest == "ib";
    if (!binary && !(rest.empty() || rest == "b"))
      return false;
    mult = 1;
    for (std::size_t k = 0; k <= i; ++k)
      mult *= binary ? 1024 : 1000;
  }
  if (mult == 1 && d.had_fraction && d.frac != 0)
    return false; // a fraction of a byte
  std::int64_t v = 0;
  if (!scale(d, mult, v))
    return false;
  out = v;
  return true;
}

std::string format_bytes(bytes_t b) {
  std::uint64_t m = magnitude(b);
  std::string sign = b < 0 ? "-" : "";
  static constexpr std::array<const char*, 6> units{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (m < 1024)
    return sign + std::to_string(m) + " B";
  std::size_t i = 0;
  std::uint64_t unit = 1024;
  while (i + 1 < units.size() && m / unit >= 1024) {
    unit *= 1024;
    ++i;
  }
  // Two decimals, rounded half up, trailing zeros trimmed.
  unsigned __int128 hundredths = (static_cast<unsigned __int128>(m) * 100 + unit / 2) / unit;
  std::uint64_t whole = static_cast<std::uint64_t>(hundredths / 100);
  unsigned cents = static_cast<unsigned>(hundredths % 100);
  if (whole == 1024 && i + 1 < units.size()) {
    whole = 1;
    cents = 0;
    ++i;
  }
  std::string text = std::to_string(whole);
  if (cents != 0) {
    char f[4];
    std::snprintf(f, sizeof f, "%02u", cents);
    text += "." + trim_zeros(f);
  }
  return sign + text + " " + units[i];
}

} // namespace tender
