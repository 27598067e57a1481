// Real processes, real cgroups where this machine has writable ones. No timing
// thresholds: every wait is a poll loop with a generous overall limit.
//
// Memory, CPU and I/O behaviour comes from `tender_exec_helper`
// (providers/testdata/exec_helper.cpp), built with the tests, so nothing here
// depends on an interpreter being installed.

#include "providers/executor.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#ifndef TENDER_EXEC_HELPER
#error "TENDER_EXEC_HELPER must name the tender_exec_helper binary"
#endif

namespace tender {
namespace {

namespace fs = std::filesystem;

constexpr bytes_t mib = 1 << 20;
const std::string helper = TENDER_EXEC_HELPER;

usec wall_now() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

void nap(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Sets or clears TENDER_EXECUTOR_MODE for the lifetime of a test.
class mode_env {
public:
  explicit mode_env(const std::string& mode) {
    if (const char* v = std::getenv("TENDER_EXECUTOR_MODE"))
      saved_ = v;
    if (mode == "rlimit")
      ::setenv("TENDER_EXECUTOR_MODE", "rlimit", 1);
    else
      ::unsetenv("TENDER_EXECUTOR_MODE");
  }
  ~mode_env() {
    if (saved_)
      ::setenv("TENDER_EXECUTOR_MODE", saved_->c_str(), 1);
    else
      ::unsetenv("TENDER_EXECUTOR_MODE");
  }

private:
  std::optional<std::string> saved_;
};

/// Runs every test twice: with whatever limits the machine offers ("auto"), and
/// with the rlimit fallback forced.
class executor_test : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    env_ = std::make_unique<mode_env>(GetParam());
    char tmpl[] = "/tmp/tender-exec-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ex_ = std::make_unique<executor>(root_);
    if (GetParam() == "rlimit") {
      ASSERT_EQ(ex_->mode(), "rlimit");
    }
  }

  void TearDown() override {
    for (auto& id : ex_->running_jobs())
      ex_->kill(id, "test teardown", 0, wall_now());
    for (int i = 0; i < 200 && !ex_->running_jobs().empty(); ++i) {
      pump();
      nap(50);
    }
    ex_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  bool cgroups() const { return ex_->mode() != "rlimit"; }

  /// Job ids are global in the cgroup tree: make them unique per test process.
  std::string id(const std::string& name) const {
    return name + "-" + GetParam() + "-" + std::to_string(::getpid());
  }

  exec_state launch(const std::string& job, std::vector<std::string> argv,
                    exec_limits limits = {}) {
    exec_request req;
    req.job_id = job;
    req.argv = std::move(argv);
    req.limits = limits;
    auto r = ex_->launch(req, wall_now());
    if (auto* e = std::get_if<std::string>(&r)) {
      ADD_FAILURE() << "launch " << job << ": " << *e;
      return {};
    }
    return std::get<exec_state>(r);
  }

  /// One poll; remembers every exit so that waiting for one job never loses
  /// another job's news.
  std::vector<exec_event> pump() {
    auto events = ex_->poll(wall_now());
    for (auto& ev : events)
      if (ev.exited)
        exits_[ev.job_id] = *ev.exited;
    return events;
  }

  /// Polls at 20 Hz until `job` exits (20 s at most); its samples go to `samples`.
  exit_info wait_exit(const std::string& job, std::vector<usage_sample>* samples = nullptr) {
    for (int i = 0; i < 400; ++i) {
      if (exits_.count(job))
        return exits_[job];
      for (auto& ev : pump())
        if (ev.job_id == job && ev.sample && samples)
          samples->push_back(*ev.sample);
      if (!exits_.count(job))
        nap(50);
    }
    ADD_FAILURE() << "job " << job << " did not exit within 20 s";
    return {};
  }

  /// Polls until `pred(sample)` holds (20 s at most); returns the last sample.
  template <class Pred> std::optional<usage_sample> wait_sample(const std::string& job, Pred pred) {
    std::optional<usage_sample> last;
    for (int i = 0; i < 400; ++i) {
      for (auto& ev : pump())
        if (ev.job_id == job && ev.sample) {
          last = ev.sample;
          if (pred(*last))
            return last;
        }
      if (exits_.count(job)) {
        ADD_FAILURE() << "job " << job << " exited early: " << exits_[job].reason;
        return last;
      }
      nap(50);
    }
    ADD_FAILURE() << "job " << job << ": condition not reached within 20 s";
    return last;
  }

  /// Polls (keeping the job monitored) until its stdout contains `text`.
  void wait_output(const std::string& job, const std::string& text) {
    for (int i = 0; i < 400; ++i) {
      if (read_text(ex_->stdout_path(job)).find(text) != std::string::npos)
        return;
      pump();
      nap(50);
    }
    ADD_FAILURE() << "job " << job << ": '" << text << "' not in stdout within 20 s";
  }

  struct cpu_window {
    millicores job = 0; ///< mean of the executor's samples
    double others = 0;  ///< cores the rest of the machine used meanwhile
  };

  /// Mean cpu of the samples taken over about `seconds`, and how busy the rest of
  /// the machine was meanwhile (from /proc/stat): a job can only get what others
  /// leave, so "about two cores" is checkable only on an otherwise idle machine.
  cpu_window mean_cpu(const std::string& job, double seconds) {
    // One sample first: it covers the start-up, which the mean leaves out.
    wait_sample(job, [](const usage_sample&) { return true; });
    const usec t0 = wall_now();
    const long long busy0 = machine_busy_ticks();
    millicores sum = 0;
    int n = 0;
    while (wall_now() < t0 + static_cast<usec>(seconds * sec_us)) {
      nap(100);
      for (auto& ev : pump())
        if (ev.job_id == job && ev.sample) {
          sum += ev.sample->cpu;
          ++n;
        }
    }
    const double wall = double(wall_now() - t0) / sec_us;
    const double busy = double(machine_busy_ticks() - busy0) / ::sysconf(_SC_CLK_TCK) / wall;
    EXPECT_GT(n, 0);
    cpu_window w;
    w.job = n ? sum / n : 0;
    w.others = busy - double(w.job) / 1000;
    return w;
  }

  static long long machine_busy_ticks() {
    std::istringstream in(read_text("/proc/stat"));
    std::string cpu;
    long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    return user + nice + system + irq + softirq + steal;
  }

  /// The shim's wait4() accounting of a finished job: CPU seconds, user + system.
  double rusage_cpu_seconds(const std::string& job) {
    std::istringstream in(read_text(root_ + "/" + job + "/exit"));
    std::string line;
    double s = 0;
    while (std::getline(in, line))
      if (line.rfind("utime_us=", 0) == 0 || line.rfind("stime_us=", 0) == 0)
        s += std::stod(line.substr(9)) / 1e6;
    return s;
  }

  std::map<std::string, exit_info> exits_;
  std::unique_ptr<mode_env> env_;
  std::string root_;
  std::unique_ptr<executor> ex_;
};

INSTANTIATE_TEST_SUITE_P(modes, executor_test, ::testing::Values("auto", "rlimit"),
                         [](const auto& info) { return info.param; });

TEST_P(executor_test, exit_codes_are_reported) {
  auto t = id("true"), f = id("false");
  launch(t, {"true"});
  launch(f, {"false"});
  auto et = wait_exit(t);
  auto ef = wait_exit(f);
  EXPECT_EQ(et.exit_code, 0);
  EXPECT_EQ(et.signal, 0);
  EXPECT_EQ(et.reason, "exited 0");
  EXPECT_EQ(ef.exit_code, 1);
  EXPECT_EQ(ef.reason, "exited 1");
  EXPECT_GT(et.finished_at, 0);
  EXPECT_FALSE(ex_->running(t));
}

TEST_P(executor_test, missing_or_non_executable_commands_are_refused_before_forking) {
  exec_request req;
  req.job_id = id("missing");
  req.argv = {"tender-no-such-command"};
  auto r = ex_->launch(req, wall_now());
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_EQ(std::get<std::string>(r), "command not found: tender-no-such-command");

  const std::string plain = root_ + "/plain.sh";
  std::ofstream(plain) << "#!/bin/sh\necho hi\n";
  fs::permissions(plain, fs::perms::owner_read | fs::perms::owner_write);
  req.argv = {plain};
  r = ex_->launch(req, wall_now());
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_EQ(std::get<std::string>(r), "not executable: " + plain);

  req.argv = {"plain.sh"};
  req.env = {{"PATH", root_}};
  r = ex_->launch(req, wall_now());
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_EQ(std::get<std::string>(r), "not executable: " + plain);
  EXPECT_FALSE(ex_->running(req.job_id));
}

TEST_P(executor_test, stdout_and_stderr_are_captured) {
  auto j = id("echo");
  launch(j, {"sh", "-c", "echo hello; echo oops >&2"});
  EXPECT_EQ(wait_exit(j).reason, "exited 0");
  EXPECT_EQ(read_text(ex_->stdout_path(j)), "hello\n");
  EXPECT_EQ(read_text(ex_->stderr_path(j)), "oops\n");
}

TEST_P(executor_test, environment_workdir_and_stdin) {
  auto j = id("env");
  exec_request req;
  req.job_id = j;
  req.argv = {"sh", "-c", "echo \"$FOO\"; pwd; cat; echo \"$TENDER_JOB_ID\""};
  req.env = {{"FOO", "bar baz"}};
  req.workdir = root_;
  ASSERT_TRUE(std::holds_alternative<exec_state>(ex_->launch(req, wall_now())));
  EXPECT_EQ(wait_exit(j).reason, "exited 0");
  // `cat` ends at once: stdin is /dev/null.
  EXPECT_EQ(read_text(ex_->stdout_path(j)), "bar baz\n" + root_ + "\n" + j + "\n");
}

TEST_P(executor_test, the_agents_descriptors_do_not_leak_into_the_job) {
  int leaky = ::open("/dev/null", O_RDONLY); // deliberately without O_CLOEXEC
  ASSERT_GE(leaky, 0);
  auto j = id("fds");
  launch(j, {"sh", "-c", "ls /proc/$$/fd"});
  EXPECT_EQ(wait_exit(j).reason, "exited 0");
  ::close(leaky);
  EXPECT_EQ(read_text(ex_->stdout_path(j)), "0\n1\n2\n");
}

/// What a busy machine allows to check: with nobody else running, two busy
/// threads use about two cores; in any case the samples agree with the kernel.
void expect_about_two_cores(const std::string& what, const std::string& mode, millicores cpu,
                            double others) {
  std::printf("[ measured ] %s (%s): %lld millicores; rest of the machine %.2f cores\n",
              what.c_str(), mode.c_str(), static_cast<long long>(cpu), others);
  if (others > 0.25) {
    std::printf("[ note     ] machine busy: 1500-2500 millicores not expected\n");
    return;
  }
  EXPECT_GE(cpu, 1500);
  EXPECT_LE(cpu, 2500);
}

TEST_P(executor_test, cpu_of_two_busy_threads_is_about_two_cores) {
  auto j = id("burn");
  launch(j, {helper, "burn", "2", "60"});
  auto w = mean_cpu(j, 1.5);
  expect_about_two_cores("2 busy threads", ex_->mode(), w.job, w.others);
}

TEST_P(executor_test, cpu_is_summed_over_the_process_tree) {
  auto j = id("loops");
  launch(j, {"sh", "-c", "while :; do :; done & while :; do :; done & wait"});
  auto w = mean_cpu(j, 1.5);
  expect_about_two_cores("2 busy processes", ex_->mode(), w.job, w.others);
}

TEST_P(executor_test, cpu_samples_add_up_to_the_cpu_time_the_kernel_accounted) {
  // Integrates cpu x interval over every sample of a job that burns for 2 s and
  // compares it with the shim's wait4() rusage, an accounting path the sampler
  // does not use. Holds however busy the machine is.
  auto j = id("integrate");
  const usec start = wall_now();
  exec_request req;
  req.job_id = j;
  req.argv = {helper, "burn", "2", "2"};
  ASSERT_TRUE(std::holds_alternative<exec_state>(ex_->launch(req, start)));
  std::vector<usage_sample> samples;
  EXPECT_EQ(wait_exit(j, &samples).reason, "exited 0");
  ASSERT_FALSE(samples.empty());
  double sampled = 0;
  usec prev = start;
  for (auto& s : samples) {
    sampled += double(s.cpu) / 1000 * double(s.at - prev) / sec_us;
    prev = s.at;
  }
  const double kernel = rusage_cpu_seconds(j);
  std::printf("[ measured ] cpu integrated over %zu samples (%s): %.3f s; rusage %.3f s\n",
              samples.size(), ex_->mode().c_str(), sampled, kernel);
  // The last interval before the exit is not sampled: up to 50 ms on 2 cores.
  EXPECT_NEAR(sampled, kernel, 0.05 * kernel + 0.1);
}

TEST_P(executor_test, rss_of_a_200_mib_allocation) {
  auto j = id("rss");
  launch(j, {helper, "alloc", "200", "60"});
  wait_output(j, "allocated");
  // cgroup memory statistics may lag a little: wait until the allocation shows.
  auto s = wait_sample(j, [](const usage_sample& s) { return s.rss >= 190 * mib; });
  ASSERT_TRUE(s);
  std::printf("[ measured ] rss of 200 MiB (%s): %.1f MiB, %d threads\n", ex_->mode().c_str(),
              double(s->rss) / mib, s->threads);
  EXPECT_GE(s->rss, 190 * mib);
  EXPECT_LE(s->rss, 230 * mib);
  EXPECT_EQ(s->threads, 1);
}

TEST_P(executor_test, io_of_50_mib_written_and_read) {
  auto j = id("io");
  launch(j,
         {"sh", "-c",
          "'" + helper + "' write data 50 && '" + helper + "' read data && echo done && sleep 60"});
  wait_output(j, "done");
  auto s = wait_sample(j, [](const usage_sample& s) { return s.io_read >= 50 * mib; });
  ASSERT_TRUE(s);
  std::printf("[ measured ] io of 50 MiB (%s): write %.2f MiB, read %.2f MiB\n",
              ex_->mode().c_str(), double(s->io_write) / mib, double(s->io_read) / mib);
  EXPECT_NEAR(double(s->io_write), double(50 * mib), 0.05 * 50 * mib);
  EXPECT_NEAR(double(s->io_read), double(50 * mib), 0.05 * 50 * mib);
}

TEST_P(executor_test, walltime_is_enforced) {
  auto j = id("walltime");
  exec_limits l;
  l.walltime = 1 * sec_us;
  launch(j, {"sleep", "60"}, l);
  auto e = wait_exit(j);
  EXPECT_EQ(e.reason, "walltime exceeded");
  EXPECT_EQ(e.signal, SIGTERM);
  EXPECT_EQ(e.exit_code, -1);
}

TEST_P(executor_test, kill_escalates_to_sigkill_when_sigterm_is_ignored) {
  auto j = id("stubborn");
  launch(j, {"sh", "-c", "trap '' TERM; echo ready; sleep 60"});
  wait_output(j, "ready");
  ex_->kill(j, "user asked", 1 * sec_us, wall_now());
  auto e = wait_exit(j);
  EXPECT_EQ(e.reason, "cancelled: user asked");
  EXPECT_EQ(e.signal, SIGKILL);
}

TEST_P(executor_test, kill_ends_a_well_behaved_job_with_sigterm) {
  auto j = id("polite");
  launch(j, {"sleep", "60"});
  ex_->kill(j, "not needed", 10 * sec_us, wall_now());
  auto e = wait_exit(j);
  EXPECT_EQ(e.reason, "cancelled: not needed");
  EXPECT_EQ(e.signal, SIGTERM);
}

TEST_P(executor_test, leftover_processes_are_killed_when_the_job_ends) {
  auto j = id("leftover");
  launch(j, {"sh", "-c", "sleep 60 & echo $!"});
  EXPECT_EQ(wait_exit(j).reason, "exited 0");
  const int child = std::stoi(read_text(ex_->stdout_path(j)));
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    auto stat = read_text("/proc/" + std::to_string(child) + "/stat");
    gone = stat.empty() || stat.find(") Z") != std::string::npos;
    pump();
    nap(50);
  }
  EXPECT_TRUE(gone) << "sleep " << child << " survived its job";
}

TEST_P(executor_test, output_is_capped_by_max_output) {
  auto j = id("output");
  exec_limits l;
  l.max_output = 1 * mib;
  launch(j, {"head", "-c", "10000000", "/dev/zero"}, l);
  auto e = wait_exit(j);
  EXPECT_EQ(e.reason, "output limit exceeded");
  EXPECT_EQ(e.signal, SIGXFSZ);
  EXPECT_EQ(fs::file_size(ex_->stdout_path(j)), static_cast<std::uintmax_t>(1 * mib));
}

TEST_P(executor_test, memory_limit_is_enforced) {
  auto j = id("oom");
  exec_limits l;
  l.memory = 64 * mib;
  launch(j, {helper, "alloc", "200", "0"}, l);
  auto e = wait_exit(j);
  if (cgroups()) {
    EXPECT_EQ(e.reason, "out of memory");
    EXPECT_EQ(e.signal, SIGKILL);
  } else {
    // RLIMIT_AS: the allocation itself fails; the kernel cannot tell us why.
    EXPECT_EQ(e.reason, "exited 3");
    EXPECT_EQ(read_text(ex_->stdout_path(j)), "allocation failed\n");
  }
}

TEST_P(executor_test, raising_memory_in_place_lets_a_job_finish) {
  if (!cgroups())
    GTEST_SKIP() << "needs writable cgroups (mode " << ex_->mode() << ")";
  exec_limits l;
  l.memory = 160 * mib;
  // Without the raise: 100 MiB then 100 MiB more does not fit in 160 MiB.
  auto a = id("grow-a"), b = id("grow-b");
  launch(a, {helper, "alloc", "100", "go", "100"}, l);
  launch(b, {helper, "alloc", "100", "go", "100"}, l);
  wait_output(a, "allocated 100");
  wait_output(b, "allocated 100");
  exec_limits raised = l;
  raised.memory = 400 * mib;
  std::string why;
  EXPECT_TRUE(ex_->set_limits(b, raised, why)) << why;
  std::ofstream(root_ + "/" + a + "/go") << "go";
  std::ofstream(root_ + "/" + b + "/go") << "go";
  EXPECT_EQ(wait_exit(a).reason, "out of memory");
  EXPECT_EQ(wait_exit(b).reason, "exited 0");
}

TEST_P(executor_test, cpu_quota_throttles_and_can_change_in_place) {
  if (!cgroups())
    GTEST_SKIP() << "needs writable cgroups (mode " << ex_->mode() << ")";
  auto j = id("quota");
  exec_limits l;
  l.cpu = 500;
  auto st = launch(j, {helper, "burn", "2", "60"}, l);
  // The knob, for either cgroup version.
  auto quota = [&] {
    std::string text;
    std::istringstream dirs(st.cgroup);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      if (fs::exists(dir + "/cpu.cfs_quota_us"))
        text = read_text(dir + "/cpu.cfs_quota_us");
      else if (fs::exists(dir + "/cpu.max"))
        text = read_text(dir + "/cpu.max");
    }
    return text.substr(0, text.find_first_of(" \n"));
  };
  EXPECT_EQ(quota(), "50000");
  auto limited = mean_cpu(j, 1.5);
  exec_limits raised = l;
  raised.cpu = 1000;
  std::string why;
  ASSERT_TRUE(ex_->set_limits(j, raised, why)) << why;
  EXPECT_EQ(quota(), "100000");
  auto more = mean_cpu(j, 1.5);
  std::printf("[ measured ] quota 500m: %lld, quota 1000m: %lld millicores; rest of the machine "
              "%.2f / %.2f cores\n",
              static_cast<long long>(limited.job), static_cast<long long>(more.job), limited.others,
              more.others);
  EXPECT_LE(limited.job, 650);
  EXPECT_LE(more.job, 1250);
  if (limited.others < 0.25 && more.others < 0.25) {
    EXPECT_GE(limited.job, 350);
    EXPECT_GE(more.job, 750);
  }
}

TEST_P(executor_test, in_place_resize_is_refused_under_rlimits) {
  if (cgroups())
    GTEST_SKIP() << "only meaningful in rlimit mode";
  auto j = id("resize");
  launch(j, {"sleep", "60"});
  exec_limits more;
  more.memory = 512 * mib;
  std::string why;
  EXPECT_FALSE(ex_->set_limits(j, more, why));
  EXPECT_NE(why.find("in-place resize needs cgroups"), std::string::npos) << why;
  exec_limits longer;
  longer.walltime = 3600 * sec_us; // walltime is the executor's own: that works
  EXPECT_TRUE(ex_->set_limits(j, longer, why)) << why;
}

TEST_P(executor_test, a_second_launch_of_a_running_job_is_refused) {
  auto j = id("twice");
  launch(j, {"sleep", "60"});
  exec_request req;
  req.job_id = j;
  req.argv = {"true"};
  auto r = ex_->launch(req, wall_now());
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_EQ(std::get<std::string>(r), "job " + j + " is already running");
}

TEST_P(executor_test, a_new_executor_adopts_a_running_job_and_sees_its_exit) {
  auto j = id("adopt");
  // The job waits for a file, so it is certainly still running when adopted.
  auto st = launch(j, {"sh", "-c", "while [ ! -e go ]; do sleep 0.05; done; exit 7"});
  ex_.reset(); // the agent "crashes": its executor is gone, the job is not
  ex_ = std::make_unique<executor>(root_);

  // Launching the same job again must not clobber it.
  exec_request req;
  req.job_id = j;
  req.argv = {"true"};
  auto again = ex_->launch(req, wall_now());
  ASSERT_TRUE(std::holds_alternative<std::string>(again));
  EXPECT_NE(std::get<std::string>(again).find("adopt() it"), std::string::npos);

  auto r = ex_->adopt(j, wall_now());
  ASSERT_TRUE(std::holds_alternative<exec_state>(r))
      << (std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "exit");
  auto& adopted = std::get<exec_state>(r);
  EXPECT_EQ(adopted.pid, st.pid);
  EXPECT_EQ(adopted.start_ticks, st.start_ticks);
  EXPECT_EQ(adopted.mode, st.mode);
  EXPECT_TRUE(ex_->running(j));
  wait_sample(j, [](const usage_sample& s) { return s.threads >= 1; });

  std::ofstream(root_ + "/" + j + "/go") << "go";
  auto e = wait_exit(j);
  EXPECT_EQ(e.exit_code, 7);
  EXPECT_EQ(e.reason, "exited 7");
}

TEST_P(executor_test, adopting_a_job_that_ended_meanwhile_returns_its_exit) {
  auto j = id("ended");
  launch(j, {"sh", "-c", "exit 3"});
  ex_.reset();
  for (int i = 0; i < 400 && !fs::exists(root_ + "/" + j + "/exit"); ++i)
    nap(50);
  ex_ = std::make_unique<executor>(root_);
  auto r = ex_->adopt(j, wall_now());
  ASSERT_TRUE(std::holds_alternative<exit_info>(r));
  EXPECT_EQ(std::get<exit_info>(r).reason, "exited 3");
  EXPECT_FALSE(ex_->running(j));
}

TEST_P(executor_test, adopt_keeps_a_cancellation_reason_across_executors) {
  auto j = id("cancel-adopt");
  launch(j, {"sh", "-c", "trap '' TERM; echo ready; sleep 60"});
  wait_output(j, "ready");
  ex_->kill(j, "moved elsewhere", 60 * sec_us, wall_now());
  ex_.reset();
  ex_ = std::make_unique<executor>(root_);
  ASSERT_TRUE(std::holds_alternative<exec_state>(ex_->adopt(j, wall_now())));
  ex_->kill(j, "second try", 0, wall_now());
  auto e = wait_exit(j);
  EXPECT_EQ(e.reason, "cancelled: moved elsewhere");
  EXPECT_EQ(e.signal, SIGKILL);
}

TEST_P(executor_test, adopt_reports_what_is_wrong_with_an_unusable_run_dir) {
  auto r = ex_->adopt(id("never-launched"), wall_now());
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_NE(std::get<std::string>(r).find("no state file"), std::string::npos)
      << std::get<std::string>(r);

  // The job ended but its exit status was lost (as if the run dir were damaged):
  // its pid is gone, so adopt must not claim it is running.
  auto j = id("lost");
  auto st = launch(j, {"true"});
  ex_.reset();
  // The shim writes the exit file and then exits: wait for both, or adopt would
  // rightly see a live shim.
  auto shim_running = [&] {
    std::ifstream f("/proc/" + std::to_string(st.shim_pid) + "/stat");
    std::string line;
    if (!std::getline(f, line) || line.rfind(')') == std::string::npos)
      return false;
    const char state = line[line.rfind(')') + 2];
    return state != 'Z' && state != 'X';
  };
  for (int i = 0; i < 400 && (!fs::exists(root_ + "/" + j + "/exit") || shim_running()); ++i)
    nap(50);
  fs::remove(root_ + "/" + j + "/exit");
  ex_ = std::make_unique<executor>(root_);
  r = ex_->adopt(j, wall_now());
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_NE(std::get<std::string>(r).find("left no exit status"), std::string::npos)
      << std::get<std::string>(r);
}

} // namespace
} // namespace tender
