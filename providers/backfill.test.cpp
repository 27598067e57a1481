#include "providers/backfill.hpp"
#include "providers/capacity_plan.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace tender {
namespace {

plan_amount procs(std::int64_t n) {
  return {n, 0, 0};
}

// --- capacity_plan -----------------------------------------------------------

TEST(capacity_plan, earliest_start_waits_for_predicted_ends) {
  capacity_plan p(procs(10));
  ASSERT_TRUE(p.add_running("a", procs(6), 0, 100));
  ASSERT_TRUE(p.add_running("b", procs(2), 0, 300));
  EXPECT_EQ(p.free_now(), procs(2));
  EXPECT_EQ(p.earliest(procs(2), 1000, 10), 10);
  EXPECT_EQ(p.earliest(procs(8), 50, 10), 100);
  EXPECT_EQ(p.earliest(procs(10), 50, 10), 300);
  EXPECT_FALSE(p.earliest(procs(11), 1, 10).has_value());
  EXPECT_FALSE(p.add_running("c", procs(3), 10, 20)) << "only 2 free";
  EXPECT_FALSE(p.add_running("a", procs(1), 10, 20)) << "id taken";
}

TEST(capacity_plan, a_reservation_blocks_a_window_and_jobs_fit_around_it) {
  capacity_plan p(procs(10));
  ASSERT_TRUE(p.add_reservation("r", procs(8), 100, 200));
  // Before the reservation there is room for a short job, not a long one.
  EXPECT_EQ(p.earliest(procs(5), 100, 0), 0);
  EXPECT_EQ(p.earliest(procs(5), 101, 0), 200);
  EXPECT_EQ(p.earliest(procs(2), 1000, 0), 0);
  EXPECT_TRUE(p.fits(procs(2), 150, 10));
  EXPECT_FALSE(p.fits(procs(3), 150, 10));
  EXPECT_FALSE(p.add_reservation("s", procs(3), 150, 160));
  EXPECT_FALSE(p.add_reservation("t", procs(1), 160, 160)) << "empty interval";
  // The profile shows the dip.
  auto prof = p.profile(0);
  ASSERT_EQ(prof.size(), 3u);
  EXPECT_EQ(prof[0].free, procs(10));
  EXPECT_EQ(prof[1].at, 100);
  EXPECT_EQ(prof[1].free, procs(2));
  EXPECT_EQ(prof[2].at, 200);
  EXPECT_EQ(prof[2].free, procs(10));
}

TEST(capacity_plan, a_running_job_past_its_prediction_still_holds_its_capacity) {
  capacity_plan p(procs(4));
  ASSERT_TRUE(p.add_running("a", procs(4), 0, 50));
  // At 80 the job should have ended but has not: the plan does not know until the
  // end is corrected, but nothing can be added to run now.
  EXPECT_EQ(p.free_now(), procs(0));
  EXPECT_FALSE(p.add_running("b", procs(1), 80, 90));
  ASSERT_TRUE(p.set_end("a", 500));
  EXPECT_EQ(p.earliest(procs(1), 10, 80), 500);
  EXPECT_FALSE(p.set_end("nobody", 1));
}

TEST(capacity_plan, reservations_start_expire_resize_and_return_capacity) {
  capacity_plan p(procs(10));
  ASSERT_TRUE(p.add_reservation("r", procs(6), 100, 200));
  ASSERT_TRUE(p.add_reservation("u", procs(4), 100, 200));
  ASSERT_TRUE(p.add_running("x", procs(4), 0, 100));
  // r cannot start while x runs: 6 wanted, 6 free, fine; then u cannot.
  ASSERT_TRUE(p.start_reserved("r", 100, 250));
  EXPECT_EQ(p.free_now(), procs(0));
  EXPECT_FALSE(p.start_reserved("u", 100, 250)) << "x still runs";
  EXPECT_FALSE(p.start_reserved("x", 100, 250)) << "not a reservation";
  // u was never used: it expires after its grace and its capacity returns.
  EXPECT_TRUE(p.expire(100 + 30, 60).empty());
  EXPECT_EQ(p.expire(100 + 60, 60), std::vector<std::string>{"u"});
  EXPECT_EQ(p.find("u"), nullptr);
  ASSERT_TRUE(p.remove("x"));
  EXPECT_EQ(p.free_now(), procs(4));
  // In-place resize only within what is free.
  EXPECT_TRUE(p.resize("r", procs(9), 160));
  EXPECT_EQ(p.free_now(), procs(1));
  EXPECT_FALSE(p.resize("r", procs(11), 160));
  EXPECT_EQ(p.find("r")->amount, procs(9));
  EXPECT_TRUE(p.resize("r", procs(2), 160)) << "shrinking gives capacity back";
  EXPECT_EQ(p.free_now(), procs(8));
  EXPECT_FALSE(p.remove("x"));
}

TEST(capacity_plan, memory_and_gpus_count_as_separate_dimensions) {
  capacity_plan p({8000, 32, 2});
  ASSERT_TRUE(p.add_running("gpu", {1000, 4, 2}, 0, 100));
  EXPECT_EQ(p.earliest({1000, 4, 1}, 10, 0), 100) << "no GPU free before 100";
  EXPECT_EQ(p.earliest({7000, 28, 0}, 10, 0), 0);
  EXPECT_EQ(p.earliest({1000, 29, 0}, 10, 0), 100) << "memory is short";
}

// --- easy_scheduler ----------------------------------------------------------

waiting_job job(std::uint64_t key, std::int64_t n, usec estimate, usec order = 0) {
  waiting_job j;
  j.key = key;
  j.amount = procs(n);
  j.estimate = estimate;
  j.order_estimate = order;
  return j;
}

TEST(easy_scheduler, the_head_keeps_its_reservation_and_short_jobs_backfill) {
  easy_scheduler s(procs(10), backfill_order::fcfs);
  ASSERT_EQ(s.submit(job(1, 6, 100)), "");
  auto st = s.schedule(0);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].predicted_end, 100);
  ASSERT_EQ(s.submit(job(2, 8, 50)), "");  // head: waits for job 1
  ASSERT_EQ(s.submit(job(3, 4, 200)), ""); // would end after the shadow, 4 > extra 2
  ASSERT_EQ(s.submit(job(4, 4, 60)), "");  // ends by the shadow: backfills
  ASSERT_EQ(s.submit(job(5, 2, 500)), ""); // fits in the extra... but nothing is free now
  st = s.schedule(10);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].key, 4u);
  EXPECT_TRUE(st[0].backfilled);
  ASSERT_TRUE(s.head_reservation());
  EXPECT_EQ(s.head_reservation()->key, 2u);
  EXPECT_EQ(s.head_reservation()->start, 100);
  EXPECT_EQ(s.head_reservation()->extra, procs(2));
  // Job 4 ends early: now 4 are free, job 5 fits in the extra, job 3 still not.
  ASSERT_TRUE(s.finish(4));
  st = s.schedule(40);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].key, 5u);
  EXPECT_EQ(s.head_reservation()->extra, procs(0));
  // Job 1 ends: the head starts; job 3 waits for capacity.
  ASSERT_TRUE(s.finish(1));
  st = s.schedule(100);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].key, 2u);
  EXPECT_FALSE(st[0].backfilled);
  EXPECT_EQ(s.waiting(), 1u);
  EXPECT_EQ(s.running(), 2u);
}

TEST(easy_scheduler, shortest_first_backfills_the_shortest_planned_job_first) {
  for (auto order : {backfill_order::fcfs, backfill_order::shortest_first}) {
    easy_scheduler s(procs(4), order);
    ASSERT_EQ(s.submit(job(1, 3, 100)), "");
    s.schedule(0);
    ASSERT_EQ(s.submit(job(2, 4, 100)), ""); // head
    ASSERT_EQ(s.submit(job(3, 1, 90)), "");
    ASSERT_EQ(s.submit(job(4, 1, 20)), "");
    auto st = s.schedule(0);
    ASSERT_EQ(st.size(), 1u);
    EXPECT_EQ(st[0].key, order == backfill_order::fcfs ? 3u : 4u) << to_string(order);
  }
  // The order key may differ from the planned run time (tender: median vs upper bound).
  easy_scheduler s(procs(4), backfill_order::shortest_first);
  ASSERT_EQ(s.submit(job(1, 3, 100)), "");
  s.schedule(0);
  ASSERT_EQ(s.submit(job(2, 4, 100)), "");
  ASSERT_EQ(s.submit(job(3, 1, 90, 10)), "");
  ASSERT_EQ(s.submit(job(4, 1, 20, 15)), "");
  auto st = s.schedule(0);
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].key, 3u);
}

TEST(easy_scheduler, bad_jobs_are_refused_with_a_reason) {
  easy_scheduler s(procs(4), backfill_order::fcfs);
  EXPECT_NE(s.submit(job(1, 5, 10)).find("more than the whole capacity"), std::string::npos);
  EXPECT_NE(s.submit(job(1, -1, 10)).find("negative"), std::string::npos);
  EXPECT_NE(s.submit(job(1, 1, 0)).find("positive"), std::string::npos);
  ASSERT_EQ(s.submit(job(1, 1, 10)), "");
  EXPECT_NE(s.submit(job(1, 1, 10)).find("already known"), std::string::npos);
  EXPECT_TRUE(s.cancel(1));
  EXPECT_FALSE(s.cancel(1));
  EXPECT_TRUE(s.schedule(0).empty());
  EXPECT_FALSE(s.finish(1));
}

TEST(easy_scheduler, an_overdue_job_is_listed_until_corrected) {
  easy_scheduler s(procs(4), backfill_order::fcfs);
  ASSERT_EQ(s.submit(job(1, 4, 100)), "");
  s.schedule(0);
  ASSERT_EQ(s.submit(job(2, 4, 10)), "");
  s.schedule(1);
  EXPECT_EQ(s.head_reservation()->start, 100);
  EXPECT_TRUE(s.overdue(99).empty());
  EXPECT_EQ(s.overdue(100), std::vector<std::uint64_t>{1});
  EXPECT_EQ(s.next_planned_end(), 100);
  ASSERT_TRUE(s.correct(1, 400));
  EXPECT_TRUE(s.overdue(100).empty());
  s.schedule(100);
  EXPECT_EQ(s.head_reservation()->start, 400);
  EXPECT_FALSE(s.correct(2, 5)) << "not running";
}

TEST(easy_scheduler, the_projection_places_every_waiting_job_without_overbooking) {
  easy_scheduler s(procs(10), backfill_order::fcfs);
  ASSERT_EQ(s.submit(job(1, 7, 100)), "");
  s.schedule(0);
  ASSERT_EQ(s.submit(job(2, 5, 50)), "");
  ASSERT_EQ(s.submit(job(3, 6, 50)), "");
  ASSERT_EQ(s.submit(job(4, 3, 1000)), "");
  s.schedule(0); // job 4 fits now but would delay job 2 beyond... 3 <= extra 5: starts
  auto pr = s.projection(10);
  std::map<std::uint64_t, easy_scheduler::planned> by;
  for (const auto& e : pr)
    by[e.key] = e;
  ASSERT_EQ(by.size(), 4u);
  EXPECT_EQ(by[1].what, easy_scheduler::planned::kind::running);
  EXPECT_EQ(by[4].what, easy_scheduler::planned::kind::running);
  EXPECT_EQ(by[2].what, easy_scheduler::planned::kind::reserved);
  EXPECT_EQ(by[2].start, 100);
  EXPECT_EQ(by[3].what, easy_scheduler::planned::kind::projected);
  EXPECT_EQ(by[3].start, 150) << "after job 2, while job 4 runs";
  for (const auto& st : s.plan(10).profile(10))
    EXPECT_FALSE(st.free.negative()) << "overbooked at " << st.at;
  // Free: 0 until 100, 2 until 150, 1 until 200, then 7.
  EXPECT_EQ(s.projected_start(procs(2), 10, 10), 100);
  EXPECT_EQ(s.projected_start(procs(2), 60, 10), 200);
  EXPECT_EQ(s.projected_start(procs(3), 10, 10), 200);
  EXPECT_FALSE(s.projected_start(procs(11), 10, 10).has_value());
}

// EASY's promise, checked on random workloads where run times are exactly as
// planned: the first waiting job never starts later than the reservation it got
// when it became the head, and capacity is never overbooked.
TEST(easy_scheduler, with_exact_estimates_no_head_is_ever_delayed) {
  for (auto order : {backfill_order::fcfs, backfill_order::shortest_first}) {
    std::mt19937_64 rng(7);
    easy_scheduler s(procs(64), order);
    std::map<std::uint64_t, usec> runtime, promised;
    std::multimap<usec, std::uint64_t> ends;
    usec now = 0;
    std::uint64_t next = 1;
    int delayed = 0;
    auto pass = [&] {
      for (const auto& st : s.schedule(now)) {
        ends.emplace(now + runtime[st.key], st.key);
        EXPECT_EQ(st.predicted_end, now + runtime[st.key]);
        if (promised.count(st.key) && now > promised[st.key])
          ++delayed;
      }
      EXPECT_GE(s.free_now().cpu, 0);
      if (auto h = s.head_reservation(); h && !promised.count(h->key))
        promised[h->key] = h->start;
    };
    for (int step = 0; step < 4000; ++step) {
      const usec arrival = now + static_cast<usec>(rng() % 40);
      // Every end before the next arrival is its own event.
      while (!ends.empty() && ends.begin()->first <= arrival) {
        now = ends.begin()->first;
        while (!ends.empty() && ends.begin()->first == now) {
          ASSERT_TRUE(s.finish(ends.begin()->second));
          ends.erase(ends.begin());
        }
        pass();
      }
      now = arrival;
      if (rng() % 3 != 0) {
        usec run = 1 + static_cast<usec>(rng() % 500);
        std::int64_t n = 1 + static_cast<std::int64_t>(rng() % 64);
        ASSERT_EQ(s.submit(job(next, n, run)), "");
        runtime[next++] = run;
      }
      pass();
    }
    EXPECT_EQ(delayed, 0) << to_string(order);
    EXPECT_GT(promised.size(), 100u) << "the workload must make jobs wait";
  }
}

} // namespace
} // namespace tender
