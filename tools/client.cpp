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

std::variant<client_keys, std::string> load_client_keys(const std::string& key_file,
                                                        const std::string& server_key) {
  client_keys k;
  if (key_file.empty() && server_key.empty())
    return k;
  if (key_file.empty())
    return std::string("--server-key needs --key FILE (this client's secret key, from `tender "
                       "keygen --out FILE`)");
  if (server_key.empty())
    return std::string("--key needs --server-key KEY (the node's public key: its .pub file or "
                       "the 40-character Z85 key)");
  auto mine = curve::load_key_pair(key_file);
  if (auto* err = std::get_if<std::string>(&mine))
    return "--key: " + *err;
  auto server = curve::load_public_key(server_key);
  if (auto* err = std::get_if<std::string>(&server))
    return "--server-key: " + *err;
  k.mine = std::get<curve::key_pair>(std::move(mine));
  k.server_public = std::get<curve::key_pair>(server).public_key;
  return k;
}

struct client::impl {
  explicit impl(zmq::context_t* shared)
      : own(shared ? nullptr : std::make_unique<zmq::context_t>(1)),
        sock(shared ? *shared : *own, zmq::socket_type::dealer) {}
  zmq::context_t& ctx() { return own ? *own : *shared_ctx; }
  std::unique_ptr<zmq::context_t> own;
  zmq::context_t* shared_ctx = nullptr;
  zmq::socket_t sock;
  std::unique_ptr<curve::handshake_watch> watch; ///< none on inproc://
  std::uint64_t counter = 0;
  std::string prefix;
};

client::client(std::string endpoint, std::string name)
    : client(std::move(endpoint), std::move(name), nullptr, nullptr) {}

client::client(std::string endpoint, std::string name, zmq::context_t& shared)
    : client(std::move(endpoint), std::move(name), &shared, nullptr) {}

client::client(std::string endpoint, std::string name, const client_keys& keys)
    : client(std::move(endpoint), std::move(name), nullptr, &keys) {}

client::client(std::string endpoint, std::string name, zmq::context_t* shared,
               const client_keys* keys)
    : impl_(std::make_unique<impl>(shared)), endpoint_(std::move(endpoint)),
      name_(std::move(name)) {
  std::random_device rd;
  impl_->shared_ctx = shared;
  impl_->prefix = name_ + "-" + std::to_string(rd() % 1000000) + "-";
  impl_->sock.set(zmq::sockopt::linger, 0);
  bool curve = keys && keys->mine;
  if (curve)
    curve::secure_client(impl_->sock, *keys->mine, keys->server_public);
  if (endpoint_.rfind("inproc://", 0) != 0)
    impl_->watch = std::make_unique<curve::handshake_watch>(impl_->ctx(), impl_->sock, curve);
  impl_->sock.connect(endpoint_);
}

client::~client() = default;

namespace {

/// Sends `bytes` and waits for an answer whose correlation id is `id` (any answer
/// when `id` is empty).
std::variant<envelope, std::string> exchange(zmq::socket_t& sock, curve::handshake_watch* watch,
                                             const std::string& endpoint,
                                             const std::string& bytes, const std::string& id,
                                             usec timeout) {
  try {
    sock.send(zmq::buffer(bytes), zmq::send_flags::none);
    auto deadline = wall_now() + timeout;
    while (true) {
      // A refused handshake fails the call at once (the node would never answer).
      if (watch)
        if (auto why = watch->refusal(endpoint))
          return *why;
      auto left = deadline - wall_now();
      if (left <= 0) {
        if (watch)
          if (auto why = watch->explain_timeout(endpoint))
            return "no answer from " + endpoint + " within " + format_duration(timeout) + ": " +
                   *why;
        return "no answer from " + endpoint + " within " + format_duration(timeout) +
               " (is a node running there?)";
      }
      zmq::pollitem_t items[] = {{static_cast<void*>(sock), 0, ZMQ_POLLIN, 0},
                                 {watch ? static_cast<void*>(watch->socket()) : nullptr, 0,
                                  ZMQ_POLLIN, 0}};
      zmq::poll(items, watch ? 2 : 1, std::chrono::milliseconds(std::max<usec>(1, left / 1000)));
      auto& item = items[0];
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
  return exchange(impl_->sock, impl_->watch.get(), endpoint_, bytes, "", timeout);
}

std::variant<envelope, std::string> client::call(body request, usec timeout) {
  auto id = impl_->prefix + std::to_string(++impl_->counter);
  auto bytes = encode(make_envelope(std::move(request), name_, wall_now(), id));
  return exchange(impl_->sock, impl_->watch.get(), endpoint_, bytes, id, timeout);
}

} // namespace tender
