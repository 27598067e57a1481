#pragma once
/// The journal: a SQLite (WAL) record of jobs, every state transition, offers,
/// awards, allocations and usage, written before anything is acknowledged.
/// After a crash the node rebuilds its state from it. Plain class, thread-safe
/// (one connection behind a mutex). Schema changes are migrations, never rebuilds.
///
/// Durability. A write method returns once its transaction has committed to the
/// write-ahead log. With `journal_sync::normal` (the default) a committed write
/// survives a crash of the process — `kill -9`, which is tender's fault model —
/// but the last commits may be lost if the machine loses power or the OS crashes.
/// `journal_sync::full` also survives power loss, at one fsync per commit.
///
/// Errors. Public methods never throw. Every write returns `false` when nothing
/// was recorded; `last_error()` then names the journal file, the operation and the
/// cause, and the error handler (if set) is called with the same text. The node
/// must not acknowledge anything whose write returned `false`.
///
/// Schema. `PRAGMA user_version` holds the schema version. Migrations are an
/// ordered list in journal.cpp; migration N is a list of SQL steps applied in one
/// transaction that also sets the version to N. A database from a newer tender is
/// refused untouched. A new job state needs no migration (states are integers).
///
/// Secrets. Allocations are stored whole, lease token included (a restarted node
/// needs it to launch); the token never appears in an error message or log line.

#include "protocol/envelope.hpp"

#include <functional>
#include <map>
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
  std::string kind; ///< "confirm", "refuse", "timeout", "late_start", "failure", "preempted",
                    ///< "slow_answer", "ok_start"
  bool breach = false;
  usec at = 0;
};

/// One auction of a job's negotiation, for `tender explain`: its rounds, every
/// decline and the rejected offers counted by reason ("late", "duplicate", ...).
struct negotiation_record {
  std::string job_id;
  std::string auction_id;
  std::string protocol;
  std::int32_t rounds = 0;
  std::vector<decline_note> declines;
  std::map<std::string, std::int64_t> rejected;
  std::string outcome; ///< the round's last word: "won by ...", "no acceptable offer: ..."
  usec at = 0;
};

/// SQLite `synchronous` level; see "Durability" above.
enum class journal_sync { normal, full };

/// How a journal is opened. Added after v1 of this header; `open(path)` uses the defaults.
struct journal_options {
  journal_sync sync = journal_sync::normal;
  /// How long a write waits for another connection's lock before it fails.
  int busy_timeout_ms = 5000;
};

class journal {
public:
  /// The schema version this code writes (the number of migrations).
  static constexpr int current_schema_version = 5;

  /// Opens (creating or migrating) `path`. Error message names the path and cause.
  static std::variant<std::unique_ptr<journal>, std::string> open(const std::string& path);
  static std::variant<std::unique_ptr<journal>, std::string> open(const std::string& path,
                                                                  const journal_options& options);
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  int schema_version() const;
  const std::string& path() const { return path_; }

  /// The most recent failure (empty when nothing has failed yet).
  std::string last_error() const;
  /// How many times a writer waited for a checkpoint's copy to start a long WAL over.
  std::int64_t wal_waits() const;
  /// Called with the text of every failure. Runs under the journal's lock: it must
  /// not call back into the journal.
  void set_error_handler(std::function<void(const std::string&)> handler);

  /// A new job. Returns false when `client_key` is already known (`existing_id` then set).
  /// Also false when the write failed: `existing_id` is then empty and `last_error()` says why.
  /// An empty `client_key` never matches another job.
  bool insert_job(const std::string& job_id, const std::string& client_key, const job_spec& spec,
                  usec submitted_at, std::string* existing_id = nullptr);
  /// One submission of a group commit (`insert_jobs`).
  struct job_insert {
    std::string job_id;     ///< the id a new job gets
    std::string client_key; ///< deduplication key ("" = never matches)
    job_spec spec;
    usec submitted_at = 0;
    std::string existing_id; ///< out: set when `client_key` was already known (nothing written)
  };
  /// Many new jobs in ONE transaction (one WAL commit): each new job is inserted as
  /// `insert_job` does and gets its submitted -> submitted transition with `reason`, as
  /// intake records it. An item whose `client_key` is already known — in the journal or
  /// earlier in `jobs` — writes nothing and gets `existing_id`. Returns false when the
  /// transaction failed: then nothing of the batch was recorded (no `existing_id` is
  /// set) and `last_error()` says why. Added for the message bus.
  bool insert_jobs(std::vector<job_insert>& jobs, const std::string& reason = "accepted");
  /// Called after each successful `transition`, `save_allocation` and `save_scaling`
  /// (and per new job of `insert_jobs`), outside the journal's lock, on the writer's
  /// thread: it must be quick and must not block (the bus queues events to its I/O
  /// thread). Inside a `begin_batch` it runs before the batch commits. Events carry
  /// no lease token. Set it before any write; not synchronised with writers.
  void set_observer(std::function<void(const job_event&)> observer);
  /// A state change; also updates the job's current state and reason (one transaction).
  /// The only way a job's state changes: `save_status` does not write state or reason.
  bool transition(const std::string& job_id, job_state from, job_state to,
                  const std::string& reason, usec at);
  bool save_profile(const std::string& job_id, const resource_profile& p);
  /// An offer seen in an auction, with its verdict and score. Saving the same
  /// `offer_id` again replaces it (an offer that arrives twice is one offer).
  bool save_offer(const std::string& job_id, const offer& o, double score,
                  const std::string& verdict, usec at);
  /// The same, with the score term by term (`tender explain`); `t.risk_adjusted` is the score.
  bool save_offer(const std::string& job_id, const offer& o, const score_terms& t,
                  const std::string& verdict, usec at);
  /// A rejected offer ("rejected: late ..."). Never replaces a row with the same
  /// `offer_id`: a duplicate or a stranger reusing an id cannot overwrite the real offer.
  bool save_rejected_offer(const std::string& job_id, const offer& o, const std::string& verdict,
                           usec at);
  bool update_offer_verdict(const std::string& offer_id, const std::string& verdict);
  /// Saving the same `auction_id` again replaces it (a later round knows more).
  bool save_negotiation(const negotiation_record& n);
  /// One offer of `save_outcome`: the offer, its score terms and its final verdict.
  struct offer_outcome {
    const offer* o = nullptr;
    score_terms terms;
    std::string verdict;
  };
  /// A negotiation's outcome in one row (one statement): `save_negotiation(n)` with every
  /// offer, its score terms and final verdict, filed under `n.job_id` at `n.at`. Read back
  /// by `offer_explanations`, `load_job` and `totals` as offers saved one by one are; an
  /// offer here supersedes a row of the same `offer_id` from `save_rejected_offer` (the
  /// negotiation's last word). Saving the same `auction_id` again replaces its offers.
  /// Added for the auction's hot path (schema version 5: one row per negotiation, not per offer).
  bool save_outcome(const std::vector<offer_outcome>& offers, const negotiation_record& n);
  bool save_award(const award& a, usec at);
  /// Saving the same `allocation_id` again replaces its body (e.g. a renewed lease).
  bool save_allocation(const allocation& a, usec at);
  /// Marks the allocation released (by `allocation_id`, or by `offer_id` when that
  /// is empty) and logs the release, also for a hold that never became an allocation.
  bool save_release(const release& r, usec at);
  /// Started / finished times, exit code, usage summary, provider, price, allocation
  /// id, allocated resources and the offers list; the profile too when `has_profile`.
  bool save_status(const job_status& s);
  bool save_usage(const std::string& job_id, const usage_sample& s);
  bool save_sla_event(const sla_event& e);
  /// One scaling decision of a running job (need, action, outcome, amounts, by whom).
  /// Added with schema version 4.
  bool save_scaling(const scaling_decision& d);

  /// Group commit: writes between `begin_batch()` and `commit_batch()` share one
  /// transaction (one WAL commit). Each write still succeeds or fails on its own
  /// (a savepoint), but nothing is durable — so nothing may be acknowledged — until
  /// `commit_batch()` returns true. Batches nest; only the outermost commits. The
  /// batch belongs to the connection: writes from any thread join it. A batch still
  /// open when the journal is destroyed is rolled back, as a crash would.
  ///
  /// Inside a batch the negotiation's own writes (`save_outcome`, `save_award`,
  /// `save_sla_event`, `save_rejected_offer`) are queued, not made: their callers never
  /// wait for the journal while a commit or a checkpoint is under way. The next call that
  /// takes the journal (any read or write, `commit_batch` at the latest) makes them
  /// first, in order, so everything still sees every write made before it; they return
  /// true, and one that fails when made is reported then (`last_error()` and the error
  /// handler).
  bool begin_batch();
  bool commit_batch();
  /// A group-commit loop's step: commits the open batch (not nested) and begins the
  /// next, the negotiation's writes queueing throughout, also while the new batch waits
  /// for a checkpoint (`commit_batch` then `begin_batch` would make them wait for the
  /// journal in between). False when the commit failed (the batch was rolled back; the
  /// next one is open) or no batch could begin (then none is open).
  bool next_batch();

  /// The job with its status and committed allocation. `status.offers` comes from the
  /// journaled offers (its negotiations' and the offers table's, as `offer_explanations`
  /// reads them: they hold the latest verdicts) when there are any, otherwise from the
  /// list last given to `save_status`.
  std::optional<job_record> load_job(const std::string& job_id) const;
  /// Every job, in submission order.
  std::vector<job_record> load_jobs() const;
  std::vector<std::pair<job_state, job_state>> transitions(const std::string& job_id) const;
  std::vector<sla_event> sla_events(const std::string& provider) const;
  std::vector<usage_sample> usage(const std::string& job_id) const;
  /// Every offer of the job with its score terms and verdict, by round then arrival.
  std::vector<offer_explanation> offer_explanations(const std::string& job_id) const;
  /// The job's auctions (more than one when a restart began its negotiation again).
  std::vector<negotiation_record> negotiations(const std::string& job_id) const;
  /// The job's scaling decisions, oldest first.
  std::vector<scaling_decision> scaling(const std::string& job_id) const;
  /// The node's latest `limit` scaling decisions over every job, oldest first (the console).
  std::vector<scaling_decision> recent_scaling(std::size_t limit) const;
  /// Counts for the console's `/metrics`: negotiations, offers by verdict (the verdict's
  /// first word: "won", "lost", "rejected", ...), SLA events by breach, scaling decisions
  /// by outcome.
  struct totals_view {
    std::int64_t negotiations = 0;
    std::map<std::string, std::int64_t> offers_by_verdict;
    std::int64_t sla_breaches = 0;
    std::int64_t sla_kept = 0;
    std::map<std::string, std::int64_t> scaling_by_outcome;
  };
  totals_view totals() const;

private:
  struct statements;
  class query;
  class checkpointer;

  explicit journal(sqlite3* db);
  sqlite3* db_;
  mutable std::mutex mu_;
  int version_ = 0;

  std::string path_;
  std::unique_ptr<statements> stmts_; ///< prepared statements, cached by SQL text
  int batch_depth_ = 0;
  mutable std::string last_error_;
  mutable std::string step_error_; ///< sqlite's message for the last failed step
  std::function<void(const std::string&)> on_error_;
  std::function<void(const job_event&)> observer_;
  /// Copies the WAL into the database on its own thread and connection, so a writer
  /// holding `mu_` never waits for a checkpoint's reads, writes and fsyncs.
  std::unique_ptr<checkpointer> checkpointer_;
  /// Writes queued inside a batch (see `begin_batch`), made by whoever holds `mu_` next.
  mutable std::mutex queue_mu_;
  mutable std::vector<std::function<bool()>> queued_; ///< under queue_mu_
  bool queueing_ = false;                             ///< a batch is open; under queue_mu_
  class held;
  /// Queues `write` (made later under `mu_`) if a batch is open, else makes it now.
  bool queue_or_make(std::function<bool()> write);
  /// Makes the queued writes, in order. Caller holds `mu_`.
  void make_queued() const;
  /// COMMITs the outermost batch, or rolls it back and reports `who` failed. Holds `mu_`.
  bool commit_outermost(const char* who);

  bool transition_locked(const std::string& job_id, job_state from, job_state to,
                         const std::string& reason, usec at);
  bool write_allocation(const allocation& a, usec at); ///< caller holds `mu_`
  bool write_scaling(const scaling_decision& d);       ///< caller holds `mu_`

  query prepare(const char* sql) const;
  /// One offer row with its score terms (insert or replace); the caller holds the lock.
  bool insert_offer(const std::string& job_id, const offer& o, const score_terms& t,
                    const std::string& verdict, usec at) const;
  /// Every offer of the job, as `offer_explanations` returns them; false when a query
  /// failed (`step_error_` says why). The caller holds the lock.
  bool read_offers(const std::string& job_id, std::vector<offer_explanation>& out) const;
  /// Before a writer begins a transaction (none open): waits for a checkpoint in
  /// flight when the WAL is long (see `checkpointer`). The caller holds the lock.
  void before_begin() const;
  /// The negotiation's row (insert or replace); the caller holds the lock.
  bool upsert_negotiation_row(const negotiation_record& n) const;
  bool exec(const char* sql) const;
  bool fail(const std::string& what) const;
  template <class Body> bool write(const char* what, const std::string& id, Body&& body);
  template <class Body> bool write_one(const char* what, const std::string& id, Body&& body);
  std::optional<job_record> read_job(query& row) const;
};

} // namespace tender
