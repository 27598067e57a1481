#pragma once
/// Job files (TOML): the submission request. Strict: an unknown key, a wrong type,
/// a negative budget or a missing command is refused with the file, key and reason.

#include "protocol/job.hpp"

#include <string>
#include <variant>

namespace tender {

/// A problem in a configuration or job file, naming where.
struct config_error {
  std::string file;
  std::string key; ///< dotted path, e.g. "job.hints.memory"; empty for the whole file
  std::string reason;
  /// "FILE: KEY: REASON" (or "FILE: REASON").
  std::string to_string() const;
};

/// Parses a job file's text. `now` resolves relative deadlines ("30m"); a relative
/// workdir is resolved against `base_dir` (the file's directory), which is also the
/// default workdir.
///
/// Defaults and rules: `command` is required and non-empty; `name` defaults to the
/// file's stem ("compress-logs.toml" -> "compress-logs"), or to the first command
/// word's base name when `file_name` is not a path ("<stdin>"); `user` defaults to
/// empty (the client fills in its login). Durations are strings ("30m", "1h30m") or
/// numbers of seconds. `deadline` is a duration after `now` or an instant (RFC 3339
/// string or TOML offset date-time) that must be in the future. `max_cost` is US
/// dollars (number or decimal string), positive, at most six decimals. `priority`
/// is -100..100. `hints.cpus` may be decimal (0.5 -> 500 millicores, at most three
/// decimals); `hints.gpus` defaults to 1 when `gpu` or `gpu_memory` is given.
/// `inputs` are kept as written (relative to the workdir).
std::variant<job_spec, config_error> parse_job_toml(const std::string& text,
                                                    const std::string& file_name,
                                                    const std::string& base_dir, usec now);

/// Reads and parses a job file.
std::variant<job_spec, config_error> load_job_file(const std::string& path, usec now);

} // namespace tender
