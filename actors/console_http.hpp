#pragma once
/// The console's HTTP/1.1 server (Boost.Beast on its own Asio thread). Plain class, no
/// CAF: it checks the token, parses requests and hands each authorised one to a
/// `handler` with a `responder`; whoever answers may do so from any thread. Beast and
/// Asio stay inside console_http.cpp.
///
///   client --HTTP--> [io thread] --token ok?--no--> 401, nothing else happens
///                                      |yes
///                                      +--> handler(request, responder) ... responder(response)
///                                      +--> no answer within answer_timeout --> 504
///
/// The token comes as `Authorization: Bearer TOKEN` or as `?token=TOKEN` in the URL. It is
/// compared in constant time and never written to a log line.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace spdlog {
class logger;
}

namespace tender::console {

struct http_request {
  std::string method;                       ///< "GET", "POST", ...
  std::string path;                         ///< percent-decoded, without the query
  std::map<std::string, std::string> query; ///< decoded; `token` removed
  std::string body;
};

struct http_response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers; ///< extra headers
};

using responder = std::function<void(http_response)>;
/// Called on the I/O thread for every authorised request; must not block.
using handler = std::function<void(http_request, responder)>;

/// True when `given` equals `expected`; the time taken depends only on the lengths.
bool token_matches(std::string_view given, std::string_view expected);

/// "%2F" -> "/", "+" -> " " (when `plus_is_space`). Malformed escapes stay as they are.
std::string percent_decode(std::string_view s, bool plus_is_space);

class http_server {
public:
  struct options {
    std::string host = "127.0.0.1";
    int port = 0; ///< 0 = a free port
    std::string token;
    std::chrono::milliseconds answer_timeout{10'000}; ///< then 504
    std::size_t max_body = 64 * 1024;
    std::size_t max_connections = 64;
    std::shared_ptr<spdlog::logger> log;
  };

  /// Binds and starts the I/O thread. Errors: one line naming the address and cause.
  static std::variant<std::unique_ptr<http_server>, std::string> start(options opt, handler h);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// The bound address, "127.0.0.1:45123" ("[::1]:45123" for IPv6).
  std::string address() const;
  /// Answers so far by status code (for `/metrics`).
  std::map<int, std::int64_t> answered() const;
  /// Stops accepting, closes every connection and joins the I/O thread.
  void stop();

  struct impl;

private:
  explicit http_server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace tender::console
