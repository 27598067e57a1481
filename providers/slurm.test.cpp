// The slurm provider's pieces that need no cluster: Slurm's text, the child-process
// runner and its deadline. The provider against a real Slurm: tests/slurm.test.cpp.

#include "providers/slurm.hpp"

#include "providers/testing.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>

namespace tender {
namespace {

using namespace tender::testing;

TEST(slurm_text, reads_the_start_time_of_test_only) {
  usec t = 0;
  ASSERT_TRUE(slurm_text::parse_test_only(
    "sbatch: Job 10 to start at 2026-11-25T15:45:54 using 2 processors on nodes localhost in "
    "partition debug\n",
    t));
  usec want = 0;
  ASSERT_TRUE(slurm_text::parse_time("2026-11-25T15:45:54", want));
  EXPECT_EQ(t, want);
  EXPECT_EQ(slurm_text::format_time(want), "2026-11-25T15:45:54");
  EXPECT_FALSE(slurm_text::parse_test_only(
    "allocation failure: Requested node configuration is not available", t));
  EXPECT_FALSE(slurm_text::parse_time("Unknown", t));
  EXPECT_FALSE(slurm_text::parse_time("2026-11-25T15:45:54x", t));
}

TEST(slurm_text, times_are_the_clusters_local_time) {
  usec t = 0;
  ASSERT_TRUE(slurm_text::parse_time("2026-11-25T15:45:54", t));
  std::time_t s = static_cast<std::time_t>(t / sec_us);
  std::tm tm{};
  ::localtime_r(&s, &tm);
  EXPECT_EQ(tm.tm_hour, 15);
  EXPECT_EQ(tm.tm_min, 45);
  EXPECT_EQ(tm.tm_sec, 54);
}

TEST(slurm_text, reads_durations_and_sizes) {
  usec d = 0;
  ASSERT_TRUE(slurm_text::parse_duration("00:00:00", d));
  EXPECT_EQ(d, 0);
  ASSERT_TRUE(slurm_text::parse_duration("01:02.500", d));
  EXPECT_EQ(d, 62'500'000);
  ASSERT_TRUE(slurm_text::parse_duration("02:00:03", d));
  EXPECT_EQ(d, 7203 * sec_us);
  ASSERT_TRUE(slurm_text::parse_duration("1-00:00:01", d));
  EXPECT_EQ(d, 86401 * sec_us);
  EXPECT_FALSE(slurm_text::parse_duration("UNLIMITED", d));
  EXPECT_FALSE(slurm_text::parse_duration("", d));

  bytes_t b = 0;
  ASSERT_TRUE(slurm_text::parse_size("3252K", b));
  EXPECT_EQ(b, 3252 * 1024);
  ASSERT_TRUE(slurm_text::parse_size("1.00M", b));
  EXPECT_EQ(b, 1024 * 1024);
  ASSERT_TRUE(slurm_text::parse_size("15123", b));
  EXPECT_EQ(b, 15123);
  EXPECT_FALSE(slurm_text::parse_size("12Q", b));
}

TEST(slurm_text, reads_scontrol_oneliners) {
  auto kv = slurm_text::key_values(
    "JobId=4 JobName=tender-x JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0 "
    "StartTime=2026-11-25T15:43:34 Comment=two words Power= NodeName=a NodeName=b");
  EXPECT_EQ(kv["JobState"], "FAILED");
  EXPECT_EQ(kv["ExitCode"], "3:0");
  EXPECT_EQ(kv["Comment"], "two words");
  EXPECT_EQ(kv["Power"], "");
  EXPECT_EQ(kv["NodeName"], "a");
}

TEST(slurm_text, quotes_shell_words) {
  EXPECT_EQ(slurm_text::shell_quote("plain"), "'plain'");
  EXPECT_EQ(slurm_text::shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(slurm_text::shell_quote(""), "''");
}

TEST(slurm_provider_names, reservations_and_jobs_are_named_after_their_ids) {
  EXPECT_EQ(slurm_provider::reservation_name("j-1/hpc/r1/ab12cd-3/a"), "tender_j-1_hpc_r1_ab12cd-3_a");
  EXPECT_EQ(slurm_provider::job_name("j-1"), "tender-j-1");
}

TEST(run_command, captures_output_and_exit_status) {
  auto r = run_command({"sh", "-c", "echo out; echo err >&2; echo $TENDER_X; exit 3"},
                       {{"TENDER_X", "x y"}}, 5 * sec_us);
  ASSERT_TRUE(std::holds_alternative<command_output>(r)) << std::get<std::string>(r);
  const auto& o = std::get<command_output>(r);
  EXPECT_EQ(o.exit_code, 3);
  EXPECT_EQ(o.out, "out\nx y\n");
  EXPECT_EQ(o.err, "err\n");
}

TEST(run_command, never_blocks_past_its_deadline) {
  const auto t = std::chrono::steady_clock::now();
  // The grandchild keeps the pipes open: the whole process group must go.
  auto r = run_command({"sh", "-c", "sleep 30 & echo started >&2; sleep 30"}, {}, 300 * ms_us);
  const auto took = std::chrono::steady_clock::now() - t;
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_EQ(std::get<std::string>(r),
            "`sh -c sleep 30 & echo started >&2; sleep 30` did not finish within " +
              format_duration(300 * ms_us) + " (stderr: started)");
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(run_command, names_a_missing_program) {
  auto r = run_command({"no-such-tool-tender", "x"}, {}, sec_us);
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_EQ(std::get<std::string>(r), "`no-such-tool-tender x`: no-such-tool-tender is not on PATH");
}

TEST(slurm_cli, a_failure_names_the_command_and_its_stderr) {
  slurm_cli cli("/nonexistent/slurm.conf", "/bin", 5 * sec_us);
  auto r = cli.run("sh", {"-c", "echo 'Requested nodes are busy' >&2; exit 1"});
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  EXPECT_EQ(std::get<std::string>(r),
            "`sh -c echo 'Requested nodes are busy' >&2; exit 1` failed (exit 1): Requested nodes "
            "are busy");
  auto env = cli.run("sh", {"-c", "echo $SLURM_CONF"});
  ASSERT_TRUE(std::holds_alternative<command_output>(env));
  EXPECT_EQ(std::get<command_output>(env).out, "/nonexistent/slurm.conf\n");
}

TEST(slurm_provider_offline, a_bid_without_slurm_is_declined_with_the_reason) {
  provider_config cfg;
  cfg.name = "hpc";
  cfg.kind = "slurm";
  cfg.slurm_bin_dir = "/nonexistent-slurm-bin";
  cfg.price_per_core_hour = 40'000;
  slurm_provider p(cfg, scratch_root("tender-slurm").string());
  auto r = p.bid(request("j1", resources{1000, 64 << 20, 0, "", 0}, 60 * sec_us), t0);
  ASSERT_TRUE(std::holds_alternative<decline>(r));
  EXPECT_EQ(std::get<decline>(r).reason.rfind("Slurm cannot place it: `/nonexistent-slurm-bin/sbatch "
                                              "--test-only",
                                              0),
            0u)
    << std::get<decline>(r).reason;

  auto gpu = p.bid(request("j2", resources{1000, 0, 1, "T4", 0}, 60 * sec_us), t0);
  ASSERT_TRUE(std::holds_alternative<decline>(gpu));
  EXPECT_EQ(std::get<decline>(gpu).reason,
            "no GPU of type T4 (this provider asks Slurm for CPUs and memory only)");
}

} // namespace
} // namespace tender
