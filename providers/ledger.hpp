#pragma once
/// The no-double-booking core of a provider: capacity, holds and allocations in
/// exact integers. Pure logic: time comes in as `now`, nothing else is touched.
///
///   try_hold(offer) ──> hold ──confirm──> allocation ──release──> (free)
///                        │  └──release──> (free)
///                        └──expire(now)─> (free, returned to the caller)
///
/// Invariant (checked by a randomized test): for cpu, memory and GPU count,
/// held + committed <= capacity, and each hold or allocation is counted once.
/// `gpu_type` and `gpu_memory` (per GPU) are not summed: the provider matches
/// GPU types before it asks the ledger; the ledger only counts GPUs.

#include "protocol/resources.hpp"

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace tender {

/// Empty when `free` covers `want` in cpu, memory and GPU count, else the first
/// shortfall for a person: "not enough memory: want 8 GiB, free 2 GiB".
std::string shortfall(const resources& want, const resources& free);
/// "2.5" for 2500 millicores.
std::string format_cores(millicores m);

class ledger {
public:
  /// Capacity reserved for an offer that has not become an allocation yet.
  struct hold {
    std::string offer_id;
    resources amount;
    usec expires = 0; ///< the hold is gone at this instant
  };
  /// Capacity committed to an allocation.
  struct commitment {
    std::string allocation_id;
    std::string offer_id;
    resources amount;
  };

  explicit ledger(const resources& capacity);

  const resources& capacity() const { return capacity_; }

  /// Reserves `amount` for `offer_id` until `now + ttl`. Idempotent by offer id:
  /// a live hold (or an allocation made from it) for the same offer is reported
  /// as success and nothing more is reserved. Fails with `why` when the free
  /// capacity does not cover it or the amount is negative.
  bool try_hold(const std::string& offer_id, const resources& amount, usec now, usec ttl,
                std::string* why = nullptr);

  /// Turns the live hold of `offer_id` into allocation `allocation_id`. Idempotent:
  /// confirming an offer that already became `allocation_id` succeeds again.
  /// Fails for an unknown or expired hold, or an offer confirmed under another id.
  bool confirm(const std::string& offer_id, const std::string& allocation_id, usec now,
               std::string* why = nullptr);

  /// Enters an allocation directly (re-adopting after a restart). Fails when it does
  /// not fit; succeeds without change when the allocation is already entered.
  bool commit(const std::string& allocation_id, const std::string& offer_id,
              const resources& amount, std::string* why = nullptr);

  /// Frees a hold (by offer id) or an allocation (by allocation id or by the offer id
  /// it came from). False when nothing matched.
  bool release(const std::string& id);

  /// Drops the holds expired at `now` (expires <= now), including those found
  /// expired by an earlier try_hold/confirm, and returns them.
  std::vector<hold> expire(usec now);

  /// Changes a hold (by offer id) or an allocation (by allocation id) in place,
  /// only when the capacity allows it.
  bool resize(const std::string& id, const resources& amount, std::string* why = nullptr);

  /// capacity - held - committed (GPU type and memory as in `capacity`).
  resources free() const;
  resources held() const { return held_; }
  resources committed() const { return committed_; }
  /// Dominant share of (held + committed) / capacity over cpu, memory and GPUs, in [0, 1].
  double utilisation() const;

  std::size_t holds() const { return holds_.size(); }
  std::size_t allocations() const { return allocations_.size(); }
  const hold* find_hold(const std::string& offer_id) const;
  const commitment* find_allocation(const std::string& allocation_id) const;

private:
  void sweep(usec now);

  resources capacity_;
  resources held_;
  resources committed_;
  std::map<std::string, hold> holds_;               // by offer id
  std::map<std::string, commitment> allocations_;   // by allocation id
  std::map<std::string, std::string> by_offer_;     // offer id -> allocation id
  std::vector<hold> expired_;                       // swept, not yet returned
};

} // namespace tender
