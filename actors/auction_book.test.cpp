#include "actors/auction_book.hpp"

#include <gtest/gtest.h>

using namespace tender;

namespace {

resource_request base() {
  resource_request r;
  r.job_id = "j1";
  r.auction_id = "a1";
  r.request.cpu = 1000;
  r.request.memory = 1 << 30;
  r.profile.runtime = 600 * sec_us;
  r.profile.runtime_lo = 300 * sec_us;
  r.profile.runtime_hi = 1200 * sec_us;
  return r;
}

offer good(const std::string& id, const std::string& provider, micros price, int round = 1) {
  offer o;
  o.offer_id = id;
  o.job_id = "j1";
  o.auction_id = "a1";
  o.round = round;
  o.provider = provider;
  o.granted.cpu = 2000;
  o.granted.memory = 2ll << 30;
  o.price = price;
  o.rate_per_hour = price * 6; // the price is for 10 minutes
  o.terms.availability = 1.0;
  o.valid_until = 100 * sec_us;
  return o;
}

auto no_risk = [](const std::string&) { return 0.0; };

} // namespace

TEST(auction_book, rejects_bad_offers_with_reasons_and_they_never_win) {
  auction_book b(base(), {"p1", "p2"});
  EXPECT_FALSE(b.add(good("o1", "p1", 500), 10, 50));
  auto dup = b.add(good("o1", "p1", 1), 10, 50);
  ASSERT_TRUE(dup);
  EXPECT_NE(dup->find("duplicate"), std::string::npos);
  auto foreign_job = good("o2", "p2", 1);
  foreign_job.job_id = "other";
  EXPECT_NE(b.add(foreign_job, 10, 50)->find("foreign"), std::string::npos);
  EXPECT_NE(b.add(good("o3", "stranger", 1), 10, 50)->find("unknown provider"),
            std::string::npos);
  auto negative = good("o4", "p2", -5);
  EXPECT_NE(b.add(negative, 10, 50)->find("negative"), std::string::npos);
  EXPECT_NE(b.add(good("o5", "p2", 1), 60, 50)->find("late"), std::string::npos);
  auto expired = good("o6", "p2", 1);
  expired.valid_until = 5;
  EXPECT_NE(b.add(expired, 10, 50)->find("expired"), std::string::npos);
  auto small = good("o7", "p2", 1);
  small.granted.cpu = 500;
  EXPECT_NE(b.add(small, 10, 50)->find("cover"), std::string::npos);
  EXPECT_EQ(b.rejected(), 7);
  auto r = b.rank(offer_scorer{scoring_config{}}, no_risk, 20);
  ASSERT_EQ(r.feasible.size(), 1u);
  EXPECT_EQ(r.feasible.front()->o.offer_id, "o1");
}

TEST(auction_book, price_to_beat_is_the_plain_best_price) {
  auction_book b(base(), {"p1", "p2"});
  b.add(good("o1", "p1", 900), 10, 50);
  b.add(good("o2", "p2", 700), 10, 50);
  EXPECT_EQ(b.call_for(2, 99).price_to_beat, 700);
  EXPECT_EQ(b.call_for(2, 99).round, 2);
}

TEST(auction_book, a_later_round_supersedes_a_providers_earlier_offer) {
  auction_book b(base(), {"p1", "p2"});
  b.add(good("o1", "p1", 900), 10, 50);
  b.add(good("o2", "p2", 700), 10, 50);
  b.add(good("o3", "p1", 650, 2), 60, 90);
  auto r = b.rank(offer_scorer{scoring_config{}}, no_risk, 70);
  ASSERT_EQ(r.feasible.size(), 2u);
  EXPECT_EQ(r.feasible[0]->o.offer_id, "o3");
  EXPECT_EQ(r.feasible[1]->o.offer_id, "o2");
}

TEST(auction_book, an_equal_price_from_a_flaky_provider_loses) {
  auction_book b(base(), {"flaky", "steady"});
  b.add(good("o1", "flaky", 800), 10, 50);
  b.add(good("o2", "steady", 800), 10, 50);
  auto risk = [](const std::string& p) {
    return p == "flaky" ? breach_posterior(8, 2) : breach_posterior(0, 10);
  };
  auto r = b.rank(offer_scorer{scoring_config{}}, risk, 20);
  ASSERT_EQ(r.feasible.size(), 2u);
  EXPECT_EQ(r.feasible.front()->o.provider, "steady");
}

TEST(auction_book, vickrey_winner_pays_the_second_price) {
  auction_book b(base(), {"p1", "p2", "p3"});
  b.add(good("o1", "p1", 500), 10, 50);
  b.add(good("o2", "p2", 800), 10, 50);
  b.add(good("o3", "p3", 650), 10, 50);
  auto r = b.rank(offer_scorer{scoring_config{}}, no_risk, 20);
  EXPECT_EQ(r.feasible.front()->o.offer_id, "o1");
  EXPECT_EQ(b.second_price(r), 650);
}

TEST(auction_book, a_flaky_providers_recorded_breaches_make_it_lose_to_an_equal_price) {
  // SLA history as the journal records it: (provider, breach) per event.
  std::vector<std::pair<std::string, bool>> history = {
      {"flaky", true}, {"flaky", true}, {"flaky", false}, {"steady", false}, {"steady", false}};
  auto breach = [&](const std::string& p) {
    std::int64_t breaches = 0, kept = 0;
    for (auto& [who, b] : history)
      if (who == p)
        (b ? breaches : kept)++;
    return breach_posterior(breaches, kept);
  };
  EXPECT_GT(breach("flaky"), breach_posterior(0, 0)); // its risk rose from the prior
  EXPECT_LT(breach("steady"), breach_posterior(0, 0));

  auction_book b(base(), {"flaky", "steady"});
  // Same price, and "a..." would win the tie-break on offer id if risk were equal.
  ASSERT_FALSE(b.add(good("a-flaky", "flaky", 500), 10, 50));
  ASSERT_FALSE(b.add(good("b-steady", "steady", 500), 10, 50));
  auto r = b.rank(offer_scorer{scoring_config{}}, breach, 10);
  ASSERT_EQ(r.feasible.size(), 2u);
  EXPECT_EQ(r.feasible[0]->o.provider, "steady");
  EXPECT_EQ(r.feasible[0]->score.cost_term, r.feasible[1]->score.cost_term);
  EXPECT_GT(r.feasible[1]->score.risk_term, r.feasible[0]->score.risk_term);
  EXPECT_DOUBLE_EQ(r.feasible[1]->score.risk_adjusted,
                   r.feasible[1]->score.cost_term + r.feasible[1]->score.deadline_term +
                     r.feasible[1]->score.risk_term);

  // With no history at all, the tie goes to the offer id: the flaky one would have won.
  auction_book fresh(base(), {"flaky", "steady"});
  fresh.add(good("a-flaky", "flaky", 500), 10, 50);
  fresh.add(good("b-steady", "steady", 500), 10, 50);
  auto prior = [](const std::string&) { return breach_posterior(0, 0); };
  EXPECT_EQ(fresh.rank(offer_scorer{scoring_config{}}, prior, 10).feasible[0]->o.provider, "flaky");
}

TEST(auction_book, superseded_offers_are_scored_and_declines_keep_their_round) {
  auction_book b(base(), {"p1", "p2"});
  ASSERT_FALSE(b.add(good("o1", "p1", 900, 1), 10, 50));
  ASSERT_FALSE(b.add(good("o2", "p1", 800, 2), 10, 50));
  b.add_decline(decline{"j1", "a1", "", "p2", "full"}, 2);
  b.add_decline(decline{"j1", "a1", "", "stranger", "who?"}, 2); // not invited: ignored
  b.add(good("o2", "p1", 1, 2), 10, 50);                         // duplicate
  b.count_rejected("late: arrived after the round closed");
  auto r = b.rank(offer_scorer{scoring_config{}}, no_risk, 10);
  ASSERT_EQ(r.feasible.size(), 1u);
  EXPECT_EQ(r.feasible[0]->o.offer_id, "o2");
  EXPECT_EQ(b.entries()[0].verdict, "superseded by a later offer");
  EXPECT_TRUE(b.entries()[0].score.scored);
  EXPECT_GT(b.entries()[0].score.risk_adjusted, 0);
  b.set_verdict("o2", "won");
  b.close_open_offers();
  EXPECT_EQ(b.entries()[0].verdict, "superseded by a later offer");
  ASSERT_EQ(b.decline_notes().size(), 1u);
  EXPECT_EQ(b.decline_notes()[0].round, 2);
  EXPECT_EQ(b.decline_notes()[0].provider, "p2");
  EXPECT_EQ(b.rejections_by_reason(),
            (std::map<std::string, std::int64_t>{{"duplicate", 1}, {"late", 1}}));
}

namespace {
offer_explanation scored(const std::string& id, const std::string& provider, micros price,
                         double cost, double risk_term, double breach,
                         const std::string& verdict) {
  offer_explanation x;
  x.offer_id = id;
  x.auction_id = "a1";
  x.round = 1;
  x.provider = provider;
  x.price = price;
  x.score.scored = true;
  x.score.cost_term = cost;
  x.score.risk_term = risk_term;
  x.score.breach_probability = breach;
  x.score.risk_adjusted = cost + risk_term;
  x.verdict = verdict;
  return x;
}
} // namespace

TEST(explain_outcome, names_the_winner_the_next_best_and_the_term_that_decided) {
  explanation x;
  x.state = job_state::done;
  x.price = 500'000;
  x.offers = {scored("o1", "flaky", 500'000, 500'000, 100'000, 0.2, "lost"),
              scored("o2", "steady", 500'000, 500'000, 25'000, 0.05, "won"),
              scored("o3", "dear", 900'000, 900'000, 45'000, 0.05, "lost")};
  EXPECT_EQ(explain_outcome(x),
            "cheapest risk-adjusted cost: $0.525000 from steady (price $0.500000, risk term "
            "+$0.025000) vs next best $0.600000 from flaky (its risk term +$0.100000 vs "
            "+$0.025000; breach probability 0.200 vs 0.050; same price $0.500000)");
}

TEST(explain_outcome, a_fallback_names_who_fell_through_and_a_refusal_gives_the_reason) {
  explanation x;
  x.state = job_state::committed;
  x.price = 600'000;
  x.offers = {scored("o1", "cheap", 400'000, 400'000, 20'000, 0.05, "refused: capacity gone"),
              scored("o2", "next", 600'000, 600'000, 30'000, 0.05, "won")};
  auto why = explain_outcome(x);
  EXPECT_EQ(why.rfind("next won after better-ranked offers fell through (cheap refused: "
                      "capacity gone)", 0),
            0u)
    << why;
  EXPECT_NE(why.find("the only acceptable offer"), std::string::npos) << why;

  explanation refused;
  refused.state = job_state::refused;
  refused.reason = "no acceptable offer: local: over budget";
  EXPECT_EQ(explain_outcome(refused), "refused: no acceptable offer: local: over budget");
  explanation early;
  early.state = job_state::profiling;
  EXPECT_EQ(explain_outcome(early), "no decision yet: the job is profiling");
}
