// The profile stage on real workloads in the real sandbox: accuracy of what the profile
// says against what the workload is known to do, and containment of bad jobs. Workloads
// come from tender_exec_helper and tender_profile_helper (providers/testdata). No timing
// thresholds: runs end by themselves or at their budget, and the assertions are on bytes,
// cores and reasons.

#include "providers/profiling.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#ifndef TENDER_EXEC_HELPER
#error "TENDER_EXEC_HELPER must name the tender_exec_helper binary"
#endif
#ifndef TENDER_PROFILE_HELPER
#error "TENDER_PROFILE_HELPER must name the tender_profile_helper binary"
#endif

namespace tender {
namespace {

namespace fs = std::filesystem;
constexpr double mb = 1e6;
constexpr bytes_t mib = 1 << 20;
const std::string exec_helper = TENDER_EXEC_HELPER;
const std::string profile_helper = TENDER_PROFILE_HELPER;

usec wall_now() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long long machine_busy_ticks() {
  std::istringstream in(read_text("/proc/stat"));
  std::string cpu;
  long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return user + nice + system + irq + softirq + steal;
}

class profiling_test : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tender-profiling-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/work");
    ex_ = std::make_unique<executor>(dir_ + "/runs");
  }
  void TearDown() override {
    ex_.reset();
    fs::remove_all(dir_);
  }

  std::string id(const std::string& name) const {
    return "prof-" + name + "-" + std::to_string(::getpid());
  }

  job_spec spec(std::vector<std::string> argv, usec budget, usec walltime = 0) const {
    job_spec s;
    s.name = "t";
    s.command = argv;
    s.profile_command = std::move(argv);
    s.profile_budget = budget;
    s.walltime = walltime;
    s.workdir = dir_ + "/work";
    return s;
  }

  /// Static analysis, the sandboxed run at 20 Hz, the measured profile, extrapolation.
  resource_profile profile(const std::string& name, const job_spec& s, profile_run* out = nullptr,
                           profile_limits limits = {}, static_report report = {}) {
    auto req = profile_request(id(name), s, report, limits);
    auto run = run_profile(
        *ex_, req, s.profile_budget, 50 * ms_us, [] { return wall_now(); },
        [](usec d) { std::this_thread::sleep_for(std::chrono::microseconds(d)); });
    auto p = measure_profile(id(name), s, report, &run);
    p.runtime = s.walltime;
    apply_projection(p, s, run);
    if (out)
      *out = run;
    return p;
  }

  /// The finding about how the run went (not the static ones, not the extrapolation).
  static finding outcome(const resource_profile& p) {
    for (auto it = p.findings.rbegin(); it != p.findings.rend(); ++it)
      if (it->kind == "error" || it->kind == "profile")
        return *it;
    return {};
  }

  static std::string dump(const resource_profile& p) {
    std::string s;
    for (auto& f : p.findings)
      s += f.kind + " | " + f.detail + " | " + f.evidence + "\n";
    return s;
  }

  std::string dir_;
  std::unique_ptr<executor> ex_;
};

TEST_F(profiling_test, two_thread_burner_profiles_at_two_cores) {
  const long long busy0 = machine_busy_ticks();
  const usec t0 = wall_now();
  profile_run run;
  auto p = profile("burn", spec({exec_helper, "burn", "2", "3"}, 10 * sec_us), &run);
  const double wall = double(wall_now() - t0) / sec_us;
  const double others =
      double(machine_busy_ticks() - busy0) / ::sysconf(_SC_CLK_TCK) / wall - p.cpu_mean;
  std::printf("[ measured ] 2-thread burner: cpu_mean %.3f cores (stddev %.3f, %zu samples); "
              "rest of the machine %.2f cores\n",
              p.cpu_mean, p.cpu_stddev, run.samples.size(), others);
  ASSERT_TRUE(run.exit) << dump(p);
  EXPECT_EQ(run.exit->exit_code, 0);
  EXPECT_FALSE(p.partial);
  if (others > 0.25) {
    std::printf("[ note     ] machine busy: 2 +- 0.3 cores not expected\n");
    return;
  }
  EXPECT_NEAR(p.cpu_mean, 2.0, 0.3);
}

TEST_F(profiling_test, ramp_to_300_mb_reports_its_peak_within_10_percent) {
  profile_run run;
  auto p = profile("ramp300", spec({profile_helper, "ramp", "300", "2", "1"}, 10 * sec_us), &run);
  const double want = 300.0 * mib;
  std::printf("[ measured ] ramp to 300 MiB: mem_peak %.1f MiB (%+.1f %%)\n",
              double(p.mem_peak) / mib, (double(p.mem_peak) - want) / want * 100);
  ASSERT_TRUE(run.exit);
  EXPECT_EQ(run.exit->exit_code, 0) << dump(p);
  EXPECT_NEAR(double(p.mem_peak), want, 0.10 * want);
}

// The case: grows linearly to 400 MB over 30 s; profiled for 5 s; walltime 30 s.
TEST_F(profiling_test, linear_growth_profiled_for_5s_predicts_the_30s_peak_within_20_percent) {
  profile_run run;
  auto s = spec({profile_helper, "ramp", "400", "30", "0"}, 5 * sec_us, 30 * sec_us);
  auto p = profile("ramp400", s, &run);
  const double want = 400.0 * mib;
  double seen = 0;
  for (auto& x : run.samples)
    seen = std::max(seen, double(x.rss));
  std::printf("[ measured ] 400 MiB over 30 s, 5 s profile: seen %.1f MiB, predicted peak %.1f "
              "MiB (%+.1f %%)\n",
              seen / mib, double(p.mem_peak) / mib, (double(p.mem_peak) - want) / want * 100);
  EXPECT_TRUE(run.cut);
  EXPECT_TRUE(p.partial);
  EXPECT_LT(seen, 0.5 * want) << "the run itself must not have seen the peak";
  EXPECT_NEAR(double(p.mem_peak), want, 0.20 * want) << dump(p);
}

TEST_F(profiling_test, writing_100_mb_reports_write_bytes_within_5_percent) {
  profile_run run;
  auto p = profile("write", spec({exec_helper, "write", dir_ + "/work/out", "100"}, 10 * sec_us),
                   &run);
  const double want = 100.0 * mib;
  std::printf("[ measured ] write 100 MiB: io_write %.2f MiB (%+.2f %%)\n",
              double(p.io_write) / mib, (double(p.io_write) - want) / want * 100);
  ASSERT_TRUE(run.exit);
  EXPECT_EQ(run.exit->exit_code, 0) << dump(p);
  EXPECT_NEAR(double(p.io_write), want, 0.05 * want);
}

TEST_F(profiling_test, loopback_sender_bytes_within_5_percent) {
  profile_run run;
  auto p = profile("send", spec({profile_helper, "send", "100", "0.5"}, 10 * sec_us), &run);
  const double want = 100.0 * mib;
  std::printf("[ measured ] loopback sender 100 MiB: net_bytes %.2f MiB (%+.2f %%), %lld bit/s\n",
              double(p.net_bytes) / mib, (double(p.net_bytes) - want) / want * 100,
              static_cast<long long>(p.net_bandwidth_bps));
  ASSERT_TRUE(run.exit);
  EXPECT_EQ(run.exit->exit_code, 0) << read_text(ex_->stderr_path(id("send")));
  EXPECT_NE(run.sandbox.find("netns"), std::string::npos);
  EXPECT_NEAR(double(p.net_bytes), want, 0.05 * want);
  EXPECT_GT(p.net_bandwidth_bps, 0);
}

TEST_F(profiling_test, own_network_namespace_holds_only_loopback) {
  profile_run run;
  profile("netns", spec({"cat", "/proc/net/dev"}, 10 * sec_us), &run);
  ASSERT_TRUE(run.exit);
  EXPECT_EQ(run.exit->exit_code, 0);
  auto text = read_text(ex_->stdout_path(id("netns")));
  int interfaces = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find(':') != std::string::npos) {
      ++interfaces;
      EXPECT_NE(line.find("lo:"), std::string::npos) << line;
    }
  EXPECT_EQ(interfaces, 1) << text;

  // A job static analysis says needs the network gets its own namespace with a link.
  static_report net;
  net.network = true;
  auto req = profile_request("x", spec({"true"}, sec_us), net);
  EXPECT_TRUE(req.sandbox.own_network);
  EXPECT_TRUE(req.sandbox.network_link);
  EXPECT_FALSE(profile_request("y", spec({"true"}, sec_us), {}).sandbox.network_link);
}

/// A TCP listener on every address of the host's namespace (so also on the host end of
/// every link) that counts what each connection sends.
class counting_listener {
public:
  counting_listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 8) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] {
      for (;;) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0)
          return;
        readers_.emplace_back([this, c] {
          std::vector<char> buf(1 << 16);
          long long n = 0;
          for (ssize_t r; (r = ::read(c, buf.data(), buf.size())) > 0;)
            n += r;
          ::close(c);
          std::lock_guard<std::mutex> g(mu_);
          received_.push_back(n);
        });
      }
    });
  }
  ~counting_listener() {
    ::shutdown(fd_, SHUT_RDWR);
    if (acceptor_.joinable())
      acceptor_.join();
    for (auto& t : readers_)
      t.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::vector<long long> received() {
    std::lock_guard<std::mutex> g(mu_);
    return received_;
  }

private:
  int fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> readers_;
  std::mutex mu_;
  std::vector<long long> received_;
};

std::string link_interface(const std::string& net_link) {
  return net_link.substr(0, net_link.find(' '));
}

/// The kernel removes the pair once the namespace's last user is gone (asynchronously):
/// true when the host end has disappeared within `patience`.
bool link_removed(const std::string& host_if, int patience_ms = 10'000) {
  for (int waited = 0; waited <= patience_ms; waited += 50) {
    if (!fs::exists("/sys/class/net/" + host_if))
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// The "loopback plus a measured link when the job needs network": the job sends
// to a listener the test runs on the host end of the link, and the profile reports the
// bytes. Static analysis flagged the job (report.network).
TEST_F(profiling_test, a_job_that_needs_network_is_measured_on_its_own_link) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "a network namespace and a veth pair need root";
  counting_listener listener;
  ASSERT_GT(listener.port(), 0);
  static_report net;
  net.network = true;
  net.findings.push_back({"network", "HTTP (libcurl)", "test"});
  profile_run run;
  auto p = profile("link", spec({profile_helper, "sendto", std::to_string(listener.port()), "50"},
                                10 * sec_us),
                   &run, {}, net);
  const double want = 50.0 * mib;
  std::printf("[ measured ] 50 MiB over the measured link (%s): net_bytes %.2f MiB (%+.2f %%), "
              "%lld bit/s\n",
              run.net_link.c_str(), double(p.net_bytes) / mib,
              (double(p.net_bytes) - want) / want * 100,
              static_cast<long long>(p.net_bandwidth_bps));
  ASSERT_TRUE(run.exit) << dump(p);
  EXPECT_EQ(run.exit->exit_code, 0) << read_text(ex_->stderr_path(id("link")));
  EXPECT_NE(run.sandbox.find("netns+link"), std::string::npos) << run.sandbox;
  EXPECT_EQ(listener.received(), std::vector<long long>{50 * mib});
  EXPECT_NEAR(double(p.net_bytes), want, 0.05 * want);
  EXPECT_GT(p.net_bandwidth_bps, 0);
  bool said = false;
  for (auto& f : p.findings)
    said |= f.kind == "network" && f.evidence == run.net_link;
  EXPECT_TRUE(said) << dump(p);
  EXPECT_NE(read_text(ex_->stdout_path(id("link"))).find("to 10.213."), std::string::npos);
  ASSERT_FALSE(run.net_link.empty());
  EXPECT_TRUE(link_removed(link_interface(run.net_link))) << run.net_link << " left behind";
}

// Two runs at once get their own subnets and each counts only its own traffic.
TEST_F(profiling_test, concurrent_links_do_not_collide_and_count_separately) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "a network namespace and a veth pair need root";
  counting_listener listener;
  ASSERT_GT(listener.port(), 0);
  const int mibs[2] = {20, 40};
  std::string links[2];
  bytes_t counted[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    exec_request req;
    req.job_id = id("pair" + std::to_string(i));
    req.argv = {profile_helper, "sendto", std::to_string(listener.port()), std::to_string(mibs[i])};
    req.workdir = dir_ + "/work";
    req.limits.walltime = 20 * sec_us;
    req.sandbox.own_network = req.sandbox.network_link = true;
    auto st = ex_->launch(req, wall_now());
    ASSERT_TRUE(std::holds_alternative<exec_state>(st)) << std::get<std::string>(st);
    links[i] = std::get<exec_state>(st).net_link_info;
    ASSERT_FALSE(links[i].empty()) << std::get<exec_state>(st).net_link_error;
  }
  EXPECT_NE(link_interface(links[0]), link_interface(links[1]));
  EXPECT_NE(links[0].substr(links[0].find(' ')), links[1].substr(links[1].find(' ')));
  for (int left = 2; left > 0;) {
    for (auto& ev : ex_->poll(wall_now()))
      if (ev.exited) {
        --left;
        const int i = ev.job_id == id("pair0") ? 0 : 1;
        EXPECT_EQ(ev.exited->exit_code, 0) << ev.exited->reason;
        counted[i] = ev.exited->net_bytes;
      }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int i = 0; i < 2; ++i) {
    const double want = mibs[i] * double(mib);
    std::printf("[ measured ] concurrent link %s: %.2f MiB for %d MiB sent (%+.2f %%)\n",
                links[i].c_str(), double(counted[i]) / mib, mibs[i],
                (double(counted[i]) - want) / want * 100);
    EXPECT_NEAR(double(counted[i]), want, 0.05 * want);
    EXPECT_TRUE(link_removed(link_interface(links[i])));
  }
}

TEST_F(profiling_test, the_link_goes_away_when_the_job_is_killed) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "a network namespace and a veth pair need root";
  static_report net;
  net.network = true;
  profile_run run;
  auto p = profile("linkkill",
                   spec({"sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"}, 1 * sec_us),
                   &run, {}, net);
  ASSERT_TRUE(run.exit);
  EXPECT_TRUE(run.cut) << dump(p);
  ASSERT_FALSE(run.net_link.empty()) << run.net_link_error;
  EXPECT_TRUE(link_removed(link_interface(run.net_link))) << run.net_link << " left behind";
}

TEST_F(profiling_test, without_the_ip_tool_a_network_job_keeps_the_host_network_and_says_so) {
  ::setenv("TENDER_IP_TOOL", "/nonexistent/ip", 1);
  static_report net;
  net.network = true;
  profile_run run;
  auto p = profile("nolink", spec({"cat", "/proc/net/dev"}, 10 * sec_us), &run, {}, net);
  ::unsetenv("TENDER_IP_TOOL");
  ASSERT_TRUE(run.exit) << dump(p);
  EXPECT_EQ(run.exit->exit_code, 0);
  EXPECT_EQ(run.sandbox.find("netns"), std::string::npos) << run.sandbox;
  EXPECT_NE(run.net_link_error.find("TENDER_IP_TOOL"), std::string::npos) << run.net_link_error;
  bool said = false;
  for (auto& f : p.findings)
    said |= f.detail.find("no measured link could be made (TENDER_IP_TOOL") != std::string::npos &&
            f.detail.find("not measured") != std::string::npos;
  EXPECT_TRUE(said) << dump(p);
  // The host network it kept has more than lo.
  EXPECT_NE(read_text(ex_->stdout_path(id("nolink"))).find("eth0"), std::string::npos);
}

TEST_F(profiling_test, mount_view_is_read_only_outside_the_workdir) {
  if (::access("/usr/bin/bwrap", X_OK) != 0)
    GTEST_SKIP() << "bubblewrap not installed";
  const std::string outside = "/var/tmp/tender-sandbox-probe-" + std::to_string(::getpid());
  profile_run run;
  auto p = profile("ro", spec({"sh", "-c", "touch " + outside + "; touch inside && echo wrote"},
                              10 * sec_us),
                   &run);
  EXPECT_NE(run.sandbox.find("bwrap"), std::string::npos);
  EXPECT_FALSE(fs::exists(outside)) << "the sandbox let the job write " << outside;
  fs::remove(outside);
  EXPECT_TRUE(fs::exists(dir_ + "/work/inside"));
  EXPECT_NE(read_text(ex_->stderr_path(id("ro"))).find("Read-only"), std::string::npos);
}

TEST_F(profiling_test, fork_bomb_is_stopped_by_the_pids_limit_and_reported) {
  profile_limits l;
  l.pids = 32;
  profile_run run;
  auto p = profile("forks", spec({profile_helper, "forks", "2000", "2"}, 10 * sec_us), &run, l);
  ASSERT_TRUE(run.exit) << dump(p);
  auto out = read_text(ex_->stdout_path(id("forks")));
  int forked = -1;
  std::sscanf(out.c_str(), "forked %d", &forked);
  std::printf("[ measured ] fork bomb under pids=32: %d forks succeeded\n", forked);
  if (ex_->mode() != "rlimit") {
    EXPECT_GE(forked, 0) << out;
    EXPECT_LT(forked, 32 + 1) << "pids.max holds";
  } else {
    // RLIMIT_NPROC does not bind root: the sampled task count stops the run instead.
    EXPECT_NE(outcome(p).detail.find("pids limit exceeded"), std::string::npos) << dump(p);
  }
  EXPECT_FALSE(p.findings.empty());
}

TEST_F(profiling_test, memory_bomb_is_contained_and_reported) {
  profile_limits l;
  l.memory = 64 * mib;
  profile_run run;
  auto p = profile("membomb", spec({exec_helper, "alloc", "4000", "0"}, 10 * sec_us), &run, l);
  ASSERT_TRUE(run.exit);
  EXPECT_NE(run.exit->exit_code, 0);
  EXPECT_TRUE(p.partial);
  EXPECT_LE(p.mem_peak, 64 * mib + 4 * mib);
  const auto f = outcome(p);
  EXPECT_EQ(f.kind, "error") << dump(p);
  if (ex_->mode() != "rlimit") {
    EXPECT_NE(f.detail.find("out of memory"), std::string::npos) << dump(p);
  }
}

TEST_F(profiling_test, runaway_output_is_contained_and_reported) {
  profile_limits l;
  l.max_output = 1 * mib;
  profile_run run;
  auto p = profile("spew", spec({"head", "-c", "100000000", "/dev/zero"}, 10 * sec_us), &run, l);
  ASSERT_TRUE(run.exit);
  EXPECT_EQ(run.exit->reason, "output limit exceeded");
  EXPECT_EQ(fs::file_size(ex_->stdout_path(id("spew"))), static_cast<std::uintmax_t>(1 * mib));
  EXPECT_EQ(outcome(p).kind, "error");
  EXPECT_NE(outcome(p).detail.find("limits"), std::string::npos) << dump(p);
}

TEST_F(profiling_test, a_job_ignoring_sigterm_is_killed_at_the_budget) {
  profile_run run;
  auto p = profile("stubborn",
                   spec({"sh", "-c", "trap '' TERM; echo $$ > pid; while :; do sleep 0.1; done"},
                        1 * sec_us),
                   &run);
  ASSERT_TRUE(run.exit);
  EXPECT_TRUE(run.cut);
  // Directly it dies of SIGKILL after the grace; under bubblewrap, bwrap takes the SIGTERM
  // and its --die-with-parent SIGKILLs the job. Either way the shell is gone.
  EXPECT_TRUE(run.exit->signal == SIGKILL || run.exit->signal == SIGTERM) << run.exit->reason;
  const std::string pid = read_text(dir_ + "/work/pid");
  ASSERT_FALSE(pid.empty());
  if (run.sandbox.find("bwrap") == std::string::npos) { // else it is a pid of bwrap's view
    auto stat = read_text("/proc/" + std::to_string(std::stoi(pid)) + "/stat");
    EXPECT_TRUE(stat.empty() || stat.find(") Z") != std::string::npos) << "still running: " << stat;
  }
  EXPECT_TRUE(p.partial);
  EXPECT_NE(outcome(p).detail.find("cut at its budget"), std::string::npos) << dump(p);
}

TEST_F(profiling_test, bad_commands_give_clear_findings) {
  auto missing = profile("missing", spec({"no-such-command-xyz"}, 10 * sec_us));
  EXPECT_EQ(outcome(missing).kind, "error");
  EXPECT_NE(outcome(missing).detail.find("command not found"), std::string::npos)
      << dump(missing);

  profile_run run;
  auto crash = profile("crash", spec({"sh", "-c", "kill -SEGV $$"}, 10 * sec_us), &run);
  ASSERT_TRUE(run.exit);
  EXPECT_EQ(outcome(crash).kind, "error");
  EXPECT_NE(outcome(crash).detail.find("signal 11"), std::string::npos) << dump(crash);

  auto syntax = profile("syntax", spec({"sh", "-c", "if then fi ("}, 10 * sec_us), &run);
  EXPECT_EQ(outcome(syntax).kind, "error") << dump(syntax);
  EXPECT_NE(outcome(syntax).detail.find("exited 2"), std::string::npos) << dump(syntax);

  std::ofstream(dir_ + "/work/data.txt") << "not a program\n";
  auto noexec = profile("noexec", spec({dir_ + "/work/data.txt"}, 10 * sec_us));
  EXPECT_EQ(outcome(noexec).kind, "error");
  EXPECT_NE(outcome(noexec).detail.find("not executable"), std::string::npos) << dump(noexec);

  // An unreadable binary: an ELF cut short. The kernel refuses it; the finding says so.
  {
    std::ifstream in(exec_helper, std::ios::binary);
    std::string head(200, '\0');
    in.read(head.data(), 200);
    std::ofstream(dir_ + "/work/cut", std::ios::binary).write(head.data(), 200);
    fs::permissions(dir_ + "/work/cut", fs::perms::owner_all);
  }
  // Static analysis names the damage; the run fails at once (directly: ENOEXEC; under
  // bubblewrap, whose execvp hands the file to /bin/sh: a syntax error) and says how.
  auto cut_spec = spec({dir_ + "/work/cut"}, 10 * sec_us);
  auto cut = profile("cut", cut_spec, &run, {}, analyze_job(cut_spec));
  EXPECT_NE(dump(cut).find("error | " + dir_ + "/work/cut: truncated"), std::string::npos)
      << dump(cut);
  EXPECT_EQ(outcome(cut).kind, "error") << dump(cut);
  const auto& why = outcome(cut).detail;
  EXPECT_TRUE(why.find("Exec format error") != std::string::npos ||
              why.find("its stderr ends: " + dir_ + "/work/cut") != std::string::npos)
      << dump(cut);
}

// A Python entry script that does not compile is not run: the profile is static only,
// partial, and says why with file:line (static analysis compiled it without running it).
TEST_F(profiling_test, a_python_script_that_does_not_compile_is_not_run) {
  std::ofstream(dir_ + "/work/train.py")
      << "open('ran', 'w').write('x')\nfor i in range(3)\n    print(i)\n";
  auto s = spec({"python3", "train.py"}, 10 * sec_us);
  s.env["PATH"] = "/usr/bin:/bin";
  auto report = analyze_job(s);
  const std::string why = dynamic_run_blocker(report);
  ASSERT_NE(why.find("train.py:2"), std::string::npos) << why;
  auto p = measure_profile(id("py"), s, report, nullptr);
  EXPECT_TRUE(p.partial);
  bool error = false, skipped = false;
  for (auto& f : p.findings) {
    error |= f.kind == "error" && f.evidence == dir_ + "/work/train.py:2: for i in range(3)";
    skipped |= f.kind == "profile" && f.detail.find("dynamic run skipped") != std::string::npos;
  }
  EXPECT_TRUE(error) << dump(p);
  EXPECT_TRUE(skipped) << dump(p);
  EXPECT_FALSE(fs::exists(dir_ + "/work/ran"));

  std::ofstream(dir_ + "/work/ok.py") << "print(1)\n";
  EXPECT_EQ(dynamic_run_blocker(analyze_job(spec({"python3", "ok.py"}, sec_us))), "");
}

} // namespace
} // namespace tender
