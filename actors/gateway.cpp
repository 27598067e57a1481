// The gateway: bridges the node's ZeroMQ ROUTER and its actors.
//
// An I/O thread (not a CAF worker) owns the ROUTER: it reads frames (one envelope, or
// a batch of them: protocol/batch.hpp), decodes them, answers undecodable ones with an
// `error` at once, and hands decoded messages on:
// a known provider peer's traffic straight to its proxy actor (the route the
// gateway actor registered when the peer said hello), everything else to the
// gateway actor, which routes client requests to the intake. Whoever sends (the
// gateway actor's replies, the proxies) encodes on its own worker and queues the
// bytes in the bridge's outbox; an eventfd wakes the I/O thread, which writes them
// to the ROUTER, what it finds queued for a provider that reads batches as one frame.
// No CAF worker ever blocks on ZeroMQ, and provider traffic never waits in one actor's
// mailbox.

#include "actors/actors.hpp"
#include "protocol/batch.hpp"
#include "protocol/curve.hpp"

#include <caf/all.hpp>
#include <caf/detail/set_thread_name.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace tender {

namespace {

class zmq_bridge {
public:
  zmq_bridge(context_ptr ctx) : ctx_(std::move(ctx)) {}
  ~zmq_bridge() {
    stop();
    if (wake_ >= 0)
      ::close(wake_);
  }

  std::optional<std::string> bind(const std::string& endpoint) {
    try {
      router_ = zmq::socket_t(zctx_, zmq::socket_type::router);
      router_.set(zmq::sockopt::linger, 0);
      router_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(default_max_frame) * 4);
      router_.set(zmq::sockopt::sndhwm, 100000);
      router_.set(zmq::sockopt::rcvhwm, 100000);
      // CurveZMQ on TCP (protocol/curve.hpp): clients not on the allow list are refused
      // in the handshake, so nothing they send reaches this ROUTER.
      curve::server_setup plaintext_only;
      const auto& sec = ctx_->security ? *ctx_->security : plaintext_only;
      auto log = ctx_->log;
      if (auto err = sec.secure(router_, zctx_, endpoint, "gateway", auth_,
                                [log](const std::string& line) { log->warn("{}", line); }))
        return *err;
      router_.bind(endpoint);
      bound_ = router_.get(zmq::sockopt::last_endpoint);
      if (auth_)
        log->info("gateway: CurveZMQ on {} ({} public keys allowed)", bound_, sec.allow.size());
      else if (bound_.rfind("tcp://", 0) == 0)
        log->info("gateway: plaintext on {} (no [security] key; loopback only)", bound_);
    } catch (const zmq::error_t& e) {
      return "cannot listen on " + endpoint + ": " + e.what();
    }
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_ < 0)
      return std::string("cannot create the gateway's eventfd: ") + std::strerror(errno);
    return std::nullopt;
  }

  void run(caf::actor gateway) {
    gateway_ = std::move(gateway);
    thread_ = std::thread([this] {
      caf::detail::set_thread_name("tender.gateway");
      loop();
    });
  }

  void stop() {
    running_ = false;
    if (thread_.joinable())
      thread_.join();
    std::lock_guard<std::mutex> g(routes_mu_);
    routes_.clear();
  }

  /// Queues `bytes` for `peer` (any thread). The I/O thread is woken when the outbox
  /// goes from empty to not, so a burst of frames costs one wake-up.
  bool post(const std::string& peer, std::string bytes) {
    if (!running_.load(std::memory_order_relaxed))
      return false;
    bool was_empty = false;
    {
      std::lock_guard<std::mutex> g(out_mu_);
      if (outbox_.size() >= max_queued)
        return false;
      was_empty = outbox_.empty();
      outbox_.emplace_back(peer, std::move(bytes));
    }
    if (was_empty) {
      const std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
    }
    return true;
  }

  /// A provider peer's traffic goes straight to `proxy` from now on (a null actor:
  /// through the gateway actor again); `batches`: the peer reads batch frames, so what
  /// is queued for it together goes out in one frame (protocol/batch.hpp).
  void route(const std::string& peer, caf::actor proxy, bool batches = false) {
    std::lock_guard<std::mutex> g(routes_mu_);
    if (proxy)
      routes_[peer] = route_entry{std::move(proxy), batches};
    else
      routes_.erase(peer);
  }

  const std::string& bound() const { return bound_; }
  gateway_handle::wire_counts counts() const {
    return {
        in_.load(std::memory_order_relaxed),        out_.load(std::memory_order_relaxed),
        in_bytes_.load(std::memory_order_relaxed),  out_bytes_.load(std::memory_order_relaxed),
        in_frames_.load(std::memory_order_relaxed), out_frames_.load(std::memory_order_relaxed)};
  }
  zmq::context_t& zctx() { return zctx_; }

private:
  void reply_error(const std::string& peer, const error& failure, const std::string& id) {
    auto e = make_envelope(failure, ctx_->cfg.node_name, ctx_->now(), ctx_->new_id("m"), id);
    auto bytes = encode(e);
    try {
      router_.send(zmq::buffer(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      router_.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
      count(out_, out_bytes_, bytes.size());
      count_frame(out_frames_);
    } catch (const zmq::error_t&) {
    }
  }

  void loop() {
    zmq::pollitem_t items[] = {{static_cast<void*>(router_), 0, ZMQ_POLLIN, 0},
                               {nullptr, wake_, ZMQ_POLLIN, 0}};
    while (running_) {
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(100));
        if (items[0].revents & ZMQ_POLLIN)
          drain_router();
        if (items[1].revents & ZMQ_POLLIN)
          drain_outbox();
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM)
          break;
        ctx_->log->error("gateway: {}", e.what());
      }
    }
    router_.close();
  }

  void drain_router() {
    for (int n = 0; n < 1024; ++n) {
      std::vector<zmq::message_t> frames;
      auto got = zmq::recv_multipart(router_, std::back_inserter(frames), zmq::recv_flags::dontwait);
      if (!got)
        return;
      if (frames.size() < 2)
        continue;
      std::string peer = frames.front().to_string();
      // A DEALER sends [payload]; a REQ-style client may add an empty delimiter.
      auto& payload = frames.back();
      const std::string_view bytes(static_cast<const char*>(payload.data()), payload.size());
      count_frame(in_frames_);
      if (!is_batch(bytes)) {
        on_envelope(peer, bytes);
        continue;
      }
      // Several envelopes in one frame: each one as if it had come alone.
      auto split = split_batch(bytes);
      if (split.failure) {
        ctx_->log->warn("gateway: bad batch from peer {}: {} ({}, field {})", hex(peer),
                        split.failure->message, split.failure->code, split.failure->field);
        reply_error(peer, *split.failure, "");
        continue;
      }
      for (auto e : split.envelopes)
        on_envelope(peer, e);
    }
  }

  void on_envelope(const std::string& peer, std::string_view bytes) {
    count(in_, in_bytes_, bytes.size());
    auto d = decode(bytes);
    if (!d) {
      ctx_->log->warn("gateway: bad message from peer {}: {} ({}{}{})", hex(peer),
                      d.failure.message, d.failure.code, d.failure.field.empty() ? "" : ", field ",
                      d.failure.field);
      reply_error(peer, d.failure, d.id);
      return;
    }
    if (is_provider_traffic(d.message->body)) {
      caf::actor proxy;
      {
        std::lock_guard<std::mutex> g(routes_mu_);
        if (auto it = routes_.find(peer); it != routes_.end())
          proxy = it->second.proxy;
      }
      if (proxy) {
        caf::anon_send(proxy, inbound_atom::value, std::move(*d.message));
        return;
      }
    }
    caf::anon_send(gateway_, inbound{peer, std::move(*d.message)});
  }

  /// What a provider sends about its offers, commits and jobs (a hello is the gateway
  /// actor's: it answers it).
  static bool is_provider_traffic(const body& b) {
    return std::holds_alternative<offer>(b) || std::holds_alternative<decline>(b) ||
           std::holds_alternative<commit_confirm>(b) || std::holds_alternative<commit_refuse>(b) ||
           std::holds_alternative<usage_report>(b) || std::holds_alternative<scale_offer>(b) ||
           std::holds_alternative<error>(b);
  }

  void drain_outbox() {
    std::uint64_t ignored = 0;
    [[maybe_unused]] auto n = ::read(wake_, &ignored, sizeof ignored);
    {
      std::lock_guard<std::mutex> g(out_mu_);
      sending_.swap(outbox_);
    }
    // What is queued for a peer that reads batches goes out in as few frames as the
    // batch limits allow; everyone else gets one frame per envelope.
    std::vector<outgoing_frame> frames;
    {
      std::lock_guard<std::mutex> g(routes_mu_);
      frames = frames_for(sending_, [this](const std::string& peer) {
        auto it = routes_.find(peer);
        return it != routes_.end() && it->second.batches;
      });
    }
    for (auto& f : frames) {
      try {
        // Dropped when the peer's pipe is full (100,000 frames) or the peer is gone.
        if (!router_.send(zmq::buffer(f.peer),
                          zmq::send_flags::sndmore | zmq::send_flags::dontwait))
          continue;
        if (router_.send(zmq::buffer(f.bytes), zmq::send_flags::dontwait)) {
          count(out_, out_bytes_, f.envelope_bytes, f.envelopes);
          count_frame(out_frames_);
        }
      } catch (const zmq::error_t&) {
      }
    }
    sending_.clear();
  }

  // Only the I/O thread writes these; readers see them via relaxed loads.
  static void count_frame(std::atomic<std::int64_t>& frames) {
    frames.store(frames.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  static void count(std::atomic<std::int64_t>& msgs, std::atomic<std::int64_t>& bytes,
                    std::size_t n, std::size_t envelopes = 1) {
    msgs.store(msgs.load(std::memory_order_relaxed) + static_cast<std::int64_t>(envelopes),
               std::memory_order_relaxed);
    bytes.store(bytes.load(std::memory_order_relaxed) + static_cast<std::int64_t>(n),
                std::memory_order_relaxed);
  }

  static std::string hex(const std::string& s) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
      out += d[c >> 4];
      out += d[c & 15];
    }
    return out;
  }

  context_ptr ctx_;
  zmq::context_t zctx_{1};
  std::unique_ptr<curve::authenticator> auth_; ///< the ZAP handler; stops before zctx_ closes
  zmq::socket_t router_;
  std::string bound_;
  static constexpr std::size_t max_queued = 100'000;
  int wake_ = -1; ///< eventfd: the outbox has frames
  std::mutex out_mu_;
  std::vector<std::pair<std::string, std::string>> outbox_; ///< (peer, bytes)
  std::vector<std::pair<std::string, std::string>> sending_; ///< I/O thread only
  std::mutex routes_mu_;
  struct route_entry {
    caf::actor proxy;
    bool batches = false; ///< the peer reads batch frames
  };
  std::unordered_map<std::string, route_entry> routes_; ///< provider peer -> its proxy
  caf::actor gateway_;
  std::thread thread_;
  std::atomic<bool> running_{true};
  /// Envelopes and their bytes, and ZeroMQ frames (a batch is one frame of several).
  std::atomic<std::int64_t> in_{0}, out_{0}, in_bytes_{0}, out_bytes_{0};
  std::atomic<std::int64_t> in_frames_{0}, out_frames_{0};
};

struct gateway_state {
  context_ptr ctx;
  caf::actor intake;
  std::shared_ptr<zmq_bridge> bridge;
  std::map<std::string, caf::actor> providers; ///< peer routing id -> proxy
  static inline const char* name = "gateway";
};

using gateway_actor = caf::stateful_actor<gateway_state>;

void send_out(gateway_actor* self, const std::string& peer, const envelope& e) {
  auto& st = self->state;
  // Never blocks a CAF worker: the outbox drops what the I/O thread cannot take.
  if (!st.bridge->post(peer, encode(e)))
    st.ctx->log->warn("gateway: reply to a client dropped: the I/O thread is stopping or "
                      "100,000 frames are queued");
}

void reply(gateway_actor* self, const std::string& peer, const envelope& req, body b) {
  auto& st = self->state;
  send_out(self, peer, make_envelope(std::move(b), st.ctx->cfg.node_name, st.ctx->now(),
                                     st.ctx->new_id("m"), req.id));
}

} // namespace

std::variant<gateway_handle, std::string> start_gateway(caf::actor_system& sys, context_ptr ctx,
                                                        caf::actor intake,
                                                        const std::string& bind) {
  auto bridge = std::make_shared<zmq_bridge>(ctx);
  if (auto err = bridge->bind(bind))
    return *err;
  auto actor = sys.spawn([intake, bridge](gateway_actor* self, context_ptr ctx) -> caf::behavior {
    auto& st = self->state;
    st.ctx = ctx;
    st.intake = intake;
    st.bridge = bridge;
    // One bad message must not take the gateway down: log it and go on.
    // A gone provider's peer must introduce itself again (error unknown_peer).
    self->set_down_handler([self](caf::down_msg& dm) {
      auto& ps = self->state.providers;
      for (auto it = ps.begin(); it != ps.end();) {
        if (it->second.address() != dm.source) {
          ++it;
          continue;
        }
        self->state.bridge->route(it->first, {});
        it = ps.erase(it);
      }
    });
    self->set_exception_handler([self](caf::scheduled_actor*, std::exception_ptr& ep) -> caf::error {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        self->state.ctx->log->error("gateway: {}", e.what());
      } catch (...) {
        self->state.ctx->log->error("gateway: unknown exception");
      }
      return caf::none;
    });
    return {
      [self](inbound& in) {
        auto& st = self->state;
        auto peer = in.peer;
        auto& req = in.msg; // provider traffic is moved on, never copied
        std::visit(
          [&](auto& b) {
            using T = std::decay_t<decltype(b)>;
            if constexpr (std::is_same_v<T, job_submit> || std::is_same_v<T, job_query> ||
                          std::is_same_v<T, jobs_query> || std::is_same_v<T, job_cancel> ||
                          std::is_same_v<T, providers_query> ||
                          std::is_same_v<T, model_query> || std::is_same_v<T, explain_query>) {
              // Retraining on demand may take minutes on a long history.
              auto timeout = std::is_same_v<T, model_query> ? std::chrono::seconds(900)
                                                            : std::chrono::seconds(30);
              self->request(st.intake, timeout, std::move(b))
                .then([self, peer, req](body& answer) { reply(self, peer, req, std::move(answer)); },
                      [self, peer, req](caf::error& e) {
                        reply(self, peer, req,
                              error{"internal", self->system().render(e), type_name(req.body), ""});
                      });
            } else if constexpr (std::is_same_v<T, provider_hello>) {
              if (b.name.empty()) {
                reply(self, peer, req, error{"invalid", "provider_hello needs a name",
                                             "provider_hello", "name"});
                return;
              }
              auto it = st.providers.find(peer);
              if (it == st.providers.end()) {
                std::weak_ptr<zmq_bridge> weak = st.bridge;
                auto post = [weak](const std::string& to, std::string bytes) {
                  auto bridge = weak.lock();
                  return bridge && bridge->post(to, std::move(bytes));
                };
                auto proxy = spawn_remote_provider(self->system(), st.ctx, post, peer, b);
                st.providers[peer] = proxy;
                // Its traffic goes to the proxy from now on; the proxy is known to the
                // intake only after this, so nothing it is asked for can come back first.
                st.bridge->route(peer, proxy, reads_batches(b.wire));
                self->monitor(proxy); // a proxy that declares its provider gone quits
                self->send(st.intake, register_atom::value, b.name, proxy, true);
                st.ctx->log->info("remote provider {} ({}) joined", b.name, b.kind);
              } else {
                self->send(it->second, inbound_atom::value, req); // a heartbeat
              }
              reply(self, peer, req, welcome{st.ctx->cfg.node_name, b.name, {wire_batch}});
            } else if constexpr (std::is_same_v<T, offer> || std::is_same_v<T, decline> ||
                                 std::is_same_v<T, commit_confirm> ||
                                 std::is_same_v<T, commit_refuse> ||
                                 std::is_same_v<T, usage_report> ||
                                 std::is_same_v<T, scale_offer> || std::is_same_v<T, error>) {
              auto it = st.providers.find(peer);
              if (it == st.providers.end()) {
                if constexpr (!std::is_same_v<T, error>)
                  reply(self, peer, req,
                        error{"unknown_peer", "send provider_hello before provider messages",
                              message_name<T>::value, ""});
                return;
              }
              self->send(it->second, inbound_atom::value, std::move(req));
            } else {
              reply(self, peer, req,
                    error{"unexpected", std::string("a node does not accept ") +
                                          message_name<T>::value + " messages",
                          message_name<T>::value, ""});
            }
          },
          in.msg.body);
      },
      [self](stop_atom) { self->quit(); },
    };
  }, ctx);
  bridge->run(actor);
  gateway_handle h;
  h.actor = actor;
  h.endpoint = bridge->bound();
  h.stop_io = [bridge] { bridge->stop(); };
  h.keep = bridge;
  h.zmq_ctx = &bridge->zctx();
  h.counts = [bridge] { return bridge->counts(); };
  return h;
}

} // namespace tender
