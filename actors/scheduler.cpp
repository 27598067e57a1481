#include "actors/scheduler.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/detail/set_thread_name.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/scheduler/coordinator.hpp>

#include <array>
#include <mutex>
#include <thread>
#include <unordered_set>

namespace tender {

namespace {

/// CAF's thread-safe clock, told only about the ends of actors that set a timeout.
/// Which actors did is kept in shards by actor id (actors on both workers end at once).
class quiet_clock final : public caf::detail::thread_safe_actor_clock {
public:
  using super = caf::detail::thread_safe_actor_clock;

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                            uint64_t id) override {
    mark(self);
    super::set_ordinary_timeout(t, self, type, id);
  }

  void set_request_timeout(time_point t, caf::abstract_actor* self, caf::message_id id) override {
    mark(self);
    super::set_request_timeout(t, self, id);
  }

  void set_multi_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                         uint64_t id) override {
    mark(self);
    super::set_multi_timeout(t, self, type, id);
  }

  void cancel_timeouts(caf::abstract_actor* self) override {
    if (unmark(self))
      super::cancel_timeouts(self);
  }

private:
  struct shard {
    std::mutex mu;
    std::unordered_set<caf::actor_id> ids;
  };

  shard& shard_of(caf::abstract_actor* self) { return shards_[self->id() % shards_.size()]; }

  void mark(caf::abstract_actor* self) {
    auto& s = shard_of(self);
    std::lock_guard<std::mutex> g(s.mu);
    s.ids.insert(self->id());
  }

  bool unmark(caf::abstract_actor* self) {
    auto& s = shard_of(self);
    std::lock_guard<std::mutex> g(s.mu);
    return s.ids.erase(self->id()) > 0;
  }

  std::array<shard, 16> shards_;
};

/// CAF's work-stealing coordinator with the quiet clock, run on a thread of its own
/// (the base class's clock thread idles: nothing is ever scheduled on its clock).
class coordinator final : public caf::scheduler::coordinator<caf::policy::work_stealing> {
public:
  using super = caf::scheduler::coordinator<caf::policy::work_stealing>;

  explicit coordinator(caf::actor_system& sys) : super(sys) {}

  static caf::actor_system::module* make(caf::actor_system& sys, caf::detail::type_list<>) {
    return new coordinator(sys);
  }

  quiet_clock& clock() noexcept override { return clock_; }

protected:
  void start() override {
    thread_ = std::thread([this] {
      caf::detail::set_thread_name("tender.clock");
      system().thread_started();
      clock_.run_dispatch_loop();
      system().thread_terminates();
    });
    super::start();
  }

  void stop() override {
    super::stop(); // stops the actors and joins the workers
    clock_.cancel_dispatch_loop();
    thread_.join();
  }

private:
  quiet_clock clock_;
  std::thread thread_;
};

} // namespace

void use_tender_scheduler(caf::actor_system_config& cfg) {
  cfg.load<coordinator>();
}

} // namespace tender
