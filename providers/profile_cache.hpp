#pragma once
/// Profile runs cached by what determines them, so a resubmitted job is not profiled
/// again: the key is a SHA-256 over the profile command, the job's command, the contents
/// of every file static analysis found the command to consist of (executables, scripts,
/// local modules; not system libraries), the contents of the inputs named in the job file,
/// the job's environment, its profile budget and memory hint (they set the sandbox). Any
/// change to any of them is a new key. One file per key in the cache directory (MessagePack),
/// written atomically; an unreadable entry is a miss.

#include "protocol/job.hpp"
#include "providers/profiling.hpp"

#include <optional>
#include <string>

namespace tender {

/// Hex SHA-256 of `data` (FIPS 180-4).
std::string sha256_hex(const std::string& data);

/// Hex SHA-256 of a file's contents; nullopt when it cannot be read.
std::optional<std::string> file_sha256(const std::string& path);

class profile_cache {
public:
  explicit profile_cache(std::string dir);

  /// The cache key of a job's profile run. `report` supplies the files of the command.
  static std::string key(const job_spec& spec, const static_report& report);

  /// The cached run for `key`, if any.
  std::optional<profile_run> get(const std::string& key) const;

  /// Stores a run that measured something: it ended by itself with exit 0 or was cut at its
  /// budget. Failed runs are not cached (a fixed job must be profiled again). Returns false
  /// (with `why`) when the run is not cacheable or the file cannot be written.
  bool put(const std::string& key, const profile_run& run, std::string* why = nullptr);

private:
  std::string dir_;
};

} // namespace tender
