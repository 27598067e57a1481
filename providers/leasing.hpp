#pragma once
/// What the built-in providers (local, market) share: offers remembered for the
/// award, capacity in a `ledger`, leases with unguessable tokens, and jobs run as
/// real processes through an `executor`. Subclasses only decide how to bid.
///
/// One allocation's life:
///
///   bid ─> offer ──hold(award)──> leased ──start(launch, token)──> running ──exit──> (freed)
///                    │              │  └─ before start_at ─> pending ──poll──┘
///                    │              └─ lease_expires passes ─> expired (freed)
///                    └─ refused (idempotent: the same award gets the same answer)
///
/// * `hold` reserves the offer's resources in the ledger until the lease expires
///   (now + lease_ttl); the award's own `hold_ttl` is not needed because the
///   confirm is immediate. `start` turns the hold into a committed allocation.
/// * An award carrying a clearing price (Vickrey) sets the allocation's price; a
///   clearing price below the offer's own is refused.
/// * A start before the allocation's `start_at` (a market's provisioning delay) is
///   accepted; the process is started by the first `poll` at or after `start_at`,
///   and the usage report's `started_at` says when it really started.
/// * `release` of a running allocation kills the job; capacity is freed when the
///   process has exited, and its final report comes from `poll`.
/// * The executor must not be shared with another provider: `poll` consumes its events.
///
/// A provider that plans ahead (`plan_ahead`, the local provider) also keeps every
/// allocation in an `easy_scheduler`: a busy provider offers the start its plan
/// projects instead of declining, an award it cannot start now waits in the plan
/// (`waiting`, holding no capacity in the ledger), and each `poll` runs an EASY pass
/// that starts waiting jobs when their turn comes (the first keeps its reservation,
/// later ones backfill):
///
///   hold ─> waiting ──start(launch)──> waiting+launch ──plan starts it──> running
///             │  └──plan starts it──> leased (capacity held) ──start──> running
///             └── no launch by start_at + lease_ttl ─> expired (orphaned reservation)
///
/// A running job that outlives its planned run time is planned to its interval's
/// upper end, then by doubling, so later reservations move instead of colliding.

#include "providers/backfill.hpp"
#include "providers/executor.hpp"
#include "providers/ledger.hpp"
#include "providers/provider.hpp"
#include "providers/provider_config.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tender {

/// Compares two tokens in time independent of where they differ.
bool same_token(const std::string& a, const std::string& b);

class leasing_provider : public provider {
public:
  ~leasing_provider() override;

  const std::string& name() const override { return cfg_.name; }
  const provider_config& config() const { return cfg_; }
  const ledger& book() const { return book_; }
  /// The plan, when planning ahead (else null).
  const easy_scheduler* plan() const { return plan_.get(); }
  usec plan_horizon() const { return horizon_; }
  /// When a job of `r` planned for `runtime` would start at the latest (nullopt when
  /// it can never fit or nothing is planned).
  std::optional<usec> projected_start(const resources& r, usec runtime, usec now) const;
  provider_info info(usec now) const override;

  std::variant<commit_confirm, commit_refuse> hold(const award& a, usec now) override;
  void release(const tender::release& r, usec now) override;
  std::optional<error> start(const launch& l, usec now) override;
  std::vector<usage_report> poll(usec now) override;
  scale_offer scale(const scale_request& r, usec now) override;
  void stop(const std::string& job_id, const std::string& reason, usec now) override;
  std::optional<usage_report> adopt(const allocation& a, usec now) override;

  /// The auction `auction_id` is over for this provider (it lost, or another of its
  /// offers won): forgets its offers there that were never awarded. Awards and
  /// allocations are untouched.
  void forget_offers(const std::string& auction_id);
  void lost(const decline& d) override {
    if (!d.auction_id.empty())
      forget_offers(d.auction_id);
  }

  /// How long an offer stays valid after the request's reply_by (or now, if later).
  static constexpr usec offer_validity = 10 * sec_us;
  /// SIGTERM -> SIGKILL grace when a job is stopped, released or preempted.
  static constexpr usec kill_grace = 2 * sec_us;
  /// Runtime assumed for pricing when the profile has none.
  static constexpr usec default_runtime = 3600 * sec_us;

protected:
  /// `capacity` is what the ledger may hand out (a market passes "unlimited" dims).
  leasing_provider(provider_config cfg, const resources& capacity, executor& exec,
                   token_source tokens, usec lease_ttl);
  leasing_provider(provider_config cfg, const resources& capacity, std::string run_root,
                   token_source tokens, usec lease_ttl);
  /// Owns `exec` (a virtual executor for a replay through the agent, for one).
  leasing_provider(provider_config cfg, const resources& capacity, std::unique_ptr<executor> exec,
                   token_source tokens, usec lease_ttl);

  enum class phase { leased, pending, running, waiting };

  struct alloc_record {
    allocation alloc;
    phase state = phase::leased;
    bool spot = false;
    usec runtime = 0;           ///< the profile's estimate the price was made for
    usec runtime_hi = 0;        ///< the upper end of its interval (0: unknown)
    std::uint64_t plan_key = 0; ///< its key in the plan (0: not planned)
    bool have_launch = false;   ///< waiting: the launch has arrived
    usec started_at = 0;        ///< when the process really started
    launch pending_launch;      ///< kept while `pending`
    bool killing = false;       ///< a kill was sent (release, stop or preemption)
    std::string end_reason;     ///< why we killed it, for the final report
    bool release_on_exit = true;
    launch launched;            ///< what runs (kept for a restart in place)
    usec restart_at = -1;       ///< >= 0: killed for a resize, started again at this time
  };

  /// Fills the fields every offer shares (ids, validity) and remembers it for hold().
  offer& remember(offer o, const resource_request& req, usec runtime, usec now,
                  usec runtime_hi = 0);
  /// Plans ahead (see above): offers starts up to `horizon` away when busy.
  void plan_ahead(usec horizon);
  /// A decline naming this provider.
  decline declined(const resource_request& req, std::string reason) const;
  /// Expires leases and stale offers. Call before looking at free capacity.
  void tidy(usec now);
  executor& exec() { return *exec_; }
  /// Jobs with a running process.
  std::size_t running_count() const;

  /// Checked by hold() before capacity is reserved: a refusal reason or empty.
  virtual std::string admit(const offer&, usec) { return {}; }
  /// Checked at each poll for each running job: a reason to kill it (injected preemption).
  virtual std::string interrupt(const alloc_record&, usec /*last_poll*/, usec /*now*/) {
    return {};
  }
  /// Hourly cost of `r`, for the price_delta of a resize.
  virtual micros hourly_rate(const resources& r) const = 0;
  /// Limits the executor enforces for an allocation.
  virtual exec_limits limits_for(const alloc_record& rec) const;
  /// A resize that restarts the job, as a cloud changes an instance's type (stop, change,
  /// start): the allocation becomes `to` where the ledger allows it, and a running job's
  /// process is stopped (`why`) and launched again on `to` at `now + delay`; its exit
  /// is no final report. Returns why not, or "" when done.
  std::string resize_by_restart(alloc_record& rec, const resources& to, usec delay,
                                const std::string& why, usec now);

  std::map<std::string, alloc_record> allocs_; // by allocation id

private:
  struct offer_record {
    offer o;
    usec runtime = 0;
    usec runtime_hi = 0;
  };

  /// One EASY pass: corrects overrun plans, starts the jobs whose turn has come.
  void run_plan(usec now, std::vector<usage_report>& out);
  /// Hands an allocation's capacity to it as the plan starts it.
  void plan_started(alloc_record& rec, usec now, std::vector<usage_report>& out,
                    std::vector<std::string>& failed);

  alloc_record* find_alloc(const std::string& allocation_id);
  std::optional<std::string> launch_now(alloc_record& rec, const launch& l, usec now);
  usage_report final_report(const alloc_record& rec, std::int32_t exit_code,
                            const std::string& reason, usec finished_at) const;
  void forget(const std::string& allocation_id);
  /// Takes offer number `key` off its auction's list of open offers.
  void unlist(const std::string& auction_id, std::uint64_t key);
  /// The remembered offer whose id is `offer_id` (its number parsed from the id's end,
  /// the whole id compared), or end(): ids from elsewhere never match.
  std::unordered_map<std::uint64_t, offer_record>::iterator find_offer(const std::string& offer_id);

  provider_config cfg_;
  ledger book_;
  std::unique_ptr<executor> owned_exec_;
  executor* exec_;
  token_source tokens_;
  usec lease_ttl_;

  std::uint64_t counter_ = 0;
  /// Distinguishes this instance's ids from an earlier process's (after a restart
  /// the counter starts again, and a resumed job may be bid on again).
  std::string nonce_ = random_token().substr(0, 6);
  std::int64_t offers_made_ = 0;
  std::int64_t wins_ = 0;
  usec last_poll_ = 0;
  /// Remembered offers by their number (the counter that ends their id), until awarded
  /// or stale: the hot path of every bid and award hashes an integer, not a long id.
  std::unordered_map<std::uint64_t, offer_record> offers_;
  /// The open offers of each auction (by number), so a lost auction forgets them at once.
  std::unordered_map<std::string, std::vector<std::uint64_t>> open_of_auction_;
  std::map<std::string, std::string> alloc_of_offer_;
  std::map<std::string, std::string> alloc_of_job_;
  std::map<std::string, std::pair<std::string, usec>> refused_; // offer id -> reason, until
  /// When each remembered offer / refusal goes stale, so tidying costs what expires,
  /// not what is remembered (thousands of offers are open under load).
  /// Offers are remembered in the order they expire (validity is a constant after the
  /// call's reply_by), so this is a queue; refusals are few and keep a multimap.
  std::deque<std::pair<usec, std::uint64_t>> offer_expiry_;
  std::multimap<usec, std::string> refused_expiry_;
  std::set<std::string> expired_;         // allocation ids whose lease expired
  std::deque<std::string> expired_order_; // bounds `expired_`
  std::vector<usage_report> queued_;      // final reports for the next poll
  std::unique_ptr<easy_scheduler> plan_;  // when planning ahead
  usec horizon_ = 0;
  std::uint64_t next_key_ = 1;
  std::map<std::uint64_t, std::string> alloc_of_key_; // plan key -> allocation id
};

} // namespace tender
