#pragma once
/// Job messages: what a client submits and what it is told about its job.
///
/// Job life cycle (every transition is journaled):
///
///   submitted -> profiling -> negotiating -> committed -> running -> done
///                    |             |            |           |   \-> failed
///                    |             \-> refused  |           \-> rescaling -> running
///                    \------------ any non-final state -> cancelled / failed

#include "protocol/profile.hpp"
#include "protocol/resources.hpp"

#include <map>
#include <string>
#include <vector>

namespace tender {

enum class job_state : std::int32_t {
  submitted = 0,
  profiling = 1,
  negotiating = 2,
  committed = 3,
  running = 4,
  rescaling = 5,
  done = 6,
  failed = 7,
  refused = 8,
  cancelled = 9,
};

const char* to_string(job_state s);
bool parse_job_state(const std::string& s, job_state& out);
/// done, failed, refused, cancelled.
bool is_final(job_state s);

/// The submission request, as read from a job file.
/// History: v1.
struct job_spec {
  std::string name;
  std::string user;
  std::vector<std::string> command;
  std::string workdir;
  std::map<std::string, std::string> env;
  usec walltime = 0;   ///< the user's own runtime estimate (0 = none)
  usec deadline = 0;   ///< absolute instant (0 = none)
  micros max_cost = 0; ///< budget (0 = none)
  std::int32_t priority = 0;
  std::vector<std::string> software;
  resources hints;                          ///< cpus, memory, gpu hints
  std::vector<std::string> profile_command; ///< representative workload (may be empty)
  usec profile_budget = 0;
  bool profile_skip = false;
  std::vector<std::string> inputs; ///< files the job reads (for profile caching)
  MSGPACK_DEFINE_MAP(name, user, command, workdir, env, walltime, deadline, max_cost, priority,
                     software, hints, profile_command, profile_budget, profile_skip, inputs)
};

/// Client -> node: a new job. `client_key`, when set, makes resubmission idempotent.
/// History: v1.
struct job_submit {
  job_spec spec;
  std::string client_key;
  MSGPACK_DEFINE_MAP(spec, client_key)
};

/// Summary of one offer, as shown to clients.
struct offer_summary {
  std::string offer_id;
  std::string provider;
  std::int32_t round = 0;
  micros price = 0;
  usec earliest_start = 0;
  double score = 0.0; ///< risk-adjusted cost in micro-dollars (lower is better)
  std::string verdict; ///< "won", "lost", "rejected: ...", "refused: ..."
  MSGPACK_DEFINE_MAP(offer_id, provider, round, price, earliest_start, score, verdict)
};

/// Node -> client: where a job is.
/// History: v1.
struct job_status {
  std::string job_id;
  std::string name;
  std::string user;
  job_state state = job_state::submitted;
  std::string reason;
  std::string provider;
  std::string allocation_id;
  micros price = 0;
  resources allocated;
  std::vector<offer_summary> offers;
  usec submitted_at = 0;
  usec started_at = 0;
  usec finished_at = 0;
  std::int32_t exit_code = -1;
  bool has_profile = false;
  resource_profile profile;
  // measured usage summary, filled while running and at the end
  double cpu_used_mean = 0.0; ///< cores
  bytes_t mem_used_peak = 0;
  bytes_t io_read = 0;
  bytes_t io_write = 0;
  MSGPACK_DEFINE_MAP(job_id, name, user, state, reason, provider, allocation_id, price, allocated,
                     offers, submitted_at, started_at, finished_at, exit_code, has_profile, profile,
                     cpu_used_mean, mem_used_peak, io_read, io_write)
};

/// Client -> node: ask for one job's status (answered with job_status).
struct job_query {
  std::string job_id;
  MSGPACK_DEFINE_MAP(job_id)
};

/// Client -> node: list jobs (answered with job_list).
struct jobs_query {
  std::int32_t limit = 0; ///< 0 = all
  MSGPACK_DEFINE_MAP(limit)
};

struct job_list {
  std::vector<job_status> jobs;
  MSGPACK_DEFINE_MAP(jobs)
};

/// Client -> node: cancel a job (answered with job_status).
struct job_cancel {
  std::string job_id;
  std::string reason;
  MSGPACK_DEFINE_MAP(job_id, reason)
};

} // namespace tender

MSGPACK_ADD_ENUM(tender::job_state);
