// Scaling a running job end to end: a real `tender agent` with two local providers, a
// real job whose memory grows past what it was allocated, and the node's own
// decisions read back from its journal and its status.
//
// Where the executor has writable cgroups the local provider raises the job's memory
// limit in place; under rlimits (CI) it cannot, and the job moves to the other local
// provider and restarts there with the larger allocation. The first test takes
// whichever path this machine offers and checks that path; the second forces rlimits
// (TENDER_EXECUTOR_MODE=rlimit), so the move is tested on every machine.

#include "actors/journal.hpp"
#include "providers/executor.hpp"
#include "tests/harness.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <csignal>

#include <cstdlib>
#include <optional>

using namespace tender;
using namespace tender::test;
using namespace std::chrono_literals;

namespace {

constexpr bytes_t MiB = bytes_t{1} << 20;

/// Two local providers; local-a is cheaper, so it wins the first auction. Memory is
/// projected 5 s ahead (the default 10 min would act on any growth at all).
std::string node_toml(const std::string& extra_scaling = "") {
  std::string providers;
  for (auto [name, price] : {std::pair{"local-a", "0.010"}, std::pair{"local-b", "0.050"}})
    providers += std::string("[[providers]]\nname = \"") + name +
                 "\"\nkind = \"local\"\ncpus = 2\nmemory = \"4GiB\"\nprice_per_core_hour = " +
                 price + "\nprice_per_gib_hour = 0.001\n\n";
  return "[node]\nname = \"scaling-test\"\nsample_interval = \"100ms\"\n\n"
         "[scaling]\nmemory_horizon = \"5s\"\n" + extra_scaling + "\n" + providers;
}

/// A job allocated 200 MiB whose memory grows by 2 MiB every 50 ms to 300 MiB (plus the
/// interpreter), every byte written so that it is resident.
std::string growing_job() {
  return "[job]\nname = \"grower\"\nuser = \"tester\"\nwalltime = \"2m\"\n"
         "command = [\"python3\", \"-c\", \"import time\\nchunks = []\\nfor i in range(150):\\n"
         "    chunks.append(b'x' * (2 << 20))\\n    time.sleep(0.05)\\n"
         "print('held', len(chunks) * 2, 'MiB')\\n\"]\n"
         "[job.hints]\ncpus = 1\nmemory = \"200MiB\"\n";
}

std::unique_ptr<journal> open_journal(const std::string& path) {
  auto j = journal::open(path);
  if (auto* e = std::get_if<std::string>(&j)) {
    ADD_FAILURE() << *e;
    return nullptr;
  }
  return std::move(std::get<std::unique_ptr<journal>>(j));
}

std::vector<std::string> states_of(journal& j, const std::string& id) {
  std::vector<std::string> out;
  for (auto& [from, to] : j.transitions(id))
    out.push_back(to_string(to));
  return out;
}

std::string dump(const std::vector<scaling_decision>& ds) {
  std::string out;
  for (auto& d : ds)
    out += d.need + " " + d.action + " " + d.outcome + " by " + d.by + ": " + d.detail + " (" +
           d.reason + ")\n";
  return out;
}

/// The executor mode the agent will see (it inherits this process's environment).
std::string executor_mode(const temp_dir& t) {
  executor probe(t.path + "/probe");
  return probe.mode();
}

/// Sets an environment variable for the scope (the agent started inside inherits it).
struct scoped_env {
  scoped_env(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name))
      old_ = old;
    ::setenv(name, value, 1);
  }
  ~scoped_env() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  const char* name_;
  std::optional<std::string> old_;
};

/// What both tests check once the growing job has ended: it ended `done` having held
/// more memory than it was first given, by way of a rescaling.
void expect_grown_and_done(agent& a, journal& j, const std::string& id,
                           const nlohmann::json& s) {
  ASSERT_EQ(s.value("state", ""), "done") << s.dump(2) << "\n" << dump(j.scaling(id));
  EXPECT_EQ(s["exit_code"], 0);
  EXPECT_GT(s["usage"]["mem_peak_bytes"].get<bytes_t>(), 200 * MiB) << s["usage"].dump();
  // status --json shows the allocation as it is after the decision: 4 x 200 MiB.
  EXPECT_EQ(s["allocated"]["memory_bytes"].get<bytes_t>(), 800 * MiB) << s["allocated"].dump();
  auto states = states_of(j, id);
  auto at = std::find(states.begin(), states.end(), "rescaling");
  ASSERT_NE(at, states.end()) << ::testing::PrintToString(states);
  EXPECT_EQ(*std::prev(at), "running");
  ASSERT_NE(std::next(at), states.end());
  EXPECT_EQ(*std::next(at), "running");
  EXPECT_EQ(states.back(), "done");
  (void)a;
}

} // namespace

TEST(scaling, a_job_outgrowing_its_memory_is_rescaled_before_it_is_killed) {
  temp_dir t;
  const std::string mode = executor_mode(t);
  std::printf("[ mode     ] executor: %s\n", mode.c_str());
  auto cfg = t.file("node.toml", node_toml());
  agent a(t.path + "/data", {"--config", cfg});
  auto id = a.submit(t.file("grower.toml", growing_job()));
  ASSERT_FALSE(id.empty());
  auto s = a.wait_final(id, 120s);
  auto j = open_journal(t.path + "/data/journal.db");
  ASSERT_TRUE(j);
  expect_grown_and_done(a, *j, id, s);
  auto ds = j->scaling(id);
  ASSERT_FALSE(ds.empty());
  const scaling_decision& first = ds.front();
  EXPECT_EQ(first.need, "grow_memory") << dump(ds);
  EXPECT_EQ(first.action, "in_place");
  EXPECT_EQ(first.held.memory, 200 * MiB);
  EXPECT_EQ(first.wanted.memory, 800 * MiB);
  EXPECT_EQ(first.allocation_id.rfind(id + "/local-a/", 0), 0u) << first.allocation_id;
  EXPECT_EQ(first.by, "local-a");
  // `tender explain` shows the same decisions.
  auto x = a.cli_json({"explain", id});
  ASSERT_TRUE(x["scaling"].is_array()) << x.dump(2);
  ASSERT_EQ(x["scaling"].size(), ds.size()) << x.dump(2);
  EXPECT_EQ(x["scaling"][0].value("need", ""), "grow_memory");
  EXPECT_EQ(x["scaling"][0]["wanted"].value("memory_bytes", 0LL), 800 * MiB);
  auto text = a.cli({"explain", id});
  EXPECT_NE(text.out.find("scaling at"), std::string::npos) << text.out;
  if (mode != "rlimit") {
    // The cgroup limit was raised in place; the job never left local-a.
    EXPECT_EQ(first.outcome, "granted") << dump(ds);
    EXPECT_EQ(first.granted.memory, 800 * MiB);
    EXPECT_EQ(s["provider"], "local-a");
    EXPECT_EQ(ds.size(), 1u) << dump(ds);
  } else {
    // Under rlimits the limit cannot change in place: refused, then moved.
    EXPECT_EQ(first.outcome, "refused") << dump(ds);
    EXPECT_NE(first.detail.find("needs cgroups"), std::string::npos) << first.detail;
    ASSERT_GE(ds.size(), 2u) << dump(ds);
    EXPECT_EQ(ds[1].outcome, "moved");
    EXPECT_EQ(ds[1].by, "local-b");
    EXPECT_EQ(s["provider"], "local-b");
  }
}

TEST(scaling, refused_in_place_the_job_moves_to_another_provider_and_restarts) {
  temp_dir t;
  scoped_env rlimits("TENDER_EXECUTOR_MODE", "rlimit");
  ASSERT_EQ(executor_mode(t), "rlimit");
  auto cfg = t.file("node.toml", node_toml());
  agent a(t.path + "/data", {"--config", cfg});
  auto id = a.submit(t.file("grower.toml", growing_job()));
  ASSERT_FALSE(id.empty());
  auto s = a.wait_final(id, 120s);
  auto j = open_journal(t.path + "/data/journal.db");
  ASSERT_TRUE(j);
  expect_grown_and_done(a, *j, id, s);
  EXPECT_EQ(s["provider"], "local-b");
  EXPECT_EQ(s["allocation_id"].get<std::string>().rfind(id + "/local-b/", 0), 0u) << s.dump(2);

  auto ds = j->scaling(id);
  ASSERT_EQ(ds.size(), 2u) << dump(ds);
  EXPECT_EQ(ds[0].need, "grow_memory");
  EXPECT_EQ(ds[0].action, "in_place");
  EXPECT_EQ(ds[0].outcome, "refused");
  EXPECT_EQ(ds[0].by, "local-a");
  EXPECT_EQ(ds[0].granted, ds[0].held);
  EXPECT_NE(ds[0].detail.find("in-place resize needs cgroups"), std::string::npos)
    << ds[0].detail;
  EXPECT_EQ(ds[1].need, "grow_memory");
  EXPECT_EQ(ds[1].action, "move");
  EXPECT_EQ(ds[1].outcome, "moved");
  EXPECT_EQ(ds[1].by, "local-b");
  EXPECT_TRUE(ds[1].disruptive);
  EXPECT_EQ(ds[1].held.memory, 200 * MiB);
  EXPECT_EQ(ds[1].granted.memory, 800 * MiB);
  EXPECT_EQ(ds[1].allocation_id, s["allocation_id"]);
  EXPECT_NE(ds[1].detail.find("starts over"), std::string::npos) << ds[1].detail;
  // The first allocation was released when the job moved.
  EXPECT_EQ(j->load_job(id)->alloc->provider, "local-b");
  // Two auctions: the first placement and the move.
  EXPECT_EQ(j->negotiations(id).size(), 2u);
}

TEST(scaling, a_job_using_far_less_than_it_holds_gives_capacity_back) {
  temp_dir t;
  const std::string mode = executor_mode(t);
  auto cfg = t.file("node.toml", node_toml("shrink_window = \"2s\"\n"));
  agent a(t.path + "/data", {"--config", cfg});
  // Idle for 8 s holding 2 cores and 1 GiB.
  auto id = a.submit(t.file("idle.toml",
                            "[job]\nname = \"idle\"\nuser = \"tester\"\nwalltime = \"1m\"\n"
                            "command = [\"sh\", \"-c\", \"sleep 8\"]\n"
                            "[job.hints]\ncpus = 2\nmemory = \"1GiB\"\n"));
  auto s = a.wait_final(id, 120s);
  auto j = open_journal(t.path + "/data/journal.db");
  ASSERT_TRUE(j);
  ASSERT_EQ(s.value("state", ""), "done") << s.dump(2);
  auto ds = j->scaling(id);
  ASSERT_FALSE(ds.empty()) << "no scaling decision";
  EXPECT_EQ(ds[0].need, "shrink") << dump(ds);
  EXPECT_EQ(ds[0].action, "in_place");
  EXPECT_EQ(ds[0].held, (resources{2000, 1024 * MiB, 0, "", 0}));
  // sleep uses no CPU and ~1 MiB: down to the floors.
  EXPECT_EQ(ds[0].wanted, (resources{100, 64 * MiB, 0, "", 0}));
  if (mode != "rlimit") {
    EXPECT_EQ(ds[0].outcome, "granted") << dump(ds);
    EXPECT_LT(ds[0].price_delta, 0);
    EXPECT_EQ(s["allocated"]["memory_bytes"].get<bytes_t>(), 64 * MiB);
    EXPECT_EQ(s["allocated"]["cpu"], 0.1) << s["allocated"].dump();
  } else {
    // Under rlimits nothing can change in place, and a shrink never restarts a job.
    EXPECT_EQ(ds[0].outcome, "refused") << dump(ds);
    EXPECT_EQ(ds.size(), 1u) << dump(ds);
    EXPECT_EQ(s["allocated"]["memory_bytes"].get<bytes_t>(), 1024 * MiB);
  }
  auto states = states_of(*j, id);
  EXPECT_NE(std::find(states.begin(), states.end(), "rescaling"), states.end());
  EXPECT_EQ(states.back(), "done");
}

namespace {

/// The releases the node journaled for `job_id`: (allocation id, reason).
std::vector<std::pair<std::string, std::string>> releases_of(const std::string& db,
                                                             const std::string& job_id) {
  std::vector<std::pair<std::string, std::string>> out;
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return out;
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(h, "SELECT allocation_id, reason FROM releases WHERE job_id = ? ORDER BY id",
                         -1, &st, nullptr) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, job_id.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW)
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)),
                       reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

} // namespace

// The job ends while the auction for its move is still open (the only other provider is
// frozen until then). What that auction commits afterwards must be released, not left
// held by nobody, and the job must not run again.
TEST(scaling, a_job_ending_during_its_moves_auction_releases_what_the_auction_commits) {
  temp_dir t;
  scoped_env rlimits("TENDER_EXECUTOR_MODE", "rlimit"); // in place is refused: a move
  auto cfg = t.file("node.toml",
                    "[node]\nname = \"move-race\"\nsample_interval = \"100ms\"\n\n"
                    "[auction]\nmax_rounds = 1\nround_timeout = \"15s\"\n\n"
                    "[scaling]\nmemory_horizon = \"5s\"\nmemory_window = \"1500ms\"\n\n"
                    "[[providers]]\nname = \"local-a\"\nkind = \"local\"\ncpus = 2\n"
                    "memory = \"4GiB\"\nprice_per_core_hour = 0.010\nprice_per_gib_hour = 0.001\n");
  agent a(t.path + "/data", {"--config", cfg});
  auto pcfg = t.file("local-b.toml", "[[providers]]\nname = \"local-b\"\nkind = \"local\"\n"
                                     "cpus = 2\nmemory = \"4GiB\"\nprice_per_core_hour = 0.050\n"
                                     "price_per_gib_hour = 0.001\n");
  process b({tender_bin(), "provider", "--config", pcfg, "--connect", a.endpoint(), "--data-dir",
             t.path + "/local-b"},
            t.path, "local-b");
  ASSERT_TRUE(eventually(
    [&] {
      auto l = a.cli_json({"providers"});
      for (auto& x : l)
        if (x.value("name", "") == "local-b")
          return true;
      return false;
    },
    30s))
    << b.err();
  // Idle 3 s (time to freeze local-b), then 2 MiB every 50 ms to 100 MiB — the trend
  // crosses the 200 MiB allocation within the 5 s horizon — then 1 s more, and done.
  auto id = a.submit(t.file(
    "racer.toml",
    "[job]\nname = \"racer\"\nuser = \"tester\"\nwalltime = \"2m\"\n"
    "command = [\"python3\", \"-c\", \"import time\\ntime.sleep(3)\\nchunks = []\\n"
    "for i in range(50):\\n    chunks.append(b'x' * (2 << 20))\\n    time.sleep(0.05)\\n"
    "time.sleep(1)\\n\"]\n[job.hints]\ncpus = 1\nmemory = \"200MiB\"\n"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(eventually([&] { return a.cli_json({"status", id}).value("state", "") == "running"; },
                         60s));
  b.signal(SIGSTOP);
  auto s = a.wait_final(id, 120s);
  b.signal(SIGCONT);
  ASSERT_EQ(s.value("state", ""), "done") << s.dump(2);
  EXPECT_EQ(s.value("provider", ""), "local-a");
  auto j = open_journal(t.path + "/data/journal.db");
  ASSERT_TRUE(j);
  auto ds = j->scaling(id);
  ASSERT_GE(ds.size(), 1u) << dump(ds);
  EXPECT_EQ(ds[0].outcome, "refused") << dump(ds);
  // local-b answers once it thaws; its offer wins the move's auction and is committed
  // after the job ended: the node releases it.
  std::vector<std::pair<std::string, std::string>> rel;
  EXPECT_TRUE(eventually(
    [&] {
      rel = releases_of(t.path + "/data/journal.db", id);
      for (auto& [alloc, reason] : rel)
        if (alloc.rfind(id + "/local-b/", 0) == 0)
          return true;
      return false;
    },
    60s))
    << ::testing::PrintToString(rel) << "\n" << b.err();
  for (auto& [alloc, reason] : rel) {
    if (alloc.rfind(id + "/local-b/", 0) == 0) {
      EXPECT_NE(reason.find("before its auction did"), std::string::npos) << reason;
    }
  }
  EXPECT_EQ(j->negotiations(id).size(), 2u) << "the first placement and the move";
  // It ran once: started once (committed -> running; a refused resize also returns
  // rescaling -> running, without a new run), never moved, and the job's allocation is
  // still local-a's.
  auto states = states_of(*j, id);
  int starts = 0;
  for (auto& [from, to] : j->transitions(id))
    starts += from == job_state::committed && to == job_state::running;
  EXPECT_EQ(starts, 1) << ::testing::PrintToString(states) << "\n" << dump(j->scaling(id));
  for (auto& d : j->scaling(id))
    EXPECT_NE(d.outcome, "moved") << dump(j->scaling(id));
  EXPECT_EQ(j->load_job(id)->alloc->provider, "local-a");
}


// A GPU job whose GPU memory proves too small moves to a larger GPU type from a
// market. This machine has no GPU: the markets' instances are real processes, and a
// job learns its GPU from TENDER_GPU_TYPE / TENDER_GPU_MEMORY_MIB as it would from the
// driver. The job fails the way PyTorch does when its GPU holds less than 20,000 MiB.
TEST(scaling, a_gpu_job_out_of_gpu_memory_moves_to_a_larger_gpu_type) {
  temp_dir t;
  std::string providers;
  // Both vendors sell the embedded GPU catalogue (real AWS prices); the job asks for
  // a T4 first, so its first run gets a 16 GiB GPU whichever vendor wins.
  for (auto [name, seed] : {std::pair{"vendor-a", "1"}, std::pair{"vendor-b", "2"}})
    providers += std::string("[[providers]]\nname = \"") + name +
                 "\"\nkind = \"market\"\ncatalogue = \"embedded:gpu-vendor\"\n"
                 "offer_spot = false\noffer_on_demand = true\nprovisioning_delay = \"0s\"\n"
                 "refuse_probability = 0.0\nseed = " + seed + "\n\n";
  auto cfg = t.file("node.toml", "[node]\nname = \"gpu-test\"\nsample_interval = \"100ms\"\n\n" +
                                   providers);
  auto job = t.file(
    "train.toml",
    "[job]\nname = \"trainer\"\nuser = \"tester\"\nwalltime = \"2m\"\n"
    "command = [\"python3\", \"-c\", \"import os, sys\\n"
    "mib = int(os.environ.get('TENDER_GPU_MEMORY_MIB', '0'))\\n"
    "if mib < 20000:\\n"
    "    sys.stderr.write('Traceback (most recent call last):\\\\n')\\n"
    "    sys.stderr.write('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.00 GiB. "
    "GPU 0 has a total capacity of 15.57 GiB of which 1.20 GiB is free. Including non-PyTorch "
    "memory, this process has 14.37 GiB memory in use.\\\\n')\\n"
    "    sys.exit(1)\\n"
    "print('trained on', os.environ['TENDER_GPU_TYPE'], mib, 'MiB')\\n\"]\n"
    "[job.hints]\ncpus = 1\nmemory = \"1GiB\"\ngpus = 1\ngpu = \"T4\"\n");
  agent a(t.path + "/data", {"--config", cfg});
  auto id = a.submit(job);
  ASSERT_FALSE(id.empty());
  auto s = a.wait_final(id, 120s);
  auto j = open_journal(t.path + "/data/journal.db");
  ASSERT_TRUE(j);
  auto ds = j->scaling(id);
  ASSERT_EQ(s.value("state", ""), "done") << s.dump(2) << "\n" << dump(ds);
  EXPECT_EQ(s["exit_code"], 0);

  ASSERT_EQ(ds.size(), 1u) << dump(ds);
  const scaling_decision& d = ds[0];
  EXPECT_EQ(d.need, "grow_gpu_memory");
  EXPECT_EQ(d.action, "move");
  EXPECT_EQ(d.outcome, "moved");
  EXPECT_TRUE(d.disruptive);
  EXPECT_EQ(d.held.gpu_type, "T4");
  EXPECT_EQ(d.held.gpu_memory, 16LL << 30);
  // 14.37 GiB in use + 4 GiB asked for, + the 10 % memory margin, any GPU type.
  const bytes_t needed = static_cast<bytes_t>(std::ceil((14.37 + 4.0) * (1 << 30)));
  EXPECT_GE(d.wanted.gpu_memory, needed + needed / 10) << dump(ds);
  EXPECT_LT(d.wanted.gpu_memory, needed + needed / 10 + 2 * MiB) << dump(ds);
  EXPECT_EQ(d.wanted.gpu_type, "");
  EXPECT_GE(d.granted.gpu_memory, d.wanted.gpu_memory);
  EXPECT_NE(d.granted.gpu_type, "T4");
  EXPECT_NE(d.reason.find("CUDA out of memory"), std::string::npos) << d.reason;
  // The job ended on the new allocation, with the larger GPU, on the other vendor.
  EXPECT_EQ(s["allocation_id"], d.allocation_id);
  EXPECT_EQ(s["provider"], d.by);
  EXPECT_EQ(s["allocated"].value("gpu_type", ""), d.granted.gpu_type) << s["allocated"].dump();
  auto states = states_of(*j, id);
  auto at = std::find(states.begin(), states.end(), "rescaling");
  ASSERT_NE(at, states.end()) << ::testing::PrintToString(states);
  EXPECT_EQ(*std::prev(at), "running");
  EXPECT_EQ(states.back(), "done");
  EXPECT_EQ(std::count(states.begin(), states.end(), "failed"), 0);
  // Two auctions: the first placement (a T4) and the move (any GPU with the memory).
  auto negs = j->negotiations(id);
  ASSERT_EQ(negs.size(), 2u);
  // The move went to the other vendor (a move never asks the current provider).
  EXPECT_EQ(negs[1].outcome.find("won by " + d.by), 0u) << negs[1].outcome;
  EXPECT_EQ(negs[0].outcome.find("won by " + d.by), std::string::npos) << negs[0].outcome;
  // `tender explain` shows the decision.
  auto x = a.cli_json({"explain", id});
  ASSERT_TRUE(x["scaling"].is_array()) << x.dump(2);
  ASSERT_EQ(x["scaling"].size(), 1u);
  EXPECT_EQ(x["scaling"][0].value("need", ""), "grow_gpu_memory");
}

// Without moves the same job fails, with the GPU's answer in its reason and the
// decision not to move in the journal.
TEST(scaling, without_moves_a_gpu_job_out_of_gpu_memory_fails_saying_why) {
  temp_dir t;
  auto cfg = t.file("node.toml", "[node]\nname = \"gpu-test\"\nsample_interval = \"100ms\"\n\n"
                                 "[scaling]\nmove = false\n\n"
                                 "[[providers]]\nname = \"vendor-a\"\nkind = \"market\"\n"
                                 "catalogue = \"embedded:gpu-vendor\"\nprovisioning_delay = \"0s\"\n"
                                 "refuse_probability = 0.0\noffer_spot = false\n");
  auto job = t.file("train.toml",
                    "[job]\nname = \"trainer\"\nuser = \"tester\"\nwalltime = \"1m\"\n"
                    "command = [\"sh\", \"-c\", \"echo 'RuntimeError: CUDA error: out of memory' "
                    ">&2; exit 3\"]\n"
                    "[job.hints]\ncpus = 1\nmemory = \"1GiB\"\ngpus = 1\ngpu = \"T4\"\n");
  agent a(t.path + "/data", {"--config", cfg});
  auto id = a.submit(job);
  ASSERT_FALSE(id.empty());
  auto s = a.wait_final(id, 60s);
  ASSERT_EQ(s.value("state", ""), "failed") << s.dump(2);
  EXPECT_EQ(s["exit_code"], 3);
  EXPECT_NE(s.value("reason", "").find("out of GPU memory: RuntimeError: CUDA error: out of memory"),
            std::string::npos)
    << s.dump(2);
  auto j = open_journal(t.path + "/data/journal.db");
  ASSERT_TRUE(j);
  auto ds = j->scaling(id);
  ASSERT_EQ(ds.size(), 1u) << dump(ds);
  EXPECT_EQ(ds[0].need, "grow_gpu_memory");
  EXPECT_EQ(ds[0].action, "none");
  EXPECT_EQ(ds[0].outcome, "refused");
  EXPECT_NE(ds[0].detail.find("moves are disabled"), std::string::npos) << ds[0].detail;
  // No amounts in the line: more than the 16 GiB T4, plus the 10 % margin, in MiB.
  const bytes_t needed = (16LL << 30) + 1;
  const bytes_t with_margin = needed + std::llround(static_cast<double>(needed) * 0.10);
  EXPECT_EQ(ds[0].wanted.gpu_memory, (with_margin + MiB - 1) / MiB * MiB);
}
