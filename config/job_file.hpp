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
/// workdir is resolved against `base_dir` (the file's directory).
std::variant<job_spec, config_error> parse_job_toml(const std::string& text,
                                                    const std::string& file_name,
                                                    const std::string& base_dir, usec now);

/// Reads and parses a job file.
std::variant<job_spec, config_error> load_job_file(const std::string& path, usec now);

} // namespace tender
