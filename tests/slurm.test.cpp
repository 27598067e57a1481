// The slurm provider against a real single-node Slurm (munged + slurmctld + slurmd,
// started by the fixture on loopback). Skipped only when Slurm is not installed;
// tools/install-deps installs it.

#include "providers/slurm.hpp"
#include "providers/testing.hpp"
#include "tests/slurm_cluster.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace tender {
namespace {

using namespace tender::testing;
using test::slurm_cluster;
using namespace std::chrono_literals;

constexpr bytes_t mib = bytes_t{1} << 20;

resources cores(millicores cpu, bytes_t memory = 64 * mib) {
  resources r;
  r.cpu = cpu;
  r.memory = memory;
  return r;
}

award award_for(const offer& o) {
  award a;
  a.offer_id = o.offer_id;
  a.job_id = o.job_id;
  a.auction_id = o.auction_id;
  a.provider = o.provider;
  return a;
}

launch launch_for(const allocation& a, std::vector<std::string> command) {
  launch l;
  l.job_id = a.job_id;
  l.allocation_id = a.allocation_id;
  l.lease_token = a.lease_token;
  l.spec.name = a.job_id;
  l.spec.command = std::move(command);
  return l;
}

class slurm : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    if (slurm_cluster::missing_tools().empty())
      cluster_ = new slurm_cluster();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    if (auto missing = slurm_cluster::missing_tools(); !missing.empty())
      GTEST_SKIP() << "Slurm is not installed (missing " << missing
                   << "); tools/install-deps installs slurm-wlm and munge";
    ASSERT_TRUE(cluster_->up()) << cluster_->error();
    root_ = scratch_root("tender-slurm").string();
  }

  void TearDown() override {
    if (!root_.empty() && !std::getenv("TENDER_KEEP_TEST_DIRS")) {
      std::error_code ec;
      std::filesystem::remove_all(root_, ec);
    }
    if (!cluster_ || !cluster_->up())
      return;
    if (HasFailure())
      std::cerr << "Slurm cluster in " << cluster_->dir() << "\n" << cluster_->logs();
    cluster_->reset();
  }

  slurm_cluster& c() { return *cluster_; }

  std::unique_ptr<slurm_provider> make(usec lease_ttl = 600 * sec_us) {
    return std::make_unique<slurm_provider>(c().provider(), root_, random_token, lease_ttl);
  }

  offer must_bid(slurm_provider& p, const resource_request& r) {
    auto b = p.bid(r, wall_now());
    if (auto* d = std::get_if<decline>(&b)) {
      ADD_FAILURE() << "declined: " << d->reason;
      return {};
    }
    return std::get<offer>(b);
  }

  allocation must_hold(slurm_provider& p, const offer& o) {
    auto h = p.hold(award_for(o), wall_now());
    if (auto* r = std::get_if<commit_refuse>(&h)) {
      ADD_FAILURE() << "refused: " << r->reason;
      return {};
    }
    return std::get<commit_confirm>(h).alloc;
  }

  /// Submits a job straight to Slurm that takes the whole node for its one-minute limit.
  std::string block_the_node() {
    auto r = c().run("sbatch", {"--parsable", "--cpus-per-task=2", "--mem=64M", "--time=1",
                                "--job-name=blocker", "--output=/dev/null", "--wrap=sleep 120"});
    if (auto* e = std::get_if<std::string>(&r)) {
      ADD_FAILURE() << *e;
      return {};
    }
    std::string id = std::get<command_output>(r).out;
    id = id.substr(0, id.find_first_of(";\n"));
    const bool running = test_wait([&] { return c().show("job", id)["JobState"] == "RUNNING"; }, 20s);
    EXPECT_TRUE(running) << "the blocker did not start: " << c().show("job", id)["Reason"];
    return id;
  }

  bool reservation_exists(const std::string& name) {
    return !c().show("reservation", name)["ReservationName"].empty();
  }

  template <class Pred> static bool test_wait(Pred pred, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (pred())
        return true;
      std::this_thread::sleep_for(100ms);
    }
    return pred();
  }

  /// Polls until a final report for `allocation_id` (or the timeout); returns all reports.
  std::vector<usage_report> poll_to_end(slurm_provider& p, const std::string& allocation_id,
                                        std::chrono::milliseconds timeout) {
    std::vector<usage_report> seen;
    test_wait(
      [&] {
        for (auto& r : p.poll(wall_now()))
          if (r.allocation_id == allocation_id)
            seen.push_back(std::move(r));
        return !seen.empty() && seen.back().final;
      },
      timeout);
    return seen;
  }

  static slurm_cluster* cluster_;
  std::string root_;
};

slurm_cluster* slurm::cluster_ = nullptr;

TEST_F(slurm, bid_returns_slurms_earliest_start_and_the_configured_price) {
  auto p = make();
  // An idle node: Slurm would start it now.
  const usec before = wall_now();
  offer now_offer = must_bid(*p, request("j-idle", cores(500, 100 * mib), 60 * sec_us));
  EXPECT_GE(now_offer.earliest_start, before);
  EXPECT_LE(now_offer.earliest_start, wall_now() + sec_us);
  // Slurm allocates whole cores and MiB; the price is cores and GiB at the configured rates.
  EXPECT_EQ(now_offer.granted, cores(1000, 100 * mib));
  EXPECT_EQ(p->hourly_rate(now_offer.granted), 40'000 + 489); // 0.04 + 100/1024 * 0.005, rounded up
  EXPECT_EQ(now_offer.price, (40'489 + 59) / 60);               // for one minute, rounded up
  EXPECT_EQ(now_offer.provider, "hpc");

  // A busy node: the start Slurm plans, at the end of the blocker's time limit.
  const std::string blocker = block_the_node();
  usec blocker_end = 0;
  ASSERT_TRUE(slurm_text::parse_time(c().show("job", blocker)["EndTime"], blocker_end));
  offer later = must_bid(*p, request("j-later", cores(1000), 60 * sec_us));
  EXPECT_EQ(later.earliest_start, blocker_end);
  EXPECT_GT(later.earliest_start, wall_now() + 30 * sec_us);

  // What Slurm cannot place at all is declined with its own words.
  auto too_big = p->bid(request("j-big", cores(64'000), 60 * sec_us), wall_now());
  ASSERT_TRUE(std::holds_alternative<decline>(too_big));
  EXPECT_NE(std::get<decline>(too_big).reason.find("Slurm cannot place it: `sbatch --test-only"),
            std::string::npos)
    << std::get<decline>(too_big).reason;
}

TEST_F(slurm, hold_creates_a_reservation_and_an_overlapping_hold_is_refused_by_slurm) {
  auto p = make();
  offer first = must_bid(*p, request("j-a", cores(2000), 60 * sec_us));
  offer second = must_bid(*p, request("j-b", cores(2000), 60 * sec_us));

  allocation a = must_hold(*p, first);
  const std::string name = slurm_provider::reservation_name(a.allocation_id);
  auto res = c().show("reservation", name);
  EXPECT_EQ(res["ReservationName"], name);
  EXPECT_EQ(res["CoreCnt"], "2");
  EXPECT_EQ(res["Users"], "root");
  EXPECT_EQ(res["State"], "ACTIVE");
  EXPECT_EQ(a.granted, cores(2000));
  EXPECT_EQ(a.lease_token.size(), 64u);

  // Idempotent by offer id: the same allocation, no second reservation.
  auto again = p->hold(award_for(first), wall_now());
  ASSERT_TRUE(std::holds_alternative<commit_confirm>(again));
  EXPECT_EQ(std::get<commit_confirm>(again).alloc.allocation_id, a.allocation_id);
  EXPECT_EQ(std::get<commit_confirm>(again).alloc.lease_token, a.lease_token);

  // The second offer saw the same idle node, but Slurm will not hold its cores twice.
  auto refused = p->hold(award_for(second), wall_now());
  ASSERT_TRUE(std::holds_alternative<commit_refuse>(refused));
  const auto& why = std::get<commit_refuse>(refused).reason;
  EXPECT_EQ(why.rfind("Slurm refused the reservation: `scontrol create reservation", 0), 0u) << why;
  EXPECT_NE(why.find("Requested nodes are busy"), std::string::npos) << why;
  EXPECT_FALSE(reservation_exists(slurm_provider::reservation_name(second.offer_id + "/a")));

  tender::release r;
  r.allocation_id = a.allocation_id;
  p->release(r, wall_now());
  EXPECT_FALSE(reservation_exists(name));
}

TEST_F(slurm, start_runs_a_job_in_its_reservation_and_poll_reports_it_running_then_done) {
  auto p = make();
  offer o = must_bid(*p, request("j-run", cores(1000), 30 * sec_us));
  allocation a = must_hold(*p, o);
  const std::string name = slurm_provider::reservation_name(a.allocation_id);

  launch wrong = launch_for(a, {"true"});
  wrong.lease_token = std::string(64, '0');
  auto refused = p->start(wrong, wall_now());
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code, "lease");
  EXPECT_EQ(refused->message, "the lease token does not match allocation " + a.allocation_id);
  EXPECT_TRUE(p->slurm_job_of(a.allocation_id).empty()) << "nothing was submitted";

  launch l = launch_for(a, {"sh", "-c", "echo \"$GREETING\"; i=0; while [ $i -lt 300000 ]; do "
                                        "i=$((i+1)); done; sleep 1; exit 3"});
  l.spec.env["GREETING"] = "it's me";
  ASSERT_FALSE(p->start(l, wall_now()).has_value());
  const std::string job = p->slurm_job_of(a.allocation_id);
  ASSERT_FALSE(job.empty());
  auto shown = c().show("job", job);
  EXPECT_EQ(shown["Reservation"], name);
  EXPECT_EQ(shown["JobName"], "tender-j-run");
  EXPECT_EQ(shown["Comment"], a.allocation_id);
  EXPECT_FALSE(p->start(l, wall_now()).has_value()) << "the same launch again is accepted";

  auto reports = poll_to_end(*p, a.allocation_id, 40s);
  ASSERT_GE(reports.size(), 2u) << "expected running, then done";
  EXPECT_FALSE(reports.front().final);
  EXPECT_GT(reports.front().started_at, 0);
  bool sampled = false;
  for (auto& r : reports)
    sampled = sampled || !r.samples.empty();
  EXPECT_TRUE(sampled) << "sstat gave no usage sample while it ran";
  const usage_report& fin = reports.back();
  ASSERT_TRUE(fin.final);
  EXPECT_EQ(fin.exit_code, 3);
  EXPECT_EQ(fin.reason, "exited 3");
  EXPECT_EQ(fin.started_at, reports.front().started_at);
  EXPECT_GE(fin.finished_at, fin.started_at);
  EXPECT_FALSE(reservation_exists(name)) << "the reservation goes with the job";

  std::ifstream out(root_ + "/j-run/stdout");
  std::stringstream text;
  text << out.rdbuf();
  EXPECT_EQ(text.str(), "it's me\n");
}

TEST_F(slurm, a_pending_job_is_resized_in_place_within_its_reservation) {
  auto p = make();
  const std::string blocker = block_the_node();
  offer o = must_bid(*p, request("j-wait", cores(2000, 100 * mib), 30 * sec_us));
  ASSERT_GT(o.earliest_start, wall_now() + 30 * sec_us) << "the node is busy for a minute";
  allocation a = must_hold(*p, o);
  const std::string name = slurm_provider::reservation_name(a.allocation_id);
  // Slurm holds the blocker's last second: the reservation begins one second after it.
  EXPECT_EQ(a.start_at, o.earliest_start + sec_us);
  usec res_start = 0;
  ASSERT_TRUE(slurm_text::parse_time(c().show("reservation", name)["StartTime"], res_start));
  EXPECT_EQ(res_start, a.start_at);

  ASSERT_FALSE(p->start(launch_for(a, {"true"}), wall_now()).has_value());
  const std::string job = p->slurm_job_of(a.allocation_id);
  EXPECT_TRUE(p->poll(wall_now()).empty());
  EXPECT_EQ(c().show("job", job)["JobState"], "PENDING");

  scale_request smaller;
  smaller.job_id = a.job_id;
  smaller.allocation_id = a.allocation_id;
  smaller.wanted = cores(1000, 300 * mib);
  smaller.reason = "profile says one core";
  scale_offer s = p->scale(smaller, wall_now());
  EXPECT_TRUE(s.applied) << s.reason;
  EXPECT_TRUE(s.in_place);
  EXPECT_EQ(s.granted, cores(1000, 300 * mib));
  EXPECT_LT(s.price_delta, 0);
  auto shown = c().show("job", job);
  EXPECT_EQ(shown["NumCPUs"], "1");
  EXPECT_EQ(shown["MinMemoryNode"], "300M");
  EXPECT_EQ(shown["JobState"], "PENDING");

  scale_request bigger = smaller;
  bigger.wanted = cores(3000);
  scale_offer no = p->scale(bigger, wall_now());
  EXPECT_FALSE(no.applied);
  EXPECT_FALSE(no.in_place);
  EXPECT_EQ(no.reason, "reservation " + name +
                         " holds 2 cores and a core reservation cannot grow: a new allocation is "
                         "needed");

  tender::release r;
  r.allocation_id = a.allocation_id;
  p->release(r, wall_now());
  EXPECT_EQ(c().show("job", job)["JobState"], "CANCELLED");
  EXPECT_TRUE(test_wait([&] {
    p->poll(wall_now());
    return !reservation_exists(name);
  }, 10s));
  c().run("scancel", {blocker});
}

TEST_F(slurm, lease_expiry_deletes_an_unused_reservation) {
  auto p = make(2 * sec_us);
  offer o = must_bid(*p, request("j-late", cores(1000), 30 * sec_us));
  allocation a = must_hold(*p, o);
  const std::string name = slurm_provider::reservation_name(a.allocation_id);
  ASSERT_TRUE(reservation_exists(name));

  // Virtual time past the lease: the provider gives the capacity back to Slurm.
  const usec later = wall_now() + 3 * sec_us;
  EXPECT_TRUE(p->poll(later).empty());
  EXPECT_FALSE(reservation_exists(name));
  auto late = p->start(launch_for(a, {"true"}), later);
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->message, "the lease of allocation " + a.allocation_id + " has expired");
}

TEST_F(slurm, stop_cancels_a_running_job_and_its_final_report_says_why) {
  auto p = make();
  allocation a = must_hold(*p, must_bid(*p, request("j-stop", cores(1000), 30 * sec_us)));
  ASSERT_FALSE(p->start(launch_for(a, {"sleep", "60"}), wall_now()).has_value());
  std::vector<usage_report> running;
  ASSERT_TRUE(test_wait([&] {
    for (auto& r : p->poll(wall_now()))
      running.push_back(r);
    return !running.empty();
  }, 20s)) << "never ran";
  p->stop(a.job_id, "by user", wall_now());
  auto reports = poll_to_end(*p, a.allocation_id, 20s);
  ASSERT_FALSE(reports.empty());
  EXPECT_TRUE(reports.back().final);
  EXPECT_EQ(reports.back().reason, "stopped: by user");
  EXPECT_FALSE(reservation_exists(slurm_provider::reservation_name(a.allocation_id)));
}

TEST_F(slurm, adopt_after_a_restart_finds_the_slurm_job_by_its_name) {
  allocation a;
  {
    auto before = make();
    a = must_hold(*before, must_bid(*before, request("j-adopt", cores(1000), 30 * sec_us)));
    ASSERT_FALSE(
      before->start(launch_for(a, {"sh", "-c", "sleep 1; exit 0"}), wall_now()).has_value());
  } // the agent went away; Slurm keeps the job

  auto after = make();
  EXPECT_FALSE(after->adopt(a, wall_now()).has_value());
  EXPECT_FALSE(after->slurm_job_of(a.allocation_id).empty());
  auto reports = poll_to_end(*after, a.allocation_id, 30s);
  ASSERT_FALSE(reports.empty());
  EXPECT_TRUE(reports.back().final);
  EXPECT_EQ(reports.back().exit_code, 0);
  EXPECT_EQ(reports.back().reason, "exited 0");
  EXPECT_FALSE(reservation_exists(slurm_provider::reservation_name(a.allocation_id)));

  // An allocation Slurm knows nothing of is reported lost, not silently kept.
  allocation ghost = a;
  ghost.allocation_id = "j-ghost/hpc/r1/x-1/a";
  ghost.job_id = "j-ghost";
  auto lost = after->adopt(ghost, wall_now());
  ASSERT_TRUE(lost.has_value());
  EXPECT_TRUE(lost->final);
  EXPECT_EQ(lost->reason, "lost: Slurm has no job for allocation j-ghost/hpc/r1/x-1/a and no "
                          "reservation tender_j-ghost_hpc_r1_x-1_a");
}

} // namespace
} // namespace tender
