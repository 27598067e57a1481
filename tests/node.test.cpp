// End-to-end tests of a real node: `tender agent` and `tender provider` processes
// on loopback, driven by the CLI, checked through the CLI's JSON and the journal.

#include "actors/journal.hpp"
#include "tests/harness.hpp"
#include "tools/client.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <thread>

using namespace tender;
using namespace tender::test;
using namespace std::chrono_literals;

namespace {

std::string job_toml(const std::string& name, const std::string& command_array,
                     const std::string& extra = "") {
  return "[job]\nname = \"" + name + "\"\nuser = \"tester\"\ncommand = " + command_array +
         "\nwalltime = \"1m\"\n" + extra;
}

std::vector<std::string> journal_states(const std::string& db, const std::string& id) {
  auto j = journal::open(db);
  std::vector<std::string> out;
  if (auto* jp = std::get_if<std::unique_ptr<journal>>(&j))
    for (auto& [from, to] : (*jp)->transitions(id))
      out.push_back(to_string(to));
  return out;
}

/// Starts `tender provider` with one local provider `name`, joined to `a`.
std::unique_ptr<process> start_remote_provider(const temp_dir& t, agent& a, const std::string& name,
                                               const std::string& core_hour_price) {
  auto cfg = t.file(name + ".toml", "[[providers]]\nname = \"" + name + "\"\nkind = \"local\"\n"
                                    "cpus = 2\nmemory = \"2GiB\"\nprice_per_core_hour = " +
                                      core_hour_price + "\nprice_per_gib_hour = 0.0001\n");
  return std::make_unique<process>(
    std::vector<std::string>{tender_bin(), "provider", "--config", cfg, "--connect", a.endpoint(),
                             "--data-dir", t.path + "/" + name},
    t.path, name);
}

/// True once the node lists a provider called `name`.
bool lists_provider(agent& a, const std::string& name) {
  auto l = a.cli_json({"providers"});
  if (!l.is_array())
    return false;
  for (auto& x : l)
    if (x.value("name", "") == name)
      return true;
  return false;
}

} // namespace

TEST(node, a_submitted_job_runs_to_done_through_every_stage) {
  temp_dir t;
  agent a(t.path + "/data");
  auto file = t.file("hello.toml", job_toml("hello", R"(["sh", "-c", "echo hello; exit 0"])"));
  auto id = a.submit(file);
  ASSERT_FALSE(id.empty());
  auto s = a.wait_final(id, 60s);
  ASSERT_EQ(s.value("state", ""), "done") << s.dump(2);
  EXPECT_EQ(s["exit_code"], 0);
  EXPECT_FALSE(s["provider"].get<std::string>().empty());
  EXPECT_GE(s["offers"].size(), 1u);
  EXPECT_TRUE(s["profile"].is_object());
  EXPECT_TRUE(s["started_at"].is_string());
  EXPECT_TRUE(s["finished_at"].is_string());
  auto states = journal_states(t.path + "/data/journal.db", id);
  std::vector<std::string> want{"submitted", "profiling", "negotiating", "committed", "running",
                                "done"};
  EXPECT_EQ(states, want);
}

TEST(node, a_job_no_provider_can_afford_is_refused_with_the_reason) {
  temp_dir t;
  agent a(t.path + "/data");
  auto file = t.file("pricey.toml", "[job]\nname = \"pricey\"\nuser = \"tester\"\ncommand = [\"true\"]\n"
                               "walltime = \"10h\"\nmax_cost = 0.000001\n[job.hints]\ncpus = 2\n");
  auto id = a.submit(file);
  auto s = a.wait_final(id, 60s);
  ASSERT_EQ(s.value("state", ""), "refused") << s.dump(2);
  EXPECT_NE(s["reason"].get<std::string>().find("max_cost"), std::string::npos) << s["reason"];
}

TEST(node, an_invalid_job_file_is_refused_naming_file_and_key) {
  temp_dir t;
  auto file = t.file("bad.toml", "[job]\nname = \"x\"\ncommand = [\"true\"]\nmemroy = 3\n");
  auto r = run({"submit", file, "--connect", "tcp://127.0.0.1:1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("bad.toml"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("memroy"), std::string::npos) << r.err;
}

TEST(node, garbage_over_the_mesh_gets_an_error_and_the_node_keeps_serving) {
  temp_dir t;
  agent a(t.path + "/data");
  client c(a.endpoint(), "garbage-test");
  auto r = c.call_raw(std::string("\xc1\xff\x00garbage", 10), 5 * sec_us);
  ASSERT_TRUE(std::holds_alternative<envelope>(r)) << std::get<std::string>(r);
  auto& e = std::get<envelope>(r);
  ASSERT_TRUE(std::holds_alternative<error>(e.body));
  EXPECT_FALSE(std::get<error>(e.body).code.empty());
  // Still serving: a well-formed query from another client works.
  client d(a.endpoint(), "good-test");
  auto ok = d.call(jobs_query{}, 5 * sec_us);
  ASSERT_TRUE(std::holds_alternative<envelope>(ok));
  EXPECT_TRUE(std::holds_alternative<job_list>(std::get<envelope>(ok).body));
  // A message of a type a node does not take is answered with an error too.
  auto odd = d.call(welcome{"x", "y", {}}, 5 * sec_us);
  ASSERT_TRUE(std::holds_alternative<envelope>(odd));
  EXPECT_TRUE(std::holds_alternative<error>(std::get<envelope>(odd).body));
}

TEST(node, a_port_in_use_is_one_clear_line_and_a_failure) {
  temp_dir t;
  agent a(t.path + "/data");
  auto r = run({"agent", "--dev", "--data-dir", t.path + "/other", "--listen", a.endpoint()});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("cannot listen on"), std::string::npos) << r.err;
}

TEST(node, an_unwritable_data_dir_is_refused) {
  temp_dir t;
  auto file = t.file("plain-file", "x");
  auto r = run({"agent", "--dev", "--data-dir", file + "/sub", "--listen", "tcp://127.0.0.1:*"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("data dir"), std::string::npos) << r.err;
}

TEST(node, an_unknown_provider_kind_in_config_is_refused) {
  temp_dir t;
  auto cfg = t.file("node.toml", "[[providers]]\nname = \"x\"\nkind = \"quantum\"\n");
  auto r = run({"agent", "--config", cfg, "--data-dir", t.path + "/d", "--listen",
                "tcp://127.0.0.1:*"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("quantum"), std::string::npos) << r.err;
}

TEST(node, cancel_stops_a_running_job) {
  temp_dir t;
  agent a(t.path + "/data");
  auto file = t.file("long.toml", job_toml("long", R"(["sleep", "30"])"));
  auto id = a.submit(file);
  ASSERT_TRUE(eventually([&] { return a.cli_json({"status", id}).value("state", "") == "running"; },
                         30s));
  auto c = a.cli_json({"cancel", id});
  EXPECT_EQ(c.value("id", ""), id);
  auto s = a.wait_final(id, 30s);
  EXPECT_EQ(s.value("state", ""), "cancelled") << s.dump(2);
}

TEST(node, after_kill_9_every_job_is_known_and_a_running_job_is_readopted) {
  temp_dir t;
  auto data = t.path + "/data";
  std::string done_id, running_id;
  {
    agent a(data);
    done_id = a.submit(t.file("quick.toml", job_toml("quick", R"(["sh", "-c", "exit 0"])")));
    ASSERT_EQ(a.wait_final(done_id, 60s).value("state", ""), "done");
    running_id = a.submit(t.file("slow.toml", job_toml("slow", R"(["sh", "-c", "sleep 3; exit 7"])")));
    ASSERT_TRUE(eventually(
      [&] { return a.cli_json({"status", running_id}).value("state", "") == "running"; }, 30s));
    a.proc().signal(SIGKILL);
    a.proc().wait(10s);
  }
  agent b(data);
  auto d = b.cli_json({"status", done_id});
  EXPECT_EQ(d.value("state", ""), "done");
  EXPECT_EQ(d["exit_code"], 0);
  auto s = b.wait_final(running_id, 60s);
  // The job kept running under its shim while the node was down; its real exit
  // code is known after the restart, and it ran exactly once.
  EXPECT_EQ(s.value("state", ""), "failed") << s.dump(2);
  EXPECT_EQ(s["exit_code"], 7) << s.dump(2);
  auto jobs = b.cli_json({"jobs"});
  EXPECT_EQ(jobs.size(), 2u);
}

TEST(node, a_provider_in_its_own_process_joins_and_runs_the_job) {
  temp_dir t;
  auto node_cfg = t.file("node.toml", "[node]\nname = \"solo\"\n");
  agent a(t.path + "/data", {"--config", node_cfg});
  auto p = start_remote_provider(t, a, "remote-local", "0.01");
  ASSERT_TRUE(eventually([&] { return lists_provider(a, "remote-local"); }, 30s)) << p->err();
  EXPECT_EQ(a.cli_json({"providers"}).size(), 1u);
  auto id = a.submit(t.file("job.toml", job_toml("remote", R"(["sh", "-c", "exit 0"])")));
  auto s = a.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump(2) << p->err();
  EXPECT_EQ(s.value("provider", ""), "remote-local");
}

TEST(node, a_frozen_remote_provider_cannot_stall_negotiations) {
  temp_dir t;
  agent a(t.path + "/data");
  auto p = start_remote_provider(t, a, "frozen", "0.0001");
  ASSERT_TRUE(eventually([&] { return lists_provider(a, "frozen"); }, 30s)) << p->err();
  p->signal(SIGSTOP); // alive but silent: no offer, no decline, ever
  auto id = a.submit(t.file("job.toml", job_toml("unstalled", R"(["true"])")));
  auto s = a.wait_final(id, 60s);
  p->signal(SIGCONT);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump(2);
  EXPECT_NE(s.value("provider", ""), "frozen");
}

TEST(node, a_job_caught_mid_stage_by_kill_9_resumes_after_the_restart) {
  temp_dir t;
  auto data = t.path + "/data";
  std::string id;
  {
    agent a(data);
    // The profile run keeps the job in `profiling` for a few seconds.
    id = a.submit(t.file("staged.toml", job_toml("staged", R"(["sh", "-c", "exit 0"])",
                                                 "[job.profile]\ncommand = [\"sleep\", \"4\"]\n"
                                                 "budget = \"6s\"\n")));
    ASSERT_TRUE(eventually(
      [&] { return a.cli_json({"status", id}).value("state", "") == "profiling"; }, 30s));
    a.proc().signal(SIGKILL);
    a.proc().wait(10s);
  }
  agent b(data);
  auto s = b.wait_final(id, 60s);
  EXPECT_EQ(s.value("state", ""), "done") << s.dump(2);
  auto states = journal_states(data + "/journal.db", id);
  // Profiling started twice (before and after the crash), and the job ran once.
  EXPECT_EQ(std::count(states.begin(), states.end(), "profiling"), 2) << ::testing::PrintToString(states);
  EXPECT_EQ(std::count(states.begin(), states.end(), "running"), 1);
  EXPECT_EQ(states.back(), "done");
}

TEST(demo, the_quick_start_demo_ends_by_itself_with_every_job_as_expected) {
  auto r = run({"demo", "--examples", source_dir() + "/examples/jobs"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("all as expected"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("over-budget    refused"), std::string::npos) << r.out;
}
