#pragma once
/// A provider's capacity over time: running jobs until their predicted ends and
/// advance reservations, in exact integers. Pure logic: time comes in as an
/// argument, so the same plan runs on the wall clock in the agent and on virtual
/// time in `tender replay`.
///
///   free
///    cap ┤            ┌──────────── reservation r2 starts ─┐
///        │   ┌────────┘                                    └──────
///        │───┘ running job a ends (predicted)
///        └───┬────────┬────────────────────────────────────┬────▶ t
///           now     a.end                                r2.end
///
/// `earliest` scans the free-capacity step function once (linear after a sort):
/// the candidate start moves past every step that cannot hold the amount, and the
/// first candidate followed by `duration` of steps that all hold it is the answer.
/// A running job is planned until its predicted end: when it outlives it, the caller
/// corrects the end (`set_end`) before planning further, as EASY++ does; `free_now`
/// (what `add_running` checks) counts it until it is removed, whatever its end.

#include "protocol/resources.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tender {

/// A countable amount of capacity: millicores, bytes of memory, whole GPUs.
struct plan_amount {
  std::int64_t cpu = 0;
  std::int64_t memory = 0;
  std::int64_t gpus = 0;

  static plan_amount of(const resources& r) { return {r.cpu, r.memory, r.gpus}; }
  plan_amount& operator+=(const plan_amount& o) {
    cpu += o.cpu, memory += o.memory, gpus += o.gpus;
    return *this;
  }
  plan_amount& operator-=(const plan_amount& o) {
    cpu -= o.cpu, memory -= o.memory, gpus -= o.gpus;
    return *this;
  }
  friend plan_amount operator+(plan_amount a, const plan_amount& b) { return a += b; }
  friend plan_amount operator-(plan_amount a, const plan_amount& b) { return a -= b; }
  friend bool operator==(const plan_amount&, const plan_amount&) = default;
  /// True when every dimension of `*this` is at most `room`'s.
  bool fits_in(const plan_amount& room) const {
    return cpu <= room.cpu && memory <= room.memory && gpus <= room.gpus;
  }
  bool negative() const { return cpu < 0 || memory < 0 || gpus < 0; }
};

class capacity_plan {
public:
  enum class kind { running, reserved };
  struct entry {
    plan_amount amount;
    usec start = 0;
    usec end = 0; ///< predicted end of a running job; end of a reservation
    kind what = kind::running;
  };
  /// One step of the free-capacity function: `free` from `at` to the next step.
  struct step {
    usec at = 0;
    plan_amount free;
  };

  explicit capacity_plan(plan_amount capacity) : capacity_(capacity), free_now_(capacity) {}

  const plan_amount& capacity() const { return capacity_; }
  /// Capacity minus every running job (reservations do not hold capacity before
  /// they start; a reservation whose start has come is counted by `free_at`).
  const plan_amount& free_now() const { return free_now_; }

  /// Adds a running job occupying `amount` from `start` until it finishes (planned
  /// until `predicted_end`). False (and nothing changes) when the id is taken or the
  /// amount does not fit the free capacity.
  bool add_running(const std::string& id, const plan_amount& amount, usec start,
                   usec predicted_end);
  /// Adds a reservation of `amount` over [start, end). False when the id is taken,
  /// the interval is empty, or the amount does not fit over it.
  bool add_reservation(const std::string& id, const plan_amount& amount, usec start, usec end);
  /// Turns reservation `id` into a running job from `now` with `predicted_end`.
  /// False when it is not a reservation or the capacity is not free now.
  bool start_reserved(const std::string& id, usec now, usec predicted_end);
  /// Moves the planned end of `id` (a correction when a job outlives its prediction).
  bool set_end(const std::string& id, usec end);
  /// Changes the amount of `id` in place, only when the plan allows it over its span.
  bool resize(const std::string& id, const plan_amount& amount, usec now);
  /// Removes a finished job or a released reservation. False when unknown.
  bool remove(const std::string& id);
  /// Drops reservations that should have started by `now - grace` (unused or
  /// orphaned) and returns their ids.
  std::vector<std::string> expire(usec now, usec grace);

  const entry* find(const std::string& id) const;
  std::size_t size() const { return entries_.size(); }
  const std::unordered_map<std::string, entry>& entries() const { return entries_; }

  /// Free capacity as a step function from `from` on (the last step lasts forever).
  std::vector<step> profile(usec from) const;
  /// The earliest instant >= `from` at which `amount` fits for `duration`; nullopt
  /// when it never fits (more than the capacity).
  std::optional<usec> earliest(const plan_amount& amount, usec duration, usec from) const;
  /// True when `amount` fits over [start, start + duration).
  bool fits(const plan_amount& amount, usec start, usec duration) const;

private:
  plan_amount capacity_;
  plan_amount free_now_; // capacity - running
  std::unordered_map<std::string, entry> entries_;
};

} // namespace tender
