// `tender agent` (a node) and `tender provider` (a provider in its own process).

#include "actors/node.hpp"
#include "config/node_config.hpp"
#include "protocol/batch.hpp"
#include "providers/factory.hpp"
#include "tools/client.hpp"
#include "tools/commands.hpp"

#include <zmq.hpp>

#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <pthread.h>

namespace tender {

namespace {

/// Blocks SIGINT/SIGTERM in this and every later thread; `wait_for_signal` takes them.
sigset_t block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

std::variant<node_config, config_error> pick_config(const std::string& path, bool dev) {
  if (!path.empty())
    return load_node_config(path);
  (void)dev;
  return dev_config();
}

} // namespace

int run_agent(const agent_args& a) {
  if (a.config.empty() && !a.dev) {
    std::fprintf(stderr, "tender agent: give --config FILE, or --dev for the embedded default\n");
    return 2;
  }
  auto cfg = pick_config(a.config, a.dev);
  if (auto* err = std::get_if<config_error>(&cfg)) {
    std::fprintf(stderr, "tender agent: %s\n", err->to_string().c_str());
    return 2;
  }
  auto set = block_signals();
  node_options opt;
  opt.listen = a.listen;
  opt.data_dir = a.data_dir;
  opt.quiet = a.quiet;
  opt.key = a.key;
  opt.dev = a.dev;
  opt.insecure = a.insecure;
  auto n = node::start(std::get<node_config>(std::move(cfg)), opt);
  if (auto* err = std::get_if<std::string>(&n)) {
    std::fprintf(stderr, "tender agent: %s\n", err->c_str());
    return 1;
  }
  auto& nd = *std::get<0>(n);
  std::printf("tender agent: listening on %s, data dir %s\n", nd.endpoint().c_str(),
              nd.data_dir().c_str());
  if (!nd.console_address().empty())
    std::printf("tender agent: console on http://%s/\n", nd.console_address().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "tender agent: %s, stopping (running jobs keep running and are re-adopted "
                       "at the next start)\n",
               sig == SIGINT ? "interrupted" : "terminated");
  nd.stop();
  return 0;
}

namespace {

class remote_provider_loop {
public:
  remote_provider_loop(std::unique_ptr<provider> p, const std::string& endpoint, usec sample,
                       const client_keys& keys)
      : p_(std::move(p)), endpoint_(endpoint), sample_(sample) {
    sock_.set(zmq::sockopt::linger, 0);
    if (keys.mine)
      curve::secure_client(sock_, *keys.mine, keys.server_public);
    watch_ = std::make_unique<curve::handshake_watch>(ctx_, sock_, keys.mine.has_value());
    sock_.connect(endpoint);
  }

  int run(const sigset_t& signals) {
    // SIGINT/SIGTERM (blocked in every thread) arrive as a readable fd in the same poll
    // as the node's messages: no system call per turn of the loop to look for them.
    const int sigfd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigfd < 0) {
      std::perror("tender provider: signalfd");
      return 1;
    }
    struct closer {
      int fd;
      ~closer() { ::close(fd); }
    } close_sigfd{sigfd};
    hello();
    usec next_poll = wall_now();
    usec next_hello = wall_now() + sec_us;
    usec next_watch = 0;
    while (true) {
      zmq::pollitem_t items[] = {{static_cast<void*>(sock_), 0, ZMQ_POLLIN, 0},
                                 {nullptr, sigfd, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, std::chrono::milliseconds(20));
      if (items[1].revents & ZMQ_POLLIN) {
        std::fprintf(stderr, "tender provider: stopping\n");
        return 0;
      }
      if (items[0].revents & ZMQ_POLLIN) {
        // What is read in one go is answered in one go: the answers are held and go out
        // together (one batch frame to a node that reads them), every 64 frames read at
        // the latest.
        zmq::message_t m;
        holding_ = true;
        for (int n = 1; sock_.recv(m, zmq::recv_flags::dontwait); ++n) {
          handle_frame(std::string_view(static_cast<const char*>(m.data()), m.size()));
          if (n % 64 == 0)
            flush();
        }
        holding_ = false;
        flush();
      }
      auto now = wall_now();
      // A node that refuses this provider's handshake never will: say why and stop.
      // Looked at every 20 ms, not at every message.
      if (now >= next_watch) {
        if (auto why = watch_->refusal(endpoint_)) {
          std::fprintf(stderr, "tender provider: %s\n", why->c_str());
          return 1;
        }
        next_watch = now + 20'000;
      }
      if (!welcomed_ && now >= next_hello) {
        hello();
        next_hello = now + sec_us;
      }
      if (now >= next_poll) {
        for (auto& r : p_->poll(now))
          send(r);
        next_poll = now + sample_;
      }
    }
  }

private:
  void send(body b, const std::string& corr = {}) {
    auto e = make_envelope(std::move(b), p_->name(), wall_now(), p_->name() + "-" +
                           std::to_string(++counter_), corr);
    auto bytes = encode(e);
    if (holding_) {
      held_.emplace_back(std::string(), std::move(bytes));
      return;
    }
    sock_.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
  }

  /// Sends the held answers: as batch frames if the node reads them.
  void flush() {
    if (held_.empty())
      return;
    for (auto& f : frames_for(held_, [this](const std::string&) { return node_batches_; }))
      sock_.send(zmq::buffer(f.bytes), zmq::send_flags::dontwait);
    held_.clear();
  }

  void hello() {
    auto h = p_->describe();
    h.wire = {wire_batch};
    send(std::move(h));
  }

  void handle_frame(std::string_view bytes) {
    if (!is_batch(bytes))
      return handle(bytes);
    auto split = split_batch(bytes);
    if (split.failure) {
      std::fprintf(stderr, "tender provider: bad batch from the node: %s (field %s)\n",
                   split.failure->message.c_str(), split.failure->field.c_str());
      return;
    }
    for (auto e : split.envelopes)
      handle(e);
  }

  void handle(std::string_view bytes) {
    auto d = decode(bytes);
    if (!d) {
      std::fprintf(stderr, "tender provider: bad message from the node: %s\n",
                   d.failure.message.c_str());
      return;
    }
    auto& e = *d.message;
    auto now = wall_now();
    std::visit(
      [&](auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, welcome>) {
          if (!welcomed_)
            std::fprintf(stderr, "tender provider: %s joined node %s at %s\n", p_->name().c_str(),
                         b.node.c_str(), endpoint_.c_str());
          welcomed_ = true;
          node_batches_ = reads_batches(b.wire);
        } else if constexpr (std::is_same_v<T, resource_request>) {
          auto res = p_->bid(b, now);
          std::visit([&](auto& x) { send(x, e.id); }, res);
        } else if constexpr (std::is_same_v<T, award>) {
          auto res = p_->hold(b, now);
          std::visit([&](auto& x) { send(x, e.id); }, res);
        } else if constexpr (std::is_same_v<T, release>) {
          if (b.reason.rfind("stop: ", 0) == 0)
            p_->stop(b.job_id, b.reason.substr(6), now);
          else
            p_->release(b, now);
        } else if constexpr (std::is_same_v<T, launch>) {
          if (auto err = p_->start(b, now)) {
            err->field = "job:" + b.job_id;
            send(*err, e.id);
          }
        } else if constexpr (std::is_same_v<T, scale_request>) {
          send(p_->scale(b, now), e.id);
        } else if constexpr (std::is_same_v<T, decline>) {
          // Lost an auction: nothing is held for a lost offer, and the offers made
          // there need not be remembered (they piled up until they expired).
          p_->lost(b);
        } else if constexpr (std::is_same_v<T, error>) {
          if (b.code == "unknown_peer") {
            welcomed_ = false; // the node restarted: introduce ourselves again
            hello();
          } else {
            std::fprintf(stderr, "tender provider: node says %s: %s\n", b.code.c_str(),
                         b.message.c_str());
          }
        } else {
          error err{"unexpected", std::string("a provider does not accept ") + type_name(e.body),
                    type_name(e.body), ""};
          send(err, e.id);
        }
      },
      e.body);
  }

  std::unique_ptr<provider> p_;
  std::string endpoint_;
  usec sample_;
  zmq::context_t ctx_{1};
  zmq::socket_t sock_{ctx_, zmq::socket_type::dealer};
  std::unique_ptr<curve::handshake_watch> watch_;
  bool welcomed_ = false;
  bool node_batches_ = false; ///< the node's welcome says it reads batch frames
  bool holding_ = false;      ///< answers are held for `flush` (while reading)
  std::vector<std::pair<std::string, std::string>> held_;
  std::uint64_t counter_ = 0;
};

} // namespace

int run_provider(const provider_args& a) {
  auto cfg = load_node_config(a.config);
  if (auto* err = std::get_if<config_error>(&cfg)) {
    std::fprintf(stderr, "tender provider: %s\n", err->to_string().c_str());
    return 2;
  }
  auto& nc = std::get<node_config>(cfg);
  const provider_config* pc = nullptr;
  for (auto& p : nc.providers)
    if (a.name.empty() || p.name == a.name) {
      pc = &p;
      break;
    }
  if (!pc) {
    std::fprintf(stderr, "tender provider: %s: %s\n", a.config.c_str(),
                 a.name.empty() ? "no [[providers]] entry"
                                : ("no provider named '" + a.name + "'").c_str());
    return 2;
  }
  std::string dir = a.data_dir;
  if (dir.empty()) {
    char tmpl[] = "/tmp/tender-provider-XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::perror("tender provider: mkdtemp");
      return 1;
    }
    dir = tmpl;
  }
  auto made = make_provider(*pc, dir, random_token, nc.auction.lease_ttl);
  if (auto* err = std::get_if<std::string>(&made)) {
    std::fprintf(stderr, "tender provider: %s\n", err->c_str());
    return 2;
  }
  auto keys = load_client_keys(a.key.empty() ? nc.security.key : a.key, a.server_key);
  if (auto* err = std::get_if<std::string>(&keys)) {
    std::fprintf(stderr, "tender provider: %s\n", err->c_str());
    return 2;
  }
  auto set = block_signals();
  try {
    remote_provider_loop loop(std::move(std::get<0>(made)), a.connect, nc.sample_interval,
                              std::get<client_keys>(keys));
    return loop.run(set);
  } catch (const zmq::error_t& e) {
    std::fprintf(stderr, "tender provider: cannot connect to %s: %s\n", a.connect.c_str(), e.what());
    return 1;
  }
}

} // namespace tender
