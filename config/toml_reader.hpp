#pragma once
/// Internal to config/: strict, typed reading of TOML tables shared by the job file
/// and node config parsers. Every read names its dotted key; the first problem is
/// thrown as a `config_failure` and turned into a `config_error` value at the parser's
/// edge, so no exception leaves config/.

#include "config/job_file.hpp"
#include "protocol/amounts.hpp"

#include <toml++/toml.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tender::config_detail {

/// Carries the first error out of a nested read.
struct config_failure {
  config_error error;
};

/// "integer", "float", "date-time", ... as a person would say it.
inline std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "nothing";
  }
}

/// `base / p`, normalised, for relative `p`; absolute paths stay as they are.
inline std::string resolve_path(const std::string& base, const std::string& p) {
  std::filesystem::path path(p);
  if (path.is_relative() && !base.empty()) path = std::filesystem::path(base) / path;
  auto s = path.lexically_normal().string();
  if (s.size() > 1 && s.back() == '/') s.pop_back();
  return s.empty() ? std::string(".") : s;
}

/// Writes a finite double as the shortest decimal text that reads back as the same
/// double ("0.1", "12", "0.0000001"), so "how many decimals did the user write" can
/// be answered exactly.
inline std::string shortest_decimal(double v) {
  char buf[400];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return std::string(buf, r.ptr);
}

/// Digits after the decimal point of `shortest_decimal` text.
inline std::size_t decimals_of(const std::string& s) {
  auto dot = s.find('.');
  return dot == std::string::npos ? 0 : s.size() - dot - 1;
}

/// A TOML table read under a dotted path ("job.hints"), refusing unknown keys.
class table_reader {
public:
  table_reader(const toml::table& t, std::string path, const std::string& file)
    : table_(&t), path_(std::move(path)), file_(&file) {}

  const std::string& path() const { return path_; }
  const std::string& file() const { return *file_; }
  const toml::table& table() const { return *table_; }

  std::string key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  [[noreturn]] void fail_at(const std::string& full_key, std::string reason) const {
    throw config_failure{config_error{*file_, full_key, std::move(reason)}};
  }
  [[noreturn]] void fail(std::string_view key, std::string reason) const {
    fail_at(key_path(key), std::move(reason));
  }

  /// Refuses any key not in `allowed` (in the order given, for the message).
  void allow_only(std::initializer_list<std::string_view> allowed) const {
    for (auto&& [k, v] : *table_) {
      bool ok = false;
      for (auto a : allowed)
        if (k.str() == a) ok = true;
      if (ok) continue;
      std::string list;
      for (auto a : allowed) {
        if (!list.empty()) list += ", ";
        list += a;
      }
      fail(k.str(), "unknown key (expected one of: " + list + ")");
    }
  }

  bool has(std::string_view key) const { return table_->get(key) != nullptr; }
  const toml::node* get(std::string_view key) const { return table_->get(key); }

  [[noreturn]] void type_error(std::string_view key, const toml::node& n,
                               std::string_view expected) const {
    fail(key, "expected " + std::string(expected) + ", got " + type_name(n));
  }

  std::optional<table_reader> sub_table(std::string_view key) const {
    auto n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_table()) type_error(key, *n, "a table");
    return table_reader(*n->as_table(), key_path(key), *file_);
  }

  std::optional<std::string> string(std::string_view key) const {
    auto n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) type_error(key, *n, "a string");
    return n->as_string()->get();
  }

  /// A string that must not be empty when given.
  std::optional<std::string> nonempty_string(std::string_view key) const {
    auto s = string(key);
    if (s && s->empty()) fail(key, "must not be empty");
    return s;
  }

  std::optional<std::vector<std::string>> strings(std::string_view key) const {
    auto n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_array()) type_error(key, *n, "an array of strings");
    std::vector<std::string> out;
    auto& arr = *n->as_array();
    for (std::size_t i = 0; i < arr.size(); ++i) {
      auto& e = arr[i];
      if (!e.is_string())
        fail_at(key_path(key) + "[" + std::to_string(i) + "]",
                "expected a string, got " + type_name(e));
      out.push_back(e.as_string()->get());
    }
    return out;
  }

  std::optional<std::int64_t> integer(std::string_view key) const {
    auto n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_integer()) type_error(key, *n, "an integer");
    return n->as_integer()->get();
  }

  /// An integer within [lo, hi].
  std::optional<std::int64_t> integer_in(std::string_view key, std::int64_t lo,
                                         std::int64_t hi) const {
    auto v = integer(key);
    if (v && (*v < lo || *v > hi))
      fail(key, "out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + "), got " +
                    std::to_string(*v));
    return v;
  }

  /// An integer or a float, finite.
  std::optional<double> number(std::string_view key) const {
    auto n = get(key);
    if (!n) return std::nullopt;
    double v;
    if (n->is_integer())
      v = static_cast<double>(n->as_integer()->get());
    else if (n->is_floating_point())
      v = n->as_floating_point()->get();
    else
      type_error(key, *n, "a number");
    if (!std::isfinite(v)) fail(key, "must be a finite number");
    return v;
  }

  /// A number within [lo, hi].
  std::optional<double> number_in(std::string_view key, double lo, double hi) const {
    auto v = number(key);
    if (v && (*v < lo || *v > hi))
      fail(key, "must be between " + shortest_decimal(lo) + " and " + shortest_decimal(hi) +
                    ", got " + shortest_decimal(*v));
    return v;
  }

  std::optional<bool> boolean(std::string_view key) const {
    auto n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_boolean()) type_error(key, *n, "a boolean (true or false)");
    return n->as_boolean()->get();
  }

  /// "30m", "1h30m", "250ms" or a number of seconds; never negative.
  std::optional<usec> duration(std::string_view key) const {
    auto n = get(key);
    if (!n) return std::nullopt;
    if (n->is_string()) return duration_text(key, n->as_string()->get());
    if (n->is_integer() || n->is_floating_point()) return seconds_number(key);
    type_error(key, *n, "a duration (a string like \"30m\" or a number of seconds)");
  }

  /// A duration that must be > 0 when given.
  std::optional<usec> positive_duration(std::string_view key) const {
    auto d = duration(key);
    if (d && *d <= 0) fail(key, "must be positive");
    return d;
  }

  usec duration_text(std::string_view key, const std::string& s) const {
    if (!s.empty() && s.front() == '-') fail(key, "must not be negative, got '" + s + "'");
    usec out = 0;
    if (!parse_duration(s, out))
      fail(key, "invalid duration '" + s +
                    "' (expected e.g. \"30m\", \"1h30m\", \"250ms\" or a number of seconds)");
    return out;
  }

  /// "1GiB", "512MiB", "100MB" or a number of bytes; never negative.
  std::optional<bytes_t> size(std::string_view key) const {
    auto n = get(key);
    if (!n) return std::nullopt;
    if (n->is_integer()) {
      auto v = n->as_integer()->get();
      if (v < 0) fail(key, "must not be negative, got " + std::to_string(v));
      return v;
    }
    if (!n->is_string())
      type_error(key, *n, "a size (a string like \"1GiB\" or a number of bytes)");
    return size_text(key, n->as_string()->get());
  }

  bytes_t size_text(std::string_view key, const std::string& s) const {
    if (!s.empty() && s.front() == '-') fail(key, "must not be negative, got '" + s + "'");
    bytes_t out = 0;
    if (!parse_bytes(s, out) || out < 0)
      fail(key, "invalid size '" + s +
                    "' (expected e.g. \"512MiB\", \"1GiB\", \"100MB\" or a number of bytes)");
    return out;
  }

  /// US dollars as a TOML number (0.5, 12) or a decimal string ("0.50"), exact to
  /// the micro-dollar; more than six decimals is refused rather than rounded. With
  /// `positive`, zero and negative amounts are refused; otherwise only negative ones.
  std::optional<micros> dollars(std::string_view key, bool positive = false) const {
    auto n = get(key);
    if (!n) return std::nullopt;
    const std::string sign_rule = positive ? "must be positive, got " : "must not be negative, got ";
    std::string text;
    if (n->is_integer()) {
      auto v = n->as_integer()->get();
      if (v < 0 || (positive && v == 0)) fail(key, sign_rule + std::to_string(v));
      if (v > std::numeric_limits<micros>::max() / usd) fail(key, "too large");
      return v * usd;
    }
    if (n->is_floating_point()) {
      double v = n->as_floating_point()->get();
      if (!std::isfinite(v)) fail(key, "must be a finite number");
      if (v < 0 || (positive && v == 0)) fail(key, sign_rule + shortest_decimal(v));
      if (v >= 1e12) fail(key, "too large");
      text = shortest_decimal(v);
    } else if (n->is_string()) {
      text = n->as_string()->get();
      if (!text.empty() && text.front() == '$') text.erase(0, 1);
      if (!text.empty() && text.front() == '-') fail(key, sign_rule + "'" + text + "'");
    } else {
      type_error(key, *n, "an amount of US dollars (e.g. 0.50)");
    }
    if (decimals_of(text) > 6)
      fail(key, "more than six decimal places in " + text + " (the smallest unit is $0.000001)");
    micros out = 0;
    if (!parse_usd(text, out)) fail(key, "invalid amount of US dollars '" + text + "'");
    if (positive && out == 0) fail(key, sign_rule + text);
    return out;
  }

  /// CPU cores, integer or decimal ("0.5"), to milli-cores exactly (at most three
  /// decimals); never negative.
  std::optional<millicores> cores(std::string_view key) const {
    auto n = get(key);
    if (!n) return std::nullopt;
    if (n->is_integer()) {
      auto v = n->as_integer()->get();
      if (v < 0) fail(key, "must not be negative, got " + std::to_string(v));
      if (v > 1'000'000'000) fail(key, "too large");
      return v * 1000;
    }
    if (!n->is_floating_point()) type_error(key, *n, "a number of cores (e.g. 2 or 0.5)");
    return cores_number(key, n->as_floating_point()->get());
  }

  millicores cores_number(std::string_view key, double v) const {
    if (!std::isfinite(v)) fail(key, "must be a finite number");
    if (v < 0) fail(key, "must not be negative, got " + shortest_decimal(v));
    if (v > 1e9) fail(key, "too large");
    auto text = shortest_decimal(v);
    if (decimals_of(text) > 3)
      fail(key, "more than three decimal places in " + text + " (the smallest unit is 0.001 cores)");
    auto dot = text.find('.');
    std::int64_t whole = std::stoll(text.substr(0, dot));
    std::int64_t frac = 0;
    if (dot != std::string::npos) {
      auto f = text.substr(dot + 1);
      f.resize(3, '0');
      frac = std::stoll(f);
    }
    return whole * 1000 + frac;
  }

private:
  usec seconds_number(std::string_view key) const {
    auto n = get(key);
    if (n->is_integer()) {
      auto v = n->as_integer()->get();
      if (v < 0) fail(key, "must not be negative, got " + std::to_string(v));
      if (v > std::numeric_limits<usec>::max() / sec_us) fail(key, "too large");
      return v * sec_us;
    }
    double v = n->as_floating_point()->get();
    if (!std::isfinite(v)) fail(key, "must be a finite number");
    if (v < 0) fail(key, "must not be negative, got " + shortest_decimal(v));
    if (v > 9e12) fail(key, "too large");
    return static_cast<usec>(std::llround(v * 1e6));
  }

  const toml::table* table_;
  std::string path_;
  const std::string* file_;
};

/// Parses TOML text, turning a syntax error into a config_error with line:column.
inline toml::table parse_toml_text(const std::string& text, const std::string& file_name) {
  try {
    return toml::parse(text, file_name);
  } catch (const toml::parse_error& e) {
    auto& b = e.source().begin;
    throw config_failure{config_error{
        file_name, "",
        "TOML syntax error at " + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " +
            std::string(e.description())}};
  }
}

/// Reads a whole file; a config_error naming the file (key empty) with errno's
/// reason when it cannot.
std::optional<config_error> read_text_file(const std::string& path, std::string& out);

/// The absolute directory holding `path`.
std::string directory_of(const std::string& path);

} // namespace tender::config_detail
