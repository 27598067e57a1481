#include "tools/client.hpp"

#include <zmq.hpp>

#include <chrono>
#include <random>

namespace tender {

usec wall_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

struct client::impl {
  explicit impl(zmq::context_t* shared)
      : own(shared ? nullptr : std::make_unique<zmq::context_t>(1)),
        sock(shared ? *shared : *own, zmq::socket_type::dealer) {}
  std::unique_ptr<zmq::context_t> own;
  zmq::socket_t sock;
  std::uint64_t counter = 0;
  std::string prefix;
};

client::client(std::string endpoint, std::string name)
    : client(std::move(endpoint), std::move(name), nullptr) {}

client::client(std::string endpoint, std::string name, zmq::context_t& shared)
    : client(std::move(endpoint), std::move(name), &shared) {}

client::client(std::string endpoint, std::string name, zmq::context_t* shared)
    : impl_(std::make_unique<impl>(shared)), endpoint_(std::move(endpoint)),
      name_(std::move(name)) {
  std::random_device rd;
  impl_->prefix = name_ + "-" + std::to_string(rd() % 1000000) + "-";
  impl_->sock.set(zmq::sockopt::linger, 0);
  impl_->sock.connect(endpoint_);
}

client::~client() = default;

namespace {

/// Sends `bytes` and waits for an answer whose correlation id is `id` (any answer
/// when `id` is empty).
std::variant<envelope, std::string> exchange(zmq::socket_t& sock, const std::string& endpoint,
                                             const std::string& bytes, const std::string& id,
                                             usec timeout) {
  try {
    sock.send(zmq::buffer(bytes), zmq::send_flags::none);
    auto deadline = wall_now() + timeout;
    while (true) {
      auto left = deadline - wall_now();
      if (left <= 0)
        return "no answer from " + endpoint + " within " + format_duration(timeout) +
               " (is a node running there?)";
      zmq::pollitem_t item{static_cast<void*>(sock), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(std::max<usec>(1, left / 1000)));
      if (!(item.revents & ZMQ_POLLIN))
        continue;
      zmq::message_t m;
      if (!sock.recv(m, zmq::recv_flags::dontwait))
        continue;
      auto d = decode(std::string_view(static_cast<const char*>(m.data()), m.size()));
      if (!d)
        return "undecodable answer from " + endpoint + ": " + d.failure.message;
      if (!id.empty() && d.message->correlation_id != id)
        continue; // an answer to an earlier, abandoned request
      return std::move(*d.message);
    }
  } catch (const zmq::error_t& e) {
    return "cannot talk to " + endpoint + ": " + e.what();
  }
}

} // namespace

std::variant<envelope, std::string> client::call_raw(const std::string& bytes, usec timeout) {
  return exchange(impl_->sock, endpoint_, bytes, "", timeout);
}

std::variant<envelope, std::string> client::call(body request, usec timeout) {
  auto id = impl_->prefix + std::to_string(++impl_->counter);
  auto bytes = encode(make_envelope(std::move(request), name_, wall_now(), id));
  return exchange(impl_->sock, endpoint_, bytes, id, timeout);
}

} // namespace tender
