#include "tools/producer.hpp"

#include "tools/client.hpp"

#include <zmq.hpp>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <vector>

namespace tender {

namespace {

usec steady_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

} // namespace

struct producer::impl {
  producer_options opt;
  std::unique_ptr<zmq::context_t> own;
  zmq::socket_t sock;
  /// Turns a refused handshake (key not allowed, plaintext to a CURVE node) into an
  /// error at once; none on inproc://. Declared after `sock`: it goes first.
  std::unique_ptr<curve::handshake_watch> watch;
  struct entry {
    std::string bytes;
    usec first_sent = 0;
    usec last_sent = 0;
    int sends = 0;
  };
  std::map<std::uint64_t, entry> pending; ///< by seq
  std::uint64_t next_seq;
  std::function<void(const producer_result&)> on_result;
  std::uint64_t resent = 0, duplicates = 0, refused = 0;
  usec last_resend_check = 0;
  usec last_ack = 0;   ///< when the node last answered (steady clock)
  usec last_stall = 0; ///< the last resend for a silent node
  usec stall_wait = 0; ///< silence that counts as a stall; doubles per stall resend

  impl(producer_options o, zmq::context_t* shared) : opt(std::move(o)), next_seq(opt.first_seq) {
    if (!shared) {
      own = std::make_unique<zmq::context_t>(1);
      shared = own.get();
    }
    sock = zmq::socket_t(*shared, zmq::socket_type::dealer);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::sndhwm, opt.hwm);
    sock.set(zmq::sockopt::rcvhwm, opt.hwm);
    sock.set(zmq::sockopt::reconnect_ivl, 100);
    sock.set(zmq::sockopt::reconnect_ivl_max, 1000);
    if (opt.key)
      curve::secure_client(sock, *opt.key, opt.server_public);
    if (opt.endpoint.rfind("inproc://", 0) != 0)
      watch = std::make_unique<curve::handshake_watch>(*shared, sock, opt.key.has_value());
    sock.connect(opt.endpoint);
  }

  /// Throws producer_refused once the node has refused this producer's handshake.
  void check_refusal() {
    if (!watch)
      return;
    if (auto why = watch->refusal(opt.endpoint))
      throw producer_refused(*why);
  }

  /// Sends without ever blocking on a full pipe: while it is full, acks are handled.
  void send(const std::string& bytes) {
    while (true) {
      if (sock.send(zmq::buffer(bytes), zmq::send_flags::dontwait))
        return;
      zmq::pollitem_t items[] = {
          {static_cast<void*>(sock), 0, ZMQ_POLLIN | ZMQ_POLLOUT, 0},
          {watch ? static_cast<void*>(watch->socket()) : nullptr, 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, watch ? 2 : 1, std::chrono::milliseconds(100));
      check_refusal();
      if (items[0].revents & ZMQ_POLLIN)
        drain();
    }
  }

  void drain() {
    zmq::message_t msg;
    while (sock.recv(msg, zmq::recv_flags::dontwait)) {
      auto d = decode(std::string_view(static_cast<const char*>(msg.data()), msg.size()));
      if (!d)
        continue;
      auto* ack = std::get_if<bus_ack>(&d.message->body);
      if (!ack || ack->producer != opt.producer_id)
        continue;
      if (ack->duplicate)
        ++duplicates;
      auto it = pending.find(ack->seq);
      if (it == pending.end())
        continue; // the answer to a resend of something already acknowledged
      last_ack = steady_now();
      stall_wait = opt.stall_after;
      if (ack->error.code == "journal")
        continue; // not recorded: resent when overdue
      producer_result r;
      r.seq = ack->seq;
      r.job_id = ack->job_id;
      r.duplicate = ack->duplicate;
      r.error = ack->error;
      r.latency = steady_now() - it->second.first_sent;
      r.sends = it->second.sends;
      if (!r.error.code.empty())
        ++refused;
      pending.erase(it);
      if (on_result)
        on_result(r);
    }
  }

  void resend_overdue() {
    auto now = steady_now();
    if (stall_wait == 0)
      stall_wait = opt.stall_after;
    // A node that answers nothing for a while has lost what is pending (it restarted,
    // the connection dropped): resend at once rather than after `resend_after`, backing
    // off while it stays silent. A node that is merely slow keeps answering.
    bool stalled = !pending.empty() && now - std::max(last_ack, last_stall) >= stall_wait;
    if (!stalled && now - last_resend_check < opt.resend_after / 4)
      return;
    usec limit = opt.resend_after;
    if (stalled) {
      last_stall = now;
      limit = stall_wait;
      stall_wait = std::min(stall_wait * 2, opt.resend_after);
    }
    last_resend_check = now;
    std::vector<std::uint64_t> overdue;
    for (auto& [seq, e] : pending)
      if (now - e.last_sent >= limit)
        overdue.push_back(seq);
    // send() handles acks while the pipe is full: entries may go meanwhile.
    for (auto seq : overdue) {
      auto it = pending.find(seq);
      if (it == pending.end())
        continue;
      auto& e = it->second;
      if (e.sends == 1)
        ++resent;
      ++e.sends;
      e.last_sent = steady_now();
      std::string bytes = e.bytes;
      send(bytes);
    }
  }

  void poll(std::chrono::milliseconds wait) {
    zmq::pollitem_t items[] = {
        {static_cast<void*>(sock), 0, ZMQ_POLLIN, 0},
        {watch ? static_cast<void*>(watch->socket()) : nullptr, 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, watch ? 2 : 1, wait);
    check_refusal();
    if (items[0].revents & ZMQ_POLLIN)
      drain();
    resend_overdue();
  }
};

namespace {

/// A window of 0 would make `submit` wait for ever: refused when the producer is made.
producer_options checked(producer_options o) {
  if (o.window < 1)
    throw std::invalid_argument("producer: window must be at least 1");
  return o;
}

} // namespace

producer::producer(producer_options opt, zmq::context_t* shared)
    : impl_(std::make_unique<impl>(checked(std::move(opt)), shared)) {}

producer::~producer() = default;

void producer::on_result(std::function<void(const producer_result&)> f) {
  impl_->on_result = std::move(f);
}

std::uint64_t producer::submit(const job_spec& spec) {
  auto& p = *impl_;
  while (p.pending.size() >= p.opt.window)
    p.poll(std::chrono::milliseconds(50));
  auto seq = p.next_seq++;
  auto bytes = encode(make_envelope(bus_submit{p.opt.producer_id, seq, spec}, p.opt.producer_id,
                                    wall_now(), p.opt.producer_id + ":" + std::to_string(seq)));
  auto now = steady_now();
  auto& e = p.pending[seq];
  e.bytes = std::move(bytes);
  e.first_sent = e.last_sent = now;
  e.sends = 1;
  std::string copy = e.bytes;
  p.send(copy);
  p.drain();
  return seq;
}

void producer::poll(std::chrono::milliseconds wait) {
  impl_->poll(wait);
}

bool producer::flush(std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (!impl_->pending.empty() && std::chrono::steady_clock::now() < end)
    impl_->poll(std::chrono::milliseconds(50));
  return impl_->pending.empty();
}

std::size_t producer::unacknowledged() const {
  return impl_->pending.size();
}
std::uint64_t producer::resent() const {
  return impl_->resent;
}
std::uint64_t producer::duplicates() const {
  return impl_->duplicates;
}
std::uint64_t producer::refused() const {
  return impl_->refused;
}

} // namespace tender
