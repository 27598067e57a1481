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
