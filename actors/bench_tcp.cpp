// `tender bench negotiate --transport tcp`: the same negotiation driver as inproc
// (actors/bench.cpp), but every provider is a real `tender provider` process joined
// to a gateway on a loopback port, reached through its remote-provider proxy. The
// wire is the gateway's ROUTER: its frame counters give the messages per negotiation
// and their mean size. Afterwards, in the same run, a child of this process pipelines
// one-way DEALER->ROUTER messages of that mean size into a ROUTER here: the raw
// ZeroMQ rate the mesh is compared with.
//
// Children are started with fork/exec of /proc/self/exe and PR_SET_PDEATHSIG, and are
// terminated and reaped on every way out (the wire's destructor).

#include "actors/bench.hpp"

#include "actors/actors.hpp"
#include "protocol/curve.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace tender {

namespace {

using steady = std::chrono::steady_clock;

/// A child process: /proc/self/exe with `args`, output to `log`, killed when this
/// thread's process dies (PR_SET_PDEATHSIG). Everything is prepared before fork():
/// between fork and exec the child only makes system calls.
std::variant<pid_t, std::string> start_child(const std::vector<std::string>& args,
                                             const std::string& log) {
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string_view v(*e);
    // The children here speak plaintext on loopback; a client key from the
    // environment would make them try CurveZMQ against a node without keys.
    if (v.rfind("TENDER_KEY=", 0) == 0 || v.rfind("TENDER_SERVER_KEY=", 0) == 0)
      continue;
    env_store.emplace_back(v);
  }
  std::vector<char*> envp;
  for (auto& s : env_store)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_store{"tender"};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_store)
    argv.push_back(s.data());
  argv.push_back(nullptr);

  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return "cannot create " + log + ": " + std::strerror(errno);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(fd);
    return std::string("fork: ") + std::strerror(err);
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)
      ::_exit(127); // the bench died before the line above
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execve("/proc/self/exe", argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(fd);
  return pid;
}

std::string tail_of(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto s = ss.str();
  if (s.size() > 600)
    s = "..." + s.substr(s.size() - 600);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s.empty() ? "(no output)" : s;
}

/// Stops `pids`: SIGTERM, up to `grace` to exit, then SIGKILL; reaps them all.
void stop_children(std::vector<pid_t>& pids, std::chrono::milliseconds grace) {
  for (auto p : pids)
    ::kill(p, SIGTERM);
  auto until = steady::now() + grace;
  while (!pids.empty()) {
    for (auto it = pids.begin(); it != pids.end();) {
      int status = 0;
      pid_t r = ::waitpid(*it, &status, WNOHANG);
      it = (r == *it || (r < 0 && errno == ECHILD)) ? pids.erase(it) : std::next(it);
    }
    if (pids.empty())
      break;
    if (steady::now() >= until) {
      for (auto p : pids) {
        ::kill(p, SIGKILL);
        ::waitpid(p, nullptr, 0);
      }
      pids.clear();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

/// Who joined: the gateway's registrations (the role of the node's intake here).
struct joins {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, caf::actor> by_name;
};

caf::behavior registrar(caf::event_based_actor*, std::shared_ptr<joins> j) {
  return {
      [j](register_atom, const std::string& name, const caf::actor& proxy, bool) {
        {
          std::lock_guard<std::mutex> g(j->mu);
          j->by_name[name] = proxy;
        }
        j->cv.notify_all();
      },
  };
}

class tcp_wire final : public bench_wire {
public:
  tcp_wire(caf::actor_system& sys, std::string dir) : sys_(sys), dir_(std::move(dir)) {}

  ~tcp_wire() override {
    // Children first, so nothing more arrives; then the actors that reach them.
    stop_children(pids_, std::chrono::seconds(3));
    if (gateway_.stop_io)
      gateway_.stop_io();
    for (auto& a : proxies_)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    if (registrar_)
      caf::anon_send_exit(registrar_, caf::exit_reason::user_shutdown);
    if (gateway_.actor) {
      // The gateway actor's PUSH socket must close before the bridge's context ends.
      caf::scoped_actor self{sys_};
      self->monitor(gateway_.actor);
      caf::anon_send_exit(gateway_.actor, caf::exit_reason::user_shutdown);
      self->receive([](const caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
    }
  }

  std::optional<std::string> start(const std::shared_ptr<node_context>& ctx,
                                   const std::string& config_toml, provider_directory& dirs) {
    const auto config = dir_ + "/providers.toml";
    {
      std::ofstream f(config);
      f << config_toml;
      if (!f)
        return "cannot write " + config;
    }
    auto j = std::make_shared<joins>();
    registrar_ = sys_.spawn(registrar, j);
    auto gw = start_gateway(sys_, ctx, registrar_, "tcp://127.0.0.1:*");
    if (auto* err = std::get_if<std::string>(&gw))
      return "tcp transport: " + *err;
    gateway_ = std::get<gateway_handle>(std::move(gw));

    std::vector<std::string> logs;
    for (auto& pc : ctx->cfg.providers) {
      auto pdir = dir_ + "/provider-" + pc.name;
      logs.push_back(pdir + ".log");
      auto child = start_child({"provider", "--config", config, "--name", pc.name, "--connect",
                                gateway_.endpoint, "--data-dir", pdir},
                               logs.back());
      if (auto* err = std::get_if<std::string>(&child))
        return "cannot start provider " + pc.name + ": " + *err;
      pids_.push_back(std::get<pid_t>(child));
    }

    // Every provider says hello; one that exits first is an error with its output.
    const auto want = ctx->cfg.providers.size();
    const auto until = steady::now() + std::chrono::seconds(60);
    while (true) {
      {
        std::unique_lock<std::mutex> g(j->mu);
        j->cv.wait_for(g, std::chrono::milliseconds(50), [&] { return j->by_name.size() >= want; });
        if (j->by_name.size() >= want)
          break;
      }
      for (std::size_t i = 0; i < pids_.size(); ++i) {
        int status = 0;
        if (::waitpid(pids_[i], &status, WNOHANG) == pids_[i]) {
          auto name = ctx->cfg.providers[i].name;
          pids_.erase(pids_.begin() + static_cast<std::ptrdiff_t>(i));
          return "provider " + name + " exited before joining (" +
                 (WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status))
                                    : "signal " + std::to_string(WTERMSIG(status))) +
                 "): " + tail_of(logs[i]);
        }
      }
      if (steady::now() >= until)
        return "tcp transport: only " + std::to_string(j->by_name.size()) + " of " +
               std::to_string(want) + " providers joined " + gateway_.endpoint + " in 60 s";
    }
    {
      std::lock_guard<std::mutex> g(j->mu);
      for (auto& pc : ctx->cfg.providers) {
        dirs.names.push_back(pc.name);
        dirs.actors.push_back(j->by_name.at(pc.name));
        dirs.remote.push_back(true);
        proxies_.push_back(j->by_name.at(pc.name));
      }
    }
    // The welcomes are on their way out: wait for them so the run counts only its own.
    const auto welcome_by = steady::now() + std::chrono::seconds(10);
    while (gateway_.counts().out < static_cast<std::int64_t>(want) && steady::now() < welcome_by)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::string pids;
    for (auto p : pids_)
      pids += (pids.empty() ? "" : " ") + std::to_string(p);
    std::fprintf(stderr,
                 "tender bench negotiate: %zu provider processes joined %s (pids %s; logs in %s)\n",
                 want, gateway_.endpoint.c_str(), pids.c_str(), dir_.c_str());
    return std::nullopt;
  }

  void begin() override { at_begin_ = gateway_.counts(); }
  std::vector<int> pids() const override { return {pids_.begin(), pids_.end()}; }

  std::optional<std::string> finish(negotiate_bench_result& res,
                                    const negotiate_bench_options& opt) override {
    // The last releases and losers' declines may still be on their way out: count
    // until nothing has moved for 50 ms (at most 5 s).
    auto c = gateway_.counts();
    for (auto until = steady::now() + std::chrono::seconds(5); steady::now() < until;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto again = gateway_.counts();
      if (again.in == c.in && again.out == c.out)
        break;
      c = again;
    }
    const auto msgs = (c.in - at_begin_.in) + (c.out - at_begin_.out);
    const auto bytes = (c.in_bytes - at_begin_.in_bytes) + (c.out_bytes - at_begin_.out_bytes);
    res.msgs_per_negotiation = static_cast<double>(msgs) / std::max(1, res.jobs);
    const auto frames = (c.in_frames - at_begin_.in_frames) + (c.out_frames - at_begin_.out_frames);
    res.frames_per_negotiation = static_cast<double>(frames) / std::max(1, res.jobs);
    res.wire_mean_bytes = msgs > 0 ? static_cast<double>(bytes) / static_cast<double>(msgs) : 0;
    res.provider_pids.assign(pids_.begin(), pids_.end());
    auto raw = raw_rate(static_cast<std::size_t>(std::max(1.0, res.wire_mean_bytes + 0.5)),
                        std::max<std::int64_t>(opt.raw_messages, 2));
    if (auto* err = std::get_if<std::string>(&raw))
      return *err;
    res.zmq_raw_msgs_per_s = std::get<double>(raw);
    res.mesh_efficiency =
        res.negotiations_per_s * res.msgs_per_negotiation / res.zmq_raw_msgs_per_s;
    return std::nullopt;
  }

private:
  /// One-way pipelined DEALER (a child process) -> ROUTER (here) over loopback tcp:
  /// messages per second between the first and the last one received.
  std::variant<double, std::string> raw_rate(std::size_t size, std::int64_t count) {
    zmq::context_t zctx{1};
    zmq::socket_t router(zctx, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.set(zmq::sockopt::rcvhwm, 100000);
    router.bind("tcp://127.0.0.1:*");
    const auto ep = router.get(zmq::sockopt::last_endpoint);
    const auto log = dir_ + "/zmq-raw.log";
    auto child = start_child({"bench", "zmq-raw", "--connect", ep, "--size", std::to_string(size),
                              "--count", std::to_string(count)},
                             log);
    if (auto* err = std::get_if<std::string>(&child))
      return "cannot start the raw ZeroMQ sender: " + *err;
    std::vector<pid_t> sender{std::get<pid_t>(child)};
    struct reap {
      std::vector<pid_t>& p;
      ~reap() { stop_children(p, std::chrono::seconds(3)); }
    } reaper{sender};

    router.set(zmq::sockopt::rcvtimeo, 30000);
    zmq::message_t id, payload;
    steady::time_point first;
    for (std::int64_t i = 0; i < count; ++i) {
      if (!router.recv(id) || !router.recv(payload))
        return "raw ZeroMQ measurement: no message from the sender for 30 s after " +
               std::to_string(i) + " of " + std::to_string(count) + ": " + tail_of(log);
      if (i == 0)
        first = steady::now();
      if (payload.size() != size)
        return "raw ZeroMQ measurement: a message of " + std::to_string(payload.size()) +
               " bytes, expected " + std::to_string(size);
    }
    const auto secs = std::chrono::duration<double>(steady::now() - first).count();
    return static_cast<double>(count - 1) / std::max(secs, 1e-9);
  }

  caf::actor_system& sys_;
  std::string dir_;
  caf::actor registrar_;
  gateway_handle gateway_;
  std::vector<caf::actor> proxies_;
  std::vector<pid_t> pids_;
  gateway_handle::wire_counts at_begin_;
};

} // namespace

std::variant<std::unique_ptr<bench_wire>, std::string>
start_bench_wire(caf::actor_system& sys, std::shared_ptr<node_context> ctx,
                 const std::string& config_toml, provider_directory& dirs) {
  // Plaintext on loopback, as a node in dev/insecure mode allows.
  auto sec = std::make_shared<curve::server_setup>();
  sec->plaintext_ok = true;
  ctx->security = sec;
  auto wire = std::make_unique<tcp_wire>(sys, ctx->data_dir);
  if (auto err = wire->start(ctx, config_toml, dirs))
    return *err; // the wire's destructor stops whatever did start
  return std::unique_ptr<bench_wire>(std::move(wire));
}

int run_zmq_raw_sender(const std::string& endpoint, std::size_t size, std::int64_t count) {
  try {
    zmq::context_t zctx{1};
    zmq::socket_t dealer(zctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 5000);
    dealer.set(zmq::sockopt::sndhwm, 100000);
    dealer.connect(endpoint);
    const std::string payload(size, 'x');
    for (std::int64_t i = 0; i < count; ++i)
      dealer.send(zmq::buffer(payload), zmq::send_flags::none);
    return 0; // linger: the queue drains before the context closes
  } catch (const zmq::error_t& e) {
    std::fprintf(stderr, "tender bench zmq-raw: %s: %s\n", endpoint.c_str(), e.what());
    return 1;
  }
}

} // namespace tender
