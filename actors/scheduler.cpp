#include "actors/scheduler.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/detail/set_thread_name.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/execution_unit.hpp>
#include <caf/logger.hpp>
#include <caf/ref_counted.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
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

/// A worker's queue of ready actors, O(1) at both ends. CAF's double_ended_queue (a
/// singly linked list) finds the tail's predecessor by walking from the head, so every
/// steal cost the length of the victim's queue: with 2,000 negotiations in flight
/// (`tender bench negotiate --window 2000`) 5.5 % of the cycles went to that walk, and
/// throughput fell with the load (14,460/s at 32 in flight, 7,088/s at 2,000; 10,626/s
/// at 2,000 with this queue), so an open-loop run that fell behind could stay behind.
class job_queue {
public:
  void append(caf::resumable* job) {
    std::lock_guard<std::mutex> g(mu_);
    jobs_.push_back(job);
    size_.store(jobs_.size());
  }
  void prepend(caf::resumable* job) {
    std::lock_guard<std::mutex> g(mu_);
    jobs_.push_front(job);
    size_.store(jobs_.size());
  }
  caf::resumable* take_head() { return take(true); }
  caf::resumable* take_tail() { return take(false); }
  /// Without the lock (seq_cst, as the wake-up protocol's other flags).
  bool empty() const { return size_.load() == 0; }

private:
  caf::resumable* take(bool head) {
    if (empty())
      return nullptr;
    std::lock_guard<std::mutex> g(mu_);
    if (jobs_.empty())
      return nullptr;
    caf::resumable* job;
    if (head) {
      job = jobs_.front();
      jobs_.pop_front();
    } else {
      job = jobs_.back();
      jobs_.pop_back();
    }
    size_.store(jobs_.size());
    return job;
  }

  std::mutex mu_;
  std::deque<caf::resumable*> jobs_;
  std::atomic<std::size_t> size_{0};
};

/// A worker as CAF's work-stealing one (caf/scheduler/worker.hpp, 0.17.6) — a queue
/// of its own, where the actors it makes ready go first (LIFO, warm caches), and
/// stealing from the others' tails — with two differences:
///
/// * No logger bookkeeping. CAF's loop casts every job it resumes from `resumable` to
///   `abstract_actor` with a `dynamic_cast` (a cross-cast through CAF's class
///   hierarchy) to tell the logger which actor runs, although Debian's CAF is built
///   with logging off; `scheduled_actor::resume` tells it again anyway. Measured with
///   callgrind on `tender bench negotiate --jobs 3000`: 141,438 casts, 1,337
///   instructions each, 9.8 % of the run's instructions.
///
/// * An idle worker is woken when there is work, instead of finding it by polling. In
///   CAF's policy a worker that found nothing sleeps 50 µs between looks, and after
///   500 of those in 10 ms naps that only a message from outside the actor system
///   ends; an actor that a busy worker makes ready goes on that worker's own queue
///   and wakes nobody. Under load the ready actors piled up behind one busy worker
///   while the other slept: 14 % of both cores idle in a closed-loop `tender bench
///   negotiate` (perf), and the open loop's latency tail. Here whoever queues work
///   wakes a parked worker unless one is already looking (as Go's scheduler does:
///   at most one worker spins, the woken one counted before it runs).
class worker final : public caf::execution_unit {
public:
  worker(size_t id, coordinator* parent, size_t throughput);

  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  void start() {
    thread_ = std::thread([this] {
      CAF_SET_LOGGER_SYS(&system());
      caf::detail::set_thread_name("tender.worker");
      system().thread_started();
      run();
      system().thread_terminates();
    });
  }

  /// From another thread: runs after what this worker has queued.
  void external_enqueue(caf::resumable* job);
  /// From this worker's thread (an actor it runs made another ready): runs next.
  void exec_later(caf::resumable* job) override;

  /// Another worker takes the oldest job, if any.
  caf::resumable* steal() { return queue_.take_tail(); }
  /// Wakes this worker if it is parked; false, nothing done, if it is not.
  bool unpark() {
    std::lock_guard<std::mutex> g(park_mu_);
    if (!parked_ || woken_)
      return false;
    woken_ = true;
    park_cv_.notify_one();
    return true;
  }
  size_t id() const { return id_; }
  std::thread& get_thread() { return thread_; }
  /// After the thread stopped: every job still queued.
  template <class F> void drain(F f) {
    while (auto* job = queue_.take_head())
      f(job);
  }

private:
  void run() {
    for (;;) {
      auto* job = next_job();
      switch (job->resume(this, max_throughput_)) {
      case caf::resumable::resume_later:
        resume_later(job);
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

  void resume_later(caf::resumable* job);
  caf::resumable* next_job();
  /// One look for work, its own queue then the others' (the caller counts as spinning).
  caf::resumable* look();
  /// Sleeps until woken (or 10 ms pass); a job if one turned up on the way.
  caf::resumable* park(bool& woken);

  job_queue queue_;
  size_t max_throughput_;
  std::thread thread_;
  size_t id_;
  coordinator* parent_;
  std::mutex park_mu_;
  std::condition_variable park_cv_;
  bool parked_ = false; ///< guarded by park_mu_
  bool woken_ = false;  ///< guarded by park_mu_: an unpark() came (and counted us spinning)
};

/// CAF's work-stealing coordinator (caf/scheduler/coordinator.hpp, 0.17.6) with the
/// quiet clock, run on a thread of its own, and the workers above.
class coordinator final : public caf::scheduler::abstract_coordinator {
public:
  using super = caf::scheduler::abstract_coordinator;

  explicit coordinator(caf::actor_system& sys) : super(sys) {}

  static caf::actor_system::module* make(caf::actor_system& sys, caf::detail::type_list<>) {
    return new coordinator(sys);
  }

  worker* worker_by_id(size_t x) { return workers_[x].get(); }

  quiet_clock& clock() noexcept override { return clock_; }

  /// Work was queued: wake a parked worker, unless one is looking already.
  void work_added() {
    // Orders the queueing before the loads below, as a parking worker announces
    // itself before it looks at the queues: one of the two sees the other.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (parked_.load(std::memory_order_relaxed) == 0 ||
        spinning_.load(std::memory_order_relaxed) > 0)
      return;
    int none = 0;
    if (!spinning_.compare_exchange_strong(none, 1))
      return; // another waker won: one spinner is enough
    for (auto& w : workers_)
      if (w->unpark())
        return; // it starts out counted as spinning
    spinning_.fetch_sub(1);
  }

  /// A job from another worker's queue, oldest first.
  caf::resumable* steal_for(const worker* self) {
    const size_t n = workers_.size();
    for (size_t k = 1; k < n; ++k)
      if (auto* job = workers_[(self->id() + k) % n]->steal())
        return job;
    return nullptr;
  }

  std::atomic<int> parked_{0};   ///< workers asleep in park()
  std::atomic<int> spinning_{0}; ///< workers looking for work without sleeping

protected:
  void start() override {
    workers_.reserve(num_workers());
    for (size_t i = 0; i < num_workers(); ++i)
      workers_.emplace_back(std::make_unique<worker>(i, this, max_throughput_));
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
      w->drain(&super::cleanup_and_release);
    clock_.cancel_dispatch_loop();
    clock_thread_.join();
  }

  void enqueue(caf::resumable* ptr) override {
    worker_by_id(next_worker_++ % num_workers())->external_enqueue(ptr);
  }

private:
  quiet_clock clock_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::atomic<size_t> next_worker_{0};
  std::thread clock_thread_;
};

worker::worker(size_t id, coordinator* parent, size_t throughput)
    : caf::execution_unit(&parent->system()), max_throughput_(throughput), id_(id),
      parent_(parent) {}

void worker::external_enqueue(caf::resumable* job) {
  queue_.append(job);
  {
    // This worker may be asleep with an empty queue and nobody left to steal for it.
    std::lock_guard<std::mutex> g(park_mu_);
    if (parked_ && !woken_) {
      woken_ = true;
      parent_->spinning_.fetch_add(1);
      park_cv_.notify_one();
      return;
    }
  }
  parent_->work_added();
}

void worker::exec_later(caf::resumable* job) {
  queue_.prepend(job);
  parent_->work_added();
}

void worker::resume_later(caf::resumable* job) {
  queue_.append(job);
  parent_->work_added();
}

caf::resumable* worker::next_job() {
  if (auto* job = queue_.take_head())
    return job;
  parent_->spinning_.fetch_add(1);
  for (;;) {
    auto* job = look();
    parent_->spinning_.fetch_sub(1);
    if (job)
      return job;
    bool woken = false;
    if ((job = park(woken)))
      return job;
    if (!woken)
      parent_->spinning_.fetch_add(1); // a timeout: look again, counted as the waker would
  }
}

caf::resumable* worker::look() {
  // One look, then park. Looking on for tens of µs (64 looks, each with a yield) before
  // parking cost CPU whenever the load left a worker idle and bought nothing: in process
  // at 7,000 negotiations/s (open loop, journal on tmpfs) 9.3-10.6 s of CPU for 40,000
  // against 7.4-7.7 s parking at once, p99 0.60-0.74 ms against 0.62-0.78 ms; closed loop
  // 18,177-19,769/s against 19,588-19,697/s. On a VM a busy-looking CPU is also one the
  // host takes back for its own I/O work (`tender bench negotiate` reports the steal).
  if (auto* job = queue_.take_head())
    return job;
  return parent_->steal_for(this);
}

caf::resumable* worker::park(bool& woken) {
  {
    std::lock_guard<std::mutex> g(park_mu_);
    parked_ = true;
    woken_ = false;
  }
  parent_->parked_.fetch_add(1); // seq_cst: before the look below
  caf::resumable* job = queue_.take_head();
  if (!job)
    job = parent_->steal_for(this);
  std::unique_lock<std::mutex> g(park_mu_);
  if (!job)
    park_cv_.wait_for(g, std::chrono::milliseconds(10), [&] { return woken_; });
  woken = woken_;
  parked_ = false;
  woken_ = false;
  g.unlock();
  parent_->parked_.fetch_sub(1);
  if (job && woken)
    parent_->spinning_.fetch_sub(1); // woken while it had found work already
  return job;
}

} // namespace

void use_tender_scheduler(caf::actor_system_config& cfg) {
  cfg.load<coordinator>();
}

} // namespace tender
