#include "actors/scheduler.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/detail/set_thread_name.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/execution_unit.hpp>
#include <caf/logger.hpp>
#include <caf/policy/work_stealing.hpp>
#include <caf/ref_counted.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

#include <array>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

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

class coordinator;

/// CAF's work-stealing worker (caf/scheduler/worker.hpp, 0.17.6) without its logger
/// bookkeeping. CAF's loop casts every job it resumes from `resumable` to
/// `abstract_actor` with a `dynamic_cast` (a cross-cast through CAF's class
/// hierarchy) to tell the logger which actor runs, although Debian's CAF is built
/// with logging off; `scheduled_actor::resume` tells it again anyway. Measured with
/// callgrind on `tender bench negotiate --jobs 3000`: 141,438 casts, 1,337
/// instructions each, 9.8 % of the run's instructions, and 1.9 % more in the logger
/// calls around them. The rest is CAF's loop as it is.
class worker final : public caf::execution_unit {
public:
  using policy = caf::policy::work_stealing;
  using policy_data = policy::worker_data;

  worker(size_t id, coordinator* parent, const policy_data& init, size_t throughput);

  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  void start() {
    thread_ = std::thread([this] {
      CAF_SET_LOGGER_SYS(&system());
      caf::detail::set_thread_name("caf.multiplexer");
      system().thread_started();
      run();
      system().thread_terminates();
    });
  }

  void external_enqueue(caf::resumable* job) { policy_.external_enqueue(this, job); }
  void exec_later(caf::resumable* job) override { policy_.internal_enqueue(this, job); }

  // What CAF's work-stealing policy asks of a worker.
  coordinator* parent() { return parent_; }
  size_t id() const { return id_; }
  policy_data& data() { return data_; }
  std::thread& get_thread() { return thread_; }

private:
  void run() {
    for (;;) {
      auto* job = policy_.dequeue(this);
      switch (job->resume(this, max_throughput_)) {
      case caf::resumable::resume_later:
        policy_.resume_job_later(this, job);
        break;
      case caf::resumable::done:
      case caf::resumable::awaiting_message:
        intrusive_ptr_release(job);
        break;
      case caf::resumable::shutdown_execution_unit:
        return;
      }
    }
  }

  size_t max_throughput_;
  std::thread thread_;
  size_t id_;
  coordinator* parent_;
  policy_data data_;
  policy policy_;
};

/// CAF's work-stealing coordinator (caf/scheduler/coordinator.hpp, 0.17.6) with the
/// quiet clock, run on a thread of its own, and the workers above.
class coordinator final : public caf::scheduler::abstract_coordinator {
public:
  using super = caf::scheduler::abstract_coordinator;
  using policy = caf::policy::work_stealing;

  explicit coordinator(caf::actor_system& sys) : super(sys), data_(this) {}

  static caf::actor_system::module* make(caf::actor_system& sys, caf::detail::type_list<>) {
    return new coordinator(sys);
  }

  // What CAF's work-stealing policy asks of a coordinator.
  worker* worker_by_id(size_t x) { return workers_[x].get(); }
  policy::coordinator_data& data() { return data_; }

  quiet_clock& clock() noexcept override { return clock_; }

protected:
  void start() override {
    worker::policy_data init{this};
    workers_.reserve(num_workers());
    for (size_t i = 0; i < num_workers(); ++i)
      workers_.emplace_back(std::make_unique<worker>(i, this, init, max_throughput_));
    for (auto& w : workers_)
      w->start();
    clock_thread_ = std::thread([this] {
      caf::detail::set_thread_name("tender.clock");
      system().thread_started();
      clock_.run_dispatch_loop();
      system().thread_terminates();
    });
    super::start();
  }

  void stop() override {
    // As CAF's: a job that makes the worker that runs it stop, sent to each worker
    // until every one has stopped; then the actors, the threads and what is queued.
    struct shutdown_helper : caf::resumable, caf::ref_counted {
      caf::resumable::resume_result resume(caf::execution_unit* ptr, size_t) override {
        std::unique_lock<std::mutex> guard(mtx);
        last_worker = ptr;
        cv.notify_all();
        return caf::resumable::shutdown_execution_unit;
      }
      void intrusive_ptr_add_ref_impl() override { intrusive_ptr_add_ref(this); }
      void intrusive_ptr_release_impl() override { intrusive_ptr_release(this); }
      std::mutex mtx;
      std::condition_variable cv;
      caf::execution_unit* last_worker = nullptr;
    };
    shutdown_helper sh;
    std::set<worker*> alive;
    for (size_t i = 0; i < num_workers(); ++i) {
      alive.insert(worker_by_id(i));
      sh.ref(); // the helper lives on the stack: never let a worker free it
    }
    while (!alive.empty()) {
      (*alive.begin())->external_enqueue(&sh);
      {
        std::unique_lock<std::mutex> guard(sh.mtx);
        sh.cv.wait(guard, [&] { return sh.last_worker != nullptr; });
      }
      alive.erase(static_cast<worker*>(sh.last_worker));
      sh.last_worker = nullptr;
    }
    stop_actors();
    for (auto& w : workers_)
      w->get_thread().join();
    for (auto& w : workers_)
      policy_.foreach_resumable(w.get(), &super::cleanup_and_release);
    clock_.cancel_dispatch_loop();
    clock_thread_.join();
  }

  void enqueue(caf::resumable* ptr) override { policy_.central_enqueue(this, ptr); }

private:
  quiet_clock clock_;
  std::vector<std::unique_ptr<worker>> workers_;
  policy::coordinator_data data_;
  policy policy_;
  std::thread clock_thread_;
};

worker::worker(size_t id, coordinator* parent, const policy_data& init, size_t throughput)
    : caf::execution_unit(&parent->system()), max_throughput_(throughput), id_(id), parent_(parent),
      data_(init) {}

} // namespace

void use_tender_scheduler(caf::actor_system_config& cfg) {
  cfg.load<coordinator>();
}

} // namespace tender
