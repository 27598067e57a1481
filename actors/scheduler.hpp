#pragma once
// The agent's and the benchmarks' CAF scheduler: CAF's work stealing, with an actor
// clock that is not woken when an actor that never set a timeout ends, workers that
// do not look up, for CAF's (disabled) logger, which actor they resume, and idle
// workers that are woken when there is work instead of polling for it.

namespace caf {
class actor_system_config;
}

namespace tender {

/// Loads the scheduler into `cfg` (before the actor system is made from it).
///
/// Why: CAF 0.17 ends every actor with a `cancel_timeouts` call on its clock, which
/// pushes an event through the clock thread's ring buffer and wakes that thread. An
/// auction round, a negotiation and a job are short-lived actors that mostly set no
/// timeout (their alarms go through the shared round timer), so at thousands of
/// negotiations a second those wake-ups were most of the clock's work (perf uprobes:
/// 15,013 cancellations against 630 scheduled messages for 5,000 negotiations). This
/// clock remembers which actors set a timeout and passes only their cancellations on.
///
/// CAF's worker loop also casts every job it resumes to an actor with a `dynamic_cast`,
/// only to tell the logger its id: 9.8 % of the instructions of `tender bench negotiate`
/// (callgrind). These workers are CAF's without that.
///
/// In CAF's policy an idle worker looks for work every 50 µs, then naps 10 ms at a
/// time, and an actor that a busy worker makes ready waits on that worker's queue
/// until someone looks. Here queueing work wakes a parked worker unless one is already
/// looking (actors/scheduler.cpp).
void use_tender_scheduler(caf::actor_system_config& cfg);

} // namespace tender
