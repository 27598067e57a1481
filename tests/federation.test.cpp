// Federation end to end: three `tender agent` processes on loopback, each a site with
// its own providers, joined by `[[peers]]`. A site takes part in a peer's auctions as
// one provider offering its own providers' capacity; a job its site cannot place is
// negotiated across the peers. Sites are stopped, killed and restarted mid-way.

#include "tests/harness.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

using namespace tender::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// A free TCP port on 127.0.0.1 (the kernel's pick, released at once).
int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream in(slurp(path));
  for (std::string l; std::getline(in, l);)
    if (!l.empty())
      out.push_back(l);
  return out;
}

struct site_spec {
  std::string name;
  double cpus = 1;
  double price_per_core_hour = 0.04;
  std::vector<std::pair<std::string, std::string>> peers; ///< name, endpoint
  int hop_limit = 2;
  std::string round_timeout = "2s";
  std::string heartbeat = "500ms";
  std::string security = "insecure = true\n";   ///< the [security] table's body
  std::map<std::string, std::string> peer_keys; ///< peer name -> its server_key
  std::vector<std::string> cli_keys;            ///< --key/--server-key for the CLI
  std::vector<std::string> wrap;         ///< runs the agent and the CLI under it (ip netns exec NS)
  std::string listen_host = "127.0.0.1"; ///< where the agent listens
};

using peer_list = std::vector<std::pair<std::string, std::string>>;

site_spec spec(std::string name, double cpus, double price = 0.04, peer_list peers = {},
               int hop_limit = 2, std::string round_timeout = "2s",
               std::string heartbeat = "500ms") {
  site_spec s;
  s.name = std::move(name);
  s.cpus = cpus;
  s.price_per_core_hour = price;
  s.peers = std::move(peers);
  s.hop_limit = hop_limit;
  s.round_timeout = std::move(round_timeout);
  s.heartbeat = std::move(heartbeat);
  return s;
}

/// One site: a `tender agent` on a fixed loopback port with its own data dir, that a
/// test can stop, kill and start again on the same port and data.
class site {
public:
  site(const std::string& root, site_spec spec)
      : spec_(std::move(spec)), port_(free_port()), dir_(root + "/" + spec_.name) {
    fs::create_directories(dir_ + "/data");
    write_config();
    start();
  }
  ~site() {
    if (proc_ && proc_->alive()) {
      proc_->signal(SIGCONT);
      proc_->signal(SIGTERM);
      if (proc_->wait(10s) < 0)
        proc_->signal(SIGKILL);
    }
  }

  /// Where the CLI (run under the same `wrap`) reaches the agent.
  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  /// Where the agent listens (a site in a network namespace: every address of it).
  std::string listen_endpoint() const {
    return "tcp://" + spec_.listen_host + ":" + std::to_string(port_);
  }
  int port() const { return port_; }
  const std::string& name() const { return spec_.name; }
  const std::string& dir() const { return dir_; }
  process& proc() { return *proc_; }

  void write_config() {
    std::ostringstream c;
    c << "[security]\n"
      << spec_.security << "[node]\nname = \"" << spec_.name << "\"\n"
      << "[auction]\nround_timeout = \"" << spec_.round_timeout << "\"\ncommit_timeout = \"2s\"\n"
      << "[federation]\nhop_limit = " << spec_.hop_limit << "\nheartbeat = \"" << spec_.heartbeat
      << "\"\n"
      << "[[providers]]\nname = \"" << spec_.name << "-local\"\nkind = \"local\"\n"
      << "cpus = " << spec_.cpus << "\nmemory = \"2GiB\"\n"
      << "price_per_core_hour = " << spec_.price_per_core_hour << "\n"
      << "price_per_gib_hour = 0.001\nlatency = \"1ms\"\navailability = 0.99\n"
      << "plan_horizon = 0\nsoftware = [\"sh\"]\n";
    for (auto& [n, ep] : spec_.peers) {
      c << "[[peers]]\nname = \"" << n << "\"\nendpoint = \"" << ep << "\"\n";
      if (auto k = spec_.peer_keys.find(n); k != spec_.peer_keys.end())
        c << "server_key = \"" << k->second << "\"\n";
    }
    std::ofstream(dir_ + "/node.toml") << c.str();
  }
  void set_spec(site_spec s) {
    spec_ = std::move(s);
    write_config();
  }

  void start() {
    auto argv = spec_.wrap;
    argv.insert(argv.end(), {tender_bin(), "agent", "--config", dir_ + "/node.toml", "--data-dir",
                             dir_ + "/data", "--listen", listen_endpoint()});
    proc_ = std::make_unique<process>(argv, dir_, "agent-" + std::to_string(++starts_));
    bool up =
        eventually([this] { return proc_->out().find("listening on") != std::string::npos; }, 30s);
    if (!up)
      ADD_FAILURE() << spec_.name << " did not start: " << proc_->err();
  }

  nlohmann::json cli_json(std::vector<std::string> args) {
    args.insert(args.end(), {"--connect", endpoint(), "--json"});
    args.insert(args.end(), spec_.cli_keys.begin(), spec_.cli_keys.end());
    auto r = spec_.wrap.empty() ? run(args) : run_wrapped(args);
    if (r.code != 0)
      return nlohmann::json{{"cli_error", r.err}, {"cli_code", r.code}};
    try {
      return nlohmann::json::parse(r.out);
    } catch (const std::exception& e) {
      return nlohmann::json{{"cli_error", std::string("bad JSON: ") + e.what()}};
    }
  }

  std::string submit(const std::string& job_file) {
    auto j = cli_json({"submit", job_file});
    if (!j.contains("id")) {
      ADD_FAILURE() << "submit to " << spec_.name << " failed: " << j.dump();
      return {};
    }
    return j["id"].get<std::string>();
  }

  nlohmann::json status(const std::string& id) { return cli_json({"status", id}); }

  nlohmann::json wait_final(const std::string& id, std::chrono::milliseconds timeout) {
    nlohmann::json last;
    eventually(
        [&] {
          last = status(id);
          auto s = last.value("state", "");
          return s == "done" || s == "failed" || s == "refused" || s == "cancelled";
        },
        timeout);
    return last;
  }

  /// True once `provider` is in this site's directory as a peer site.
  bool has_site(const std::string& provider) {
    auto l = cli_json({"providers"});
    if (!l.is_array())
      return false;
    for (auto& p : l)
      if (p.value("name", "") == provider && p.value("kind", "") == "site")
        return true;
    return false;
  }

private:
  /// `WRAP... tender ARGS...` to completion (the CLI inside the site's namespace).
  result run_wrapped(const std::vector<std::string>& args) {
    auto argv = spec_.wrap;
    argv.push_back(tender_bin());
    argv.insert(argv.end(), args.begin(), args.end());
    process p(argv, dir_, "cli-" + std::to_string(++cli_runs_));
    result r;
    r.code = p.wait(60s);
    r.out = p.out();
    r.err = p.err();
    return r;
  }

  site_spec spec_;
  int cli_runs_ = 0;
  int port_;
  std::string dir_;
  int starts_ = 0;
  std::unique_ptr<process> proc_;
};

/// A job asking for `cpus` cores that appends its shell's pid to `marks` when it starts.
std::string job_file(const temp_dir& d, const std::string& name, double cpus,
                     const std::string& marks, const std::string& sleep = "0.2") {
  std::ostringstream j;
  j << "[job]\nname = \"" << name << "\"\nuser = \"tester\"\n"
    << "command = [\"sh\", \"-c\", \"echo $$ >> " << marks << "; sleep " << sleep << "\"]\n"
    << "walltime = \"1m\"\n[job.hints]\ncpus = " << cpus << "\nmemory = \"64MiB\"\n"
    << "[job.profile]\nskip = true\n";
  return d.file(name + ".toml", j.str());
}

/// Allocations the journal holds for a job.
int allocation_rows(const std::string& db, const std::string& job_id) {
  sqlite3* h = nullptr;
  sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  int n = -1;
  if (sqlite3_prepare_v2(h, "SELECT COUNT(*) FROM allocations WHERE job_id = ?", -1, &st,
                         nullptr) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, job_id.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
      n = sqlite3_column_int(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

bool pid_alive(int pid) {
  if (::kill(pid, 0) != 0)
    return false;
  // A zombie is dead for our purpose.
  auto stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close == std::string::npos || stat.size() < close + 3 || stat[close + 2] != 'Z';
}

} // namespace

TEST(federation, a_job_its_site_cannot_place_runs_on_a_peer_and_one_that_fits_stays_local) {
  temp_dir root;
  site a(root.path, spec("fa-a", 1));
  site b(root.path, spec("fa-b", 4, 0.04, {{"fa-a", a.endpoint()}}));
  ASSERT_TRUE(eventually([&] { return a.has_site("fa-b"); }, 20s)) << b.proc().err();

  // Fits A: A's own provider takes it, even though the peer would have offered too.
  auto small_marks = root.path + "/small.marks";
  auto small = a.submit(job_file(root, "fed-small", 1, small_marks));
  auto s = a.wait_final(small, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump();
  EXPECT_EQ(s.value("provider", ""), "fa-a-local") << s.dump();
  for (auto& o : s["offers"])
    EXPECT_NE(o.value("provider", ""), "fa-b") << "the peer was asked for a job A could place";

  // Too big for A (1 core): negotiated across the peer, run by B's provider.
  auto big_marks = root.path + "/big.marks";
  auto big = a.submit(job_file(root, "fed-big", 3, big_marks));
  s = a.wait_final(big, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump() << "\nB: " << b.proc().err();
  EXPECT_EQ(s.value("provider", ""), "fa-b") << s.dump();
  EXPECT_EQ(s.value("exit_code", -1), 0);
  EXPECT_EQ(lines_of(big_marks).size(), 1u);
  // A's local provider declined first (the local negotiation), then the peer won.
  bool local_declined_first = false, peer_won = false;
  for (auto& o : s["offers"])
    if (o.value("provider", "") == "fa-b" && o.value("verdict", "") == "won")
      peer_won = true;
  auto x = a.cli_json({"explain", big});
  for (auto& d : x["declines"])
    if (d.value("provider", "") == "fa-a-local")
      local_declined_first = true;
  EXPECT_TRUE(peer_won) << s.dump();
  EXPECT_TRUE(local_declined_first) << x.dump();
  // B ran it under B's own name for it and forgot it once it ended.
  EXPECT_TRUE(eventually([&] { return fs::is_empty(b.dir() + "/data/federation/fa-a"); }, 10s));

  // Too big for everyone: refused, and the reason names both sites' answers.
  auto huge = a.submit(job_file(root, "fed-huge", 16, root.path + "/huge.marks"));
  s = a.wait_final(huge, 60s);
  EXPECT_EQ(s.value("state", ""), "refused") << s.dump();
  auto reason = s.value("reason", "");
  EXPECT_NE(reason.find("locally: "), std::string::npos) << reason;
  EXPECT_NE(reason.find("across peer sites: "), std::string::npos) << reason;
  EXPECT_NE(reason.find("no acceptable offer at fa-b: fa-b-local declined"), std::string::npos)
      << reason;
  EXPECT_FALSE(fs::exists(root.path + "/huge.marks"));
}

TEST(federation, a_ring_of_three_sites_places_over_two_hops_never_loops_and_keeps_the_hop_limit) {
  temp_dir root;
  // A -> C -> B -> A (each arrow: "offers its providers to"), started in an order that
  // lets each find its peer's port in the config; links connect whenever the peer is up.
  site a(root.path, spec("ring-a", 1));
  site b(root.path, spec("ring-b", 2, 0.04, {{"ring-a", a.endpoint()}}));
  site c(root.path, spec("ring-c", 8, 0.04, {{"ring-b", b.endpoint()}}));
  a.set_spec(spec("ring-a", 1, 0.04, {{"ring-c", c.endpoint()}}));
  a.proc().signal(SIGTERM);
  ASSERT_GE(a.proc().wait(20s), 0);
  a.start();
  ASSERT_TRUE(eventually([&] { return a.has_site("ring-b"); }, 20s));
  ASSERT_TRUE(eventually([&] { return b.has_site("ring-c"); }, 20s));
  ASSERT_TRUE(eventually([&] { return c.has_site("ring-a"); }, 20s));

  // Six cores: only C has them. A asks B, B asks its own provider and C, C finds it
  // (and does not ask A back: A is on the call's path).
  auto marks = root.path + "/six.marks";
  auto id = a.submit(job_file(root, "ring-six", 6, marks));
  auto s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump();
  EXPECT_EQ(s.value("provider", ""), "ring-b") << s.dump(); // A sees B, B placed it on C
  EXPECT_EQ(lines_of(marks).size(), 1u);
  EXPECT_EQ(c.proc().err().find("declined call"), std::string::npos) << c.proc().err();

  // Sixteen cores: nobody. Refused in bounded time with each hop's answer, no loop.
  auto t0 = std::chrono::steady_clock::now();
  id = a.submit(job_file(root, "ring-sixteen", 16, root.path + "/sixteen.marks"));
  s = a.wait_final(id, 60s);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(s.value("state", ""), "refused") << s.dump();
  auto reason = s.value("reason", "");
  EXPECT_NE(reason.find("ring-b-local declined"), std::string::npos) << reason;
  EXPECT_NE(reason.find("ring-c declined: no acceptable offer at ring-c: ring-c-local declined"),
            std::string::npos)
      << reason;
  EXPECT_EQ(reason.find("ring-a declined"), std::string::npos) << reason;
  EXPECT_LT(took, 30s);

  // C with a hop limit of 1 no longer takes calls that crossed a site already.
  c.set_spec(spec("ring-c", 8, 0.04, {{"ring-b", b.endpoint()}}, 1));
  c.proc().signal(SIGTERM);
  ASSERT_GE(c.proc().wait(20s), 0);
  // B notices C is gone (no heartbeat) before C comes back under the new limit.
  ASSERT_TRUE(eventually([&] { return !b.has_site("ring-c"); }, 20s));
  c.start();
  ASSERT_TRUE(eventually([&] { return b.has_site("ring-c"); }, 20s));
  id = a.submit(job_file(root, "ring-six-again", 6, root.path + "/six-again.marks"));
  s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "refused") << s.dump();
  reason = s.value("reason", "");
  EXPECT_NE(reason.find("ring-c declined: hop limit 1 reached"), std::string::npos) << reason;
}

TEST(federation, a_site_killed_mid_auction_leaves_the_job_committed_once_elsewhere) {
  temp_dir root;
  // Round timeout 2 s; B's heartbeat 2 s (gone after 6 s of silence), so B is still in
  // A's directory when the job's peer round starts.
  site a(root.path, spec("mid-a", 1, 0.04, {}, 2, "2s"));
  site b(root.path, spec("mid-b", 4, 0.01, {{"mid-a", a.endpoint()}}, 2, "1s", "2s")); // cheaper
  site c(root.path, spec("mid-c", 4, 0.04, {{"mid-a", a.endpoint()}}));
  ASSERT_TRUE(eventually([&] { return a.has_site("mid-b") && a.has_site("mid-c"); }, 20s));

  // B stops answering, then dies while A's peer round waits for it.
  b.proc().signal(SIGSTOP);
  auto marks = root.path + "/mid.marks";
  auto id = a.submit(job_file(root, "mid-big", 3, marks));
  ASSERT_TRUE(eventually([&] { return a.status(id).value("state", "") == "negotiating"; }, 20s));
  std::this_thread::sleep_for(300ms); // the call for offers is out (round timeout: 2 s)
  b.proc().signal(SIGKILL);
  auto s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump();
  EXPECT_EQ(s.value("provider", ""), "mid-c") << s.dump();
  EXPECT_EQ(lines_of(marks).size(), 1u);
  EXPECT_EQ(allocation_rows(a.dir() + "/data/journal.db", id), 1);
  for (auto& o : s["offers"])
    EXPECT_NE(o.value("provider", ""), "mid-b") << s.dump();
}

TEST(federation, a_site_that_dies_running_a_job_is_replaced_and_does_not_run_it_again) {
  temp_dir root;
  site a(root.path, spec("die-a", 1));
  site b(root.path, spec("die-b", 4, 0.01, {{"die-a", a.endpoint()}})); // cheaper: wins first
  site c(root.path, spec("die-c", 4, 0.04, {{"die-a", a.endpoint()}}));
  ASSERT_TRUE(eventually([&] { return a.has_site("die-b") && a.has_site("die-c"); }, 20s));

  auto marks = root.path + "/die.marks";
  auto id = a.submit(job_file(root, "die-big", 3, marks, "15"));
  ASSERT_TRUE(eventually(
      [&] {
        auto s = a.status(id);
        return s.value("state", "") == "running" && s.value("provider", "") == "die-b";
      },
      30s))
      << a.status(id).dump();
  ASSERT_TRUE(eventually([&] { return lines_of(marks).size() == 1; }, 10s));
  int first_pid = std::stoi(lines_of(marks)[0]);

  // B dies with the job running (its run survives B, as local runs do).
  b.proc().signal(SIGKILL);
  b.proc().wait(10s);
  // A notices (no heartbeat), renegotiates, and C runs it.
  ASSERT_TRUE(eventually([&] { return lines_of(marks).size() == 2; }, 30s)) << a.status(id).dump();
  auto s = a.status(id);
  EXPECT_EQ(s.value("provider", ""), "die-c") << s.dump();

  // B returns: it stops what it ran for A, and does not run it again.
  b.start();
  // (Well before its 15 s would end it.)
  EXPECT_TRUE(eventually([&] { return !pid_alive(first_pid); }, 10s))
      << "the run on the restarted site was not stopped\n"
      << b.proc().err();
  s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump();
  EXPECT_EQ(s.value("provider", ""), "die-c") << s.dump();
  EXPECT_EQ(s.value("exit_code", -1), 0);
  EXPECT_TRUE(eventually([&] { return fs::is_empty(b.dir() + "/data/federation/die-a"); }, 10s));
  std::this_thread::sleep_for(1s); // (no new start may appear late)
  EXPECT_EQ(lines_of(marks).size(), 2u) << slurp(marks);
}

TEST(federation, a_site_only_frozen_past_its_heartbeat_stops_the_job_it_lost_when_it_thaws) {
  temp_dir root;
  site a(root.path, spec("thaw-a", 1));
  site b(root.path, spec("thaw-b", 4, 0.01, {{"thaw-a", a.endpoint()}})); // cheaper: wins first
  site c(root.path, spec("thaw-c", 4, 0.04, {{"thaw-a", a.endpoint()}}));
  ASSERT_TRUE(eventually([&] { return a.has_site("thaw-b") && a.has_site("thaw-c"); }, 20s));

  auto marks = root.path + "/thaw.marks";
  auto id = a.submit(job_file(root, "thaw-big", 3, marks, "15"));
  ASSERT_TRUE(eventually(
      [&] {
        auto s = a.status(id);
        return s.value("state", "") == "running" && s.value("provider", "") == "thaw-b";
      },
      30s))
      << a.status(id).dump();
  ASSERT_TRUE(eventually([&] { return lines_of(marks).size() == 1; }, 10s));
  int first_pid = std::stoi(lines_of(marks)[0]);

  // B freezes (not dead: its run goes on) past three heartbeats: A places the job on C.
  b.proc().signal(SIGSTOP);
  ASSERT_TRUE(eventually([&] { return lines_of(marks).size() == 2; }, 30s)) << a.status(id).dump();
  EXPECT_EQ(a.status(id).value("provider", ""), "thaw-c");
  EXPECT_TRUE(pid_alive(first_pid));
  // B thaws: A told it to stop the job it lost, and it does (well before its 15 s).
  b.proc().signal(SIGCONT);
  EXPECT_TRUE(eventually([&] { return !pid_alive(first_pid); }, 10s))
      << "the thawed site ran the job on\n"
      << b.proc().err();
  auto s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump();
  EXPECT_EQ(s.value("provider", ""), "thaw-c") << s.dump();
  EXPECT_EQ(lines_of(marks).size(), 2u) << slurp(marks);
}

TEST(federation, peer_links_use_curvezmq_and_a_site_whose_key_is_not_allowed_stays_out) {
  temp_dir root;
  for (auto n : {"ca", "cb", "cm"})
    ASSERT_EQ(run({"keygen", "--out", root.path + "/" + n + ".key"}).code, 0);
  auto keyed = [&](site_spec s, const std::string& key, const std::string& allow) {
    s.security = "key = \"" + root.path + "/" + key + ".key\"\nallow = [\"" + root.path + "/" +
                 allow + ".key.pub\"]\n";
    s.cli_keys = {"--key", root.path + "/" + key + ".key", "--server-key",
                  root.path + "/" + key + ".key.pub"};
    return s;
  };
  // A allows B's key only; B and M both offer to A over CurveZMQ with A's public key.
  site a(root.path, keyed(spec("cur-a", 1), "ca", "cb"));
  auto bs = keyed(spec("cur-b", 4, 0.04, {{"cur-a", a.endpoint()}}), "cb", "ca");
  bs.peer_keys["cur-a"] = root.path + "/ca.key.pub";
  site b(root.path, bs);
  auto ms = keyed(spec("cur-m", 4, 0.001, {{"cur-a", a.endpoint()}}), "cm", "ca");
  ms.peer_keys["cur-a"] = root.path + "/ca.key.pub";
  site m(root.path, ms);
  ASSERT_TRUE(eventually([&] { return a.has_site("cur-b"); }, 20s)) << b.proc().err();
  // M's key is not on A's list: refused in the handshake and logged; it never joins.
  ASSERT_TRUE(eventually(
      [&] { return a.proc().err().find("refused a client of gateway") != std::string::npos; }, 20s))
      << a.proc().err();
  EXPECT_FALSE(a.has_site("cur-m"));

  auto marks = root.path + "/cur.marks";
  auto id = a.submit(job_file(root, "cur-big", 3, marks));
  auto s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump() << "\nB: " << b.proc().err();
  EXPECT_EQ(s.value("provider", ""), "cur-b") << "the cheaper but unknown site never bids";
  EXPECT_EQ(lines_of(marks).size(), 1u);
}

TEST(federation, a_keyed_site_needs_its_peers_public_key) {
  temp_dir root;
  ASSERT_EQ(run({"keygen", "--out", root.path + "/k.key"}).code, 0);
  auto cfg = root.file("n.toml", "[security]\nkey = \"k.key\"\n[node]\nname = \"nk\"\n"
                                 "[[peers]]\nname = \"other\"\nendpoint = \"tcp://127.0.0.1:1\"\n");
  auto r = run({"agent", "--config", cfg, "--data-dir", root.path + "/data"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("server_key missing"), std::string::npos) << r.err;
}

namespace {

/// Network namespaces for three sites: A in the middle, B and C each on their own veth
/// link to A (10.79.1.0/24 and 10.79.2.0/24), so B and C reach A over a real interface
/// (not loopback) and not each other. Needs root; `ok()` is false where the machine
/// refuses.
class netns_lab {
public:
  netns_lab() : tag_(std::to_string(::getpid() % 100000)) {
    for (auto dir : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
      if (::access(dir, X_OK) == 0) {
        ip_ = dir;
        break;
      }
    if (::geteuid() != 0 || ip_.empty())
      return;
    ok_ = sh("ip netns add " + ns("a")) && sh("ip netns add " + ns("b")) &&
          sh("ip netns add " + ns("c")) && link("b", "1") && link("c", "2") &&
          sh("ip -n " + ns("a") + " link set lo up");
  }
  ~netns_lab() {
    for (auto n : {"a", "b", "c"})
      sh("ip netns del " + ns(n));
  }
  bool ok() const { return ok_; }
  std::string ns(const std::string& site) const { return "tf" + tag_ + site; }
  std::vector<std::string> wrap(const std::string& site) const {
    return {ip_, "netns", "exec", ns(site)}; // the harness execs without a PATH search
  }

private:
  static bool sh(const std::string& cmd) {
    return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
  }
  /// A veth pair between A and `site`: A is 10.79.N.1, the site 10.79.N.2.
  bool link(const std::string& site, const std::string& n) {
    auto va = "va" + tag_ + site, vs = "vs" + tag_ + site;
    return sh("ip link add " + va + " type veth peer name " + vs) &&
           sh("ip link set " + va + " netns " + ns("a")) &&
           sh("ip link set " + vs + " netns " + ns(site)) &&
           sh("ip -n " + ns("a") + " addr add 10.79." + n + ".1/24 dev " + va) &&
           sh("ip -n " + ns(site) + " addr add 10.79." + n + ".2/24 dev " + vs) &&
           sh("ip -n " + ns("a") + " link set " + va + " up") &&
           sh("ip -n " + ns(site) + " link set " + vs + " up") &&
           sh("ip -n " + ns(site) + " link set lo up");
  }
  std::string tag_;
  std::string ip_;
  bool ok_ = false;
};

} // namespace

TEST(federation, three_sites_in_network_namespaces_peer_over_curvezmq_and_survive_a_kill) {
  netns_lab lab;
  if (!lab.ok())
    GTEST_SKIP() << "network namespaces are not available here (needs root and `ip netns`)";
  temp_dir root;
  for (auto n : {"na", "nb", "nc"})
    ASSERT_EQ(run({"keygen", "--out", root.path + "/" + n + ".key"}).code, 0);
  // Every site listens on all of its addresses: not loopback, so CurveZMQ is required.
  auto keyed = [&](site_spec s, const std::string& key, const std::string& allow,
                   const std::string& where) {
    s.security = "key = \"" + root.path + "/" + key + ".key\"\nallow = [" + allow + "]\n";
    s.cli_keys = {"--key", root.path + "/" + key + ".key", "--server-key",
                  root.path + "/" + key + ".key.pub"};
    s.wrap = lab.wrap(where);
    s.listen_host = "0.0.0.0";
    return s;
  };
  auto pub = [&](const std::string& k) { return "\"" + root.path + "/" + k + ".key.pub\""; };
  site a(root.path, keyed(spec("ns-a", 1), "na", pub("nb") + ", " + pub("nc"), "a"));
  auto at = [&](int n) {
    return "tcp://10.79." + std::to_string(n) + ".1:" + std::to_string(a.port());
  };
  auto bs = keyed(spec("ns-b", 4, 0.01, {{"ns-a", at(1)}}), "nb", pub("na"), "b");
  bs.peer_keys["ns-a"] = root.path + "/na.key.pub";
  site b(root.path, bs);
  auto cs = keyed(spec("ns-c", 4, 0.04, {{"ns-a", at(2)}}), "nc", pub("na"), "c");
  cs.peer_keys["ns-a"] = root.path + "/na.key.pub";
  site c(root.path, cs);
  ASSERT_TRUE(eventually([&] { return a.has_site("ns-b") && a.has_site("ns-c"); }, 30s))
      << "A: " << a.proc().err() << "\nB: " << b.proc().err() << "\nC: " << c.proc().err();

  // Too big for A: the cheaper B runs it, across the namespaces.
  auto first = root.path + "/ns1.marks";
  auto id = a.submit(job_file(root, "ns-first", 3, first));
  auto s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump() << "\nB: " << b.proc().err();
  EXPECT_EQ(s.value("provider", ""), "ns-b") << s.dump();
  EXPECT_EQ(lines_of(first).size(), 1u);

  // B is killed: A notices by its heartbeat, and the next job goes to C, once.
  b.proc().signal(SIGKILL);
  ASSERT_TRUE(eventually([&] { return !a.has_site("ns-b"); }, 20s));
  auto second = root.path + "/ns2.marks";
  id = a.submit(job_file(root, "ns-second", 3, second));
  s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump();
  EXPECT_EQ(s.value("provider", ""), "ns-c") << s.dump();
  EXPECT_EQ(lines_of(second).size(), 1u);
  EXPECT_EQ(allocation_rows(a.dir() + "/data/journal.db", id), 1);
}
