#include "actors/offer_scorer.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>

using namespace tender;

namespace {

resource_request request(usec runtime, usec lo, usec hi, usec deadline, micros max_cost) {
  resource_request r;
  r.job_id = "j";
  r.auction_id = "a";
  r.profile.runtime = runtime;
  r.profile.runtime_lo = lo;
  r.profile.runtime_hi = hi;
  r.deadline = deadline;
  r.max_cost = max_cost;
  return r;
}

offer make_offer(micros rate, usec start, double preempt = 0, double avail = 1.0) {
  offer o;
  o.offer_id = "o";
  o.provider = "p";
  o.rate_per_hour = rate;
  o.price = cost_for(rate, 3600 * sec_us);
  o.earliest_start = start;
  o.terms.availability = avail;
  o.terms.preemption_probability = preempt;
  return o;
}

} // namespace

TEST(offer_scorer, cost_for_is_exact_and_rounds_up) {
  EXPECT_EQ(cost_for(3'600'000, 3600 * sec_us), 3'600'000);
  EXPECT_EQ(cost_for(3'600'000, sec_us), 1'000);
  EXPECT_EQ(cost_for(1, sec_us), 1); // a fraction of a micro-dollar rounds up
  EXPECT_EQ(cost_for(0, sec_us), 0);
}

TEST(offer_scorer, expected_cost_integrates_over_the_runtime_distribution) {
  offer_scorer s{scoring_config{}};
  auto narrow = request(3600 * sec_us, 3500 * sec_us, 3700 * sec_us, 0, 0);
  auto wide = request(3600 * sec_us, 600 * sec_us, 20000 * sec_us, 0, 0);
  auto o = make_offer(1'000'000, 0);
  auto a = s.score(o, narrow, 0, 0);
  auto b = s.score(o, wide, 0, 0);
  EXPECT_NEAR(a.expected_cost, 1'000'000, 5'000);
  // A right-skewed distribution has a mean above its median: a point estimate
  // would under-price the wide one.
  EXPECT_GT(b.expected_cost, a.expected_cost * 1.2);
}

TEST(offer_scorer, budget_feasibility_uses_the_upper_end) {
  offer_scorer s{scoring_config{}};
  auto r = request(3600 * sec_us, 1800 * sec_us, 7200 * sec_us, 0, 1'500'000);
  auto o = make_offer(1'000'000, 0);
  auto sc = s.score(o, r, 0, 0);
  EXPECT_FALSE(sc.feasible);
  EXPECT_EQ(sc.worst_cost, 2'000'000);
  EXPECT_NE(sc.why.find("over budget"), std::string::npos);
  r.max_cost = 2'000'000;
  EXPECT_TRUE(s.score(o, r, 0, 0).feasible);
}

TEST(offer_scorer, a_late_start_or_preemption_lowers_the_deadline_probability) {
  offer_scorer s{scoring_config{}};
  usec now = 1'000 * sec_us;
  auto r = request(600 * sec_us, 400 * sec_us, 900 * sec_us, now + 1200 * sec_us, 0);
  auto early = s.score(make_offer(1000, now), r, 0, now);
  auto late = s.score(make_offer(1000, now + 500 * sec_us), r, 0, now);
  auto spot = s.score(make_offer(1000, now, 2.0), r, 0, now);
  EXPECT_GT(early.p_deadline, 0.95);
  EXPECT_LT(late.p_deadline, early.p_deadline);
  EXPECT_FALSE(late.feasible);
  EXPECT_LT(spot.p_deadline, early.p_deadline);
  auto hopeless = s.score(make_offer(1000, now + 1300 * sec_us), r, 0, now);
  EXPECT_EQ(hopeless.p_deadline, 0);
}

TEST(offer_scorer, provider_risk_raises_the_risk_adjusted_cost) {
  offer_scorer s{scoring_config{}};
  auto r = request(3600 * sec_us, 3000 * sec_us, 4000 * sec_us, 0, 0);
  auto o = make_offer(1'000'000, 0);
  auto reliable = s.score(o, r, breach_posterior(0, 20), 0);
  auto flaky = s.score(o, r, breach_posterior(10, 2), 0);
  EXPECT_LT(reliable.risk_adjusted, flaky.risk_adjusted);
}

TEST(offer_scorer, breach_posterior_is_the_beta_mean) {
  EXPECT_DOUBLE_EQ(breach_posterior(0, 0), 0.05);
  EXPECT_DOUBLE_EQ(breach_posterior(1, 3), 2.0 / 24.0);
  EXPECT_GT(breach_posterior(5, 0), breach_posterior(0, 5));
}

TEST(offer_scorer, the_account_of_a_feasible_offer_prints_as_printf_would) {
  // The account is assembled with to_chars from the terms when shown (the scorer
  // leaves it out); it must read exactly as "E[cost] $%.6f, P(on time) %.3f,
  // P(breach) %.3f" from printf.
  offer_scorer s{scoring_config{}};
  std::mt19937 rng(7);
  std::uniform_int_distribution<micros> rate(0, 50'000'000);
  std::uniform_int_distribution<usec> runtime(1, 48 * 3600);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  int compared = 0;
  for (int i = 0; i < 2000; ++i) {
    usec rt = runtime(rng) * sec_us;
    auto r = request(rt, rt / 2, rt * 2, 0, 0);
    auto o = make_offer(rate(rng), 0, unit(rng) * 0.2, 0.9 + unit(rng) * 0.1);
    double breach = unit(rng) * (i % 3 == 0 ? 1e-4 : 1.0);
    auto sc = s.score(o, r, breach, 0);
    ASSERT_TRUE(sc.feasible) << sc.why;
    char want[160];
    std::snprintf(want, sizeof want, "E[cost] $%.6f, P(on time) %.3f, P(breach) %.3f",
                  sc.expected_cost / 1e6, sc.p_deadline, breach);
    EXPECT_EQ(sc.why, "");
    auto t = sc.terms();
    fill_account(t);
    EXPECT_EQ(t.note, want);
    ++compared;
  }
  EXPECT_EQ(compared, 2000);
}
