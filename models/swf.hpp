#pragma once
/// Reading Standard Workload Format traces (Parallel Workloads Archive).
///
/// One job per line, 18 whitespace-separated fields; Alea's variant adds three more
/// (a per-node list, a queue name, a property string). Comment lines start with `;`
/// and carry header fields (`; MaxProcs: 100`). `-1` means unknown. Records are
/// returned sorted by submit time (stable, so equal submit times keep file order).

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace tender {

/// One SWF record. Field numbers in the comments are the format's (1-based).
struct swf_job {
  std::int64_t id = -1;          ///< 1
  std::int64_t submit = -1;      ///< 2, seconds from the trace's start
  std::int64_t wait = -1;        ///< 3
  std::int64_t run = -1;         ///< 4
  std::int64_t procs = -1;       ///< 5, allocated
  double cpu_avg = -1;           ///< 6, average CPU time used per processor (s)
  std::int64_t mem_used = -1;    ///< 7, KB per processor
  std::int64_t procs_req = -1;   ///< 8
  std::int64_t time_req = -1;    ///< 9, the user's runtime estimate (s)
  std::int64_t mem_req = -1;     ///< 10 (KB per processor; bytes in the Alea variant)
  std::int64_t status = -1;      ///< 11
  std::int64_t user = -1;        ///< 12
  std::int64_t group = -1;       ///< 13
  std::int64_t exe = -1;         ///< 14
  std::int64_t queue = -1;       ///< 15
  std::int64_t partition = -1;   ///< 16
  std::int64_t preceding = -1;   ///< 17
  std::int64_t think = -1;       ///< 18
  std::string queue_name;        ///< Alea column 20 (empty otherwise)
  std::size_t line = 0;          ///< where it came from (1-based)

  /// Requested processors, else allocated ones, else -1.
  std::int64_t procs_any() const { return procs_req > 0 ? procs_req : procs; }
};

/// What to do with a line that is not a valid record.
enum class swf_malformed { refuse, skip };

struct swf_options {
  swf_malformed on_malformed = swf_malformed::refuse;
  std::size_t max_jobs = 0; ///< stop after this many records in file order (0 = all)
};

struct swf_trace {
  std::string path;
  std::map<std::string, std::string> header; ///< `; Key: value` comment fields
  std::int64_t max_procs = -1;               ///< header MaxProcs, -1 if absent
  std::int64_t unix_start_time = 0;          ///< header UnixStartTime (0 if absent)
  std::int64_t time_zone = 0;                ///< header TimeZone offset in seconds
  std::vector<swf_job> jobs;                 ///< sorted by submit time
  std::vector<std::string> skipped;          ///< "FILE:LINE: reason" for every skipped line
  int columns = 18;                          ///< 18, or 21 for the Alea variant
};

/// Parses SWF text. On a malformed line with `refuse`, returns false and sets
/// `error` to "NAME:LINE: reason"; with `skip`, records the reason in `skipped`.
bool parse_swf(std::string_view text, const std::string& name, const swf_options& opt,
               swf_trace& out, std::string& error);

/// Reads a plain or gzip-compressed SWF file. A missing or unreadable file is an error
/// naming it.
bool read_swf(const std::string& path, const swf_options& opt, swf_trace& out,
              std::string& error);

/// Reads a whole file, decompressing gzip transparently.
bool read_maybe_gzip(const std::string& path, std::string& out, std::string& error);

} // namespace tender
