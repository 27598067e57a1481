// Property: 1,000 concurrent negotiations against providers far too small for all
// of them. No capacity is ever committed twice, and every negotiation ends either
// committed or refused with a reason. Runs on CAF's real multi-threaded scheduler,
// the agent's round actors, provider actors, ledgers and journal.

#include "actors/bench.hpp"
#include "actors/journal.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

using namespace tender;

namespace {

const char* small_providers = R"toml(
[auction]
protocol = "iterated"
max_rounds = 2
round_timeout = "5s"
commit_timeout = "5s"

[[providers]]
name = "local-a"
kind = "local"
cpus = 3
memory = "4GiB"
price_per_core_hour = 0.04
busy_markup = 1.5

[[providers]]
name = "local-b"
kind = "local"
cpus = 2
memory = "4GiB"
price_per_core_hour = 0.05

[[providers]]
name = "spot"
kind = "market"
catalogue = "embedded:cloud-a"
offer_spot = true
max_instances = 2
seed = 3

[[providers]]
name = "ondemand"
kind = "market"
catalogue = "embedded:cloud-b"
offer_spot = false
max_instances = 1
seed = 4
)toml";

} // namespace

TEST(negotiation_property, a_thousand_concurrent_negotiations_never_double_book) {
  for (const char* protocol : {"iterated", "vickrey"}) {
    SCOPED_TRACE(protocol);
    negotiate_bench_options o;
    o.jobs = 1000;
    o.window = 1000; // all at once
    o.release = false;
    o.config_toml = small_providers;
    if (std::string(protocol) == "vickrey")
      o.config_toml.replace(o.config_toml.find("\"iterated\""), 10, "\"vickrey\"");
    auto got = run_negotiate_bench(o);
    ASSERT_TRUE(std::holds_alternative<negotiate_bench_result>(got)) << std::get<std::string>(got);
    auto& r = std::get<negotiate_bench_result>(got);
    std::printf("[ measured ] %s: %lld committed, %lld refused, rounds %.2f; first refusal: %s\n", protocol,
                static_cast<long long>(r.committed), static_cast<long long>(r.refused), r.rounds_mean,
                r.refusals.empty() ? "" : r.refusals.front().c_str());

    // Every negotiation ended, one way or the other.
    EXPECT_EQ(r.committed + r.refused, 1000);
    EXPECT_EQ(static_cast<std::int64_t>(r.allocations.size()), r.committed);
    EXPECT_GT(r.committed, 0);
    EXPECT_GT(r.refused, 900); // at most 3 + 2 + 2 + 1 jobs fit
    for (auto& why : r.refusals)
      EXPECT_FALSE(why.empty());

    // Nothing committed twice: one allocation per job, unique ids, and no provider
    // gave out more than it has.
    std::set<std::string> ids, jobs;
    std::map<std::string, resources> granted;
    std::map<std::string, int> count;
    for (auto& a : r.allocations) {
      EXPECT_TRUE(ids.insert(a.allocation_id).second) << "allocation twice: " << a.allocation_id;
      EXPECT_TRUE(jobs.insert(a.job_id).second) << "job committed twice: " << a.job_id;
      granted[a.provider].cpu += a.granted.cpu;
      granted[a.provider].memory += a.granted.memory;
      count[a.provider]++;
    }
    EXPECT_LE(granted["local-a"].cpu, 3000);
    EXPECT_LE(granted["local-a"].memory, 4ll << 30);
    EXPECT_LE(granted["local-b"].cpu, 2000);
    EXPECT_LE(count["spot"], 2);
    EXPECT_LE(count["ondemand"], 1);
    EXPECT_LE(r.committed, 3 + 2 + 2 + 1);
  }
}

TEST(negotiation_bench, records_every_offer_negotiation_and_award_in_its_journal) {
  // The benchmark's journal is the agent's: its rows must land (an offer row refers
  // to its job, so the jobs are recorded first, as intake does), or the benchmark
  // would time failed writes. Its own failures are counted and reported.
  auto dir = std::filesystem::temp_directory_path() /
             ("tender-bench-journal-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  negotiate_bench_options o;
  o.jobs = 300;
  o.window = 50;
  o.data_dir = dir.string();
  auto got = run_negotiate_bench(o);
  ASSERT_TRUE(std::holds_alternative<negotiate_bench_result>(got)) << std::get<std::string>(got);
  auto& r = std::get<negotiate_bench_result>(got);
  EXPECT_EQ(r.journal_errors, 0) << r.first_journal_error;
  EXPECT_EQ(r.committed, 300);
  // The machine's counters over the run are read, not left at "unknown" (-1): the
  // process did work, and the host's steal and the disk writes are counts (>= 0).
  EXPECT_GT(r.cpu_s, 0);
  EXPECT_GE(r.steal_s, 0);
  EXPECT_GE(r.write_mb, 0);
  auto js = r.to_json();
  EXPECT_EQ(js["cpu_s"], r.cpu_s);
  EXPECT_EQ(js["steal_s"], r.steal_s);
  EXPECT_NE(r.table().find("stolen by the VM host"), std::string::npos) << r.table();
  // The CPU by part: this process's threads by role, summing to about the process's own
  // figure (getrusage and schedstat count the same time, in ticks and in nanoseconds).
  auto part = [&](const std::string& name) -> const cpu_part* {
    for (auto& p : r.cpu_parts)
      if (p.part == name)
        return &p;
    return nullptr;
  };
  for (auto name : {"CAF workers", "journal commits"}) {
    auto* p = part(name);
    ASSERT_NE(p, nullptr) << name << " missing from " << js["cpu_parts"].dump();
    EXPECT_GT(p->cpu_s, 0) << name;
    EXPECT_GE(p->wait_s, 0) << name;
    EXPECT_GE(p->threads, 1) << name;
    EXPECT_EQ(js["cpu_parts"][name]["cpu_s"], p->cpu_s);
  }
  EXPECT_EQ(part("CAF workers")->threads, 2); // one per core, as the agent runs
  EXPECT_EQ(part("providers"), nullptr) << "in process there are no provider processes";
  EXPECT_NEAR(r.cpu_all_s, r.cpu_s, 0.05 + 0.1 * r.cpu_s) << js["cpu_parts"].dump();
  EXPECT_NE(r.table().find("CAF workers"), std::string::npos) << r.table();
  {
    auto opened = journal::open((dir / "journal.db").string());
    ASSERT_TRUE(std::holds_alternative<std::unique_ptr<journal>>(opened))
        << std::get<std::string>(opened);
    auto& j = *std::get<std::unique_ptr<journal>>(opened);
    for (int i : {0, 149, 299}) {
      const std::string job = "bench-" + std::to_string(i);
      auto n = j.negotiations(job);
      ASSERT_EQ(n.size(), 1u) << job;
      EXPECT_EQ(n[0].rounds, 2) << job;
      auto offers = j.offer_explanations(job);
      // Every provider that bids (the GPU vendors decline CPU-only calls) offers
      // in every round, and exactly one offer won.
      EXPECT_GE(offers.size(), 2u * 6u) << job;
      EXPECT_EQ(std::count_if(offers.begin(), offers.end(),
                              [](const offer_explanation& x) { return x.verdict == "won"; }),
                1)
          << job;
    }
  }
  // A second run in the same directory is refused up front, naming the file (its jobs
  // would collide with the first run's), and returns rather than hanging.
  got = run_negotiate_bench(o);
  ASSERT_TRUE(std::holds_alternative<std::string>(got));
  EXPECT_NE(std::get<std::string>(got).find((dir / "journal.db").string() + " exists"),
            std::string::npos)
      << std::get<std::string>(got);
  std::filesystem::remove_all(dir);
}

TEST(negotiation_bench, the_floor_runs_the_real_benchs_shape_of_actors_and_messages) {
  // `--floor` is only a yardstick if it sends what a real negotiation sends: as many
  // messages and rounds per negotiation as the real bench with the same providers, and
  // every negotiation committed. Providers all bid here (the real bench's GPU vendors
  // do too, on CPU-only calls), so both count 2 per provider per round, award, confirm,
  // a decline per loser and the release.
  negotiate_bench_options o;
  o.jobs = 400;
  o.window = 16;
  auto real = run_negotiate_bench(o);
  ASSERT_TRUE(std::holds_alternative<negotiate_bench_result>(real))
      << std::get<std::string>(real);
  o.floor = true;
  auto bare = run_negotiate_bench(o);
  ASSERT_TRUE(std::holds_alternative<negotiate_bench_result>(bare))
      << std::get<std::string>(bare);
  auto& r = std::get<negotiate_bench_result>(real);
  auto& f = std::get<negotiate_bench_result>(bare);
  EXPECT_TRUE(f.floor);
  EXPECT_FALSE(r.floor);
  EXPECT_EQ(f.committed, 400);
  EXPECT_EQ(f.rounds_mean, r.rounds_mean);
  EXPECT_EQ(f.msgs_per_negotiation, r.msgs_per_negotiation);
  EXPECT_EQ(f.rounds_mean, 2.0);
  EXPECT_EQ(f.to_json()["floor"], true);
  EXPECT_NE(f.table().find("floor"), std::string::npos);
  // It measures the closed loop only: an offered rate is refused, naming it.
  o.rate = 100;
  auto refused = run_negotiate_bench(o);
  ASSERT_TRUE(std::holds_alternative<std::string>(refused));
  EXPECT_NE(std::get<std::string>(refused).find("no --rate"), std::string::npos);
}
