// End to end: a `tender agent` whose only provider is a real Slurm cluster runs a
// submitted job to done, through a reservation, with the exit code from Slurm.

#include "tests/harness.hpp"
#include "tests/slurm_cluster.hpp"

#include <gtest/gtest.h>

using namespace tender;
using namespace tender::test;
using namespace std::chrono_literals;

TEST(slurm_node, an_agent_with_only_a_slurm_provider_runs_a_job_to_done) {
  if (auto missing = slurm_cluster::missing_tools(); !missing.empty())
    GTEST_SKIP() << "Slurm is not installed (missing " << missing
                 << "); tools/install-deps installs slurm-wlm and munge";
  slurm_cluster cluster;
  ASSERT_TRUE(cluster.up()) << cluster.error();
  const auto bin = cluster.provider().slurm_bin_dir;

  temp_dir t;
  auto cfg = t.file("node.toml", "[node]\nname = \"hpc-node\"\n"
                                 "[[providers]]\nname = \"hpc\"\nkind = \"slurm\"\n"
                                 "slurm_conf = \"" + cluster.conf() + "\"\n"
                                 "slurm_bin_dir = \"" + bin + "\"\n"
                                 "price_per_core_hour = 0.04\nprice_per_gib_hour = 0.005\n"
                                 "poll_interval = \"250ms\"\n");
  agent a(t.path + "/data", {"--config", cfg});
  auto providers = a.cli_json({"providers"});
  ASSERT_EQ(providers.size(), 1u) << providers.dump(2);
  EXPECT_EQ(providers[0].value("kind", ""), "slurm");

  auto job = t.file("job.toml", "[job]\nname = \"on-slurm\"\nuser = \"tester\"\n"
                                "command = [\"sh\", \"-c\", \"echo hello from slurm; exit 0\"]\n"
                                "walltime = \"1m\"\n[job.hints]\ncpus = 1\nmemory = \"64MiB\"\n"
                                "[job.profile]\nskip = true\n");
  auto id = a.submit(job);
  ASSERT_FALSE(id.empty());
  auto s = a.wait_final(id, 60s);
  ASSERT_EQ(s.value("state", ""), "done") << s.dump(2) << "\n" << a.proc().err() << cluster.logs();
  EXPECT_EQ(s["exit_code"], 0);
  EXPECT_EQ(s.value("provider", ""), "hpc");
  EXPECT_EQ(s["allocated"]["cpu"], 1.0) << s["allocated"].dump(); // whole cores, in cores

  // Slurm ran it: the job is in Slurm's records under tender's name, done.
  auto q = cluster.run("squeue", {"--noheader", "--states=all", "--name=tender-" + id,
                                  "--format=%T|%k"});
  ASSERT_TRUE(std::holds_alternative<command_output>(q)) << std::get<std::string>(q);
  EXPECT_EQ(std::get<command_output>(q).out.substr(0, 10), "COMPLETED|");
}
