#include "protocol/job.hpp"

#include <array>
#include <utility>

namespace tender {

namespace {

constexpr std::array<std::pair<job_state, const char*>, 10> state_names{{
    {job_state::submitted, "submitted"},
    {job_state::profiling, "profiling"},
    {job_state::negotiating, "negotiating"},
    {job_state::committed, "committed"},
    {job_state::running, "running"},
    {job_state::rescaling, "rescaling"},
    {job_state::done, "done"},
    {job_state::failed, "failed"},
    {job_state::refused, "refused"},
    {job_state::cancelled, "cancelled"},
}};

} // namespace

const char* to_string(job_state s) {
  for (const auto& [state, name] : state_names)
    if (state == s)
      return name;
  // A value outside the enum can only come from a newer peer.
  return "unknown";
}

bool parse_job_state(const std::string& s, job_state& out) {
  for (const auto& [state, name] : state_names) {
    if (s == name) {
      out = state;
      return true;
    }
  }
  return false;
}

bool is_final(job_state s) {
  return s == job_state::done || s == job_state::failed || s == job_state::refused ||
         s == job_state::cancelled;
}

} // namespace tender
