#include "actors/task_cpu.hpp"

#include <gtest/gtest.h>

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

namespace tender {
namespace {

namespace fs = std::filesystem;

struct fake_proc {
  fs::path root;
  fake_proc() {
    char tmpl[] = "/tmp/tender-proc-XXXXXX";
    root = mkdtemp(tmpl);
  }
  ~fake_proc() { fs::remove_all(root); }
  void task(int pid, const std::string& tid, const std::string& comm,
            const std::string& schedstat) {
    auto dir = root / std::to_string(pid) / "task" / tid;
    fs::create_directories(dir);
    std::ofstream(dir / "comm") << comm << "\n";
    if (!schedstat.empty())
      std::ofstream(dir / "schedstat") << schedstat << "\n";
  }
};

const task_sample* find(const std::vector<task_sample>& v, int tid) {
  auto it = std::find_if(v.begin(), v.end(), [&](const task_sample& t) { return t.tid == tid; });
  return it == v.end() ? nullptr : &*it;
}

TEST(task_cpu, reads_every_thread_of_a_process_and_skips_what_is_not_a_readable_thread) {
  fake_proc p;
  p.task(42, "42", "tender", "1500000000 20000 7");
  p.task(42, "43", "tender.worker", "250 3000000 2");
  p.task(42, "44", "gone", "");           // ended between the listing and the reading
  p.task(42, "45", "garbled", "abc 1 1"); // not numbers
  p.task(42, "self", "not-a-tid", "1 1 1");
  p.task(7, "7", "other", "9 9 9"); // another process
  auto v = read_tasks(p.root.string(), 42);
  ASSERT_EQ(v.size(), 2u);
  auto* main = find(v, 42);
  ASSERT_NE(main, nullptr);
  EXPECT_EQ(main->pid, 42);
  EXPECT_EQ(main->comm, "tender");
  EXPECT_EQ(main->run_ns, 1500000000);
  EXPECT_EQ(main->wait_ns, 20000);
  auto* worker = find(v, 43);
  ASSERT_NE(worker, nullptr);
  EXPECT_EQ(worker->comm, "tender.worker");
  EXPECT_EQ(worker->run_ns, 250);
  EXPECT_EQ(worker->wait_ns, 3000000);
  EXPECT_TRUE(read_tasks(p.root.string(), 99).empty()); // no such process
  EXPECT_TRUE(read_tasks((p.root / "nowhere").string(), 42).empty());
}

TEST(task_cpu, sums_what_each_thread_used_between_two_samples_by_part) {
  auto t = [](int pid, int tid, std::string comm, std::int64_t run, std::int64_t wait) {
    return task_sample{pid, tid, std::move(comm), run, wait};
  };
  std::vector<task_sample> before = {
      t(1, 1, "tender", 1'000'000'000, 0),
      t(1, 2, "tender.worker", 2'000'000'000, 100'000'000),
      t(1, 3, "tender.worker", 500'000'000, 0),
      t(1, 9, "ended", 7'000'000'000, 0),       // gone by `after`: not counted
      t(2, 20, "exe", 3'000'000'000, 0),        // a provider process
      t(1, 5, "old thread", 9'000'000'000, 0)}; // its tid is reused below
  std::vector<task_sample> after = {
      t(1, 1, "tender", 1'250'000'000, 0),
      t(1, 2, "tender.worker", 3'000'000'000, 300'000'000),
      t(1, 3, "tender.worker", 1'000'000'000, 50'000'000),
      t(1, 4, "tender.worker", 100'000'000, 0), // started meanwhile: from zero
      t(2, 20, "exe", 3'400'000'000, 0),
      t(1, 5, "new thread", 200'000'000, 0)}; // less than before: a new thread
  auto parts = cpu_by_part(before, after, [](const task_sample& s) {
    if (s.pid == 2)
      return std::string("providers");
    return s.comm == "tender.worker" ? std::string("workers") : std::string("other");
  });
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].part, "other"); // in the order first met in `after`
  EXPECT_NEAR(parts[0].cpu_s, 0.25 + 0.2, 1e-9);
  EXPECT_EQ(parts[0].threads, 2);
  EXPECT_EQ(parts[1].part, "workers");
  EXPECT_NEAR(parts[1].cpu_s, 1.0 + 0.5 + 0.1, 1e-9);
  EXPECT_NEAR(parts[1].wait_s, 0.2 + 0.05, 1e-9);
  EXPECT_EQ(parts[1].threads, 3);
  EXPECT_EQ(parts[2].part, "providers");
  EXPECT_NEAR(parts[2].cpu_s, 0.4, 1e-9);
  EXPECT_TRUE(cpu_by_part(before, {}, [](const task_sample&) { return std::string("x"); }).empty());
}

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

TEST(task_cpu, a_named_thread_of_this_process_is_found_with_the_cpu_it_used) {
  std::atomic<int> phase{0};
  std::thread spinner([&] {
    pthread_setname_np(pthread_self(), "tc.spinner");
    phase = 1;
    while (phase.load() == 1)
      std::this_thread::yield();
    // Uses 60 ms of CPU, by its own clock (however long that takes here).
    const double t0 = thread_cpu_s();
    volatile std::uint64_t x = 0;
    while (thread_cpu_s() - t0 < 0.06)
      for (int i = 0; i < 10000; ++i)
        x = x + static_cast<std::uint64_t>(i);
    phase = 3;
    while (phase.load() == 3)
      std::this_thread::yield();
  });
  while (phase.load() != 1)
    std::this_thread::yield();
  auto before = read_tasks("/proc", getpid());
  phase = 2;
  while (phase.load() != 3)
    std::this_thread::yield();
  auto after = read_tasks("/proc", getpid());
  phase = 4;
  spinner.join();
  auto parts = cpu_by_part(before, after, [](const task_sample& s) {
    return s.comm == "tc.spinner" ? std::string("spinner") : std::string("rest");
  });
  auto it = std::find_if(parts.begin(), parts.end(),
                         [](const cpu_part& p) { return p.part == "spinner"; });
  ASSERT_NE(it, parts.end()) << "the named thread was not among this process's threads";
  EXPECT_EQ(it->threads, 1);
  EXPECT_GE(it->cpu_s, 0.06);
  EXPECT_LT(it->cpu_s, 5.0);
}

} // namespace
} // namespace tender
