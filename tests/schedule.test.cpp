// The internal cluster plans ahead: a busy local provider commits the next job to a
// reservation in its plan, `tender schedule` shows that plan, the job starts when
// the capacity frees, and `kill -9` of the node neither loses nor doubles anything.

#include "tests/harness.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <fstream>
#include <sstream>

using namespace tender::test;
using namespace std::chrono_literals;

namespace {

std::string one_core_node(const temp_dir& t) {
  return t.file("one-core.toml", "[[providers]]\nname = \"local\"\nkind = \"local\"\n"
                                 "cpus = 1\nmemory = \"1GiB\"\nplan_horizon = \"1h\"\n"
                                 "price_per_core_hour = 0.04\nprice_per_gib_hour = 0.005\n");
}

std::string job(const temp_dir& t, const std::string& name, const std::string& command_array) {
  return t.file(name + ".toml", "[job]\nname = \"" + name + "\"\nuser = \"tester\"\ncommand = " +
                                    command_array + "\nwalltime = \"1m\"\n[job.hints]\ncpus = 1\n");
}

std::string state_of(agent& a, const std::string& id) {
  return a.cli_json({"status", id}).value("state", "");
}

/// The local provider's plan entry for `job` (null when absent).
nlohmann::json plan_entry_of(agent& a, const std::string& job) {
  auto s = a.cli_json({"schedule"});
  if (!s.is_array())
    return nullptr;
  for (auto& p : s)
    if (p.value("provider", "") == "local" && p["plan"].is_object())
      for (auto& e : p["plan"]["jobs"])
        if (e.value("job_id", "") == job)
          return e;
  return nullptr;
}

/// A job command that runs until `gate` exists (at most a minute): the test decides
/// when the capacity frees, however slow the build.
std::string until(const std::string& gate) {
  return R"(["sh", "-c", "i=0; while [ ! -e )" + gate +
         R"( ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"])";
}

void open_gate(const std::string& gate) { std::ofstream(gate) << "go\n"; }

std::size_t lines_in(const std::string& path) {
  std::ifstream f(path);
  std::size_t n = 0;
  for (std::string line; std::getline(f, line);)
    ++n;
  return n;
}

} // namespace

TEST(schedule, a_busy_cluster_reserves_the_next_job_and_starts_it_when_capacity_frees) {
  temp_dir t;
  agent a(t.path + "/data", {"--config", one_core_node(t)});
  const auto gate = t.path + "/gate";
  auto first = a.submit(job(t, "first", until(gate)));
  ASSERT_TRUE(eventually([&] { return state_of(a, first) == "running"; }, 60s));
  auto second = a.submit(job(t, "second", R"(["true"])"));
  // Committed to a reservation behind the running job, not refused and not started.
  nlohmann::json reserved;
  ASSERT_TRUE(eventually(
      [&] {
        reserved = plan_entry_of(a, second);
        return reserved.is_object();
      },
      60s));
  EXPECT_EQ(reserved.value("state", ""), "reserved") << reserved.dump(2);
  auto running = plan_entry_of(a, first);
  ASSERT_TRUE(running.is_object());
  EXPECT_EQ(running.value("state", ""), "running");
  EXPECT_GE(reserved.value("start", ""), running.value("predicted_end", "")) << reserved.dump(2);
  EXPECT_EQ(state_of(a, second), "committed");
  // The text view names both.
  auto text = a.cli({"schedule"});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("reserved"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("free over time"), std::string::npos) << text.out;

  open_gate(gate);
  auto s1 = a.wait_final(first, 60s);
  auto s2 = a.wait_final(second, 60s);
  EXPECT_EQ(s1.value("state", ""), "done") << s1.dump(2);
  EXPECT_EQ(s2.value("state", ""), "done") << s2.dump(2);
  EXPECT_GE(s2.value("started_at", ""), s1.value("finished_at", "")) << "never side by side";
  EXPECT_FALSE(plan_entry_of(a, second).is_object()) << "gone from the plan when done";
}

TEST(schedule, kill_9_with_a_job_running_and_one_reserved_loses_and_doubles_nothing) {
  temp_dir t;
  auto data = t.path + "/data";
  auto cfg = one_core_node(t);
  auto mark = t.path + "/ran";
  const auto gate = t.path + "/gate";
  std::string first, second;
  {
    agent a(data, {"--config", cfg});
    first = a.submit(job(t, "first", until(gate)));
    ASSERT_TRUE(eventually([&] { return state_of(a, first) == "running"; }, 60s));
    second = a.submit(job(t, "second", R"(["sh", "-c", "echo ran >> )" + mark + R"("])"));
    ASSERT_TRUE(eventually([&] { return plan_entry_of(a, second).is_object(); }, 60s));
    a.proc().signal(SIGKILL);
    a.proc().wait(10s);
  }
  open_gate(gate);
  agent b(data, {"--config", cfg});
  auto s1 = b.wait_final(first, 60s);
  auto s2 = b.wait_final(second, 60s);
  EXPECT_EQ(s1.value("state", ""), "done") << s1.dump(2);
  EXPECT_EQ(s2.value("state", ""), "done") << s2.dump(2);
  EXPECT_EQ(lines_in(mark), 1u) << "the reserved job ran exactly once";
  EXPECT_GE(s2.value("started_at", ""), s1.value("finished_at", ""));
  // Nothing left behind in the plan.
  auto s = b.cli_json({"schedule"});
  ASSERT_TRUE(s.is_array() && !s.empty()) << s.dump(2);
  EXPECT_TRUE(s[0]["plan"]["jobs"].empty()) << s.dump(2);
}
