#include "providers/executor.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

#include <dirent.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace tender {
namespace {

constexpr const char* mode_v1 = "cgroup-v1";
constexpr const char* mode_v2 = "cgroup-v2";
constexpr const char* mode_rlimit = "rlimit";
constexpr long long cfs_period_us = 100'000;

// ---------------------------------------------------------------------------
// Async-signal-safe pieces: everything the shim and the job child run after
// fork(). No allocation, no locks, no stdio; only system calls and stack buffers.

/// Where a job failed to start, reported by the job child to the shim.
enum start_stage : int {
  stage_ok = 0,
  stage_pipe,
  stage_fork,
  stage_cgroup,
  stage_rlimit,
  stage_chdir,
  stage_stdio,
  stage_exec,
  stage_netns, // added with the profiler's sandbox
};

const char* stage_name(int stage) {
  switch (stage) {
  case stage_pipe:
    return "pipe";
  case stage_fork:
    return "fork";
  case stage_cgroup:
    return "joining the cgroup";
  case stage_rlimit:
    return "setrlimit";
  case stage_chdir:
    return "chdir to workdir";
  case stage_stdio:
    return "redirecting stdio";
  case stage_exec:
    return "exec";
  case stage_netns:
    return "creating the network namespace";
  default:
    return "start";
  }
}

/// A fixed-size text buffer for the shim's files.
struct fixed_buf {
  char data[768];
  std::size_t len = 0;

  void put(const char* s) {
    while (*s && len + 1 < sizeof data)
      data[len++] = *s++;
  }
  void put_u(unsigned long long v) {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = char('0' + v % 10);
      v /= 10;
    } while (v);
    while (n && len + 1 < sizeof data)
      data[len++] = tmp[--n];
  }
  void put_i(long long v) {
    if (v < 0) {
      put("-");
      put_u(0ULL - static_cast<unsigned long long>(v));
    } else {
      put_u(static_cast<unsigned long long>(v));
    }
  }
  void kv(const char* key, long long v) {
    put(key);
    put("=");
    put_i(v);
    put("\n");
  }
  const char* c_str() {
    data[len] = '\0';
    return data;
  }
};

bool as_write_all(int fd, const void* data, std::size_t n) {
  auto p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

std::size_t as_read_full(int fd, void* data, std::size_t n) {
  auto p = static_cast<char*>(data);
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}

void as_write_atomic(const char* tmp, const char* path, const fixed_buf& b) {
  int fd = ::open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  as_write_all(fd, b.data, b.len);
  ::fsync(fd);
  ::close(fd);
  ::rename(tmp, path);
}

/// Field 22 (starttime, clock ticks after boot) of /proc/<pid>/stat; 0 if unknown.
unsigned long long as_starttime(pid_t pid) {
  fixed_buf path;
  path.put("/proc/");
  path.put_u(static_cast<unsigned long long>(pid));
  path.put("/stat");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  char buf[2048];
  std::size_t total = as_read_full(fd, buf, sizeof buf - 1);
  ::close(fd);
  // The command name may contain spaces and ')': fields start after the last ')'.
  std::size_t i = total;
  while (i > 0 && buf[i - 1] != ')')
    --i;
  if (i == 0)
    return 0;
  int field = 2;
  while (i < total && field < 22) {
    if (buf[i] == ' ')
      ++field;
    ++i;
  }
  unsigned long long v = 0;
  while (i < total && buf[i] >= '0' && buf[i] <= '9')
    v = v * 10 + static_cast<unsigned long long>(buf[i++] - '0');
  return v;
}

/// Marks (or closes) every descriptor from `from` up. close_range needs Linux 5.9;
/// the loop is the fallback.
void as_close_from(int from, bool cloexec_only, int max_fd) {
  if (::close_range(static_cast<unsigned>(from), ~0U, cloexec_only ? CLOSE_RANGE_CLOEXEC : 0) == 0)
    return;
  for (int fd = from; fd < max_fd; ++fd) {
    if (cloexec_only)
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    else
      ::close(fd);
  }
}

void as_reset_signals() {
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig)
    ::sigaction(sig, &dfl, nullptr); // fails harmlessly for SIGKILL, SIGSTOP, reserved ones
}

void as_unblock_signals() {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

pid_t as_fork() {
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
  return ::_Fork(); // skips atfork handlers: safe in a child of a multi-threaded parent
#else
  return ::fork();
#endif
}

/// Everything the shim and the job need, prepared before the first fork.
struct launch_plan {
  const char* exe = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* workdir = nullptr;
  int null_fd = -1, out_fd = -1, err_fd = -1;
  int report_fd = -1; // shim -> executor
  int procs_fds[4] = {-1, -1, -1, -1};
  int n_procs = 0;
  struct limit {
    int resource;
    rlimit value;
  } rlimits[6];
  int n_rlimits = 0;
  int max_fd = 1024;
  const char *pid_path = nullptr, *pid_tmp = nullptr;
  const char *exit_path = nullptr, *exit_tmp = nullptr;
  bool own_network = false;
  int ns_fd = -1;                 // a prepared network namespace to join (measured link)
  const char* link_rx = nullptr;  // its host end's counters, read by the shim at the exit
  const char* link_tx = nullptr;
  const char* link_rx_packets = nullptr;
  const char* link_tx_packets = nullptr;
};

/// A new network namespace with `lo` up. Async-signal-safe.
bool as_own_network() {
  if (::unshare(CLONE_NEWNET) != 0)
    return false;
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return false;
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, "lo", 3);
  bool ok = ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  ok = ok && ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  ::close(s);
  return ok;
}

/// What the shim tells the executor once the job has exec'd (or failed to).
struct shim_report {
  std::int32_t pid = 0;
  std::int32_t stage = 0;
  std::int32_t err = 0;
  std::int32_t reserved = 0;
  std::uint64_t start_ticks = 0;
};

/// The larger of read_bytes/rchar and of write_bytes/wchar in /proc/<pid>/io, as the
/// sampler counts them. Async-signal-safe; leaves the outputs alone when unreadable.
void as_read_io(pid_t pid, long long& read, long long& write) {
  fixed_buf path;
  path.put("/proc/");
  path.put_u(static_cast<unsigned long long>(pid));
  path.put("/io");
  path.data[path.len] = '\0';
  int fd = ::open(path.data, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  char buf[1024];
  std::size_t n = as_read_full(fd, buf, sizeof buf - 1);
  ::close(fd);
  buf[n] = '\0';
  long long rchar = 0, wchar = 0, rbytes = 0, wbytes = 0;
  const char* keys[4] = {"rchar:", "wchar:", "read_bytes:", "write_bytes:"};
  long long* outs[4] = {&rchar, &wchar, &rbytes, &wbytes};
  std::size_t i = 0;
  while (i < n) {
    for (int k = 0; k < 4; ++k) {
      std::size_t kl = std::strlen(keys[k]);
      if (i + kl <= n && std::memcmp(buf + i, keys[k], kl) == 0) {
        std::size_t j = i + kl;
        while (j < n && buf[j] == ' ')
          ++j;
        long long v = 0;
        while (j < n && buf[j] >= '0' && buf[j] <= '9')
          v = v * 10 + (buf[j++] - '0');
        *outs[k] = v;
      }
    }
    while (i < n && buf[i] != '\n')
      ++i;
    ++i;
  }
  read = rchar > rbytes ? rchar : rbytes;
  write = wchar > wbytes ? wchar : wbytes;
}

/// What a job sent and received over a network interface, without the frames' headers:
/// the counted bytes less 66 per counted packet (Ethernet 14 + IPv4 20 + TCP 32 with
/// timestamps). A segmentation-offloaded burst counts as one packet with one set of
/// headers, a pure ACK as 66 bytes, so the payload comes out the same however the kernel
/// batched it (under load it batches less and the headers alone were +6 %).
constexpr long long frame_header_bytes = 66;
long long payload_bytes(long long bytes, long long packets) {
  const long long p = bytes - frame_header_bytes * packets;
  return p > 0 ? p : 0;
}

/// A decimal counter file (/sys/class/net/<if>/statistics/*); -1 when unreadable.
long long as_read_counter(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  char buf[32];
  std::size_t n = as_read_full(fd, buf, sizeof buf - 1);
  ::close(fd);
  long long v = 0;
  std::size_t i = 0;
  for (; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i)
    v = v * 10 + (buf[i] - '0');
  return i == 0 ? -1 : v;
}

[[noreturn]] void run_job(const launch_plan& p, int err_fd) {
  auto fail = [&](int stage) {
    std::int32_t msg[2] = {stage, errno};
    as_write_all(err_fd, msg, sizeof msg);
    ::_exit(127);
  };
  ::setpgid(0, 0);
  // Join the cgroups first so that everything from here on is accounted there.
  fixed_buf pid;
  pid.put_u(static_cast<unsigned long long>(::getpid()));
  for (int i = 0; i < p.n_procs; ++i)
    if (::write(p.procs_fds[i], pid.data, pid.len) < 0)
      fail(stage_cgroup);
  as_reset_signals(); // SIG_IGN survives exec: the parent's SIGPIPE setting must not
  as_unblock_signals();
  if (p.ns_fd >= 0) {
    if (::setns(p.ns_fd, CLONE_NEWNET) != 0)
      fail(stage_netns);
  } else if (p.own_network && !as_own_network()) {
    fail(stage_netns);
  }
  for (int i = 0; i < p.n_rlimits; ++i)
    if (::setrlimit(p.rlimits[i].resource, &p.rlimits[i].value) != 0)
      fail(stage_rlimit);
  if (::chdir(p.workdir) != 0)
    fail(stage_chdir);
  if (::dup2(p.null_fd, 0) < 0 || ::dup2(p.out_fd, 1) < 0 || ::dup2(p.err_fd, 2) < 0)
    fail(stage_stdio);
  // Nothing of the agent (ZeroMQ sockets, journal files) may leak into the job.
  as_close_from(3, true, p.max_fd);
  ::execve(p.exe, p.argv, p.envp);
  fail(stage_exec);
  ::_exit(127);
}

[[noreturn]] void run_shim(const launch_plan& p) {
  ::setsid();
  as_reset_signals();
  struct sigaction ign;
  std::memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, nullptr); // the executor may be gone when we report
  as_unblock_signals();
  // Orphans of the job are re-parented to the shim, so the tree stays findable.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  shim_report rep;
  int ep[2];
  if (::pipe2(ep, O_CLOEXEC) != 0) {
    rep.stage = stage_pipe;
    rep.err = errno;
    as_write_all(p.report_fd, &rep, sizeof rep);
    ::_exit(120);
  }
  pid_t pid = as_fork();
  if (pid == 0) {
    ::close(ep[0]);
    run_job(p, ep[1]);
  }
  int fork_err = errno;
  ::close(ep[1]);
  if (pid < 0) {
    rep.stage = stage_fork;
    rep.err = fork_err;
    as_write_all(p.report_fd, &rep, sizeof rep);
    ::_exit(120);
  }
  ::setpgid(pid, pid); // also done by the job: whichever runs first wins the race
  std::int32_t msg[2] = {0, 0};
  bool failed = as_read_full(ep[0], msg, sizeof msg) == sizeof msg; // EOF = exec succeeded
  ::close(ep[0]);
  rep.pid = pid;
  rep.start_ticks = as_starttime(pid);
  if (failed) {
    rep.stage = msg[0];
    rep.err = msg[1];
  }
  as_write_all(p.report_fd, &rep, sizeof rep);

  ::dup2(p.null_fd, 0);
  ::dup2(p.null_fd, 1);
  ::dup2(p.null_fd, 2);
  // The measured link's namespace stays open here until the job's final counters are read.
  if (p.ns_fd >= 3) {
    for (int fd = 3; fd < p.ns_fd; ++fd)
      ::close(fd);
    as_close_from(p.ns_fd + 1, false, p.max_fd);
  } else {
    as_close_from(3, false, p.max_fd);
  }

  fixed_buf pf;
  pf.kv("pid", pid);
  pf.kv("start_ticks", static_cast<long long>(rep.start_ticks));
  as_write_atomic(p.pid_tmp, p.pid_path, pf);

  int status = 0;
  struct rusage ru;
  std::memset(&ru, 0, sizeof ru);
  long long io_read = -1, io_write = -1, link_bytes = -1;
  for (;;) {
    // Wait without reaping first: the job's /proc/<pid>/io (its reaped children folded
    // in) is readable until it is reaped, and holds the I/O the last sample missed.
    siginfo_t si;
    std::memset(&si, 0, sizeof si);
    if (::waitid(P_ALL, 0, &si, WEXITED | WNOWAIT) != 0) {
      if (errno == EINTR)
        continue;
      status = -1;
      break;
    }
    if (si.si_pid == pid && io_read < 0) {
      as_read_io(pid, io_read, io_write);
      if (p.link_rx) {
        long long rx = as_read_counter(p.link_rx), tx = as_read_counter(p.link_tx);
        long long rxp = as_read_counter(p.link_rx_packets), txp = as_read_counter(p.link_tx_packets);
        if (rx >= 0 && tx >= 0 && rxp >= 0 && txp >= 0)
          link_bytes = payload_bytes(rx + tx, rxp + txp);
      }
    }
    int st = 0;
    struct rusage r;
    pid_t w = ::wait4(si.si_pid, &st, 0, &r);
    if (w == pid) {
      status = st;
      ru = r;
      break;
    }
    if (w < 0 && errno != EINTR && errno != ECHILD) {
      status = -1;
      break;
    }
  }
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  fixed_buf ef;
  ef.kv("pid", pid);
  if (status == -1) {
    ef.kv("lost", 1);
  } else if (WIFSIGNALED(status)) {
    ef.kv("signal", WTERMSIG(status));
    ef.kv("core_dumped", WCOREDUMP(status) ? 1 : 0);
  } else {
    ef.kv("exit_code", WEXITSTATUS(status));
  }
  ef.kv("finished_at", static_cast<long long>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000);
  ef.kv("utime_us", static_cast<long long>(ru.ru_utime.tv_sec) * 1'000'000 + ru.ru_utime.tv_usec);
  ef.kv("stime_us", static_cast<long long>(ru.ru_stime.tv_sec) * 1'000'000 + ru.ru_stime.tv_usec);
  ef.kv("max_rss_kb", ru.ru_maxrss);
  if (io_read >= 0) {
    ef.kv("io_read", io_read);
    ef.kv("io_write", io_write);
  }
  if (link_bytes >= 0)
    ef.kv("net_link_bytes", link_bytes);
  if (failed) {
    ef.kv("start_stage", msg[0]);
    ef.kv("start_errno", msg[1]);
  }
  as_write_atomic(p.exit_tmp, p.exit_path, ef);
  ::_exit(0);
}

// ---------------------------------------------------------------------------
// Ordinary helpers (executor side).

std::string errno_text(int e) {
  return std::error_code(e, std::generic_category()).message();
}

std::optional<std::string> slurp(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0)
      break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

/// Writes `text` into an existing file (a cgroup knob); the error names the file.
std::string write_knob(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return path + ": " + errno_text(errno);
  bool ok = as_write_all(fd, text.data(), text.size());
  int e = errno;
  ::close(fd);
  return ok ? std::string() : "writing '" + text + "' to " + path + ": " + errno_text(e);
}

std::string write_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return tmp + ": " + errno_text(errno);
  bool ok = as_write_all(fd, text.data(), text.size()) && ::fsync(fd) == 0;
  int e = errno;
  ::close(fd);
  if (!ok)
    return tmp + ": " + errno_text(e);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return path + ": " + errno_text(errno);
  return {};
}

bool exists(const std::string& path) {
  struct stat sb;
  return ::stat(path.c_str(), &sb) == 0;
}

/// mkdir -p; returns the directories it created (outermost first) in `created`.
std::string make_dirs(const std::string& path, std::vector<std::string>* created = nullptr) {
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string part = path.substr(0, pos);
    if (part.empty())
      continue;
    if (::mkdir(part.c_str(), 0755) == 0) {
      if (created)
        created->push_back(part);
    } else if (errno != EEXIST) {
      return part + ": " + errno_text(errno);
    }
  }
  return {};
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = s.find(sep, start);
    out.emplace_back(s.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos)
      return out;
    start = end + 1;
  }
}

template <class T> bool to_num(std::string_view s, T& out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc();
}

/// "key value" or "key=value" lines.
std::map<std::string, long long> parse_pairs(const std::string& text, char sep) {
  std::map<std::string, long long> out;
  for (auto& line : split(text, '\n')) {
    auto at = line.find(sep);
    if (at == std::string::npos)
      continue;
    std::string_view value(line);
    value.remove_prefix(at + 1);
    while (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
    long long v = 0;
    if (to_num(value, v))
      out[line.substr(0, at)] = v;
  }
  return out;
}

struct proc_stat {
  int pid = 0, ppid = 0, pgrp = 0;
  char state = '?';
  long long ticks = 0; ///< utime + stime + cutime + cstime (waited-for children included)
  long long threads = 0;
  long long rss_pages = 0;
  unsigned long long start = 0;
};

std::optional<proc_stat> parse_stat(std::string_view s) {
  auto close = s.rfind(')');
  if (close == std::string_view::npos)
    return std::nullopt;
  proc_stat p;
  if (!to_num(s.substr(0, s.find(' ')), p.pid))
    return std::nullopt;
  std::string_view f[22];
  std::size_t n = 0, i = close + 1;
  while (n < 22 && i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n'))
      ++i;
    std::size_t b = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\n')
      ++i;
    if (i > b)
      f[n++] = s.substr(b, i - b);
  }
  if (n < 22)
    return std::nullopt;
  // f[k] is field k+3 of proc(5).
  long long ut = 0, st = 0, cut = 0, cst = 0;
  p.state = f[0][0];
  bool ok = to_num(f[1], p.ppid) && to_num(f[2], p.pgrp) && to_num(f[11], ut) &&
            to_num(f[12], st) && to_num(f[13], cut) && to_num(f[14], cst) &&
            to_num(f[17], p.threads) && to_num(f[19], p.start) && to_num(f[21], p.rss_pages);
  if (!ok)
    return std::nullopt;
  p.ticks = ut + st + cut + cst;
  return p;
}

std::optional<proc_stat> read_stat(int pid) {
  if (pid <= 0)
    return std::nullopt;
  auto text = slurp("/proc/" + std::to_string(pid) + "/stat");
  return text ? parse_stat(*text) : std::nullopt;
}

/// The process `pid` exists and is the one started at `start` (not a reused pid).
/// A zombie counts as alive only if `zombie_ok` (its exit is about to be reported).
bool alive(int pid, unsigned long long start, bool zombie_ok) {
  auto s = read_stat(pid);
  return s && s->start == start && s->state != 'X' && (zombie_ok || s->state != 'Z');
}

struct proc_io {
  bytes_t read = 0, write = 0;
};

/// I/O of one process (its reaped children included, as the kernel folds them in).
/// `read_bytes`/`write_bytes` count storage traffic only, so reads served from the
/// page cache and writes to pipes or tmpfs show as 0 there; `rchar`/`wchar` count
/// every read()/write(). We report the larger of the two per process: it equals
/// read_bytes/write_bytes when those see the traffic, falls back to rchar/wchar when
/// they do not, and stays monotonic (a max of two monotonic counters).
proc_io read_io(int pid) {
  proc_io io;
  auto text = slurp("/proc/" + std::to_string(pid) + "/io");
  if (!text)
    return io;
  auto kv = parse_pairs(*text, ':');
  io.read = std::max(kv["read_bytes"], kv["rchar"]);
  io.write = std::max(kv["write_bytes"], kv["wchar"]);
  return io;
}

std::vector<int> read_pids(const std::string& procs_file) {
  std::vector<int> out;
  auto text = slurp(procs_file);
  if (!text)
    return out;
  for (auto& line : split(*text, '\n')) {
    int pid = 0;
    if (!line.empty() && to_num(line, pid))
      out.push_back(pid);
  }
  return out;
}

/// All processes, read once per poll (only when some job runs without cgroups).
struct proc_table {
  std::unordered_map<int, proc_stat> procs;
  std::unordered_multimap<int, int> children; // ppid -> pid

  static proc_table scan() {
    proc_table t;
    DIR* d = ::opendir("/proc");
    if (!d)
      return t;
    while (dirent* e = ::readdir(d)) {
      int pid = 0;
      if (!to_num(std::string_view(e->d_name), pid) || pid <= 0)
        continue;
      if (auto s = read_stat(pid)) {
        t.procs.emplace(pid, *s);
        t.children.emplace(s->ppid, pid);
      }
    }
    ::closedir(d);
    return t;
  }
};

// ---------------------------------------------------------------------------
// cgroup discovery.

struct mount_entry {
  std::string root, point, fstype;
  std::vector<std::string> super_options;
};

std::vector<mount_entry> read_mountinfo() {
  std::vector<mount_entry> out;
  auto text = slurp("/proc/self/mountinfo");
  if (!text)
    return out;
  for (auto& line : split(*text, '\n')) {
    auto fields = split(line, ' ');
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || fields.end() - dash < 4)
      continue;
    mount_entry m;
    m.root = fields[3];
    m.point = fields[4];
    m.fstype = dash[1];
    m.super_options = split(dash[3], ',');
    out.push_back(std::move(m));
  }
  return out;
}

/// controller -> this process's cgroup path in that hierarchy; "" for cgroup v2.
std::map<std::string, std::string> read_own_cgroups() {
  std::map<std::string, std::string> out;
  auto text = slurp("/proc/self/cgroup");
  if (!text)
    return out;
  for (auto& line : split(*text, '\n')) {
    auto a = line.find(':');
    auto b = line.find(':', a == std::string::npos ? a : a + 1);
    if (a == std::string::npos || b == std::string::npos)
      continue;
    std::string path = line.substr(b + 1);
    auto controllers = line.substr(a + 1, b - a - 1);
    if (controllers.empty())
      out[""] = path;
    else
      for (auto& c : split(controllers, ','))
        out[c] = path;
  }
  return out;
}

/// Directory of hierarchy path `path` under mount `m` (the mount may show a subtree).
std::string hierarchy_dir(const mount_entry& m, std::string path) {
  if (m.root != "/" && path.rfind(m.root, 0) == 0)
    path = path.substr(m.root.size());
  std::string dir = m.point + (path.empty() || path.front() == '/' ? "" : "/") + path;
  while (dir.size() > 1 && dir.back() == '/')
    dir.pop_back();
  return dir;
}

std::string join_path(const std::string& a, const std::string& b) {
  return (a.empty() || a.back() != '/') ? a + "/" + b : a + b;
}

/// Creates `dir` (and parents) to see whether we may, then removes what it created.
bool probe_dir(const std::string& dir) {
  std::vector<std::string> created;
  bool ok = make_dirs(dir, &created).empty() && ::access(dir.c_str(), W_OK) == 0;
  for (auto it = created.rbegin(); it != created.rend(); ++it)
    ::rmdir(it->c_str());
  return ok;
}

struct cgroup_layout {
  std::string mode = mode_rlimit;
  std::map<std::string, std::string> parents; ///< role -> dir that holds job cgroups
};

std::optional<cgroup_layout> probe_v1(const std::vector<mount_entry>& mounts,
                                      std::map<std::string, std::string> own,
                                      const char* parent_env) {
  cgroup_layout l;
  l.mode = mode_v1;
  for (const char* role : {"memory", "cpu", "cpuacct", "pids"}) {
    const bool optional = std::string_view(role) == "pids";
    auto m = std::find_if(mounts.begin(), mounts.end(), [&](const mount_entry& e) {
      return e.fstype == "cgroup" &&
             std::count(e.super_options.begin(), e.super_options.end(), role) > 0;
    });
    if (m == mounts.end()) {
      if (optional)
        continue;
      return std::nullopt;
    }
    std::string own_path = own.count(role) ? own[role] : "/";
    std::string dir = hierarchy_dir(*m, parent_env ? parent_env : join_path(own_path, "tender"));
    if (!probe_dir(dir)) {
      if (optional)
        continue;
      return std::nullopt;
    }
    l.parents[role] = dir;
  }
  return l;
}

bool has_word(const std::string& text, const std::string& word) {
  for (auto& w : split(text, ' '))
    if (w == word || w == word + "\n")
      return true;
  return false;
}

std::optional<cgroup_layout> probe_v2(const std::vector<mount_entry>& mounts,
                                      std::map<std::string, std::string> own,
                                      const char* parent_env) {
  auto m = std::find_if(mounts.begin(), mounts.end(),
                        [](const mount_entry& e) { return e.fstype == "cgroup2"; });
  if (m == mounts.end() || !own.count(""))
    return std::nullopt;
  std::string parent = hierarchy_dir(*m, parent_env ? parent_env : join_path(own[""], "tender"));
  std::string above = parent.substr(0, parent.rfind('/'));
  auto available = slurp(above + "/cgroup.controllers").value_or("");
  if (!has_word(available, "memory") || !has_word(available, "cpu"))
    return std::nullopt;
  const std::string wanted = has_word(available, "pids") ? "+memory +cpu +pids" : "+memory +cpu";
  auto enabled = slurp(above + "/cgroup.subtree_control").value_or("");
  if (!has_word(enabled, "memory") || !has_word(enabled, "cpu"))
    if (!write_knob(above + "/cgroup.subtree_control", wanted).empty())
      return std::nullopt; // e.g. EBUSY: our own cgroup holds processes
  std::vector<std::string> created;
  if (!make_dirs(parent, &created).empty() ||
      !write_knob(parent + "/cgroup.subtree_control", wanted).empty()) {
    for (auto it = created.rbegin(); it != created.rend(); ++it)
      ::rmdir(it->c_str());
    return std::nullopt;
  }
  cgroup_layout l;
  l.mode = mode_v2;
  l.parents["unified"] = parent;
  return l;
}

cgroup_layout detect_layout() {
  const char* forced = std::getenv("TENDER_EXECUTOR_MODE");
  const std::string want = forced ? forced : "";
  if (want == mode_rlimit)
    return {};
  const auto mounts = read_mountinfo();
  const auto own = read_own_cgroups();
  const char* parent_env = std::getenv("TENDER_CGROUP_PARENT");
  if (want != mode_v2)
    if (auto l = probe_v1(mounts, own, parent_env))
      return *l;
  if (want != mode_v1)
    if (auto l = probe_v2(mounts, own, parent_env))
      return *l;
  return {};
}

std::string valid_job_id(const std::string& id) {
  bool ok =
      !id.empty() && id.size() <= 200 && id.front() != '.' &&
      std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
      });
  return ok ? std::string()
            : "invalid job id '" + id + "': use 1-200 letters, digits, '.', '_' or '-'";
}

/// A descriptor >= 3 with FD_CLOEXEC, so dup2 onto 0/1/2 in the child never aliases.
int high_fd(int fd) {
  if (fd < 0 || fd >= 3)
    return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;
}

/// Threads of all processes of the real uid (what RLIMIT_NPROC counts).
long long user_tasks(uid_t uid) {
  long long n = 0;
  DIR* d = ::opendir("/proc");
  if (!d)
    return 0;
  while (dirent* e = ::readdir(d)) {
    int pid = 0;
    struct stat sb;
    if (!to_num(std::string_view(e->d_name), pid) ||
        ::stat(("/proc/" + std::string(e->d_name)).c_str(), &sb) != 0 || sb.st_uid != uid)
      continue;
    if (auto s = read_stat(pid))
      n += s->threads;
  }
  ::closedir(d);
  return n;
}

// ---------------------------------------------------------------------------
// The measured network link (exec_sandbox::network_link).

/// A network namespace joined to the host's by a veth pair, ready for a job to enter.
/// Only `ns_fd` (and, once the job runs, its processes) holds the namespace: closing
/// the last reference makes the kernel delete the namespace and the pair with it.
struct net_link {
  int ns_fd = -1;
  std::string host_if;   ///< "tnd<N>"
  std::string host_addr; ///< 10.213.a.b+1
  std::string job_addr;  ///< 10.213.a.b+2
  std::string info;
};

constexpr int link_slots = 1 << 14; // /30 subnets in 10.213.0.0/16

std::string find_ip_tool() {
  if (const char* forced = std::getenv("TENDER_IP_TOOL"))
    return ::access(forced, X_OK) == 0 ? forced : std::string();
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (::access(p, X_OK) == 0)
      return p;
  return {};
}

/// Runs `ip ARGS`, inside the network namespace `ns_fd` when it is >= 0. Empty on
/// success, else what ip said. Never waits more than 5 s.
std::string run_ip(const std::string& ip, const std::vector<std::string>& args, int ns_fd = -1) {
  std::vector<std::string> words{ip};
  words.insert(words.end(), args.begin(), args.end());
  std::string cmd = "ip";
  for (auto& a : args)
    cmd += " " + a;
  std::vector<char*> argv;
  for (auto& w : words)
    argv.push_back(w.data());
  argv.push_back(nullptr);
  char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char* envp[] = {path_env, nullptr};
  int ep[2];
  if (::pipe2(ep, O_CLOEXEC) != 0)
    return cmd + ": pipe: " + errno_text(errno);
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = as_fork();
  if (pid == 0) {
    as_reset_signals();
    as_unblock_signals();
    if (ns_fd >= 0 && ::setns(ns_fd, CLONE_NEWNET) != 0)
      ::_exit(125);
    if (null_fd >= 0) {
      ::dup2(null_fd, 0);
      ::dup2(null_fd, 1);
    }
    ::dup2(ep[1], 2);
    ::execve(argv[0], argv.data(), envp);
    ::_exit(127);
  }
  const int fork_err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(ep[1]);
  if (null_fd >= 0)
    ::close(null_fd);
  if (pid < 0) {
    ::close(ep[0]);
    return cmd + ": fork: " + errno_text(fork_err);
  }
  std::string err;
  bool timed_out = true;
  for (int waited = 0; waited < 5000;) {
    pollfd pfd{ep[0], POLLIN, 0};
    int r = ::poll(&pfd, 1, 100);
    if (r < 0 && errno != EINTR)
      break;
    if (r <= 0) {
      waited += 100;
      continue;
    }
    char buf[512];
    ssize_t n = ::read(ep[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      timed_out = false;
      break;
    }
    if (err.size() < 4096)
      err.append(buf, static_cast<std::size_t>(n));
  }
  ::close(ep[0]);
  if (timed_out)
    ::kill(pid, SIGKILL);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!timed_out && WIFEXITED(st) && WEXITSTATUS(st) == 0)
    return {};
  while (!err.empty() && (err.back() == '\n' || err.back() == ' '))
    err.pop_back();
  if (timed_out)
    return cmd + ": no answer within 5 s";
  if (WIFEXITED(st) && WEXITSTATUS(st) == 125)
    return cmd + ": cannot enter the job's network namespace";
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127 && err.empty())
    return cmd + ": cannot run " + ip;
  return cmd + ": " + (err.empty() ? "failed" : err);
}

std::string ipv4(int a, int b, int c, int d) {
  return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + "." +
         std::to_string(d);
}

/// Makes the namespace and the pair. `hint` spreads concurrent executors over the slots.
std::variant<net_link, std::string> make_net_link(unsigned hint) {
  const std::string ip = find_ip_tool();
  if (ip.empty())
    return std::string(std::getenv("TENDER_IP_TOOL") ? "TENDER_IP_TOOL is not executable"
                                                     : "the ip tool (iproute2) is not installed");
  if (::geteuid() != 0)
    return std::string("a network link needs root");
  // A short-lived child creates the namespace and holds it until we have a descriptor for
  // it and the pair's far end is inside.
  int ready[2], hold[2];
  if (::pipe2(ready, O_CLOEXEC) != 0)
    return "pipe: " + errno_text(errno);
  if (::pipe2(hold, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(ready[0]);
    ::close(ready[1]);
    return "pipe: " + errno_text(e);
  }
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t holder = as_fork();
  if (holder == 0) {
    ::close(ready[0]);
    ::close(hold[1]);
    char c = ::unshare(CLONE_NEWNET) == 0 ? 1 : 0;
    as_write_all(ready[1], &c, 1);
    as_read_full(hold[0], &c, 1); // until the executor closes its end
    ::_exit(0);
  }
  const int fork_err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(ready[1]);
  ::close(hold[0]);
  net_link link;
  std::string err;
  auto release_holder = [&] {
    ::close(hold[1]);
    ::close(ready[0]);
    if (holder > 0)
      while (::waitpid(holder, nullptr, 0) < 0 && errno == EINTR) {
      }
  };
  if (holder < 0) {
    ::close(hold[1]);
    ::close(ready[0]);
    return "fork: " + errno_text(fork_err);
  }
  char ok = 0;
  pollfd pfd{ready[0], POLLIN, 0};
  if (::poll(&pfd, 1, 5000) != 1 || as_read_full(ready[0], &ok, 1) != 1 || ok != 1) {
    release_holder();
    return std::string("cannot create a network namespace (unshare)");
  }
  link.ns_fd = ::open(("/proc/" + std::to_string(holder) + "/ns/net").c_str(),
                      O_RDONLY | O_CLOEXEC);
  if (link.ns_fd < 0) {
    err = "cannot open the new network namespace: " + errno_text(errno);
    release_holder();
    return err;
  }
  // The interface name reserves the slot: creating tnd<N> fails when another run has it.
  int slot = -1;
  for (int attempt = 0; attempt < 256 && slot < 0; ++attempt) {
    const int n = static_cast<int>((hint + static_cast<unsigned>(attempt) * 2654435761u) %
                                   static_cast<unsigned>(link_slots));
    const std::string name = "tnd" + std::to_string(n);
    if (exists("/sys/class/net/" + name))
      continue;
    err = run_ip(ip, {"link", "add", name, "type", "veth", "peer", "name", "eth0", "netns",
                      std::to_string(holder)});
    if (err.empty()) {
      slot = n;
      link.host_if = name;
    } else if (err.find("File exists") == std::string::npos) {
      break;
    }
  }
  release_holder();
  if (slot < 0) {
    ::close(link.ns_fd);
    return err.empty() ? std::string("no free link slot in 10.213.0.0/16") : err;
  }
  const int c = slot >> 6, d = (slot & 63) << 2;
  link.host_addr = ipv4(10, 213, c, d + 1);
  link.job_addr = ipv4(10, 213, c, d + 2);
  const std::vector<std::pair<std::vector<std::string>, bool>> steps = {
      {{"addr", "add", link.host_addr + "/30", "dev", link.host_if}, false},
      {{"link", "set", link.host_if, "up"}, false},
      {{"link", "set", "lo", "up"}, true},
      {{"addr", "add", link.job_addr + "/30", "dev", "eth0"}, true},
      {{"link", "set", "eth0", "up"}, true},
      {{"route", "add", "default", "via", link.host_addr}, true},
  };
  for (auto& [args, inside] : steps) {
    err = run_ip(ip, args, inside ? link.ns_fd : -1);
    if (!err.empty()) {
      run_ip(ip, {"link", "del", link.host_if});
      ::close(link.ns_fd);
      return err;
    }
  }
  link.info = link.host_if + " " + link.host_addr + "/30 <-> eth0 " + link.job_addr + "/30";
  return link;
}

/// Payload bytes both ways through a host interface; -1 when it is gone.
long long link_bytes(const std::string& host_if) {
  const std::string base = "/sys/class/net/" + host_if + "/statistics/";
  long long v[4] = {-1, -1, -1, -1};
  const char* names[4] = {"rx_bytes", "tx_bytes", "rx_packets", "tx_packets"};
  for (int i = 0; i < 4; ++i) {
    auto text = slurp(base + names[i]);
    if (!text || !to_num(std::string_view(*text).substr(0, text->find('\n')), v[i]))
      return -1;
  }
  return payload_bytes(v[0] + v[1], v[2] + v[3]);
}

} // namespace

// ---------------------------------------------------------------------------

struct executor::impl {
  struct job_rec {
    exec_state st;
    std::vector<std::string> argv;
    std::map<std::string, std::string> cgroups; ///< role -> leaf dir
    bool cancelled = false;
    std::string cancel_reason;
    bool walltime_hit = false;
    std::optional<usec> kill_at;
    bool kill_sent = false;
    // Sampling baseline (not persisted: a new executor starts a new one).
    bool have_base = false;
    long long base_cpu_ns = 0;
    usec base_at = 0;
    millicores last_cpu = 0;
    bytes_t io_read = 0, io_write = 0;
    bytes_t net_bytes = 0;
    bytes_t link_bytes = 0; ///< host end of the measured link, cumulative
    bytes_t lo_bytes = 0;   ///< sent on the job's own lo, cumulative

    bool uses_cgroups() const { return !cgroups.empty(); }
    std::string procs_file() const {
      auto it = cgroups.find(st.mode == mode_v2 ? "unified" : "memory");
      return it == cgroups.end() ? std::string() : it->second + "/cgroup.procs";
    }
    std::vector<std::string> leaves() const {
      std::vector<std::string> out;
      for (auto& [role, dir] : cgroups)
        if (std::find(out.begin(), out.end(), dir) == out.end())
          out.push_back(dir);
      return out;
    }
  };

  struct pending_cleanup {
    std::vector<std::string> dirs;
    int shim_pid = 0;
    int tries = 0;
  };

  std::string root;
  cgroup_layout layout;
  std::map<std::string, job_rec> jobs;
  std::vector<pending_cleanup> pending;
  unsigned link_counter = 0;
  long page_size = ::sysconf(_SC_PAGESIZE);
  long clk_tck = ::sysconf(_SC_CLK_TCK);

  std::string run_dir(const std::string& id) const { return root + "/" + id; }

  // --- state file ---------------------------------------------------------

  static nlohmann::json limits_json(const exec_limits& l) {
    return {{"cpu", l.cpu},
            {"memory", l.memory},
            {"pids", l.pids},
            {"walltime", l.walltime},
            {"max_output", l.max_output}};
  }

  std::string save_state(const job_rec& j) const {
    nlohmann::json s = {{"version", 1},
                        {"job_id", j.st.job_id},
                        {"run_dir", j.st.run_dir},
                        {"mode", j.st.mode},
                        {"shim_pid", j.st.shim_pid},
                        {"shim_start_ticks", j.st.shim_start_ticks},
                        {"pid", j.st.pid},
                        {"start_ticks", j.st.start_ticks},
                        {"started_at", j.st.started_at},
                        {"argv", j.argv},
                        {"cgroups", j.cgroups},
                        {"limits", limits_json(j.st.limits)},
                        {"cancelled", j.cancelled},
                        {"cancel_reason", j.cancel_reason},
                        {"walltime_exceeded", j.walltime_hit},
                        {"own_network", j.st.own_network},
                        {"sandbox", j.st.sandbox},
                        {"net_link", j.st.net_link},
                        {"net_link_info", j.st.net_link_info}};
    if (j.kill_at)
      s["kill_at"] = *j.kill_at;
    return write_atomic(j.st.run_dir + "/state", s.dump(2) + "\n");
  }

  std::variant<job_rec, std::string> load_state(const std::string& id) const {
    const std::string path = run_dir(id) + "/state";
    auto text = slurp(path);
    if (!text)
      return "job " + id + ": no state file " + path + " (" + errno_text(errno) + ")";
    try {
      auto s = nlohmann::json::parse(*text);
      job_rec j;
      j.st.job_id = s.at("job_id").get<std::string>();
      if (j.st.job_id != id)
        return path + ": holds job '" + j.st.job_id + "', expected '" + id + "'";
      j.st.run_dir = run_dir(id);
      j.st.mode = s.value("mode", std::string(mode_rlimit));
      j.st.shim_pid = s.at("shim_pid").get<int>();
      j.st.shim_start_ticks = s.value("shim_start_ticks", 0ULL);
      j.st.pid = s.at("pid").get<int>();
      j.st.start_ticks = s.at("start_ticks").get<unsigned long long>();
      j.st.started_at = s.value("started_at", usec{0});
      j.argv = s.value("argv", std::vector<std::string>{});
      j.cgroups = s.value("cgroups", std::map<std::string, std::string>{});
      auto l = s.value("limits", nlohmann::json::object());
      j.st.limits.cpu = l.value("cpu", millicores{0});
      j.st.limits.memory = l.value("memory", bytes_t{0});
      j.st.limits.pids = l.value("pids", std::int64_t{0});
      j.st.limits.walltime = l.value("walltime", usec{0});
      j.st.limits.max_output = l.value("max_output", bytes_t{0});
      j.cancelled = s.value("cancelled", false);
      j.cancel_reason = s.value("cancel_reason", std::string());
      j.walltime_hit = s.value("walltime_exceeded", false);
      j.st.own_network = s.value("own_network", false);
      j.st.sandbox = s.value("sandbox", std::string());
      j.st.net_link = s.value("net_link", std::string());
      j.st.net_link_info = s.value("net_link_info", std::string());
      if (s.contains("kill_at"))
        j.kill_at = s["kill_at"].get<usec>();
      std::string joined;
      for (auto& dir : j.leaves())
        joined += (joined.empty() ? "" : ":") + dir;
      j.st.cgroup = joined;
      return j;
    } catch (const std::exception& e) {
      return path + ": unreadable state (" + e.what() + ")";
    }
  }

  // --- cgroups -------------------------------------------------------------

  /// Writes the knobs for the limits that differ from `old` (all of them if null).
  /// `applied` (if given) follows each knob that was written successfully.
  std::string apply_cgroup_limits(const job_rec& j, const exec_limits& l, const exec_limits* old,
                                  exec_limits* applied = nullptr) const {
    auto dir = [&](const char* role) {
      auto it = j.cgroups.find(role);
      return it == j.cgroups.end() ? std::string() : it->second;
    };
    const bool v2 = j.st.mode == mode_v2;
    if (!old || old->memory != l.memory) {
      auto file = v2 ? dir("unified") + "/memory.max" : dir("memory") + "/memory.limit_in_bytes";
      auto value = l.memory > 0 ? std::to_string(l.memory) : (v2 ? "max" : "-1");
      if (auto e = write_knob(file, value); !e.empty())
        return e;
      if (applied)
        applied->memory = l.memory;
    }
    if (!old || old->cpu != l.cpu) {
      long long quota = l.cpu > 0 ? std::max(1000LL, l.cpu * cfs_period_us / 1000) : -1;
      // Under contention a job's cgroup competes as one entity: weight it by the
      // cores it asked for (1024 shares per core, as Kubernetes does).
      long long shares = l.cpu > 0 ? std::max<long long>(2, l.cpu * 1024 / 1000) : 1024;
      if (v2) {
        auto value =
            (quota > 0 ? std::to_string(quota) : "max") + " " + std::to_string(cfs_period_us);
        if (auto e = write_knob(dir("unified") + "/cpu.max", value); !e.empty())
          return e;
        long long weight = std::clamp(1 + (shares - 2) * 9999 / 262142, 1LL, 10000LL);
        if (auto e = write_knob(dir("unified") + "/cpu.weight", std::to_string(weight)); !e.empty())
          return e;
      } else if (!dir("cpu").empty()) {
        if (auto e = write_knob(dir("cpu") + "/cpu.shares", std::to_string(shares)); !e.empty())
          return e;
        if (auto e = write_knob(dir("cpu") + "/cpu.cfs_period_us", std::to_string(cfs_period_us));
            !e.empty())
          return e;
        if (auto e = write_knob(dir("cpu") + "/cpu.cfs_quota_us", std::to_string(quota));
            !e.empty())
          return e;
      }
      if (applied)
        applied->cpu = l.cpu;
    }
    if (!old || old->pids != l.pids) {
      auto base = v2 ? dir("unified") : dir("pids");
      if (!base.empty() && exists(base + "/pids.max"))
        if (auto e = write_knob(base + "/pids.max", l.pids > 0 ? std::to_string(l.pids) : "max");
            !e.empty())
          return e;
      if (applied)
        applied->pids = l.pids;
    }
    return {};
  }

  /// Creates the job's leaf cgroups (one per distinct hierarchy) and sets limits.
  std::string create_cgroups(job_rec& j) {
    std::map<std::string, std::string> leaf_of_parent;
    for (auto& [role, parent] : layout.parents) {
      if (!leaf_of_parent.count(parent)) {
        const std::string leaf = parent + "/" + j.st.job_id;
        if (exists(leaf) && ::rmdir(leaf.c_str()) != 0)
          return "cgroup " + leaf + " already exists and cannot be removed: " + errno_text(errno);
        std::string err;
        // Another executor may remove an empty parent between our mkdirs: retry.
        for (int attempt = 0; attempt < 3; ++attempt) {
          err = make_dirs(leaf);
          if (err.empty())
            break;
        }
        if (!err.empty())
          return "cannot create cgroup " + err;
        leaf_of_parent[parent] = leaf;
      }
      j.cgroups[role] = leaf_of_parent[parent];
    }
    std::string joined;
    for (auto& dir : j.leaves())
      joined += (joined.empty() ? "" : ":") + dir;
    j.st.cgroup = joined;
    return apply_cgroup_limits(j, j.st.limits, nullptr);
  }

  /// Number of OOM kills in the job's memory cgroup (0 without cgroups).
  long long oom_kills(const job_rec& j) const {
    if (j.st.mode == mode_v2 && j.cgroups.count("unified"))
      return parse_pairs(slurp(j.cgroups.at("unified") + "/memory.events").value_or(""),
                         ' ')["oom_kill"];
    if (j.st.mode == mode_v1 && j.cgroups.count("memory")) {
      const auto& dir = j.cgroups.at("memory");
      auto kv = parse_pairs(slurp(dir + "/memory.oom_control").value_or(""), ' ');
      if (kv.count("oom_kill"))
        return kv["oom_kill"];
      // Kernels before 4.13 lack the counter: hitting the limit is the best hint.
      return parse_pairs("failcnt " + slurp(dir + "/memory.failcnt").value_or("0"), ' ')["failcnt"];
    }
    return 0;
  }

  // --- processes -----------------------------------------------------------

  /// The job's processes without cgroups: its pid, descendants, orphans the shim
  /// (a child subreaper) adopted, and anything still in the job's process group.
  /// Every parent comes before its children: the I/O of a child reaped between two
  /// reads is folded into its parent's counters, so reading a child first and its
  /// parent after would count that child twice (parent first can only miss it).
  std::vector<int> tree(const job_rec& j, const proc_table& t) const {
    std::vector<int> out, stack;
    std::unordered_set<int> seen;
    auto walk = [&](int root) {
      if (root == j.st.shim_pid || !t.procs.count(root) || !seen.insert(root).second)
        return;
      stack.push_back(root);
      while (!stack.empty()) {
        int pid = stack.back();
        stack.pop_back();
        out.push_back(pid);
        auto [b, e] = t.children.equal_range(pid);
        for (auto it = b; it != e; ++it)
          if (it->second != j.st.shim_pid && seen.insert(it->second).second)
            stack.push_back(it->second);
      }
    };
    auto job = t.procs.find(j.st.pid);
    const bool job_ours = job != t.procs.end() && job->second.start == j.st.start_ticks;
    if (job_ours)
      walk(j.st.pid);
    auto shim = t.procs.find(j.st.shim_pid);
    const bool shim_ours = shim != t.procs.end() && shim->second.start == j.st.shim_start_ticks;
    if (shim_ours) {
      auto [b, e] = t.children.equal_range(j.st.shim_pid);
      for (auto it = b; it != e; ++it)
        walk(it->second);
    }
    if (!job_ours && !shim_ours) // otherwise the group id may belong to a reused pid
      return out;
    // Group members outside both trees, each from its topmost ancestor still in the group.
    std::vector<int> rest;
    for (auto& [pid, s] : t.procs)
      if (s.pgrp == j.st.pid && !seen.count(pid))
        rest.push_back(pid);
    for (int pid : rest) {
      int top = pid;
      for (int hops = 0; hops < 64; ++hops) {
        auto up = t.procs.find(t.procs.at(top).ppid);
        if (up == t.procs.end() || up->second.pgrp != j.st.pid || up->first == top)
          break;
        top = up->first;
      }
      walk(top);
    }
    return out;
  }

  std::vector<int> members(const job_rec& j, const proc_table* t) const {
    if (j.uses_cgroups())
      return read_pids(j.procs_file());
    return t ? tree(j, *t) : std::vector<int>{};
  }

  void signal_job(const job_rec& j, int sig, const proc_table* t) const {
    if (alive(j.st.pid, j.st.start_ticks, true))
      if (::kill(-j.st.pid, sig) != 0)
        ::kill(j.st.pid, sig);
    if (sig == SIGKILL && j.st.mode == mode_v2 && j.cgroups.count("unified") &&
        write_knob(j.cgroups.at("unified") + "/cgroup.kill", "1").empty())
      return;
    for (int pid : members(j, t))
      ::kill(pid, sig);
  }

  /// Bytes through the network namespace of `pid`: sent on `lo` (each loopback byte is
  /// both sent and received there), received and sent on every other interface.
  static bytes_t namespace_net_bytes(int pid, bool lo_only = false) {
    auto text = slurp("/proc/" + std::to_string(pid) + "/net/dev");
    if (!text)
      return 0;
    bytes_t total = 0;
    for (auto& line : split(*text, '\n')) {
      auto colon = line.find(':');
      if (colon == std::string::npos)
        continue;
      std::string name(line.substr(0, colon));
      name.erase(0, name.find_first_not_of(' '));
      std::vector<long long> f;
      for (auto& w : split(std::string_view(line).substr(colon + 1), ' ')) {
        long long v = 0;
        if (!w.empty() && to_num(w, v))
          f.push_back(v);
      }
      if (f.size() < 9 || (lo_only && name != "lo"))
        continue;
      // f[0] / f[1]: received bytes / packets, f[8] / f[9]: sent.
      total += name == "lo" ? payload_bytes(f[8], f[9]) : payload_bytes(f[0] + f[8], f[1] + f[9]);
    }
    return total;
  }

  usage_sample sample(job_rec& j, usec now, const proc_table* t) {
    usage_sample s;
    s.at = now;
    long long cpu_ns = 0, ticks = 0, rss_pages = 0;
    bytes_t io_r = 0, io_w = 0;
    for (int pid : members(j, t)) {
      std::optional<proc_stat> ps;
      if (t && t->procs.count(pid))
        ps = t->procs.at(pid);
      else
        ps = read_stat(pid);
      if (!ps)
        continue;
      ticks += ps->ticks;
      rss_pages += ps->rss_pages;
      s.threads += static_cast<std::int32_t>(ps->threads);
      auto io = read_io(pid);
      io_r += io.read;
      io_w += io.write;
    }
    if (j.st.mode == mode_v1 && j.uses_cgroups()) {
      auto acct = j.cgroups.count("cpuacct") ? j.cgroups.at("cpuacct") : j.cgroups.at("memory");
      to_num(slurp(acct + "/cpuacct.usage").value_or("0\n").substr(0, 30), cpu_ns);
      auto stat = slurp(j.cgroups.at("memory") + "/memory.stat").value_or("");
      s.rss = parse_pairs(stat, ' ')["total_rss"];
    } else if (j.st.mode == mode_v2 && j.uses_cgroups()) {
      const auto& dir = j.cgroups.at("unified");
      cpu_ns = parse_pairs(slurp(dir + "/cpu.stat").value_or(""), ' ')["usage_usec"] * 1000;
      s.rss = parse_pairs(slurp(dir + "/memory.stat").value_or(""), ' ')["anon"];
    } else {
      cpu_ns = ticks * (1'000'000'000LL / std::max(1L, clk_tck));
      s.rss = rss_pages * page_size;
    }
    // Cumulative counters never go backwards, even when a process leaves the tree.
    j.io_read = std::max(j.io_read, io_r);
    j.io_write = std::max(j.io_write, io_w);
    s.io_read = j.io_read;
    s.io_write = j.io_write;
    if (!j.st.net_link.empty()) {
      j.link_bytes = std::max<bytes_t>(j.link_bytes, link_bytes(j.st.net_link));
      if (alive(j.st.pid, j.st.start_ticks, false))
        j.lo_bytes = std::max(j.lo_bytes, namespace_net_bytes(j.st.pid, true));
      j.net_bytes = std::max(j.net_bytes, j.link_bytes + j.lo_bytes);
      s.net_bytes = j.net_bytes;
    } else if (j.st.own_network) {
      j.net_bytes = std::max(j.net_bytes, namespace_net_bytes(j.st.pid));
      s.net_bytes = j.net_bytes;
    }
    // cpu = CPU time used / wall time passed since the previous sample.
    const bool first = !j.have_base;
    if (!first && now > j.base_at)
      j.last_cpu = std::max(0LL, cpu_ns - j.base_cpu_ns) / (now - j.base_at);
    if (first || now > j.base_at) {
      j.have_base = true;
      j.base_cpu_ns = cpu_ns;
      j.base_at = now;
    }
    s.cpu = j.last_cpu;
    return s;
  }

  // --- exit ----------------------------------------------------------------

  exit_info exit_from(const job_rec& j, const std::map<std::string, long long>& kv,
                      usec now) const {
    exit_info e;
    auto get = [&](const char* k) {
      auto it = kv.find(k);
      return it == kv.end() ? -1LL : it->second;
    };
    e.finished_at = get("finished_at") > 0 ? get("finished_at") : now;
    bool signaled = kv.count("signal") > 0;
    if (signaled) {
      e.signal = static_cast<std::int32_t>(get("signal"));
    } else {
      e.exit_code = static_cast<std::int32_t>(get("exit_code"));
    }
    // bubblewrap exits 128 + N when the job it runs was killed by signal N.
    if (!signaled && j.st.sandbox.find("bwrap") != std::string::npos && e.exit_code > 128 &&
        e.exit_code <= 128 + 64) {
      e.signal = e.exit_code - 128;
      e.exit_code = -1;
      signaled = true;
    }
    e.io_read = std::max<bytes_t>(0, get("io_read"));
    e.io_write = std::max<bytes_t>(0, get("io_write"));
    // The shim read the link's counters as the job exited: later than the last sample.
    e.net_bytes =
        std::max(j.net_bytes, std::max<bytes_t>(j.link_bytes, get("net_link_bytes")) + j.lo_bytes);
    const bool failed = signaled || e.exit_code != 0;
    if (kv.count("lost"))
      e.reason = "lost: the shim could not wait for the job";
    else if (kv.count("start_stage"))
      e.reason = std::string("failed to start: ") +
                 stage_name(static_cast<int>(get("start_stage"))) + ": " +
                 errno_text(static_cast<int>(get("start_errno")));
    else if (j.cancelled)
      e.reason = "cancelled: " + j.cancel_reason;
    else if (j.walltime_hit)
      e.reason = "walltime exceeded";
    else if (failed && oom_kills(j) > 0)
      e.reason = "out of memory";
    else if (signaled && e.signal == SIGXFSZ && j.st.limits.max_output > 0)
      e.reason = "output limit exceeded";
    else if (signaled && e.signal == SIGXCPU && j.st.limits.walltime > 0)
      e.reason = "walltime exceeded (cpu-time backstop)";
    else if (signaled)
      e.reason = "killed by signal " + std::to_string(e.signal);
    else
      e.reason = "exited " + std::to_string(e.exit_code);
    return e;
  }

  /// The job's exit, if it has ended: from the shim's exit file, or "lost" when
  /// both the job and its shim are gone without one.
  std::optional<exit_info> check_exit(const job_rec& j, usec now) const {
    const std::string path = j.st.run_dir + "/exit";
    auto text = slurp(path);
    if (!text) {
      if (alive(j.st.pid, j.st.start_ticks, true) ||
          alive(j.st.shim_pid, j.st.shim_start_ticks, false))
        return std::nullopt;
      text = slurp(path); // the shim may have written it just before exiting
      if (!text) {
        exit_info e;
        e.finished_at = now;
        e.reason = "lost: the job and its shim are gone and left no exit status";
        return e;
      }
    }
    return exit_from(j, parse_pairs(*text, '='), now);
  }

  /// After the exit: kill leftovers, remove the cgroups, reap the shim.
  /// `group_is_ours`: the job's pid was reaped just now, so a process group with
  /// its number is still the job's (false when the pid may have been reused).
  void finish(const job_rec& j, bool group_is_ours = true) {
    if (j.uses_cgroups()) {
      for (int pid : members(j, nullptr))
        ::kill(pid, SIGKILL);
    } else if (group_is_ours) {
      auto t = proc_table::scan();
      bool group_left = std::any_of(t.procs.begin(), t.procs.end(),
                                    [&](auto& p) { return p.second.pgrp == j.st.pid; });
      if (group_left)
        ::kill(-j.st.pid, SIGKILL);
    }
    pending_cleanup c;
    c.dirs = j.leaves();
    c.shim_pid = j.st.shim_pid;
    pending.push_back(std::move(c));
    retry_pending();
  }

  void retry_pending() {
    for (auto it = pending.begin(); it != pending.end();) {
      auto& c = *it;
      for (auto d = c.dirs.begin(); d != c.dirs.end();) {
        if (::rmdir(d->c_str()) == 0 || errno == ENOENT) {
          ::rmdir(d->substr(0, d->rfind('/')).c_str()); // the "tender" parent, once empty
          d = c.dirs.erase(d);
        } else {
          for (int pid : read_pids(*d + "/cgroup.procs"))
            ::kill(pid, SIGKILL);
          ++d;
        }
      }
      if (c.shim_pid > 0 && ::waitpid(c.shim_pid, nullptr, WNOHANG) != 0)
        c.shim_pid = 0; // reaped, or not our child
      if ((c.dirs.empty() && c.shim_pid == 0) || ++c.tries > 600)
        it = pending.erase(it);
      else
        ++it;
    }
  }

  void enforce(job_rec& j, usec now, const proc_table* t) {
    const auto& l = j.st.limits;
    if (!j.kill_at && !j.cancelled && l.walltime > 0 && now - j.st.started_at >= l.walltime) {
      j.walltime_hit = true;
      j.kill_at = now + walltime_grace;
      signal_job(j, SIGTERM, t);
      save_state(j);
    }
    if (j.kill_at && !j.kill_sent && now >= *j.kill_at) {
      j.kill_sent = true;
      signal_job(j, SIGKILL, t);
    }
  }
};

// ---------------------------------------------------------------------------

executor::executor(std::string root) : impl_(std::make_unique<impl>()) {
  while (root.size() > 1 && root.back() == '/')
    root.pop_back();
  impl_->root = std::move(root);
  impl_->layout = detect_layout();
}

executor::executor() = default;

executor::~executor() {
  // Jobs keep running (they must survive an agent crash); only finished jobs'
  // leftovers are tidied.
  if (impl_)
    impl_->retry_pending();
}

std::string executor::mode() const {
  return impl_->layout.mode;
}

std::variant<exec_state, std::string> executor::launch(const exec_request& req, usec now) {
  auto& I = *impl_;
  const std::string& id = req.job_id;
  if (auto e = valid_job_id(id); !e.empty())
    return e;
  if (req.argv.empty() || req.argv[0].empty())
    return "job " + id + ": empty command";
  if (I.jobs.count(id))
    return "job " + id + " is already running";
  const std::string run_dir = I.run_dir(id);
  if (auto e = make_dirs(run_dir); !e.empty())
    return "cannot create run dir " + e;
  if (::access(run_dir.c_str(), W_OK) != 0)
    return "run dir not writable: " + run_dir;
  if (auto prev = I.load_state(id); std::holds_alternative<impl::job_rec>(prev)) {
    auto& p = std::get<impl::job_rec>(prev);
    if (!exists(run_dir + "/exit") && alive(p.st.pid, p.st.start_ticks, true))
      return "job " + id + " is already running as pid " + std::to_string(p.st.pid) +
             " from an earlier executor: adopt() it";
  }
  const std::string workdir = req.workdir.empty() ? run_dir : req.workdir;
  struct stat sb;
  if (::stat(workdir.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode))
    return "workdir is not a directory: " + workdir;

  // Environment: a minimal inherited one, then the job's own.
  std::map<std::string, std::string> env;
  for (const char* key : {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE",
                          "TZ", "TMPDIR", "TERM"})
    if (const char* v = std::getenv(key))
      env[key] = v;
  if (!env.count("PATH"))
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  env["TENDER_JOB_ID"] = id;
  env["TENDER_RUN_DIR"] = run_dir;
  for (auto& [k, v] : req.env)
    env[k] = v;

  // argv[0] through PATH, checked here so the error is clear and synchronous.
  const std::string& name = req.argv[0];
  std::string exe;
  if (name.find('/') != std::string::npos) {
    std::string path = name.front() == '/' ? name : join_path(workdir, name);
    if (::stat(path.c_str(), &sb) != 0)
      return "command not found: " + name;
    if (S_ISDIR(sb.st_mode) || ::access(path.c_str(), X_OK) != 0)
      return "not executable: " + name;
    exe = path;
  } else {
    std::string not_exec;
    for (auto& dir : split(env["PATH"], ':')) {
      std::string cand = join_path(dir.empty() ? workdir : dir, name);
      if (::stat(cand.c_str(), &sb) != 0 || S_ISDIR(sb.st_mode))
        continue;
      if (::access(cand.c_str(), X_OK) == 0) {
        exe = cand;
        break;
      }
      if (not_exec.empty())
        not_exec = cand;
    }
    if (exe.empty())
      return not_exec.empty() ? "command not found: " + name : "not executable: " + not_exec;
  }

  std::vector<std::string> args = req.argv;
  std::string sandbox;
  // A network namespace needs CAP_SYS_ADMIN: without it the job keeps the host network
  // (and `sandbox` says so by not naming netns) rather than failing to start.
  bool own_network = req.sandbox.own_network && ::geteuid() == 0;
  if (own_network)
    sandbox = "netns";
  std::optional<net_link> link;
  std::string link_error;
  if (own_network && req.sandbox.network_link) {
    auto made = make_net_link(static_cast<unsigned>(::getpid()) * 97u + I.link_counter++ * 7919u);
    if (auto* l = std::get_if<net_link>(&made)) {
      link = std::move(*l);
      sandbox += "+link";
      env["TENDER_NET_HOST"] = link->host_addr;
      env["TENDER_NET_ADDR"] = link->job_addr;
    } else {
      // The job needs the network: without a link it keeps the host's, unmeasured.
      link_error = std::get<std::string>(made);
      own_network = false;
      sandbox.clear();
    }
  }
  if (req.sandbox.mount_view) {
    std::string bwrap;
    for (auto& dir : split(env["PATH"] + ":/usr/bin:/bin", ':'))
      if (!dir.empty() && ::access(join_path(dir, "bwrap").c_str(), X_OK) == 0) {
        bwrap = join_path(dir, "bwrap");
        break;
      }
    if (!bwrap.empty()) {
      // `/` read-only, private /dev, /proc and /tmp; the workdir (even below /tmp)
      // stays writable. The job's stdio files were opened outside, before exec.
      std::vector<std::string> wrapped = {bwrap,     "--ro-bind", "/",       "/",
                                          "--dev",   "/dev",      "--proc",  "/proc",
                                          "--tmpfs", "/tmp",      "--bind",  workdir,
                                          workdir,   "--chdir",   workdir,   "--die-with-parent",
                                          "--",      exe};
      wrapped.insert(wrapped.end(), args.begin() + 1, args.end());
      args = std::move(wrapped);
      exe = bwrap;
      sandbox += sandbox.empty() ? "bwrap" : "+bwrap";
    }
  }
  std::vector<char*> argv_ptrs;
  for (auto& a : args)
    argv_ptrs.push_back(a.data());
  argv_ptrs.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (auto& [k, v] : env)
    env_strings.push_back(k + "=" + v);
  std::vector<char*> envp_ptrs;
  for (auto& e : env_strings)
    envp_ptrs.push_back(e.data());
  envp_ptrs.push_back(nullptr);

  const std::string pid_path = run_dir + "/pid", pid_tmp = pid_path + ".tmp";
  const std::string exit_path = run_dir + "/exit", exit_tmp = exit_path + ".tmp";
  for (auto* p : {&pid_path, &pid_tmp, &exit_path, &exit_tmp})
    ::unlink(p->c_str());

  impl::job_rec job;
  job.st.job_id = id;
  job.st.run_dir = run_dir;
  job.st.limits = req.limits;
  job.st.started_at = now;
  job.st.mode = I.layout.mode;
  job.argv = req.argv;
  job.st.own_network = own_network;
  job.st.sandbox = sandbox;
  if (link) {
    job.st.net_link = link->host_if;
    job.st.net_link_info = link->info;
  }
  job.st.net_link_error = link_error;

  std::vector<int> fds;
  // Closing our descriptor of the link's namespace on any failure below makes the kernel
  // remove the namespace and the pair.
  const std::string link_rx = link ? "/sys/class/net/" + link->host_if + "/statistics/rx_bytes" : "";
  const std::string link_tx = link ? "/sys/class/net/" + link->host_if + "/statistics/tx_bytes" : "";
  const std::string link_rxp =
    link ? "/sys/class/net/" + link->host_if + "/statistics/rx_packets" : "";
  const std::string link_txp =
    link ? "/sys/class/net/" + link->host_if + "/statistics/tx_packets" : "";
  if (link)
    fds.push_back(link->ns_fd);
  auto cleanup = [&] {
    for (int fd : fds)
      if (fd >= 0)
        ::close(fd);
    for (auto& dir : job.leaves())
      ::rmdir(dir.c_str());
  };
  auto open_fd = [&](const std::string& path, int flags) {
    int fd = high_fd(::open(path.c_str(), flags | O_CLOEXEC, 0644));
    fds.push_back(fd);
    return fd;
  };

  launch_plan plan;
  plan.exe = exe.c_str();
  plan.argv = argv_ptrs.data();
  plan.envp = envp_ptrs.data();
  plan.workdir = workdir.c_str();
  plan.pid_path = pid_path.c_str();
  plan.pid_tmp = pid_tmp.c_str();
  plan.exit_path = exit_path.c_str();
  plan.exit_tmp = exit_tmp.c_str();
  plan.own_network = own_network;
  if (link) {
    plan.ns_fd = link->ns_fd;
    plan.link_rx = link_rx.c_str();
    plan.link_tx = link_tx.c_str();
    plan.link_rx_packets = link_rxp.c_str();
    plan.link_tx_packets = link_txp.c_str();
  }
  plan.null_fd = open_fd("/dev/null", O_RDWR);
  plan.out_fd = open_fd(run_dir + "/stdout", O_WRONLY | O_CREAT | O_TRUNC);
  plan.err_fd = open_fd(run_dir + "/stderr", O_WRONLY | O_CREAT | O_TRUNC);
  if (plan.null_fd < 0 || plan.out_fd < 0 || plan.err_fd < 0) {
    int e = errno;
    cleanup();
    return "cannot open stdio files in " + run_dir + ": " + errno_text(e);
  }

  if (I.layout.mode != mode_rlimit) {
    if (auto e = I.create_cgroups(job); !e.empty()) {
      cleanup();
      return "job " + id + ": " + e;
    }
    for (auto& dir : job.leaves()) {
      int fd = open_fd(dir + "/cgroup.procs", O_WRONLY);
      if (fd < 0) {
        int e = errno;
        cleanup();
        return "job " + id + ": " + dir + "/cgroup.procs: " + errno_text(e);
      }
      plan.procs_fds[plan.n_procs++] = fd;
    }
  }

  auto add_rlimit = [&](int resource, long long soft, long long hard) {
    plan.rlimits[plan.n_rlimits++] = {resource,
                                      {static_cast<rlim_t>(soft), static_cast<rlim_t>(hard)}};
  };
  const auto& l = req.limits;
  if (l.max_output > 0)
    add_rlimit(RLIMIT_FSIZE, l.max_output, l.max_output);
  if (I.layout.mode == mode_rlimit) {
    if (l.memory > 0)
      add_rlimit(RLIMIT_AS, l.memory, l.memory);
    if (l.pids > 0) {
      // RLIMIT_NPROC counts every task of the user, not just the job's.
      long long n = user_tasks(::getuid()) + l.pids;
      add_rlimit(RLIMIT_NPROC, n, n);
    }
    if (l.walltime > 0) {
      // A backstop for when no executor is left to enforce walltime: no process
      // can use more CPU time than walltime on every core.
      long long cores = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
      long long soft = (l.walltime + sec_us - 1) / sec_us * cores + 5;
      add_rlimit(RLIMIT_CPU, soft, soft + 5);
    }
  }
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY)
    plan.max_fd = static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 1 << 16));

  int rp[2];
  if (::pipe2(rp, O_CLOEXEC) != 0) {
    int e = errno;
    cleanup();
    return "job " + id + ": pipe: " + errno_text(e);
  }
  fds.push_back(rp[0]);
  fds.push_back(rp[1]);
  plan.report_fd = rp[1];

  // Block signals across fork so no handler of ours runs in the shim before it
  // resets them.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t shim = ::fork();
  if (shim == 0)
    run_shim(plan);
  int fork_err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (shim < 0) {
    cleanup();
    return "job " + id + ": fork: " + errno_text(fork_err);
  }
  ::close(rp[1]);
  fds.back() = -1;

  shim_report rep;
  bool got = false;
  pollfd pfd{rp[0], POLLIN, 0};
  for (int waited = 0; waited < 30'000;) {
    int r = ::poll(&pfd, 1, 100);
    if (r < 0 && errno != EINTR)
      break;
    if (r > 0) {
      got = as_read_full(rp[0], &rep, sizeof rep) == sizeof rep;
      break;
    }
    waited += 100;
  }
  if (!got || rep.stage != stage_ok) {
    std::string why = !got ? "the shim did not report"
                           : std::string(stage_name(rep.stage)) + ": " + errno_text(rep.err);
    if (!got)
      ::kill(shim, SIGKILL);
    ::waitpid(shim, nullptr, 0);
    cleanup();
    return "cannot start " + name + ": " + why;
  }
  for (int& fd : fds)
    if (fd >= 0)
      ::close(fd), fd = -1;

  job.st.shim_pid = shim;
  if (auto s = read_stat(shim))
    job.st.shim_start_ticks = s->start;
  job.st.pid = rep.pid;
  job.st.start_ticks = rep.start_ticks;
  job.have_base = true;
  job.base_at = now;
  // The job runs even if this fails; it just cannot be adopted later.
  I.save_state(job);
  auto st = job.st;
  I.jobs.emplace(id, std::move(job));
  return st;
}

std::variant<exec_state, exit_info, std::string> executor::adopt(const std::string& job_id,
                                                                 usec now) {
  auto& I = *impl_;
  if (auto it = I.jobs.find(job_id); it != I.jobs.end())
    return it->second.st;
  if (auto e = valid_job_id(job_id); !e.empty())
    return e;
  auto loaded = I.load_state(job_id);
  if (auto* e = std::get_if<std::string>(&loaded))
    return *e;
  auto& job = std::get<impl::job_rec>(loaded);
  auto exit_file = slurp(job.st.run_dir + "/exit");
  if (!exit_file && (alive(job.st.pid, job.st.start_ticks, true) ||
                     alive(job.st.shim_pid, job.st.shim_start_ticks, false))) {
    job.have_base = false;
    impl::job_rec& rec = I.jobs.emplace(job_id, std::move(job)).first->second;
    std::optional<proc_table> t;
    if (!rec.uses_cgroups())
      t = proc_table::scan();
    I.sample(rec, now, t ? &*t : nullptr); // baseline for the next poll's cpu
    return rec.st;
  }
  if (!exit_file)
    exit_file = slurp(job.st.run_dir + "/exit");
  if (!exit_file) {
    I.finish(job, false);
    return "job " + job_id + ": process " + std::to_string(job.st.pid) +
           " is gone (or its pid was reused) and its shim left no exit status in " +
           job.st.run_dir + "/exit";
  }
  auto e = I.exit_from(job, parse_pairs(*exit_file, '='), now);
  I.finish(job);
  return e;
}

std::vector<exec_event> executor::poll(usec now) {
  auto& I = *impl_;
  I.retry_pending();
  std::optional<proc_table> table;
  for (auto& [id, j] : I.jobs)
    if (!j.uses_cgroups()) {
      table = proc_table::scan();
      break;
    }
  const proc_table* t = table ? &*table : nullptr;
  std::vector<exec_event> out;
  for (auto it = I.jobs.begin(); it != I.jobs.end();) {
    auto& j = it->second;
    if (auto e = I.check_exit(j, now)) {
      out.push_back({it->first, std::nullopt, std::move(e)});
      I.finish(j);
      it = I.jobs.erase(it);
      continue;
    }
    I.enforce(j, now, t);
    out.push_back({it->first, I.sample(j, now, t), std::nullopt});
    ++it;
  }
  return out;
}

bool executor::set_limits(const std::string& job_id, const exec_limits& limits, std::string& why) {
  auto& I = *impl_;
  auto it = I.jobs.find(job_id);
  if (it == I.jobs.end()) {
    why = "job " + job_id + " is not running here";
    return false;
  }
  auto& j = it->second;
  auto& cur = j.st.limits;
  if (limits.max_output != cur.max_output) {
    why = "max_output is fixed at launch (RLIMIT_FSIZE)";
    return false;
  }
  const bool resize =
      limits.memory != cur.memory || limits.cpu != cur.cpu || limits.pids != cur.pids;
  if (resize && !j.uses_cgroups()) {
    why = "in-place resize needs cgroups (job " + job_id + " runs under rlimits)";
    return false;
  }
  if (resize) {
    exec_limits applied = cur;
    auto e = I.apply_cgroup_limits(j, limits, &cur, &applied);
    if (!e.empty()) {
      why = e;
      cur = applied; // the knobs written before the failure are in effect
      I.save_state(j);
      return false;
    }
  }
  cur = limits;
  I.save_state(j);
  return true;
}

void executor::kill(const std::string& job_id, const std::string& reason, usec grace, usec now) {
  auto& I = *impl_;
  auto it = I.jobs.find(job_id);
  if (it == I.jobs.end())
    return;
  auto& j = it->second;
  if (!j.walltime_hit && !j.cancelled) {
    j.cancelled = true;
    j.cancel_reason = reason;
  }
  std::optional<proc_table> t;
  if (!j.uses_cgroups())
    t = proc_table::scan();
  I.signal_job(j, SIGTERM, t ? &*t : nullptr);
  const usec at = now + std::max<usec>(grace, 0);
  if (!j.kill_at || at < *j.kill_at)
    j.kill_at = at;
  if (grace <= 0 && !j.kill_sent) {
    j.kill_sent = true;
    I.signal_job(j, SIGKILL, t ? &*t : nullptr);
  }
  I.save_state(j);
}

bool executor::running(const std::string& job_id) const {
  return impl_->jobs.count(job_id) > 0;
}

std::vector<std::string> executor::running_jobs() const {
  std::vector<std::string> out;
  for (auto& [id, j] : impl_->jobs)
    out.push_back(id);
  return out;
}

std::string executor::stdout_path(const std::string& job_id) const {
  return impl_->run_dir(job_id) + "/stdout";
}

std::string executor::stderr_path(const std::string& job_id) const {
  return impl_->run_dir(job_id) + "/stderr";
}

} // namespace tender
