// `tender bench negotiate --transport tcp`: real `tender provider` processes behind the
// bench's gateway on loopback. No timing thresholds: the numbers are the command's
// output; these tests check that it ran what it says and left nothing behind.

#include "tests/harness.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace tender::test {
namespace {

/// Gone: no such process, or a zombie waiting for an init that does not reap (the
/// process itself has ended either way).
bool gone(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f)
    return true;
  std::string stat;
  std::getline(f, stat);
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

TEST(bench, negotiate_over_tcp_runs_every_negotiation_through_provider_processes) {
  auto r = run({"bench", "negotiate", "--transport", "tcp", "--providers", "4", "--rounds", "2",
                "--jobs", "200", "--raw-messages", "20000", "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  for (auto key : {"negotiations_per_s", "p50_ms", "p99_ms", "msgs_per_negotiation", "rounds_mean",
                   "zmq_raw_msgs_per_s", "mesh_efficiency"})
    ASSERT_TRUE(j.contains(key)) << key << " missing: " << r.out;
  EXPECT_EQ(j["transport"], "tcp");
  EXPECT_EQ(j["providers"], 4);
  EXPECT_EQ(j["window"], 128) << "the closed loop's window over tcp when none is given";
  EXPECT_EQ(j["committed"], 200) << r.out;
  EXPECT_EQ(j["refused"], 0) << r.out;
  EXPECT_EQ(j["journal_errors"], 0) << r.out; // every offer, negotiation and award recorded
  const double rounds = j["rounds_mean"].get<double>();
  EXPECT_GE(rounds, 1.0);
  EXPECT_LE(rounds, 2.0);
  // What crossed the wire: at least a call and an answer per provider per round, and
  // the award, confirm and release of the winner (the losers' declines come on top).
  EXPECT_GE(j["msgs_per_negotiation"].get<double>(), 2 * 4 * rounds + 3 - 1e-9) << r.out;
  EXPECT_GT(j["wire_mean_bytes"].get<double>(), 50.0);
  // ZeroMQ frames: at most one per message (a batch frame carries several).
  EXPECT_GT(j["frames_per_negotiation"].get<double>(), 0.0) << r.out;
  EXPECT_LE(j["frames_per_negotiation"].get<double>(), j["msgs_per_negotiation"].get<double>())
      << r.out;
  EXPECT_GT(j["zmq_raw_msgs_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["mesh_efficiency"].get<double>(), 0.0);
  EXPECT_GT(j["p99_ms"].get<double>(), 0.0);
  // The CPU by part covers the provider processes (their main threads and ZeroMQ's I/O
  // threads) besides this process's workers and its gateway's I/O thread.
  for (auto part :
       {"CAF workers", "gateway I/O", "ZeroMQ I/O", "providers", "providers: ZeroMQ I/O"}) {
    ASSERT_TRUE(j["cpu_parts"].contains(part)) << part << " missing: " << j["cpu_parts"].dump();
    EXPECT_GT(j["cpu_parts"][part]["cpu_s"].get<double>(), 0.0) << part;
  }
  EXPECT_GE(j["cpu_parts"]["providers"]["threads"].get<int>(), 4) << j["cpu_parts"].dump();
  EXPECT_GT(j["cpu_all_s"].get<double>(), j["cpu_s"].get<double>())
      << "the provider processes' CPU is counted on top of this process's";

  // The four provider processes were real, and are gone now.
  auto pids = j["provider_pids"].get<std::vector<int>>();
  ASSERT_EQ(pids.size(), 4u);
  for (int pid : pids) {
    EXPECT_GT(pid, 0);
    EXPECT_TRUE(gone(pid)) << "provider process " << pid << " outlived the bench";
  }
  EXPECT_NE(r.err.find("4 provider processes joined tcp://127.0.0.1:"), std::string::npos) << r.err;
}

TEST(bench, the_floor_over_tcp_runs_the_provider_processes_with_the_same_messages) {
  // `--floor --transport tcp`: the real provider processes, gateway and proxies, none of
  // the node's scoring or journal. As many frames cross the wire per negotiation as in
  // the real bench (both count what the gateway's ROUTER saw), every negotiation commits,
  // and the processes are gone afterwards.
  auto real = run({"bench", "negotiate", "--transport", "tcp", "--providers", "4", "--jobs", "200",
                   "--raw-messages", "20000", "--json"});
  ASSERT_EQ(real.code, 0) << real.out << real.err;
  auto floor = run({"bench", "negotiate", "--transport", "tcp", "--providers", "4", "--jobs",
                    "200", "--raw-messages", "20000", "--floor", "--json"});
  ASSERT_EQ(floor.code, 0) << floor.out << floor.err;
  auto r = nlohmann::json::parse(real.out);
  auto f = nlohmann::json::parse(floor.out);
  EXPECT_EQ(f["floor"], true);
  EXPECT_EQ(f["transport"], "tcp");
  EXPECT_EQ(f["committed"], 200) << floor.out;
  EXPECT_EQ(f["rounds_mean"], r["rounds_mean"]);
  EXPECT_EQ(f["msgs_per_negotiation"], r["msgs_per_negotiation"]) << floor.out << real.out;
  EXPECT_GT(f["mesh_efficiency"].get<double>(), 0.0);
  for (int pid : f["provider_pids"].get<std::vector<int>>())
    EXPECT_TRUE(gone(pid)) << "provider process " << pid << " outlived the bench";
}

TEST(bench, negotiate_reports_its_window_the_transports_default_or_the_one_given) {
  auto window_of = [](std::vector<std::string> args) {
    args.insert(args.begin(), {"bench", "negotiate", "--jobs", "40", "--json"});
    auto r = run(args);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_EQ(j.value("committed", 0), 40) << r.out;
    return j.is_object() ? j["window"] : nlohmann::json("unparsable");
  };
  EXPECT_EQ(window_of({}), 32);
  EXPECT_EQ(window_of({"--window", "5"}), 5);
  EXPECT_TRUE(window_of({"--rate", "400"}).is_null()) << "the open loop has no window";
  auto text = run({"bench", "negotiate", "--jobs", "40", "--window", "7"});
  EXPECT_NE(text.out.find("(closed loop, 7 in flight)"), std::string::npos) << text.out;
}

TEST(bench, provider_processes_die_with_a_killed_bench) {
  temp_dir t;
  // Far more negotiations than can finish before the kill.
  process bench({tender_bin(), "bench", "negotiate", "--transport", "tcp", "--providers", "3",
                 "--jobs", "2000000"},
                t.path, "bench");
  std::vector<int> pids;
  const std::regex joined("provider processes joined \\S+ \\(pids ([0-9 ]+); logs in (\\S+)\\)");
  std::string bench_dir;
  ASSERT_TRUE(eventually(
      [&] {
        std::smatch m;
        auto err = bench.err();
        if (!std::regex_search(err, m, joined))
          return false;
        std::stringstream ss(m[1].str());
        for (int p; ss >> p;)
          pids.push_back(p);
        bench_dir = m[2].str();
        return true;
      },
      std::chrono::seconds(60)))
      << bench.err();
  ASSERT_EQ(pids.size(), 3u);
  for (int pid : pids)
    EXPECT_FALSE(gone(pid)) << pid << " should be running during the bench";
  bench.signal(SIGKILL);
  EXPECT_EQ(bench.wait(std::chrono::seconds(20)), 128 + SIGKILL);
  for (int pid : pids)
    EXPECT_TRUE(eventually([&] { return gone(pid); }, std::chrono::seconds(20)))
        << "provider process " << pid << " outlived its killed bench (PR_SET_PDEATHSIG)";
  // A killed bench cannot remove its temporary directory.
  ASSERT_EQ(bench_dir.rfind("/tmp/tender-bench-", 0), 0u) << bench_dir;
  std::error_code ec;
  std::filesystem::remove_all(bench_dir, ec);
}

TEST(bench, out_of_range_options_are_refused_at_once_naming_the_option) {
  struct bad {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<bad> cases{
      {{"--rate", "-5"}, "rate -5"},
      {{"--window", "0"}, "window 0"},
      {{"--group-commit-ms", "0"}, "group-commit-ms"},
      {{"--group-commit-ms", "1e9"}, "group-commit-ms"},
      {{"--transport", "tcp", "--raw-messages", "0"}, "raw-messages 0"},
  };
  for (auto& c : cases) {
    std::vector<std::string> argv{"bench", "negotiate", "--jobs", "1"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    auto r = run(argv);
    EXPECT_EQ(r.code, 2) << c.says;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
}

// The other benches' sizes: a window of 0 would wait for ever, a batch of 0 would
// not start the agent, 0 jobs would print a table of zeros.
TEST(bench, bus_and_federation_refuse_zero_sizes_naming_the_option) {
  struct bad {
    std::vector<std::string> argv;
    std::string says;
  };
  const std::vector<bad> cases{
      {{"bench", "bus", "--window", "0"}, "--window: Value 0 not in range 1"},
      {{"bench", "bus", "--batch", "0"}, "--batch: Value 0 not in range 1"},
      {{"bench", "federation", "--jobs", "0"}, "--jobs: Value 0 not in range 1"},
      {{"produce", "--bus", "tcp://127.0.0.1:1", "--window", "0"},
       "--window: Value 0 not in range 1"},
  };
  for (auto& c : cases) {
    auto r = run(c.argv);
    EXPECT_NE(r.code, 0) << c.says;
    const auto said = r.out + r.err; // CLI11 prints its validation errors on either
    EXPECT_NE(said.find(c.says), std::string::npos) << said;
  }
}

TEST(bench, an_unknown_transport_is_refused_with_the_choices) {
  auto r = run({"bench", "negotiate", "--transport", "udp", "--jobs", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("transport `udp`: expected inproc or tcp"), std::string::npos) << r.err;
}

} // namespace
} // namespace tender::test
