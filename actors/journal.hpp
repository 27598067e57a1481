#pragma once
/// The journal: a SQLite (WAL) record of jobs, every state transition, offers,
/// awards, allocations and usage, written before anything is acknowledged.
/// After a crash the node rebuilds its state from it. Plain class, thread-safe
/// (one connection behind a mutex). Schema changes are migrations, never rebuilds.

#include "protocol/envelope.hpp"

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

struct sqlite3;

namespace tender {

/// One job as the journal knows it.
struct job_record {
  std::string job_id;
  std::string client_key;
  job_spec spec;
  job_status status; ///< state, provider, price, times, exit code, profile, offers, usage summary
  std::optional<allocation> alloc; ///< the committed allocation (with its lease token)
};

/// One SLA event for a provider (a breach or a kept promise).
struct sla_event {
  std::string provider;
  std::string kind; ///< "confirm", "refuse", "timeout", "late_start", "failure", "preempted", "slow_answer", "ok_start"
  bool breach = false;
  usec at = 0;
};

class journal {
public:
  /// Opens (creating or migrating) `path`. Error message names the path and cause.
  static std::variant<std::unique_ptr<journal>, std::string> open(const std::string& path);
  ~journal();

  int schema_version() const;

  /// A new job. Returns false when `client_key` is already known (`existing_id` then set).
  bool insert_job(const std::string& job_id, const std::string& client_key, const job_spec& spec,
                  usec submitted_at, std::string* existing_id = nullptr);
  /// A state change; also updates the job's current state and reason.
  void transition(const std::string& job_id, job_state from, job_state to,
                  const std::string& reason, usec at);
  void save_profile(const std::string& job_id, const resource_profile& p);
  /// An offer seen in an auction, with its verdict and score.
  void save_offer(const std::string& job_id, const offer& o, double score,
                  const std::string& verdict, usec at);
  void update_offer_verdict(const std::string& offer_id, const std::string& verdict);
  void save_award(const award& a, usec at);
  void save_allocation(const allocation& a, usec at);
  void save_release(const release& r, usec at);
  /// Started / finished times, exit code, usage summary, provider, price.
  void save_status(const job_status& s);
  void save_usage(const std::string& job_id, const usage_sample& s);
  void save_sla_event(const sla_event& e);

  std::optional<job_record> load_job(const std::string& job_id) const;
  /// Every job, in submission order.
  std::vector<job_record> load_jobs() const;
  std::vector<std::pair<job_state, job_state>> transitions(const std::string& job_id) const;
  std::vector<sla_event> sla_events(const std::string& provider) const;
  std::vector<usage_sample> usage(const std::string& job_id) const;

private:
  explicit journal(sqlite3* db);
  sqlite3* db_;
  mutable std::mutex mu_;
  int version_ = 0;
};

} // namespace tender
