// The admin console against a real `tender agent`: a plain-socket HTTP client checks
// the token, the JSON API, the actions (cancel, drain, weights) and `/metrics`;
// headless Chromium loads the page and must show a finished job.

#include "actors/console_http.hpp"
#include "config/node_config.hpp"
#include "tests/harness.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

using namespace tender;
using namespace tender::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string token = "console-test-token-0123456789abcdef";

struct reply {
  int status = 0;
  std::map<std::string, std::string> headers; ///< lower-case names
  std::string body;
  json j() const {
    try {
      return json::parse(body);
    } catch (...) {
      return json{{"unparsed", body}};
    }
  }
};

reply http_raw(const std::string& address, const std::string& req);

/// One HTTP/1.1 request over a fresh loopback connection ("Connection: close").
reply http(const std::string& address, const std::string& method, const std::string& target,
           const std::string& bearer = {}, const std::string& body = {}) {
  std::string req =
      method + " " + target + " HTTP/1.1\r\nHost: " + address + "\r\nConnection: close\r\n";
  if (!bearer.empty())
    req += "Authorization: Bearer " + bearer + "\r\n";
  if (!body.empty() || method == "POST")
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return http_raw(address, req + "\r\n" + body);
}

/// Sends `req` as it is and reads the answer until the server closes.
reply http_raw(const std::string& address, const std::string& req) {
  reply r;
  auto colon = address.rfind(':');
  auto host = address.substr(0, colon);
  int port = std::stoi(address.substr(colon + 1));
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    r.status = -1;
    return r;
  }
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string raw;
  char buf[65536];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    raw.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto end = raw.find("\r\n\r\n");
  if (end == std::string::npos || raw.size() < 12)
    return r;
  r.status = std::stoi(raw.substr(9, 3));
  std::istringstream hs(raw.substr(0, end));
  std::string line;
  std::getline(hs, line);
  while (std::getline(hs, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    auto c = line.find(':');
    if (c == std::string::npos)
      continue;
    auto name = line.substr(0, c);
    for (auto& ch : name)
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    r.headers[name] = line.substr(line.find_first_not_of(' ', c + 1));
  }
  r.body = raw.substr(end + 4);
  return r;
}

reply get(const std::string& a, const std::string& target) {
  return http(a, "GET", target, token);
}
reply post(const std::string& a, const std::string& target, const std::string& body = "{}") {
  return http(a, "POST", target, token, body);
}

/// A node with a console on a free port and two local providers: `alpha` is cheaper.
std::string node_toml(const temp_dir& t, const std::string& extra = "") {
  std::string providers;
  for (auto [name, price] : {std::pair{"alpha", "0.010"}, std::pair{"beta", "0.050"}})
    providers +=
        std::string("[[providers]]\nname = \"") + name +
        "\"\nkind = \"local\"\ncpus = 2\nmemory = \"2GiB\"\nprice_per_core_hour = " + price +
        "\nprice_per_gib_hour = 0.001\n\n";
  return t.file("node.toml", "[node]\nname = \"console-test\"\n\n[console]\nlisten = "
                             "\"127.0.0.1:0\"\ntoken = \"" +
                                 token + "\"\n\n" + extra + providers);
}

/// The console's address from the agent's stdout.
std::string console_address(agent& a) {
  std::string addr;
  eventually(
      [&] {
        auto out = a.proc().out();
        auto at = out.find("console on http://");
        if (at == std::string::npos)
          return false;
        auto from = at + 18;
        addr = out.substr(from, out.find('/', from) - from);
        return true;
      },
      30s);
  return addr;
}

std::string job_toml(const temp_dir& t, const std::string& name, const std::string& command) {
  return t.file(name + ".toml", "[job]\nname = \"" + name +
                                    "\"\nuser = \"tester\"\ncommand = " + command +
                                    "\nwalltime = \"1m\"\n[job.hints]\ncpus = 1\n"
                                    "memory = \"64MiB\"\n");
}

std::string state_of(const std::string& addr, const std::string& id) {
  auto r = get(addr, "/api/jobs/" + id);
  return r.status == 200 ? r.j()["job"].value("state", "") : "";
}

bool reaches(const std::string& addr, const std::string& id, const std::string& state,
             std::chrono::milliseconds timeout = 90s) {
  return eventually([&] { return state_of(addr, id) == state; }, timeout);
}

json provider(const std::string& addr, const std::string& name) {
  auto r = get(addr, "/api/providers");
  auto j = r.j();
  for (auto& p : j["providers"])
    if (p.value("name", "") == name)
      return p;
  ADD_FAILURE() << "no provider " << name << " in " << r.status << " " << r.body;
  return nullptr;
}

} // namespace

// --- the server's building blocks --------------------------------------------------

TEST(console_http, token_compare_and_percent_decoding) {
  using console::token_matches;
  EXPECT_TRUE(token_matches("abcdef0123456789", "abcdef0123456789"));
  EXPECT_FALSE(token_matches("abcdef0123456788", "abcdef0123456789"));
  EXPECT_FALSE(token_matches("abcdef012345678", "abcdef0123456789"));
  EXPECT_FALSE(token_matches("abcdef01234567890", "abcdef0123456789"));
  EXPECT_FALSE(token_matches("", ""));
  EXPECT_EQ(console::percent_decode("/api/jobs/j%2D1", false), "/api/jobs/j-1");
  EXPECT_EQ(console::percent_decode("a+b%20c", true), "a b c");
  EXPECT_EQ(console::percent_decode("a+b", false), "a+b");
  EXPECT_EQ(console::percent_decode("bad%zz%4", false), "bad%zz%4");
}

TEST(console_http, a_handler_that_never_answers_gets_504_and_the_server_goes_on) {
  std::mutex mu;
  std::vector<console::responder> parked;
  console::http_server::options opt;
  opt.token = token;
  opt.answer_timeout = 2s; // long enough for "fast" on a loaded machine
  auto started =
      console::http_server::start(opt, [&](console::http_request r, console::responder respond) {
        if (r.path == "/slow") {
          std::lock_guard lock(mu);
          parked.push_back(std::move(respond));
          return;
        }
        // Answered from another thread, as the console actor does.
        std::thread([respond, q = r.query["q"]] {
          respond(console::http_response{200, "text/plain", "fast " + q, {}});
        }).detach();
      });
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<console::http_server>>(started));
  auto& srv = *std::get<std::unique_ptr<console::http_server>>(started);
  auto addr = srv.address();
  auto r = get(addr, "/slow");
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(r.j()["error"]["code"], "timeout");
  r = get(addr, "/fast?q=a%20b");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "fast a b");
  {
    // A late answer goes nowhere.
    std::lock_guard lock(mu);
    ASSERT_EQ(parked.size(), 1u);
    parked[0](console::http_response{200, "text/plain", "late", {}});
  }
  EXPECT_EQ(get(addr, "/fast?q=2").body, "fast 2");
  EXPECT_EQ(http(addr, "GET", "/fast").status, 401);
  auto counts = srv.answered();
  EXPECT_EQ(counts[504], 1);
  EXPECT_EQ(counts[200], 2);
  EXPECT_EQ(counts[401], 1);
  srv.stop();
  std::lock_guard lock(mu);
  parked[0](console::http_response{200, "text/plain", "after stop", {}}); // a no-op
}

TEST(console_config, needs_a_token_and_names_the_key) {
  auto parse = [](const std::string& text) { return parse_node_toml(text, "n.toml", "/tmp"); };
  auto r = parse("[console]\nlisten = \"127.0.0.1:7480\"\n");
  ASSERT_TRUE(std::holds_alternative<config_error>(r));
  EXPECT_EQ(std::get<config_error>(r).key, "console.token");
  r = parse("[console]\nlisten = \"127.0.0.1:7480\"\ntoken = \"short\"\n");
  ASSERT_TRUE(std::holds_alternative<config_error>(r));
  EXPECT_EQ(std::get<config_error>(r).key, "console.token");
  r = parse("[console]\nlisten = \"127.0.0.1:7480\"\ntoken_file = \"/nonexistent/tok\"\n");
  ASSERT_TRUE(std::holds_alternative<config_error>(r));
  EXPECT_EQ(std::get<config_error>(r).key, "console.token_file");
  r = parse("[console]\nlisten = \"here:99999\"\ntoken = \"" + token + "\"\n");
  ASSERT_TRUE(std::holds_alternative<config_error>(r));
  EXPECT_EQ(std::get<config_error>(r).key, "console.listen");
  r = parse("[console]\ntoken = \"" + token + "\"\n");
  ASSERT_TRUE(std::holds_alternative<config_error>(r));
  EXPECT_EQ(std::get<config_error>(r).key, "console.listen");

  // A port alone binds to loopback; a token file's first line is the token.
  temp_dir t;
  t.file("tok", token + "\n");
  r = parse_node_toml("[console]\nlisten = \"7481\"\ntoken_file = \"tok\"\n", "n.toml", t.path);
  ASSERT_TRUE(std::holds_alternative<node_config>(r)) << std::get<config_error>(r).to_string();
  auto& c = std::get<node_config>(r).console;
  EXPECT_TRUE(c.enabled);
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.port, 7481);
  EXPECT_EQ(c.token, token);
  EXPECT_FALSE(std::get<node_config>(parse("")).console.enabled);

  // The agent refuses to start and says which key is missing.
  auto cfg = t.file("node.toml", "[console]\nlisten = \"127.0.0.1:0\"\n");
  auto res = run({"agent", "--config", cfg, "--data-dir", t.path + "/data"});
  EXPECT_EQ(res.code, 2);
  EXPECT_NE(res.err.find("console.token"), std::string::npos) << res.err;
}

// --- against a running agent -------------------------------------------------------

TEST(console, a_console_port_in_use_is_one_clear_line_and_a_failure) {
  temp_dir t;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  auto port = std::to_string(ntohs(sa.sin_port));
  auto cfg = t.file("busy.toml",
                    "[console]\nlisten = \"127.0.0.1:" + port + "\"\ntoken = \"" + token + "\"\n");
  auto r = run({"agent", "--config", cfg, "--data-dir", t.path + "/data", "--listen",
                "tcp://127.0.0.1:*", "--insecure"});
  ::close(fd);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("console: cannot listen on 127.0.0.1:" + port), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(token), std::string::npos);
}

TEST(console, without_the_token_it_answers_401_and_changes_nothing) {
  temp_dir t;
  agent a(t.path + "/data", {"--config", node_toml(t)});
  auto addr = console_address(a);
  ASSERT_FALSE(addr.empty()) << a.proc().out() << a.proc().err();
  auto id = a.submit(job_toml(t, "con-sleeper", R"(["sleep", "60"])"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(reaches(addr, id, "running")) << state_of(addr, id);
  auto weights = get(addr, "/api/weights").j();

  for (auto bearer : {std::string(), std::string("wrong-token-wrong-token-wrong"), token + "x"}) {
    EXPECT_EQ(http(addr, "POST", "/api/jobs/" + id + "/cancel", bearer, "{}").status, 401);
    EXPECT_EQ(http(addr, "POST", "/api/providers/alpha/drain", bearer).status, 401);
    EXPECT_EQ(http(addr, "POST", "/api/weights", bearer, R"({"w_risk": 7})").status, 401);
    EXPECT_EQ(http(addr, "GET", "/api/jobs", bearer).status, 401);
    EXPECT_EQ(http(addr, "GET", "/metrics", bearer).status, 401);
    EXPECT_EQ(http(addr, "GET", "/", bearer).status, 401);
  }
  auto r = http(addr, "POST", "/api/jobs/" + id + "/cancel?token=not-the-token-at-all", "", "{}");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.headers["www-authenticate"], "Bearer realm=\"tender console\"");
  EXPECT_EQ(r.j()["error"]["code"], "unauthorized");
  // The token never reaches the log, right or wrong.
  EXPECT_EQ(http(addr, "GET", "/api/jobs?token=" + token, "").status, 200);
  EXPECT_EQ(a.proc().err().find(token), std::string::npos);
  EXPECT_EQ(a.proc().err().find("not-the-token-at-all"), std::string::npos);

  // Nothing changed: the job runs, alpha offers, the weights are the same.
  EXPECT_EQ(state_of(addr, id), "running");
  EXPECT_EQ(provider(addr, "alpha")["drained"], false);
  EXPECT_EQ(get(addr, "/api/weights").j(), weights);

  // With the token the cancel goes through.
  r = post(addr, "/api/jobs/" + id + "/cancel", R"({"reason": "console test"})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(reaches(addr, id, "cancelled", 60s)) << state_of(addr, id);
}

TEST(console, api_shows_jobs_their_auction_usage_and_answers_bad_requests_clearly) {
  temp_dir t;
  agent a(t.path + "/data", {"--config", node_toml(t)});
  auto addr = console_address(a);
  ASSERT_FALSE(addr.empty());
  auto id = a.submit(job_toml(
      t, "con-busy", R"(["sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(reaches(addr, id, "done")) << get(addr, "/api/jobs/" + id).body;

  auto jobs = get(addr, "/api/jobs");
  ASSERT_EQ(jobs.status, 200);
  EXPECT_EQ(jobs.headers["content-type"], "application/json");
  auto jl = jobs.j();
  ASSERT_EQ(jl["jobs"].size(), 1u) << jobs.body;
  EXPECT_EQ(jl["jobs"][0]["id"], id);
  EXPECT_EQ(jl["jobs"][0]["state"], "done");
  EXPECT_EQ(jl["counts"]["done"], 1);
  EXPECT_EQ(jl["total"], 1);

  auto d = get(addr, "/api/jobs/" + id).j();
  EXPECT_EQ(d["job"]["provider"], "alpha");
  auto& x = d["explanation"];
  ASSERT_TRUE(x.is_object()) << d.dump();
  EXPECT_EQ(x["winner"], "alpha");
  EXPECT_FALSE(x["why"].get<std::string>().empty());
  ASSERT_GE(x["offers"].size(), 2u);
  bool won = false;
  for (auto& o : x["offers"])
    if (o["verdict"] == "won") {
      won = true;
      EXPECT_TRUE(o["score"].is_object());
      EXPECT_GT(o["score"]["risk_adjusted"].get<double>(), 0);
    }
  EXPECT_TRUE(won) << x.dump();

  auto u = get(addr, "/api/jobs/" + id + "/usage?points=50").j();
  EXPECT_EQ(u["state"], "done");
  EXPECT_TRUE(u["band"].is_object()) << u.dump();
  EXPECT_GE(u["total_samples"].get<int>(), 1) << u.dump();
  EXPECT_LE(u["samples"].size(), 50u);
  EXPECT_TRUE(u["samples"][0].contains("cpu"));

  auto page = get(addr, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<title>tender console</title>"), std::string::npos);
  EXPECT_FALSE(std::regex_search(
      page.body,
      std::regex(R"((src|href|action)\s*=\s*["']?(https?:)?//|url\(|@import|fetch\(["'`]https?:)")))
      << "the page must not load anything from elsewhere";
  EXPECT_NE(page.headers["content-security-policy"].find("default-src 'none'"), std::string::npos);

  // Bad requests: a clear error naming what was wrong, and the server goes on.
  auto r = get(addr, "/api/jobs/j-nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.j()["error"]["code"], "not_found");
  EXPECT_EQ(post(addr, "/api/jobs/j-nope/cancel").status, 404);
  EXPECT_EQ(post(addr, "/api/providers/nope/drain").status, 404);
  r = http(addr, "DELETE", "/api/jobs/" + id, token);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "GET");
  EXPECT_EQ(get(addr, "/api/jobs/" + id + "/cancel").status, 405);
  r = get(addr, "/api/jobs?limit=lots");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.j()["error"]["field"], "limit");
  EXPECT_EQ(get(addr, "/api/nothing").status, 404);
  EXPECT_EQ(get(addr, "/elsewhere").status, 404);
  r = post(addr, "/api/jobs/" + id + "/cancel", "{not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.j()["error"]["field"], "body");
  // Not HTTP at all, then a body over the limit: answered, and the server keeps serving.
  r = http(addr, "GET", "/api/jobs\r\nthis is not a header", token);
  EXPECT_EQ(r.status, 400);
  r = http_raw(addr, "POST /api/weights HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                         "\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(get(addr, "/api/jobs").status, 200);
}

TEST(console, a_drained_provider_stops_offering_and_offers_again_when_re_enabled) {
  temp_dir t;
  agent a(t.path + "/data", {"--config", node_toml(t)});
  auto addr = console_address(a);
  ASSERT_FALSE(addr.empty());
  auto r = post(addr, "/api/providers/alpha/drain");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.j()["provider"]["drained"], true);
  EXPECT_EQ(provider(addr, "alpha")["drained"], true);
  EXPECT_EQ(provider(addr, "beta")["drained"], false);

  // alpha is cheaper, but drained: beta runs the job, and alpha said why it did not bid.
  auto first = a.submit(job_toml(t, "con-drain-1", R"(["true"])"));
  ASSERT_TRUE(reaches(addr, first, "done"));
  auto x = get(addr, "/api/jobs/" + first).j()["explanation"];
  EXPECT_EQ(x["winner"], "beta") << x.dump();
  for (auto& o : x["offers"])
    EXPECT_NE(o["provider"], "alpha") << x.dump();
  bool declined = false;
  for (auto& dn : x["declines"])
    declined |= dn["provider"] == "alpha" && dn["reason"] == "drained";
  EXPECT_TRUE(declined) << x.dump();

  r = post(addr, "/api/providers/alpha/enable");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.j()["provider"]["drained"], false);
  auto second = a.submit(job_toml(t, "con-drain-2", R"(["true"])"));
  ASSERT_TRUE(reaches(addr, second, "done"));
  EXPECT_EQ(get(addr, "/api/jobs/" + second).j()["explanation"]["winner"], "alpha");
}

TEST(console, a_remote_provider_can_be_drained_too) {
  temp_dir t;
  agent a(t.path + "/data", {"--config", node_toml(t)});
  auto addr = console_address(a);
  ASSERT_FALSE(addr.empty());
  // gamma, in its own process, is the cheapest of the three.
  auto cfg = t.file("gamma.toml", "[[providers]]\nname = \"gamma\"\nkind = \"local\"\ncpus = 2\n"
                                  "memory = \"2GiB\"\nprice_per_core_hour = 0.001\n"
                                  "price_per_gib_hour = 0.0001\n");
  process gamma({tender_bin(), "provider", "--config", cfg, "--connect", a.endpoint(), "--data-dir",
                 t.path + "/gamma"},
                t.path, "gamma");
  ASSERT_TRUE(eventually(
      [&] {
        auto j = get(addr, "/api/providers").j();
        for (auto& p : j["providers"])
          if (p.value("name", "") == "gamma")
            return true;
        return false;
      },
      30s))
      << gamma.err();
  auto r = post(addr, "/api/providers/gamma/drain");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.j()["provider"]["drained"], true);
  EXPECT_EQ(r.j()["provider"]["remote"], true);
  auto id = a.submit(job_toml(t, "con-remote-drain", R"(["true"])"));
  ASSERT_TRUE(reaches(addr, id, "done"));
  auto x = get(addr, "/api/jobs/" + id).j()["explanation"];
  EXPECT_EQ(x["winner"], "alpha") << x.dump();
  bool declined = false;
  for (auto& dn : x["declines"])
    declined |= dn["provider"] == "gamma" && dn["reason"] == "drained";
  EXPECT_TRUE(declined) << x.dump();

  ASSERT_EQ(post(addr, "/api/providers/gamma/enable").status, 200);
  auto next = a.submit(job_toml(t, "con-remote-enabled", R"(["true"])"));
  ASSERT_TRUE(reaches(addr, next, "done"));
  EXPECT_EQ(get(addr, "/api/jobs/" + next).j()["explanation"]["winner"], "gamma");
}

TEST(console, new_scoring_weights_are_shown_checked_and_used_by_later_auctions) {
  temp_dir t;
  agent a(t.path + "/data", {"--config", node_toml(t, "[scoring]\nw_risk = 1.5\n\n")});
  auto addr = console_address(a);
  ASSERT_FALSE(addr.empty());
  auto w = get(addr, "/api/weights").j();
  EXPECT_EQ(w["weights"]["w_risk"], 1.5);
  EXPECT_EQ(w["weights"]["w_cost"], 1.0);
  EXPECT_EQ(w["changed"], false);

  // Refused changes name the field and change nothing.
  auto r = post(addr, "/api/weights", R"({"w_risk": -1})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.j()["error"]["field"], "w_risk");
  r = post(addr, "/api/weights", R"({"w_cost": 2, "w_bogus": 1})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.j()["error"]["field"], "w_bogus");
  r = post(addr, "/api/weights", R"({"deadline_target": "high"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.j()["error"]["field"], "deadline_target");
  r = post(addr, "/api/weights", "[1, 2]");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.j()["error"]["field"], "body");
  EXPECT_EQ(get(addr, "/api/weights").j(), w);

  r = post(addr, "/api/weights", R"({"w_cost": 3, "w_risk": 2.5})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto now = get(addr, "/api/weights").j();
  EXPECT_EQ(now["weights"]["w_cost"], 3.0);
  EXPECT_EQ(now["weights"]["w_risk"], 2.5);
  EXPECT_EQ(now["weights"]["w_deadline"], 1.0);
  EXPECT_EQ(now["changed"], true);
  EXPECT_NE(a.proc().err().find("scoring weights changed"), std::string::npos);

  // The next auction scores with them: cost_term = 3 x expected cost, risk_term =
  // 2.5 x risk x expected cost.
  auto id = a.submit(job_toml(t, "con-weights", R"(["true"])"));
  ASSERT_TRUE(reaches(addr, id, "done"));
  auto x = get(addr, "/api/jobs/" + id).j()["explanation"];
  int scored = 0;
  for (auto& o : x["offers"]) {
    auto& s = o["score"];
    if (!s.is_object())
      continue;
    ++scored;
    double cost = s["expected_cost"].get<double>();
    EXPECT_NEAR(s["cost_term"].get<double>(), 3.0 * cost, 1e-9 + 1e-9 * cost) << s.dump();
    EXPECT_NEAR(s["risk_term"].get<double>(), 2.5 * s["risk"].get<double>() * cost,
                1e-9 + 1e-9 * cost)
        << s.dump();
  }
  EXPECT_GE(scored, 1) << x.dump();
}

TEST(console, metrics_are_prometheus_text) {
  temp_dir t;
  agent a(t.path + "/data", {"--config", node_toml(t)});
  auto addr = console_address(a);
  ASSERT_FALSE(addr.empty());
  auto id = a.submit(job_toml(t, "con-metrics", R"(["true"])"));
  ASSERT_TRUE(reaches(addr, id, "done"));
  auto r = get(addr, "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"].rfind("text/plain; version=0.0.4", 0), 0u);
  // Every line: a comment, or `name{label="value",...} number`.
  std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$)");
  std::map<std::string, double> values;
  std::set<std::string> typed;
  std::istringstream in(r.body);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    if (line.rfind("# TYPE ", 0) == 0) {
      typed.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0)
      continue;
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, sample)) << "line " << lines << ": " << line;
    EXPECT_TRUE(typed.count(m[1].str())) << "no # TYPE before " << line;
    values[line.substr(0, line.rfind(' '))] = std::stod(line.substr(line.rfind(' ') + 1));
  }
  EXPECT_EQ(values["tender_jobs{state=\"done\"}"], 1);
  EXPECT_EQ(values["tender_jobs{state=\"running\"}"], 0);
  EXPECT_GE(values["tender_negotiations_total"], 1);
  EXPECT_GE(values["tender_offers_total{verdict=\"won\"}"], 1);
  for (auto p : {"alpha", "beta"}) {
    auto key = std::string("tender_provider_breach_probability{provider=\"") + p + "\"}";
    ASSERT_TRUE(values.count(key)) << r.body;
    EXPECT_GT(values[key], 0);
    EXPECT_LT(values[key], 1);
  }
  EXPECT_EQ(values["tender_scoring_weight{weight=\"w_cost\"}"], 1);
  EXPECT_GE(values["tender_console_requests_total{code=\"200\"}"], 1) << r.body;

  // The console stops with the node: SIGTERM ends the agent promptly and cleanly.
  a.proc().signal(SIGTERM);
  EXPECT_EQ(a.proc().wait(30s), 0) << a.proc().err();
}

// --- in a real browser -------------------------------------------------------------

TEST(console_browser, chromium_shows_a_submitted_job_reaching_done) {
  const std::string chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium))
    GTEST_SKIP() << chromium << " is not installed (tools/install-deps installs Debian's chromium)";
  temp_dir t;
  agent a(t.path + "/data", {"--config", node_toml(t)});
  auto addr = console_address(a);
  ASSERT_FALSE(addr.empty());
  auto id = a.submit(job_toml(
      t, "con-browser", R"(["sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(reaches(addr, id, "done"));
  auto url = "http://" + addr + "/?token=" + token + "#job=" + id;
  auto browse = [&](std::vector<std::string> extra, const std::string& tag) {
    std::vector<std::string> argv{chromium,
                                  "--headless",
                                  "--no-sandbox",
                                  "--disable-gpu",
                                  "--disable-dev-shm-usage",
                                  "--no-first-run",
                                  "--user-data-dir=" + t.path + "/chromium-" + tag,
                                  "--virtual-time-budget=8000",
                                  "--window-size=1400,1000"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(url);
    process p(argv, t.path, tag);
    int code = p.wait(120s);
    return std::make_pair(code, p.out() + "\n--- stderr ---\n" + p.err());
  };
  auto [code, dom] = browse({"--dump-dom"}, "dom");
  ASSERT_EQ(code, 0) << dom;
  // The jobs table has the job, in state done; its detail shows the auction and the chart.
  std::regex row("<tr[^>]*data-job-id=\"" + id + "\"[^>]*>.*?data-state=\"done\"");
  EXPECT_TRUE(std::regex_search(dom, row)) << dom;
  EXPECT_NE(dom.find("class=\"why\""), std::string::npos) << dom;
  EXPECT_NE(dom.find("data-chart=\"cpu\""), std::string::npos) << dom;

  auto shot = t.path + "/console.png";
  auto [scode, sout] = browse({"--screenshot=" + shot}, "shot");
  ASSERT_EQ(scode, 0) << sout;
  std::ifstream png(shot, std::ios::binary);
  char magic[8] = {};
  png.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  std::error_code ec;
  if (fs::is_directory("/work/notes", ec))
    fs::copy_file(shot, "/work/notes/console.png", fs::copy_options::overwrite_existing, ec);
}
