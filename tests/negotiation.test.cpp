// End-to-end tests of negotiations on a real node: `tender explain`, a flaky
// provider losing to a reliable one, and providers that fail mid-commit. Real
// `tender agent` / `tender provider` processes on loopback; where a fault needs a
// provider to misbehave on cue, a fake provider runs in a forked child process
// and speaks the real wire protocol over its own ZeroMQ socket.

#include "actors/journal.hpp"
#include "tests/harness.hpp"
#include "tools/client.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <zmq.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

using namespace tender;
using namespace tender::test;
using namespace std::chrono_literals;

namespace {

std::string quick_job(const std::string& name) {
  return "[job]\nname = \"" + name + "\"\nuser = \"tester\"\ncommand = [\"true\"]\n"
         "walltime = \"1m\"\n[job.profile]\nskip = true\n";
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::unique_ptr<journal> open_journal(const std::string& db) {
  auto j = journal::open(db);
  if (auto* err = std::get_if<std::string>(&j)) {
    ADD_FAILURE() << *err;
    return nullptr;
  }
  return std::move(std::get<std::unique_ptr<journal>>(j));
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

std::string verdict_of(const nlohmann::json& explained, const std::string& provider) {
  std::string v = "(no offer)";
  for (auto& o : explained["offers"])
    if (o.value("provider", "") == provider)
      v = o.value("verdict", "");
  return v;
}

std::vector<std::string> sla_kinds(const std::string& db, const std::string& provider) {
  std::vector<std::string> out;
  if (auto j = open_journal(db))
    for (auto& e : j->sla_events(provider))
      out.push_back(e.kind + (e.breach ? "!" : ""));
  return out;
}

// --- a fake provider in a child process --------------------------------------

enum class fault {
  twice,  ///< sends every offer and every confirm twice
  vanish, ///< takes the award and never answers (the test kills it)
  stale,  ///< confirms only after the award's hold has expired (the test freezes it meanwhile)
};

/// Runs in the child: joins `endpoint` as provider `name`, bids `price` on every
/// call for offers and misbehaves as `f` says. Appends what it sees to `log`.
[[noreturn]] void fake_provider_main(const std::string& endpoint, const std::string& name,
                                     micros price, fault f, const std::string& log_path) {
  std::ofstream log(log_path, std::ios::app);
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect(endpoint);
  int n = 0;
  auto send = [&](body b) {
    auto e = make_envelope(std::move(b), name, wall_now(), name + "-m" + std::to_string(++n));
    s.send(zmq::buffer(encode(e)), zmq::send_flags::none);
  };
  provider_hello hello;
  hello.name = name;
  hello.kind = "local";
  hello.protocols = {"iterated", "vickrey"};
  hello.capacity = resources{4000, 4LL << 30, 0, "", 0};
  send(hello);
  while (true) {
    zmq::message_t m;
    if (!s.recv(m))
      continue;
    auto d = decode(std::string_view(static_cast<const char*>(m.data()), m.size()));
    if (!d)
      continue;
    auto& b = d.message->body;
    if (auto* r = std::get_if<resource_request>(&b)) {
      offer o;
      o.offer_id = r->job_id + "/" + name + "/r" + std::to_string(r->round);
      o.job_id = r->job_id;
      o.auction_id = r->auction_id;
      o.round = r->round;
      o.provider = name;
      o.granted = r->request;
      o.price = price;
      o.earliest_start = wall_now();
      o.terms = sla{0.999, 0, sec_us};
      o.valid_until = r->reply_by + 30 * sec_us;
      send(o);
      if (f == fault::twice)
        send(o);
      log << "offer " << o.offer_id << std::endl;
    } else if (auto* a = std::get_if<award>(&b)) {
      log << "award " << a->offer_id << std::endl;
      commit_confirm c;
      c.offer_id = a->offer_id;
      c.job_id = a->job_id;
      c.alloc.allocation_id = a->offer_id + "/a";
      c.alloc.job_id = a->job_id;
      c.alloc.offer_id = a->offer_id;
      c.alloc.provider = name;
      c.alloc.price = price;
      c.alloc.lease_token = "fake-token-" + a->offer_id;
      c.alloc.lease_expires = wall_now() + 600 * sec_us;
      c.alloc.start_at = wall_now();
      if (f == fault::vanish)
        for (;;)
          pause(); // the test kills us here, between award and confirm
      if (f == fault::stale)
        std::this_thread::sleep_for(std::chrono::microseconds(a->hold_ttl + 300'000));
      send(c);
      if (f == fault::twice)
        send(c);
      log << "confirm " << a->offer_id << std::endl;
    } else if (auto* l = std::get_if<launch>(&b)) {
      log << "launch " << l->allocation_id << std::endl;
      usage_report u;
      u.job_id = l->job_id;
      u.allocation_id = l->allocation_id;
      u.provider = name;
      u.final = true;
      u.exit_code = 0;
      u.reason = "exited";
      u.started_at = u.finished_at = wall_now();
      send(u);
    } else if (auto* r = std::get_if<release>(&b)) {
      log << "release " << r->offer_id << " " << r->allocation_id << ": " << r->reason
          << std::endl;
    }
  }
}

class fake_provider {
public:
  fake_provider(const std::string& endpoint, const std::string& name, micros price, fault f,
                const std::string& dir)
      : log_(dir + "/" + name + ".log") {
    pid_ = fork();
    if (pid_ == 0)
      fake_provider_main(endpoint, name, price, f, log_);
  }
  ~fake_provider() {
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  void signal(int sig) { ::kill(pid_, sig); }
  std::string log() const { return slurp(log_); }
  bool saw(const std::string& what) const { return log().find(what) != std::string::npos; }

private:
  pid_t pid_ = -1;
  std::string log_;
};

bool lists_provider(agent& a, const std::string& name) {
  auto l = a.cli_json({"providers"});
  if (!l.is_array())
    return false;
  for (auto& x : l)
    if (x.value("name", "") == name)
      return true;
  return false;
}

double risk_of(agent& a, const std::string& name) {
  for (auto& x : a.cli_json({"providers"}))
    if (x.value("name", "") == name)
      return x.value("risk", -1.0);
  return -1;
}

/// A node whose only own provider is "steady", dear but reliable; a fake joins it.
std::string faults_config(const temp_dir& t) {
  return t.file("node.toml", R"(
[node]
name = "faults"
[auction]
max_rounds = 1
commit_timeout = "500ms"
hold_ttl = "1s"
[[providers]]
name = "steady"
kind = "local"
cpus = 2
memory = "2GiB"
price_per_core_hour = 100.0
price_per_gib_hour = 0.0001
reserve_price = 0.01
latency = "1s"
)");
}

} // namespace

// --- tender explain -------------------------------------------------------------

TEST(explain, shows_every_offer_with_its_breakdown_and_why_the_winner_won_also_after_a_restart) {
  temp_dir t;
  auto data = t.path + "/data";
  std::string id;
  nlohmann::json before;
  {
    agent a(data);
    id = a.submit(t.file("job.toml", quick_job("explained")));
    ASSERT_EQ(a.wait_final(id, 60s).value("state", ""), "done");
    before = a.cli_json({"explain", id});
    ASSERT_TRUE(before.contains("offers")) << before.dump(2);
    EXPECT_EQ(before.value("id", ""), id);
    EXPECT_EQ(before.value("state", ""), "done");
    std::set<std::string> scored_providers;
    int won = 0;
    for (auto& o : before["offers"]) {
      if (o["score"].is_object()) {
        scored_providers.insert(o.value("provider", ""));
        auto& s = o["score"];
        for (auto key : {"expected_cost", "p_deadline", "breach_probability", "cost_term",
                         "deadline_term", "risk_term", "risk_adjusted"})
          EXPECT_TRUE(s.contains(key)) << key << " in " << o.dump();
        EXPECT_NEAR(s["risk_adjusted"].get<double>(),
                    s["cost_term"].get<double>() + s["deadline_term"].get<double>() +
                      s["risk_term"].get<double>(),
                    2e-6);
      }
      won += o.value("verdict", "") == "won";
    }
    EXPECT_GE(scored_providers.size(), 2u) << before.dump(2);
    EXPECT_EQ(won, 1) << before.dump(2);
    ASSERT_TRUE(before["winner"].is_string()) << before.dump(2);
    auto why = before.value("why", "");
    EXPECT_EQ(why.rfind("cheapest risk-adjusted cost: ", 0), 0u) << why;
    EXPECT_NE(why.find(before["winner"].get<std::string>()), std::string::npos) << why;
    EXPECT_NE(why.find("vs next best"), std::string::npos) << why;
    EXPECT_TRUE(before["rejected"].is_object());
    EXPECT_TRUE(before["declines"].is_array());
    EXPECT_EQ(before.value("protocol", ""), "iterated");

    // The table for people, and a clear error for a job nobody knows.
    auto text = a.cli({"explain", id});
    EXPECT_EQ(text.code, 0) << text.err;
    EXPECT_NE(text.out.find("why: cheapest risk-adjusted cost"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("risk term"), std::string::npos) << text.out;
    auto unknown = a.cli({"explain", "j-no-such-job"});
    EXPECT_EQ(unknown.code, 1);
    EXPECT_NE(unknown.err.find("no job j-no-such-job"), std::string::npos) << unknown.err;
    a.proc().signal(SIGKILL);
    a.proc().wait(10s);
  }
  // From the journal: the same explanation after a restart.
  agent b(data);
  auto after = b.cli_json({"explain", id});
  EXPECT_EQ(after["offers"], before["offers"]);
  EXPECT_EQ(after["why"], before["why"]);
  EXPECT_EQ(after["rejected"], before["rejected"]);
}

// --- a flaky provider -----------------------------------------------------------

TEST(flaky_provider, its_refusals_are_breaches_its_risk_rises_and_it_loses_an_equal_price) {
  temp_dir t;
  auto node_cfg = t.file("node.toml", "[node]\nname = \"market-node\"\n[auction]\nmax_rounds = 1\n");
  agent a(t.path + "/data", {"--config", node_cfg});
  auto market = [&](const std::string& name, const std::string& refuse) {
    // The same catalogue and settings: the same price for the same job.
    auto cfg = t.file(name + ".toml", "[[providers]]\nname = \"" + name +
                                        "\"\nkind = \"market\"\ncatalogue = \"embedded:cloud-a\"\n"
                                        "offer_spot = false\nprovisioning_delay = \"0s\"\n"
                                        "availability = 0.999\nlatency = \"1s\"\nmax_instances = 4\n"
                                        "refuse_probability = " + refuse + "\n");
    return std::make_unique<process>(
      std::vector<std::string>{tender_bin(), "provider", "--config", cfg, "--connect",
                               a.endpoint(), "--data-dir", t.path + "/" + name},
      t.path, name);
  };
  // "a-flaky" sorts first: while nothing is known of either, it wins the tie.
  auto flaky = market("a-flaky", "1.0");
  auto steady = market("steady", "0.0");
  ASSERT_TRUE(eventually([&] { return lists_provider(a, "a-flaky") && lists_provider(a, "steady"); },
                         30s))
    << flaky->err() << steady->err();

  auto first = a.submit(t.file("one.toml", quick_job("one")));
  auto s1 = a.wait_final(first, 60s);
  EXPECT_EQ(s1.value("state", ""), "done") << s1.dump(2);
  EXPECT_EQ(s1.value("provider", ""), "steady");
  auto x1 = a.cli_json({"explain", first});
  EXPECT_EQ(verdict_of(x1, "a-flaky").rfind("refused: ", 0), 0u) << x1.dump(2);
  EXPECT_EQ(verdict_of(x1, "steady"), "won");
  EXPECT_NE(x1.value("why", "").find("fell through"), std::string::npos) << x1["why"];

  // The refusal is in the SLA history, and the posterior says so.
  auto db = t.path + "/data/journal.db";
  EXPECT_EQ(sla_kinds(db, "a-flaky"), std::vector<std::string>{"refuse!"});
  EXPECT_EQ(sla_kinds(db, "steady"), std::vector<std::string>{"confirm"});
  EXPECT_GT(risk_of(a, "a-flaky"), risk_of(a, "steady"));

  auto second = a.submit(t.file("two.toml", quick_job("two")));
  auto s2 = a.wait_final(second, 60s);
  EXPECT_EQ(s2.value("state", ""), "done") << s2.dump(2);
  EXPECT_EQ(s2.value("provider", ""), "steady");
  auto x2 = a.cli_json({"explain", second});
  // An equal price, and this time it was not even awarded: it lost on its risk term.
  nlohmann::json flaky_offer, steady_offer;
  for (auto& o : x2["offers"])
    (o.value("provider", "") == "a-flaky" ? flaky_offer : steady_offer) = o;
  ASSERT_TRUE(flaky_offer.is_object() && steady_offer.is_object()) << x2.dump(2);
  EXPECT_EQ(flaky_offer["price"], steady_offer["price"]);
  EXPECT_EQ(flaky_offer.value("verdict", ""), "lost");
  EXPECT_GT(flaky_offer["score"]["risk_term"].get<double>(),
            steady_offer["score"]["risk_term"].get<double>());
  EXPECT_GT(flaky_offer["score"]["breach_probability"].get<double>(),
            steady_offer["score"]["breach_probability"].get<double>());
  auto why = x2.value("why", "");
  EXPECT_NE(why.find("vs next best"), std::string::npos) << why;
  EXPECT_NE(why.find("from a-flaky (its risk term"), std::string::npos) << why;
  EXPECT_EQ(sla_kinds(db, "a-flaky"), std::vector<std::string>{"refuse!"}); // never awarded again
}

// --- faults mid-commit ----------------------------------------------------------

TEST(faults, a_provider_killed_between_award_and_confirm_leaves_one_allocation_elsewhere) {
  temp_dir t;
  agent a(t.path + "/data", {"--config", faults_config(t)});
  fake_provider fake(a.endpoint(), "crasher", 100, fault::vanish, t.path);
  ASSERT_TRUE(eventually([&] { return lists_provider(a, "crasher"); }, 30s));
  auto id = a.submit(t.file("job.toml", quick_job("crash")));
  ASSERT_TRUE(eventually([&] { return fake.saw("award "); }, 30s)) << fake.log();
  fake.signal(SIGKILL);
  auto s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump(2);
  EXPECT_EQ(s.value("provider", ""), "steady");
  auto db = t.path + "/data/journal.db";
  EXPECT_EQ(allocation_rows(db, id), 1);
  auto x = a.cli_json({"explain", id});
  EXPECT_EQ(verdict_of(x, "crasher"), "refused: no confirmation in time") << x.dump(2);
  EXPECT_EQ(verdict_of(x, "steady"), "won");
  EXPECT_EQ(sla_kinds(db, "crasher"), std::vector<std::string>{"timeout!"});
  auto j = open_journal(db);
  ASSERT_TRUE(j);
  std::vector<std::string> states;
  for (auto& [from, to] : j->transitions(id))
    states.push_back(to_string(to));
  EXPECT_EQ(states, (std::vector<std::string>{"submitted", "profiling", "negotiating", "committed",
                                              "running", "done"}));
}

TEST(faults, a_frozen_winner_that_confirms_after_its_hold_expired_is_released_not_double_booked) {
  temp_dir t;
  agent a(t.path + "/data", {"--config", faults_config(t)});
  fake_provider fake(a.endpoint(), "sleeper", 100, fault::stale, t.path);
  ASSERT_TRUE(eventually([&] { return lists_provider(a, "sleeper"); }, 30s));
  auto id = a.submit(t.file("job.toml", quick_job("frozen")));
  ASSERT_TRUE(eventually([&] { return fake.saw("award "); }, 30s)) << fake.log();
  fake.signal(SIGSTOP); // stops answering, award in hand
  auto s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump(2);
  EXPECT_EQ(s.value("provider", ""), "steady");
  fake.signal(SIGCONT); // wakes up and confirms, long after its hold expired
  ASSERT_TRUE(eventually([&] { return fake.saw("confirm "); }, 10s)) << fake.log();
  // The node gives the stale confirmation back instead of keeping two allocations.
  const std::string offer_id = id + "/sleeper/r1";
  EXPECT_TRUE(eventually([&] { return fake.saw("release " + offer_id + " " + offer_id + "/a: "); },
                         10s))
    << fake.log();
  auto db = t.path + "/data/journal.db";
  EXPECT_EQ(allocation_rows(db, id), 1);
  EXPECT_EQ(a.cli_json({"status", id}).value("provider", ""), "steady");
  auto x = a.cli_json({"explain", id});
  EXPECT_EQ(verdict_of(x, "sleeper"), "refused: no confirmation in time") << x.dump(2);
  auto kinds = sla_kinds(db, "sleeper");
  ASSERT_FALSE(kinds.empty());
  EXPECT_EQ(kinds.front(), "timeout!");
}

TEST(faults, a_provider_answering_twice_gets_one_offer_one_allocation_and_keeps_it) {
  temp_dir t;
  agent a(t.path + "/data", {"--config", faults_config(t)});
  fake_provider fake(a.endpoint(), "echo", 100, fault::twice, t.path);
  ASSERT_TRUE(eventually([&] { return lists_provider(a, "echo"); }, 30s));
  auto id = a.submit(t.file("job.toml", quick_job("twice")));
  auto s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump(2) << fake.log();
  EXPECT_EQ(s.value("provider", ""), "echo");
  auto db = t.path + "/data/journal.db";
  EXPECT_EQ(allocation_rows(db, id), 1);
  auto x = a.cli_json({"explain", id});
  EXPECT_EQ(verdict_of(x, "echo"), "won") << x.dump(2);
  EXPECT_EQ(x["rejected"].value("duplicate", 0), 1) << x.dump(2);
  // Its second confirm did not release the allocation the job ran on.
  EXPECT_TRUE(fake.saw("launch ")) << fake.log();
  EXPECT_FALSE(fake.saw("release ")) << fake.log();
}
