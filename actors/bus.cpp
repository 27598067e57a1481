// The message bus I/O thread; see bus.hpp.

#include "actors/bus.hpp"
#include "protocol/curve.hpp"

#include "actors/actors.hpp"

#include <caf/actor.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

namespace tender {

namespace {

std::atomic<int> bus_counter{0};

/// Creates the bus ROUTER. The one place its options are set: transport security
/// (CurveZMQ) is configured here.
zmq::socket_t make_bus_router(zmq::context_t& zctx, const node_config& cfg) {
  zmq::socket_t s(zctx, zmq::socket_type::router);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(default_max_frame));
  s.set(zmq::sockopt::sndhwm, cfg.bus.hwm);
  s.set(zmq::sockopt::rcvhwm, cfg.bus.hwm);
  // Sending to a full peer fails with EAGAIN instead of dropping the ack; sending
  // to a peer that is gone fails with EHOSTUNREACH.
  s.set(zmq::sockopt::router_mandatory, 1);
  return s;
}

/// Job events from any thread to the I/O thread. Never blocks: an event that finds
/// the inproc pipe full is dropped and counted (PUB is lossy for slow subscribers
/// anyway; the journal is the record).
class event_sink {
public:
  event_sink(zmq::context_t& zctx, const std::string& endpoint, std::string node)
      : push_(zctx, zmq::socket_type::push), node_(std::move(node)) {
    push_.set(zmq::sockopt::linger, 0);
    push_.set(zmq::sockopt::sndhwm, 100000);
    push_.connect(endpoint);
  }

  void publish(const job_event& e, usec now) {
    std::string topic =
        e.kind == "transition" ? std::string("job.") + to_string(e.to) : "job." + e.kind;
    auto bytes = encode(make_envelope(e, node_, now, "ev-" + std::to_string(++counter_)));
    std::lock_guard lock(mu_);
    if (closed_)
      return;
    try {
      if (!push_.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
          !push_.send(zmq::buffer(bytes), zmq::send_flags::dontwait))
        ++dropped_;
    } catch (const zmq::error_t&) {
      ++dropped_;
    }
  }

  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    push_.close();
  }

private:
  std::mutex mu_;
  zmq::socket_t push_;
  std::string node_;
  std::atomic<std::uint64_t> counter_{0};
  std::uint64_t dropped_ = 0;
  bool closed_ = false;
};

struct bus_item {
  std::string peer;
  std::string request_id; ///< envelope id, answered in the ack's correlation_id
  bus_ack ack;
  std::size_t insert = SIZE_MAX; ///< index into the batch's journal inserts
};

class bus_io {
public:
  explicit bus_io(std::shared_ptr<node_context> ctx) : ctx_(std::move(ctx)) {}
  ~bus_io() { stop(); }

  std::optional<std::string> bind() {
    const auto& cfg = ctx_->cfg;
    try {
      router_ = make_bus_router(zctx_, cfg);
      // CurveZMQ on TCP (protocol/curve.hpp), as on the gateway: a producer whose key
      // is not on the allow list is refused in the handshake and reaches nothing.
      if (auto err = security().secure(router_, zctx_, cfg.bus.listen, "bus", auth_, warn()))
        return *err;
      router_.bind(cfg.bus.listen);
      endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    } catch (const zmq::error_t& e) {
      return "bus: cannot listen on " + cfg.bus.listen + ": " + e.what();
    }
    if (!cfg.bus.publish.empty()) {
      try {
        pub_ = zmq::socket_t(zctx_, zmq::socket_type::pub);
        pub_.set(zmq::sockopt::linger, 0);
        pub_.set(zmq::sockopt::sndhwm, cfg.bus.hwm);
        if (auto err = security().secure(pub_, zctx_, cfg.bus.publish, "bus events", auth_, warn()))
          return *err;
        pub_.bind(cfg.bus.publish);
        publish_endpoint_ = pub_.get(zmq::sockopt::last_endpoint);
        auto inproc = "inproc://tender-bus-events-" + std::to_string(++bus_counter);
        pull_ = zmq::socket_t(zctx_, zmq::socket_type::pull);
        pull_.set(zmq::sockopt::linger, 0);
        pull_.set(zmq::sockopt::rcvhwm, 100000);
        pull_.bind(inproc);
        sink_ = std::make_shared<event_sink>(zctx_, inproc, cfg.node_name);
      } catch (const zmq::error_t& e) {
        return "bus: cannot publish on " + cfg.bus.publish + ": " + e.what();
      }
    }
    return std::nullopt;
  }

  void run(caf::actor intake) {
    intake_ = std::move(intake);
    if (sink_) {
      auto sink = sink_;
      auto ctx = ctx_.get();
      ctx_->journal->set_observer(
          [sink, ctx](const job_event& e) { sink->publish(e, ctx->now()); });
    }
    thread_ = std::thread([this] { loop(); });
  }

  void stop() {
    running_ = false;
    if (thread_.joinable())
      thread_.join();
    if (sink_)
      sink_->close(); // the journal may still call it: it then does nothing
  }

  const std::string& endpoint() const { return endpoint_; }
  const std::string& publish_endpoint() const { return publish_endpoint_; }

private:
  void loop() {
    std::vector<zmq::pollitem_t> items;
    while (running_) {
      items.clear();
      short router_events = backlog_.empty() ? ZMQ_POLLIN : ZMQ_POLLOUT;
      items.push_back({static_cast<void*>(router_), 0, router_events, 0});
      if (pull_)
        items.push_back({static_cast<void*>(pull_), 0, ZMQ_POLLIN, 0});
      try {
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
        if (items[0].revents & ZMQ_POLLOUT)
          flush_backlog();
        if (items[0].revents & ZMQ_POLLIN)
          read_batch();
        if (items.size() > 1 && (items[1].revents & ZMQ_POLLIN))
          forward_events();
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM)
          break;
        ctx_->log->error("bus: {}", e.what());
      }
    }
    router_.close();
    if (pull_)
      pull_.close();
    if (pub_)
      pub_.close();
  }

  void read_batch() {
    const auto max = static_cast<std::size_t>(ctx_->cfg.bus.batch);
    std::vector<bus_item> items;
    std::vector<journal::job_insert> inserts;
    items.reserve(max);
    inserts.reserve(max);
    const usec now = ctx_->now();
    std::vector<zmq::message_t> frames;
    while (items.size() < max) {
      frames.clear();
      auto got =
          zmq::recv_multipart(router_, std::back_inserter(frames), zmq::recv_flags::dontwait);
      if (!got)
        break;
      if (frames.size() < 2)
        continue;
      bus_item it;
      it.peer = frames.front().to_string();
      auto& payload = frames.back();
      auto d = decode(std::string_view(static_cast<const char*>(payload.data()), payload.size()));
      it.request_id = d.id;
      if (!d) {
        it.ack.error = d.failure;
        ctx_->log->warn("bus: bad message from a producer: {} ({}{}{})", d.failure.message,
                        d.failure.code, d.failure.field.empty() ? "" : ", field ", d.failure.field);
        items.push_back(std::move(it));
        continue;
      }
      auto* sub = std::get_if<bus_submit>(&d.message->body);
      if (!sub) {
        std::string type = type_name(d.message->body);
        it.ack.error =
            error{"unexpected", "the bus accepts only bus_submit, not " + type, type, ""};
      } else {
        it.ack.producer = sub->producer;
        it.ack.seq = sub->seq;
        if (sub->producer.empty())
          it.ack.error =
              error{"invalid", "bus_submit needs a producer id", "bus_submit", "producer"};
        else if (sub->seq == 0)
          it.ack.error = error{"invalid", "bus_submit seq starts at 1", "bus_submit", "seq"};
        else if (auto bad = validate_spec(sub->spec, "bus_submit"))
          it.ack.error = *bad;
        else {
          it.insert = inserts.size();
          journal::job_insert ji;
          ji.job_id = ctx_->new_id("j");
          ji.client_key = "bus:" + sub->producer + ":" + std::to_string(sub->seq);
          ji.spec = std::move(sub->spec);
          ji.submitted_at = now;
          inserts.push_back(std::move(ji));
        }
      }
      items.push_back(std::move(it));
    }
    if (items.empty())
      return;
    accepted_jobs fresh;
    if (!inserts.empty()) {
      if (!ctx_->journal->insert_jobs(inserts)) {
        auto why = ctx_->journal->last_error();
        ctx_->log->error("bus: {} submissions not recorded: {}", inserts.size(), why);
        for (auto& it : items)
          if (it.insert != SIZE_MAX)
            it.ack.error =
                error{"journal", "could not record the job; nothing was accepted: " + why,
                      "bus_submit", ""};
      } else {
        for (auto& it : items) {
          if (it.insert == SIZE_MAX)
            continue;
          auto& ji = inserts[it.insert];
          if (!ji.existing_id.empty()) {
            it.ack.job_id = ji.existing_id;
            it.ack.duplicate = true;
            continue;
          }
          it.ack.job_id = ji.job_id;
          job_status s;
          s.job_id = ji.job_id;
          s.name = ji.spec.name;
          s.user = ji.spec.user;
          s.state = job_state::submitted;
          s.reason = "accepted";
          s.submitted_at = ji.submitted_at;
          fresh.jobs.push_back(std::move(s));
        }
      }
    }
    // The intake first, so a query after the ack finds the job; then the acks, all
    // after the commit: everything acknowledged as accepted is in the journal.
    if (!fresh.jobs.empty())
      caf::anon_send(intake_, std::move(fresh));
    for (auto& it : items)
      send_ack(it);
  }

  void send_ack(bus_item& it) {
    auto bytes = encode(
        make_envelope(it.ack, ctx_->cfg.node_name, ctx_->now(), ctx_->new_id("m"), it.request_id));
    if (!backlog_.empty()) {
      backlog_.emplace_back(std::move(it.peer), std::move(bytes));
      return;
    }
    if (!try_send(it.peer, bytes))
      backlog_.emplace_back(std::move(it.peer), std::move(bytes));
  }

  /// False when the peer's pipe is full (try again later); true when sent or the
  /// peer is gone (it resends what it has no ack for).
  bool try_send(const std::string& peer, const std::string& bytes) {
    try {
      if (!router_.send(zmq::buffer(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
        return false;
      router_.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
      return true;
    } catch (const zmq::error_t& e) {
      if (e.num() == EHOSTUNREACH)
        return true;
      throw;
    }
  }

  void flush_backlog() {
    while (!backlog_.empty()) {
      auto& [peer, bytes] = backlog_.front();
      if (!try_send(peer, bytes))
        return;
      backlog_.pop_front();
    }
  }

  void forward_events() {
    std::vector<zmq::message_t> frames;
    for (int n = 0; n < 4096; ++n) {
      frames.clear();
      auto got = zmq::recv_multipart(pull_, std::back_inserter(frames), zmq::recv_flags::dontwait);
      if (!got)
        return;
      if (frames.size() != 2)
        continue;
      pub_.send(frames[0], zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      pub_.send(frames[1], zmq::send_flags::dontwait);
    }
  }

  const curve::server_setup& security() const {
    static const curve::server_setup plaintext_only;
    return ctx_->security ? *ctx_->security : plaintext_only;
  }
  std::function<void(const std::string&)> warn() const {
    return [log = ctx_->log](const std::string& line) { log->warn("{}", line); };
  }

  std::shared_ptr<node_context> ctx_;
  zmq::context_t zctx_{1};
  std::unique_ptr<curve::authenticator> auth_; ///< the ZAP handler of zctx_ (CURVE only)
  zmq::socket_t router_;
  zmq::socket_t pub_;
  zmq::socket_t pull_;
  std::shared_ptr<event_sink> sink_;
  std::deque<std::pair<std::string, std::string>> backlog_; ///< acks waiting for a full peer
  std::string endpoint_;
  std::string publish_endpoint_;
  caf::actor intake_;
  std::thread thread_;
  std::atomic<bool> running_{true};
};

} // namespace

std::variant<bus_handle, std::string>
start_bus(caf::actor_system&, std::shared_ptr<node_context> ctx, caf::actor intake) {
  auto io = std::make_shared<bus_io>(ctx);
  if (auto err = io->bind())
    return *err;
  io->run(std::move(intake));
  bus_handle h;
  h.endpoint = io->endpoint();
  h.publish_endpoint = io->publish_endpoint();
  h.stop = [io] { io->stop(); };
  h.keep = io;
  return h;
}

} // namespace tender
