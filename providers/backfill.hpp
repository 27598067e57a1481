#pragma once
/// EASY backfilling (Lifka 1995; Mu'alem and Feitelson 2001) over a provider's
/// capacity, with predicted run times. Pure logic on an injected `now`: the local
/// provider drives it on the wall clock, `tender replay` on a trace's virtual time.
///
/// One scheduling pass at `now`:
///
///   1. start waiting jobs in arrival order while the first one fits now;
///   2. the first job that does not fit gets a reservation at the shadow time: the
///      earliest instant at which it fits when running jobs end as predicted; the
///      capacity left over at that instant beside it is the "extra";
///   3. later jobs, in arrival order (`fcfs`) or shortest planned run first
///      (`shortest_first`, SJBF), start now when they fit now and either end by the
///      shadow time (by their planned run time) or fit in the extra (which they then
///      use up). The reservation is never delayed, as long as predictions hold.
///
/// A job's planned run time (`estimate`) is what the plan counts on: the user's
/// requested time for classic EASY, a prediction's upper bound for tender. When a
/// running job outlives it, `overdue` lists it and the caller `correct`s its
/// planned end (to the requested time, a wider bound, ...) before the next pass.
///
///   waiting ──schedule()──> running ──finish()──> (gone)
///      │                       └── overdue(now) ──correct()──┘
///      └──cancel()──> (gone)

#include "providers/capacity_plan.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tender {

enum class backfill_order { fcfs, shortest_first };

/// "fcfs" / "shortest-first".
const char* to_string(backfill_order o);

struct waiting_job {
  std::uint64_t key = 0; ///< the caller's id for the job, unique while it is known
  plan_amount amount;
  usec estimate = 0;       ///< planned run time (> 0)
  usec order_estimate = 0; ///< what shortest-first sorts by (0: `estimate`)
  usec submitted = 0;      ///< its place in the queue (earlier first; ties by arrival)
};

class easy_scheduler {
public:
  easy_scheduler(plan_amount capacity, backfill_order order);

  const plan_amount& capacity() const { return capacity_; }
  backfill_order order() const { return order_; }

  /// Queues a job. Empty on success, else why not: a key already known, an amount
  /// larger than the whole capacity (it could never start) or negative, or a
  /// non-positive estimate.
  std::string submit(const waiting_job& j);
  /// Removes a waiting job. False when it is not waiting.
  bool cancel(std::uint64_t key);

  struct start {
    std::uint64_t key = 0;
    usec predicted_end = 0;
    bool backfilled = false; ///< started ahead of an earlier waiting job
  };
  /// One pass at `now`: the jobs to start now (they count as running from `now`).
  std::vector<start> schedule(usec now);

  /// Enters a job that is already running (re-adopted after a restart) with its
  /// planned end. False when the key is known or the amount is not free now.
  bool add_running(std::uint64_t key, const plan_amount& amount, usec start, usec planned_end);
  /// A running job ended (or was stopped). False when it was not running.
  bool finish(std::uint64_t key);
  /// Running jobs whose planned end is at or before `now`, earliest first.
  std::vector<std::uint64_t> overdue(usec now) const;
  /// Sets a running job's planned end (a correction). False when not running.
  bool correct(std::uint64_t key, usec planned_end);
  /// Changes a running job's amount in place when the free capacity allows it.
  bool resize(std::uint64_t key, const plan_amount& amount);
  /// The earliest planned end among running jobs, if any.
  std::optional<usec> next_planned_end() const;

  /// The first waiting job's reservation from the last pass (nullopt when it started
  /// or nothing waits).
  struct reservation {
    std::uint64_t key = 0;
    usec start = 0;
    plan_amount extra;
  };
  const std::optional<reservation>& head_reservation() const { return head_; }

  /// The plan as a person reads it: running jobs to their planned ends, the head's
  /// reservation, and the other waiting jobs placed in arrival order where they
  /// would fit if nothing were backfilled (an upper bound on their start).
  struct planned {
    enum class kind { running, reserved, projected };
    std::uint64_t key = 0;
    kind what = kind::running;
    plan_amount amount;
    usec start = 0;
    usec end = 0;
  };
  std::vector<planned> projection(usec now) const;
  /// The same plan as free capacity over time (from `projection`).
  capacity_plan plan(usec now) const { return plan_of(capacity_, projection(now)); }
  /// A projection as a capacity plan.
  static capacity_plan plan_of(const plan_amount& capacity, const std::vector<planned>& projection);
  /// When a job of `amount` and `estimate` submitted now would start at the latest if
  /// no later job were let ahead of it (used for an offer's earliest start).
  std::optional<usec> projected_start(const plan_amount& amount, usec estimate, usec now) const;

  std::size_t waiting() const { return queue_.size(); }
  std::size_t running() const { return running_.size(); }
  const plan_amount& free_now() const { return free_; }
  bool is_waiting(std::uint64_t key) const { return by_key_.count(key) > 0; }
  bool is_running(std::uint64_t key) const { return running_.count(key) > 0; }

private:
  struct run_rec {
    plan_amount amount;
    usec start = 0;
    usec end = 0;
  };
  /// A waiting job's place: its `submitted` time, then its arrival (ties).
  using place = std::pair<usec, std::uint64_t>;
  void start_job(place at, usec now, bool backfilled, std::vector<start>& out);

  plan_amount capacity_;
  backfill_order order_;
  plan_amount free_;
  std::uint64_t next_seq_ = 0;
  std::map<place, waiting_job> queue_;             // by (submitted, arrival)
  std::unordered_map<std::uint64_t, place> by_key_; // key -> place
  std::set<std::pair<usec, place>> by_estimate_;    // (order estimate, place)
  std::unordered_map<std::uint64_t, run_rec> running_;      // by key
  std::set<std::pair<usec, std::uint64_t>> by_end_;         // (planned end, key)
  std::optional<reservation> head_;
};

} // namespace tender
