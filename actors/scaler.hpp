#pragma once
/// The scaler: what a running job's deviations lead to. A plain class (no CAF, no
/// clock): the job actor owns one per running job, feeds it the job's usage samples,
/// asks `check(now)` after each report, carries out the plan it returns (a resize
/// request to the provider, or a move), and tells it how that ended. Every outcome
/// comes back as a `scaling_decision` for the journal.
///
///   usage samples --> deviation_detector --> scaling_need (hysteresis already applied)
///                                                |
///                   quiet for this kind? --------+--> nothing
///                                                |
///        overrun_runtime --> extend (no provider involved; journaled, applied)
///        in place possible --> in_place: scale_request --> provider
///                                  |-- granted --> applied; the job keeps running
///                                  \-- refused --> grow_memory and moves allowed ?
///                                                   |-- yes --> move
///                                                   \-- no  --> quiet for this kind
///        disruptive (in place known impossible):
///            grow_memory and moves allowed --> move: a new allocation elsewhere,
///                                              the job restarted on it
///            otherwise --> none (journaled once, then quiet for this kind)
///
/// A provider that applies a change by restarting the job (a market changing the
/// instance's type answers with a `delay`) spent the hour's disruptive budget, and later
/// changes on that allocation count as disruptive.
///
/// Only memory growth moves a job: without more memory it is killed, while a job short
/// of CPU only runs slower and a job holding too much only costs more — neither is worth
/// losing the work done so far (the job spec has no checkpoint/restart commands, so a
/// move is a restart). "Quiet" lasts `disruptive_gap`, at least a minute, so a need that
/// cannot be met is journaled once, not at every sample. A shrink never goes below 0.1
/// core or 64 MiB (an idle job would otherwise be squeezed to nothing).

#include "config/node_config.hpp"
#include "models/deviation.hpp"
#include "protocol/allocation.hpp"
#include "protocol/scaling.hpp"
#include "protocol/usage.hpp"

#include <map>
#include <optional>
#include <string>

namespace tender {

/// The detector's knobs from `[scaling]`.
deviation_options detector_options(const scaling_config& c);

enum class scaling_action { in_place, move, extend, none };
const char* to_string(scaling_action a);

/// What to do about one need, with the amounts before and asked for.
struct scaling_plan {
  scaling_need need;
  scaling_action action = scaling_action::none;
  resources held;   ///< the allocation's resources now
  resources wanted; ///< what the change asks for (== held for `extend` and `none`)
  friend bool operator==(const scaling_plan&, const scaling_plan&) = default;
};

/// A provider's answer (or its silence) to an in-place request.
struct scaling_answer {
  scaling_decision decision;
  bool move = false; ///< refused, and the job should move
};

class scaler {
public:
  /// `a` is the job's allocation, `started_at` when its process started and
  /// `runtime_hi` the upper end of its predicted run time (a duration, 0 = none).
  scaler(std::string job_id, const allocation& a, usec started_at, usec runtime_hi,
         const scaling_config& c);

  void observe(const usage_sample& s);
  /// The plan for the need to act on now, if any. Grown amounts are capped at
  /// `max_step` times what is held.
  std::optional<scaling_plan> check(usec now);

  /// A scale_request asking the allocation's provider to carry out `p` in place.
  scale_request request(const scaling_plan& p) const;
  /// `p` asked in place; `o` is the provider's answer.
  scaling_answer answered(const scaling_plan& p, const scale_offer& o, usec now);
  /// `p` asked in place and the provider did not answer (`why`): a refusal.
  scaling_answer unanswered(const scaling_plan& p, const std::string& why, usec now);
  /// An `extend` plan: the predicted end moves; nothing else changes.
  scaling_decision extended(const scaling_plan& p, usec now);
  /// A `none` plan: journaled once, then quiet for this kind.
  scaling_decision not_acted(const scaling_plan& p, usec now);
  /// The run ended because its GPU ran out of memory (its stderr said so: `line`; it
  /// needs `needed` bytes per GPU at least): a move to a GPU with that much memory plus
  /// `memory_margin`, of any type (the job restarts on it), when moves are allowed and
  /// none was made in the last `disruptive_gap`; otherwise a `none` plan.
  scaling_plan gpu_memory_short(bytes_t needed, const std::string& line, usec now) const;
  /// What a move asks the other providers for.
  resources move_target(const scaling_plan& p) const { return p.wanted; }
  /// The job moved to `to` (the old run ended, the new one was launched at `now`):
  /// the detector starts over on the new allocation, keeping the hysteresis clocks.
  scaling_decision moved(const scaling_plan& p, const allocation& to, const std::string& detail,
                         usec now);
  /// The move could not be made (no provider, or the launch failed).
  scaling_decision move_failed(const scaling_plan& p, const std::string& why, usec now);

  const job_holding& holding() const { return detector_.holding(); }
  const resources& allocated() const { return held_; }
  const std::string& allocation_id() const { return allocation_id_; }
  /// Why the detector's gate held the last candidate back ("" when none).
  const std::string& held_back() const { return detector_.held_back(); }

private:
  scaling_decision decision(const scaling_plan& p, usec now) const;
  void quiet(scaling_kind k, usec now);
  usec quiet_period() const;

  std::string job_id_;
  std::string allocation_id_;
  std::string provider_;
  resources held_;
  scaling_config cfg_;
  deviation_detector detector_;
  std::map<scaling_kind, usec> quiet_until_;
  usec last_disruptive_ = -1; ///< the last move or restarting resize
};

} // namespace tender
