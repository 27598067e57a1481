// CurveZMQ on a real node: `tender keygen` key files, an agent whose gateway only lets
// allowed keys in, CLI clients and a remote provider with and without the right keys,
// the start rules for plaintext, and lease tokens that never leave the node's journal.

#include "actors/journal.hpp"
#include "tests/harness.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

using namespace tender;
using namespace tender::test;
using namespace std::chrono_literals;

namespace {

/// `tender keygen --out DIR/NAME`; returns the secret key file's path.
std::string keygen(const temp_dir& t, const std::string& name) {
  auto path = t.path + "/" + name;
  auto r = run({"keygen", "--out", path});
  EXPECT_EQ(r.code, 0) << r.err;
  return path;
}

/// A node with one small local provider, CurveZMQ with `node.key`, allowing `allow`.
std::string secure_config(const temp_dir& t, const std::string& allow) {
  return t.file("node.toml", "[node]\nname = \"sec\"\n"
                             "[security]\nkey = \"node.key\"\nallow = [" +
                                 allow +
                                 "]\n"
                                 "[[providers]]\nname = \"local\"\nkind = \"local\"\ncpus = 2\n"
                                 "memory = \"2GiB\"\nprice_per_core_hour = 0.04\n"
                                 "price_per_gib_hour = 0.005\n");
}

/// `tender ARGS --connect EP --key KEY --server-key node.key.pub [--json]`.
result cli_as(agent& a, const temp_dir& t, const std::string& key, std::vector<std::string> args) {
  args.insert(args.end(), {"--connect", a.endpoint()});
  if (!key.empty())
    args.insert(args.end(), {"--key", key, "--server-key", t.path + "/node.key.pub"});
  return run(args);
}

nlohmann::json json_of(const result& r) {
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    return nlohmann::json{{"cli_error", r.err}, {"out", r.out}};
  }
}

std::string job_file(const temp_dir& t, const std::string& name) {
  return t.file(name + ".toml",
                "[job]\nname = \"" + name +
                    "\"\nuser = \"tester\"\ncommand = [\"sh\", \"-c\", \"exit 0\"]\n"
                    "walltime = \"1m\"\n");
}

} // namespace

TEST(security, keygen_writes_a_private_pair_and_never_overwrites_silently) {
  temp_dir t;
  auto key = keygen(t, "alice.key");
  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(std::filesystem::exists(key + ".pub"));
  std::ifstream in(key + ".pub");
  std::string pub((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(pub.find("public = \""), std::string::npos) << pub;
  EXPECT_EQ(pub.find("secret"), std::string::npos) << pub;

  auto again = run({"keygen", "--out", key});
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find(key + ": already exists (pass --force to overwrite it)"),
            std::string::npos)
      << again.err;
  EXPECT_EQ(run({"keygen", "--out", key, "--force"}).code, 0);
  std::ifstream in2(key + ".pub");
  std::string pub2((std::istreambuf_iterator<char>(in2)), {});
  EXPECT_NE(pub, pub2) << "--force made a new pair";
}

TEST(security, an_agent_refuses_plaintext_and_bad_keys_at_start) {
  temp_dir t;
  auto plain = t.file("plain.toml", "[node]\nname = \"p\"\n");
  // Loopback without keys: only with --dev or --insecure.
  auto r = run(
      {"agent", "--config", plain, "--data-dir", t.path + "/d1", "--listen", "tcp://127.0.0.1:*"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("refusing to listen on tcp://127.0.0.1:* in plaintext"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--insecure"), std::string::npos) << r.err;
  // Another address without keys: never, not even with --insecure.
  r = run({"agent", "--config", plain, "--data-dir", t.path + "/d2", "--listen", "tcp://0.0.0.0:*",
           "--insecure"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("refusing to listen on tcp://0.0.0.0:* without CurveZMQ"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("tender keygen --out node.key"), std::string::npos) << r.err;

  // A secret key others can read.
  auto key = keygen(t, "node.key");
  ::chmod(key.c_str(), 0644);
  auto keyed = t.file("keyed.toml", "[node]\nname = \"k\"\n[security]\nkey = \"node.key\"\n");
  r = run(
      {"agent", "--config", keyed, "--data-dir", t.path + "/d3", "--listen", "tcp://127.0.0.1:*"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("security.key: " + key +
                       ": the secret key file is readable by others "
                       "(mode 0644): run `chmod 600 " +
                       key + "`"),
            std::string::npos)
      << r.err;
  // A broken one.
  ::chmod(key.c_str(), 0600);
  std::ofstream(key) << "secret = \"tooshort\"\n";
  r = run(
      {"agent", "--config", keyed, "--data-dir", t.path + "/d4", "--listen", "tcp://127.0.0.1:*"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(key + ":1: the secret key must be 40 Z85 characters, got 8"),
            std::string::npos)
      << r.err;
  // A bad allow entry is a config error naming the key.
  auto bad = t.file("bad.toml", "[security]\nkey = \"node.key\"\nallow = [\"alice\"]\n");
  r = run({"agent", "--config", bad, "--data-dir", t.path + "/d5"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("security.allow[0]: expected a 40-character Z85 public key or a path "
                       "ending in .pub, got 'alice'"),
            std::string::npos)
      << r.err;
}

TEST(security, an_allowed_key_runs_a_job_and_its_lease_token_stays_in_the_journal) {
  temp_dir t;
  keygen(t, "node.key");
  auto alice = keygen(t, "alice.key");
  auto cfg = secure_config(t, "\"alice.key.pub\"");
  agent a(t.path + "/data", {"--config", cfg});
  auto sub = cli_as(a, t, alice, {"submit", job_file(t, "sec-ok"), "--json"});
  ASSERT_EQ(sub.code, 0) << sub.err;
  auto id = json_of(sub).value("id", "");
  ASSERT_FALSE(id.empty()) << sub.out;
  nlohmann::json st;
  bool done = eventually(
      [&] {
        st = json_of(cli_as(a, t, alice, {"status", id, "--json"}));
        return st.value("state", "") == "done";
      },
      90s);
  ASSERT_TRUE(done) << st.dump();

  // The token is in the journal (a restarted node needs it) and nowhere else.
  auto j = journal::open(t.path + "/data/journal.db");
  ASSERT_TRUE(std::holds_alternative<std::unique_ptr<journal>>(j));
  auto rec = std::get<std::unique_ptr<journal>>(j)->load_job(id);
  ASSERT_TRUE(rec && rec->alloc) << "no allocation journaled";
  const auto token = rec->alloc->lease_token;
  ASSERT_EQ(token.size(), 64u);
  for (auto args : std::vector<std::vector<std::string>>{{"status", id, "--json"},
                                                         {"status", id},
                                                         {"explain", id, "--json"},
                                                         {"explain", id},
                                                         {"jobs", "--json"}}) {
    auto r = cli_as(a, t, alice, args);
    EXPECT_EQ(r.code, 0) << args[0] << ": " << r.err;
    EXPECT_EQ(r.out.find(token), std::string::npos) << args[0] << " shows the lease token";
    EXPECT_EQ(r.err.find(token), std::string::npos) << args[0] << " shows the lease token";
  }
  EXPECT_EQ(a.proc().err().find(token), std::string::npos) << "the agent's log has the token";
  EXPECT_EQ(a.proc().out().find(token), std::string::npos);
}

TEST(security, an_unknown_key_is_refused_logged_once_and_reaches_no_actor) {
  temp_dir t;
  keygen(t, "node.key");
  auto alice = keygen(t, "alice.key");
  auto mallory = keygen(t, "mallory.key");
  agent a(t.path + "/data", {"--config", secure_config(t, "\"alice.key.pub\"")});
  for (int i = 0; i < 2; ++i) {
    auto r = cli_as(a, t, mallory, {"submit", job_file(t, "sec-mallory"), "--json"});
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("refused this client's key: its public key is not on the node's allow "
                         "list"),
              std::string::npos)
        << r.err;
  }
  // Logged with the key's first characters and the peer's address, once.
  std::ifstream in(mallory + ".pub");
  std::string pub((std::istreambuf_iterator<char>(in)), {});
  auto key = pub.substr(pub.find('"') + 1, 40);
  auto line = "refused a client of gateway from 127.0.0.1: public key " + key.substr(0, 8) + "...";
  ASSERT_TRUE(eventually([&] { return a.proc().err().find(line) != std::string::npos; }, 20s))
      << a.proc().err();
  auto log = a.proc().err();
  EXPECT_EQ(log.find(line), log.rfind(line)) << "logged more than once: " << log;
  EXPECT_EQ(log.find(key), std::string::npos) << "the whole key is not logged";
  // Nothing reached the intake: the node knows no job.
  auto jobs = cli_as(a, t, alice, {"jobs", "--json"});
  ASSERT_EQ(jobs.code, 0) << jobs.err;
  EXPECT_EQ(json_of(jobs), nlohmann::json::array()) << jobs.out;
}

TEST(security, plaintext_clients_and_wrong_server_keys_are_refused) {
  temp_dir t;
  keygen(t, "node.key");
  auto alice = keygen(t, "alice.key");
  auto other = keygen(t, "other.key");
  agent a(t.path + "/data", {"--config", secure_config(t, "\"alice.key.pub\"")});
  auto r = run({"jobs", "--connect", a.endpoint()});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("give --key FILE"), std::string::npos) << r.err;
  ASSERT_TRUE(eventually(
      [&] { return a.proc().err().find("refused a client without CurveZMQ") != std::string::npos; },
      20s))
      << a.proc().err();

  // Alice's key, but encrypting to a key that is not the node's.
  r = run({"jobs", "--connect", a.endpoint(), "--key", alice, "--server-key", other + ".pub"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--server-key the node's public key?"), std::string::npos) << r.err;

  // Half a key pair is an error before any connection.
  r = run({"jobs", "--connect", a.endpoint(), "--key", alice});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--key needs --server-key KEY"), std::string::npos) << r.err;
  // The node's own key works as a client key on its machine.
  r = cli_as(a, t, t.path + "/node.key", {"jobs", "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(security, a_remote_provider_joins_with_an_allowed_key_only) {
  temp_dir t;
  keygen(t, "node.key");
  auto alice = keygen(t, "alice.key");
  auto prov = keygen(t, "prov.key");
  auto rogue = keygen(t, "rogue.key");
  agent a(t.path + "/data", {"--config", secure_config(t, "\"alice.key.pub\", \"prov.key.pub\"")});
  auto pcfg = t.file("prov.toml", "[[providers]]\nname = \"sec-remote\"\nkind = \"local\"\n"
                                  "cpus = 1\nmemory = \"1GiB\"\nprice_per_core_hour = 0.01\n"
                                  "price_per_gib_hour = 0.001\n");
  process good({tender_bin(), "provider", "--config", pcfg, "--connect", a.endpoint(), "--key",
                prov, "--server-key", t.path + "/node.key.pub", "--data-dir", t.path + "/p1"},
               t.path, "good");
  bool joined = eventually(
      [&] {
        auto r = cli_as(a, t, alice, {"providers", "--json"});
        return r.code == 0 && r.out.find("\"sec-remote\"") != std::string::npos;
      },
      30s);
  EXPECT_TRUE(joined) << good.err();

  process bad({tender_bin(), "provider", "--config", pcfg, "--name", "sec-remote", "--connect",
               a.endpoint(), "--key", rogue, "--server-key", t.path + "/node.key.pub", "--data-dir",
               t.path + "/p2"},
              t.path, "bad");
  EXPECT_EQ(bad.wait(30s), 1);
  EXPECT_NE(bad.err().find("refused this client's key"), std::string::npos) << bad.err();
}

TEST(security, a_key_dropped_into_allow_dir_is_let_in_without_a_restart) {
  temp_dir t;
  keygen(t, "node.key");
  auto bob = keygen(t, "bob.key");
  std::filesystem::create_directories(t.path + "/clients");
  auto cfg = t.file("node.toml", "[node]\nname = \"sec-dir\"\n[security]\nkey = \"node.key\"\n"
                                 "allow_dir = \"clients\"\n");
  agent a(t.path + "/data", {"--config", cfg});
  auto r = cli_as(a, t, bob, {"jobs", "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("refused this client's key"), std::string::npos) << r.err;
  std::filesystem::copy_file(bob + ".pub", t.path + "/clients/bob.pub");
  // The directory is re-read when an unknown key knocks (at most once a second).
  EXPECT_TRUE(eventually(
      [&] {
        return cli_as(a, t, bob, {"jobs", "--json"}).code == 0;
      },
      30s))
      << a.proc().err();
}

namespace {
std::string first_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}
} // namespace

TEST(security, the_message_bus_takes_only_allowed_producers) {
  temp_dir t;
  keygen(t, "node.key");
  auto alice = keygen(t, "alice.key");
  auto mallory = keygen(t, "mallory.key");
  auto cfg = t.file("bus.toml", "[node]\nname = \"secbus\"\n"
                                "[security]\nkey = \"node.key\"\nallow = [\"alice.key.pub\"]\n"
                                "[bus]\nlisten = \"tcp://127.0.0.1:*\"\n"
                                "[intake]\nmax_active_jobs = 0\n");
  auto data = t.path + "/data";
  agent a(data, {"--config", cfg});
  std::string bus;
  ASSERT_TRUE(eventually([&] { return !(bus = first_line(data + "/bus-endpoint")).empty(); }, 30s))
      << a.proc().err();
  auto produce = [&](const std::string& key, const std::string& producer) {
    std::vector<std::string> args{"produce", "--bus", bus,       "--producer", producer,
                                  "--jobs",  "3",     "--quiet", "--timeout",  "4"};
    if (!key.empty())
      args.insert(args.end(), {"--key", key, "--server-key", t.path + "/node.key.pub"});
    return run(args);
  };
  auto ok = produce(alice, "alice");
  EXPECT_EQ(ok.code, 0) << ok.err;
  // An unknown key and a plaintext producer are refused in the handshake, and the
  // producer says so at once instead of resending into the void.
  auto bad = produce(mallory, "mallory");
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.err.find("refused this client's key"), std::string::npos) << bad.err;
  auto plain = produce("", "plain");
  EXPECT_EQ(plain.code, 1) << plain.out;
  EXPECT_NE(plain.err.find("requires CurveZMQ"), std::string::npos) << plain.err;
  ASSERT_TRUE(eventually(
      [&] { return a.proc().err().find("refused a client of bus") != std::string::npos; }, 20s))
      << a.proc().err();
  auto jobs = cli_as(a, t, alice, {"jobs", "--json"});
  ASSERT_EQ(jobs.code, 0) << jobs.err;
  auto list = json_of(jobs);
  ASSERT_TRUE(list.is_array()) << jobs.out;
  EXPECT_EQ(list.size(), 3u) << "only alice's three jobs reached the journal: " << jobs.out;
}
