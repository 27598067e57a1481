#pragma once
/// Locating the real traces in ../shared/data for tests (TENDER_SHARED_DIR, set by
/// ctest, else /work/shared).

#include "models/swf.hpp"

#include <cstdlib>
#include <filesystem>
#include <string>

namespace tender::test_data {

inline std::string trace_path(const std::string& file) {
  const char* env = std::getenv("TENDER_SHARED_DIR");
  for (std::string dir : {env ? std::string(env) : std::string(), std::string("/work/shared")}) {
    if (dir.empty())
      continue;
    auto p = std::filesystem::path(dir) / "data" / "traces" / file;
    if (std::filesystem::exists(p))
      return p.string();
  }
  return {};
}

/// The first `n` records of a real trace (in file order, then sorted); false if absent.
inline bool trace_head(const std::string& file, std::size_t n, swf_trace& out) {
  auto p = trace_path(file);
  if (p.empty())
    return false;
  swf_options o;
  o.max_jobs = n;
  std::string err;
  return read_swf(p, o, out, err);
}

} // namespace tender::test_data
