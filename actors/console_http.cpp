// The console's HTTP/1.1 server on Boost.Beast: one Asio thread, one session per
// connection, a token check before anything else, a deadline on every answer.

#include "actors/console_http.hpp"

#include <utility> // before Asio under C++20 on gcc 12

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <mutex>
#include <optional>
#include <thread>

namespace tender::console {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

bool token_matches(std::string_view given, std::string_view expected) {
  // Every byte of the longer string is looked at; the result is only read at the end.
  std::size_t n = std::max(given.size(), expected.size());
  unsigned diff = given.size() == expected.size() ? 0u : 1u;
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char a = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    unsigned char b = i < expected.size() ? static_cast<unsigned char>(expected[i]) : 0;
    diff |= static_cast<unsigned>(a ^ b);
  }
  return diff == 0 && !expected.empty();
}

std::string percent_decode(std::string_view s, bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

namespace {

/// What every session reads; outlives the io_context (see http_server::impl).
struct shared_state {
  http_server::options opt;
  handler on_request;
  std::atomic<std::size_t> connections{0};
  mutable std::mutex mu;
  std::map<int, std::int64_t> answered;
};

/// Lets responders called from other threads reach the io_context until it stops.
struct gate {
  std::mutex mu;
  net::io_context* ioc = nullptr;
};

std::string error_json(const std::string& code, const std::string& message) {
  return nlohmann::json{{"error", {{"code", code}, {"message", message}}}}.dump();
}

class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket s, shared_state& sh, std::shared_ptr<gate> g)
      : stream_(std::move(s)), timer_(stream_.get_executor()), sh_(sh), gate_(std::move(g)) {
    ++sh_.connections;
  }
  ~session() { --sh_.connections; }

  void start() { read(); }

private:
  void read() {
    parser_.emplace();
    parser_->body_limit(sh_.opt.max_body);
    parser_->header_limit(16 * 1024);
    buffer_.consume(buffer_.size());
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof) {
      return close();
    }
    keep_alive_ = false;
    if (ec == http::error::body_limit) {
      return write(
          http_response{413,
                        "application/json",
                        error_json("too_large", "the request body is over " +
                                                    std::to_string(sh_.opt.max_body) + " bytes"),
                        {}});
    }
    if (ec) {
      return write(
          http_response{400,
                        "application/json",
                        error_json("bad_request", "not an HTTP/1.1 request: " + ec.message()),
                        {}});
    }
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    stream_.expires_never();

    http_request r;
    r.method = std::string(req.method_string());
    std::string_view target(req.target().data(), req.target().size());
    auto q = target.find('?');
    r.path = percent_decode(target.substr(0, q), false);
    std::string url_token;
    bool has_url_token = false;
    if (q != std::string_view::npos) {
      auto rest = target.substr(q + 1);
      while (!rest.empty()) {
        auto amp = rest.find('&');
        auto pair = rest.substr(0, amp);
        auto eq = pair.find('=');
        auto key = percent_decode(pair.substr(0, eq), true);
        auto value = eq == std::string_view::npos ? std::string()
                                                  : percent_decode(pair.substr(eq + 1), true);
        if (key == "token") {
          url_token = std::move(value);
          has_url_token = true;
        } else if (!key.empty()) {
          r.query[key] = std::move(value);
        }
        if (amp == std::string_view::npos)
          break;
        rest = rest.substr(amp + 1);
      }
    }
    std::string_view auth;
    if (auto it = req.find(http::field::authorization); it != req.end())
      auth = std::string_view(it->value().data(), it->value().size());
    bool ok = false;
    if (auth.size() > 7 && beast::iequals(beast::string_view(auth.data(), 7), "Bearer "))
      ok = token_matches(auth.substr(7), sh_.opt.token);
    else if (has_url_token)
      ok = token_matches(url_token, sh_.opt.token);
    if (!ok) {
      if (sh_.opt.log)
        sh_.opt.log->info("console: {} {} from {} refused: {}", r.method, r.path, peer(),
                          auth.empty() && !has_url_token ? "no token" : "wrong token");
      http_response res{
          401,
          "application/json",
          error_json("unauthorized", auth.empty() && !has_url_token
                                         ? "this console needs its token: send `Authorization: "
                                           "Bearer TOKEN`, or open /?token=TOKEN"
                                         : "wrong token"),
          {{"WWW-Authenticate", "Bearer realm=\"tender console\""}}};
      if (r.path == "/" && r.method == "GET") {
        res.content_type = "text/html; charset=utf-8";
        res.body = "<!doctype html><meta charset=utf-8><title>tender console</title>"
                   "<h1>401: this console needs its token</h1><p>Open <code>/?token=TOKEN</code>"
                   " with the token from the agent's <code>[console]</code> configuration.</p>";
      }
      return write(std::move(res));
    }
    if (sh_.opt.log)
      sh_.opt.log->debug("console: {} {}", r.method, r.path);
    r.body = std::move(req.body());
    pending_ = true;
    auto seq = ++seq_;
    timer_.expires_after(sh_.opt.answer_timeout);
    timer_.async_wait([self = shared_from_this(), seq](beast::error_code e) {
      if (!e)
        self->answer(seq, http_response{504,
                                        "application/json",
                                        error_json("timeout", "the node did not answer in time"),
                                        {}});
    });
    std::weak_ptr<session> weak = shared_from_this();
    auto g = gate_;
    responder respond = [weak, g, seq](http_response res) {
      std::lock_guard lock(g->mu);
      if (!g->ioc)
        return;
      net::post(*g->ioc, [weak, seq, res = std::move(res)]() mutable {
        if (auto s = weak.lock())
          s->answer(seq, std::move(res));
      });
    };
    try {
      sh_.on_request(std::move(r), std::move(respond));
    } catch (const std::exception& e) {
      answer(seq, http_response{500, "application/json", error_json("internal", e.what()), {}});
    }
  }

  /// The answer to request number `seq`; a late one (after its 504) is dropped.
  void answer(std::uint64_t seq, http_response res) {
    if (!pending_ || seq != seq_)
      return;
    pending_ = false;
    timer_.cancel();
    write(std::move(res));
  }

  void write(http_response r) {
    {
      std::lock_guard lock(sh_.mu);
      sh_.answered[r.status]++;
    }
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(r.status));
    res->set(http::field::server, "tender");
    res->set(http::field::content_type, r.content_type);
    res->set(http::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    res->set("Referrer-Policy", "no-referrer");
    for (auto& [k, v] : r.headers)
      res->set(k, v);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive_);
    res->prepare_payload();
    stream_.expires_after(std::chrono::seconds(30));
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (ec || !self->keep_alive_)
                          return self->close();
                        self->read();
                      });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  std::string peer() {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  shared_state& sh_;
  std::shared_ptr<gate> gate_;
  bool keep_alive_ = false;
  bool pending_ = false;
  std::uint64_t seq_ = 0; ///< requests read on this connection
};

} // namespace

// Members are destroyed bottom-up: the io_context (and every session it still holds)
// before `shared`, which the sessions refer to.
struct http_server::impl {
  shared_state shared;
  std::shared_ptr<gate> g = std::make_shared<gate>();
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  std::string address;
  bool stopped = false;

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
      if (ec == net::error::operation_aborted || !acceptor.is_open())
        return;
      if (!ec) {
        if (shared.connections.load() >= shared.opt.max_connections) {
          beast::error_code ignore;
          s.close(ignore);
        } else {
          std::make_shared<session>(std::move(s), shared, g)->start();
        }
      }
      accept();
    });
  }
};

http_server::http_server(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

http_server::~http_server() {
  stop();
}

std::variant<std::unique_ptr<http_server>, std::string> http_server::start(options opt, handler h) {
  auto p = std::make_unique<impl>();
  auto where = opt.host + ":" + std::to_string(opt.port);
  beast::error_code ec;
  auto addr = net::ip::make_address(opt.host, ec);
  if (ec)
    return "console: " + opt.host + " is not an IP address: " + ec.message();
  tcp::endpoint ep(addr, static_cast<unsigned short>(opt.port));
  p->acceptor.open(ep.protocol(), ec);
  if (!ec)
    p->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    p->acceptor.bind(ep, ec);
  if (!ec)
    p->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return "console: cannot listen on " + where + ": " + ec.message();
  auto bound = p->acceptor.local_endpoint(ec);
  p->address = addr.is_v6()
                   ? "[" + bound.address().to_string() + "]:" + std::to_string(bound.port())
                   : bound.address().to_string() + ":" + std::to_string(bound.port());
  p->shared.opt = std::move(opt);
  p->shared.on_request = std::move(h);
  p->g->ioc = &p->ioc;
  p->accept();
  auto* raw = p.get();
  p->thread = std::thread([raw] {
    for (;;) {
      try {
        raw->ioc.run();
        return;
      } catch (const std::exception& e) {
        if (raw->shared.opt.log)
          raw->shared.opt.log->error("console: {}", e.what());
      }
    }
  });
  return std::unique_ptr<http_server>(new http_server(std::move(p)));
}

std::string http_server::address() const {
  return impl_->address;
}

std::map<int, std::int64_t> http_server::answered() const {
  std::lock_guard lock(impl_->shared.mu);
  return impl_->shared.answered;
}

void http_server::stop() {
  auto& p = *impl_;
  if (p.stopped)
    return;
  p.stopped = true;
  {
    std::lock_guard lock(p.g->mu);
    p.g->ioc = nullptr;
  }
  net::post(p.ioc, [&p] {
    beast::error_code ec;
    p.acceptor.close(ec);
  });
  p.ioc.stop();
  if (p.thread.joinable())
    p.thread.join();
}

} // namespace tender::console
