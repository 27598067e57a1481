#include "protocol/curve.hpp"

#include <gtest/gtest.h>
#include <zmq.hpp>

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

using namespace tender;
using namespace tender::curve;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
  temp_dir() {
    char tmpl[] = "/tmp/tender-curve-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_dir() { fs::remove_all(path); }
  std::string file(const std::string& name, const std::string& text, int mode = 0600) const {
    auto p = path + "/" + name;
    std::ofstream(p) << text;
    fs::permissions(p, static_cast<fs::perms>(mode));
    return p;
  }
  std::string path;
};

key_pair fresh() {
  return std::get<key_pair>(generate());
}

template <class T> std::string error_of(const std::variant<T, std::string>& v) {
  return std::holds_alternative<std::string>(v) ? std::get<std::string>(v) : "(no error)";
}

} // namespace

TEST(curve, this_libzmq_has_curve) {
  EXPECT_TRUE(available());
}

TEST(curve, keygen_files_round_trip_with_a_private_secret) {
  temp_dir t;
  auto k = fresh();
  EXPECT_TRUE(is_z85_key(k.public_key));
  EXPECT_TRUE(is_z85_key(k.secret_key));
  auto path = t.path + "/node.key";
  ASSERT_FALSE(write_key_files(path, k, false));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = load_key_pair(path);
  ASSERT_TRUE(std::holds_alternative<key_pair>(back)) << error_of(back);
  EXPECT_EQ(std::get<key_pair>(back).public_key, k.public_key);
  EXPECT_EQ(std::get<key_pair>(back).secret_key, k.secret_key);
  auto pub = load_public_key(path + ".pub");
  ASSERT_TRUE(std::holds_alternative<key_pair>(pub)) << error_of(pub);
  EXPECT_EQ(std::get<key_pair>(pub).public_key, k.public_key);
  EXPECT_EQ(std::get<key_pair>(pub).secret_key, "");
  std::ifstream in(path + ".pub");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text.find(k.secret_key), std::string::npos);

  // No silent overwrite.
  EXPECT_EQ(write_key_files(path, fresh(), false).value_or(""),
            path + ": already exists (pass --force to overwrite it)");
  ASSERT_FALSE(write_key_files(path, fresh(), true));
  EXPECT_NE(std::get<key_pair>(load_key_pair(path)).public_key, k.public_key);
}

TEST(curve, bad_key_files_name_the_file_and_line) {
  temp_dir t;
  auto k = fresh();
  auto open = t.file("open.key", "secret = \"" + k.secret_key + "\"\n", 0644);
  EXPECT_EQ(error_of(load_key_pair(open)),
            open + ": the secret key file is readable by others (mode 0644): run `chmod 600 " +
                open + "`");
  auto short_key = t.file("short.key", "# mine\n\nsecret = \"abc\"\n");
  EXPECT_EQ(error_of(load_key_pair(short_key)),
            short_key + ":3: the secret key must be 40 Z85 characters, got 3");
  auto bad_char = t.file("badchar.key", "secret = \"" + std::string(39, 'a') + "~\"\n");
  EXPECT_EQ(error_of(load_key_pair(bad_char)),
            bad_char + ":1: the secret key has a character outside the Z85 alphabet");
  auto unknown = t.file("unknown.key", "secret = \"" + k.secret_key + "\"\ncolour = \"red\"\n");
  EXPECT_EQ(error_of(load_key_pair(unknown)),
            unknown + ":2: unknown entry 'colour' (expected public or secret)");
  auto no_secret = t.file("nosecret.key", "public = \"" + k.public_key + "\"\n");
  EXPECT_NE(error_of(load_key_pair(no_secret)).find(no_secret + ": no `secret = \"...\"` line"),
            std::string::npos);
  auto mismatch = t.file("mismatch.key", "public = \"" + fresh().public_key + "\"\nsecret = \"" +
                                             k.secret_key + "\"\n");
  EXPECT_EQ(error_of(load_key_pair(mismatch)),
            mismatch + ": the public key does not belong to the secret key");
  EXPECT_EQ(error_of(load_key_pair(t.path + "/missing.key")),
            t.path + "/missing.key: cannot read the secret key file: No such file or directory");

  auto leaky = t.file("leaky.pub", "secret = \"" + k.secret_key + "\"\n", 0644);
  EXPECT_EQ(error_of(load_public_key(leaky)), leaky + ":1: a .pub file must not hold a secret key");
  auto two = t.file("two.pub", k.public_key + "\n" + fresh().public_key + "\n", 0644);
  EXPECT_EQ(error_of(load_public_key(two)),
            two + ":2: a second public key (one key per .pub file)");
  EXPECT_EQ(error_of(load_public_key("not-a-key")),
            "'not-a-key' is neither a 40-character Z85 public key nor a .pub file");
  // A bare key is accepted in a .pub file, and as the argument itself.
  auto bare = t.file("bare.pub", k.public_key + "\n", 0644);
  EXPECT_EQ(std::get<key_pair>(load_public_key(bare)).public_key, k.public_key);
  EXPECT_EQ(std::get<key_pair>(load_public_key(k.public_key)).public_key, k.public_key);
}

TEST(curve, allow_list_from_keys_files_and_a_directory) {
  temp_dir t;
  auto a = fresh(), b = fresh(), c = fresh(), d = fresh();
  fs::create_directories(t.path + "/allowed");
  t.file("b.pub", "public = \"" + b.public_key + "\"\n", 0644);
  t.file("allowed/c.pub", "public = \"" + c.public_key + "\"\n", 0644);
  t.file("allowed/readme.txt", "not a key", 0644);
  auto r = allow_list::load({a.public_key, t.path + "/b.pub"}, t.path + "/allowed");
  ASSERT_TRUE(std::holds_alternative<allow_list>(r)) << error_of(r);
  auto& l = std::get<allow_list>(r);
  EXPECT_EQ(l.size(), 3u);
  ASSERT_TRUE(l.find(a.public_key));
  EXPECT_EQ(*l.find(a.public_key), "security.allow[0]");
  EXPECT_EQ(*l.find(b.public_key), t.path + "/b.pub");
  EXPECT_EQ(*l.find(c.public_key), t.path + "/allowed/c.pub");
  EXPECT_EQ(l.find(d.public_key), nullptr);
  // A key file dropped into the directory later counts after a rescan.
  t.file("allowed/d.pub", "public = \"" + d.public_key + "\"\n", 0644);
  EXPECT_FALSE(l.rescan_dir());
  EXPECT_NE(l.find(d.public_key), nullptr);

  EXPECT_EQ(error_of(allow_list::load({a.public_key, "short"}, "")),
            "security.allow[1]: 'short' is neither a 40-character Z85 public key nor a .pub file");
  EXPECT_EQ(error_of(allow_list::load({}, t.path + "/nope")),
            "security.allow_dir: " + t.path + "/nope is not a directory");
}

TEST(curve, an_allow_list_without_a_key_is_refused) {
  auto r = server_setup::load("", {fresh().public_key}, "", true);
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_NE(std::get<std::string>(r).find("security.key: missing: `allow` and `allow_dir` need "
                                          "this node's own key"),
            std::string::npos);
  auto plain = server_setup::load("", {}, "", true);
  ASSERT_TRUE(std::holds_alternative<server_setup>(plain));
  EXPECT_FALSE(std::get<server_setup>(plain).keys);
}

TEST(curve, plaintext_only_on_loopback_and_only_when_asked) {
  EXPECT_TRUE(is_loopback_tcp("tcp://127.0.0.1:7470"));
  EXPECT_TRUE(is_loopback_tcp("tcp://127.1.2.3:*"));
  EXPECT_TRUE(is_loopback_tcp("tcp://localhost:7470"));
  EXPECT_TRUE(is_loopback_tcp("tcp://[::1]:7470"));
  EXPECT_FALSE(is_loopback_tcp("tcp://0.0.0.0:7470"));
  EXPECT_FALSE(is_loopback_tcp("tcp://*:7470"));
  EXPECT_FALSE(is_loopback_tcp("tcp://127.example.com:7470"));
  EXPECT_FALSE(is_loopback_tcp("tcp://10.0.0.1:7470"));
  EXPECT_FALSE(is_loopback_tcp("ipc:///tmp/x"));

  using lm = listen_mode;
  auto mode = [](const std::string& ep, bool keys, bool ok) {
    auto r = listen_rule(ep, keys, ok);
    return std::holds_alternative<lm>(r) ? std::optional<lm>(std::get<lm>(r)) : std::nullopt;
  };
  EXPECT_EQ(mode("tcp://0.0.0.0:7470", true, false), lm::curve);
  EXPECT_EQ(mode("tcp://127.0.0.1:7470", true, true), lm::curve);
  EXPECT_EQ(mode("tcp://127.0.0.1:7470", false, true), lm::plaintext);
  EXPECT_EQ(mode("tcp://127.0.0.1:7470", false, false), std::nullopt);
  EXPECT_EQ(mode("tcp://0.0.0.0:7470", false, true), std::nullopt);
  EXPECT_EQ(mode("inproc://x", false, false), lm::plaintext);
  EXPECT_EQ(mode("ipc:///tmp/x", false, false), lm::plaintext);
  auto err = std::get<std::string>(listen_rule("tcp://0.0.0.0:7470", false, true));
  EXPECT_NE(err.find("refusing to listen on tcp://0.0.0.0:7470 without CurveZMQ"),
            std::string::npos);
  EXPECT_NE(err.find("tender keygen --out node.key"), std::string::npos);
  err = std::get<std::string>(listen_rule("tcp://127.0.0.1:7470", false, false));
  EXPECT_NE(err.find("with --dev or --insecure"), std::string::npos) << err;
}

namespace {

/// A CURVE ROUTER on loopback behind an authenticator, echoing what it receives.
struct curve_server {
  explicit curve_server(allow_list allow) : keys(fresh()) {
    auto a = authenticator::start(ctx, std::move(allow), [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu);
      log.push_back(line);
    });
    auth = std::move(std::get<std::unique_ptr<authenticator>>(a));
    auth->secure_server(router, keys, "test");
    router.set(zmq::sockopt::linger, 0);
    router.bind("tcp://127.0.0.1:*");
    endpoint = router.get(zmq::sockopt::last_endpoint);
  }
  ~curve_server() {
    router.close();
    auth.reset();
  }
  /// Frames that reached the ROUTER within `wait` (echoed back to their sender).
  int pump(std::chrono::milliseconds wait) {
    int got = 0;
    auto end = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < end) {
      zmq::pollitem_t item{static_cast<void*>(router), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(20));
      zmq::message_t id, body;
      while (router.recv(id, zmq::recv_flags::dontwait)) {
        (void)router.recv(body);
        router.send(id, zmq::send_flags::sndmore);
        router.send(body, zmq::send_flags::none);
        ++got;
      }
    }
    return got;
  }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mu);
    return log;
  }
  zmq::context_t ctx{1};
  key_pair keys;
  std::unique_ptr<authenticator> auth;
  zmq::socket_t router{ctx, zmq::socket_type::router};
  std::string endpoint;
  std::mutex mu;
  std::vector<std::string> log;
};

/// Sends "ping" and waits for the echo, or for the handshake watch to report a refusal.
std::string ping(zmq::context_t& ctx, curve_server& s, const key_pair* mine,
                 const std::string& server_key) {
  zmq::socket_t d(ctx, zmq::socket_type::dealer);
  d.set(zmq::sockopt::linger, 0);
  if (mine)
    secure_client(d, *mine, server_key);
  handshake_watch watch(ctx, d, mine != nullptr);
  d.connect(s.endpoint);
  d.send(zmq::buffer(std::string_view("ping")), zmq::send_flags::dontwait);
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end) {
    s.pump(std::chrono::milliseconds(20));
    if (auto why = watch.refusal(s.endpoint))
      return "refused: " + *why;
    zmq::message_t m;
    if (d.recv(m, zmq::recv_flags::dontwait))
      return m.to_string();
  }
  return "timeout";
}

} // namespace

TEST(curve, allowed_key_gets_through_others_are_refused_and_logged_once) {
  auto alice = fresh(), mallory = fresh();
  allow_list allow;
  allow.add(alice.public_key, "alice.pub");
  curve_server s(allow);
  zmq::context_t client_ctx{1};
  EXPECT_EQ(ping(client_ctx, s, &alice, s.keys.public_key), "ping");
  EXPECT_EQ(s.auth->stats().accepted.load(), 1u);

  auto r = ping(client_ctx, s, &mallory, s.keys.public_key);
  EXPECT_NE(r.find("refused: the node at " + s.endpoint + " refused this client's key"),
            std::string::npos)
      << r;
  r = ping(client_ctx, s, &mallory, s.keys.public_key);
  EXPECT_NE(r.find("refused this client's key"), std::string::npos) << r;
  EXPECT_GE(s.auth->stats().refused_key.load(), 2u);
  // Nothing from the refused client reached the ROUTER.
  EXPECT_EQ(s.pump(std::chrono::milliseconds(300)), 0);
  auto lines = s.lines();
  int about_mallory = 0;
  for (auto& l : lines)
    if (l.find(mallory.public_key.substr(0, 8)) != std::string::npos) {
      ++about_mallory;
      EXPECT_NE(l.find("refused a client of test from 127.0.0.1"), std::string::npos) << l;
      EXPECT_EQ(l.find(mallory.public_key), std::string::npos) << "only a prefix is logged";
    }
  EXPECT_EQ(about_mallory, 1) << "once per peer";
}

TEST(curve, plaintext_and_wrong_server_key_clients_are_refused) {
  auto alice = fresh();
  allow_list allow;
  allow.add(alice.public_key, "alice.pub");
  curve_server s(allow);
  zmq::context_t client_ctx{1};
  auto r = ping(client_ctx, s, nullptr, "");
  EXPECT_NE(r.find("CurveZMQ; give --key FILE"), std::string::npos) << r;
  r = ping(client_ctx, s, &alice, fresh().public_key);
  EXPECT_EQ(r.rfind("refused: ", 0), 0u) << r;
  EXPECT_EQ(s.pump(std::chrono::milliseconds(300)), 0);
  EXPECT_GE(s.auth->stats().refused_handshake.load(), 2u);
  EXPECT_EQ(s.auth->stats().accepted.load(), 0u);
  // The handler thread logs after the client has seen its refusal, and a client that
  // hangs up first may leave the server no event: keep one retrying, wait for the line.
  zmq::socket_t retrying(client_ctx, zmq::socket_type::dealer);
  retrying.set(zmq::sockopt::linger, 0);
  retrying.connect(s.endpoint);
  bool logged = false;
  for (int i = 0; i < 400 && !logged; ++i) {
    for (auto& l : s.lines())
      logged |= l.find("refused a client without CurveZMQ (plaintext, or hung up during the "
                       "handshake) on test") != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(logged) << ::testing::PrintToString(s.lines());
}
