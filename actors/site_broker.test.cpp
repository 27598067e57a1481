#include "actors/site_broker.hpp"

#include <gtest/gtest.h>

namespace tender {
namespace {

/// Whole values compared through their wire bytes (every field, in order).
template <class T> std::string msgpack_bytes(const T& v) {
  msgpack::sbuffer b;
  msgpack::pack(b, v);
  return std::string(b.data(), b.size());
}

resource_request call_from_a() {
  resource_request r;
  r.job_id = "j-1";
  r.auction_id = "a-1";
  r.round = 2;
  r.request.cpu = 4000;
  r.request.memory = 1LL << 30;
  r.price_to_beat = 500;
  r.reply_by = 1'000'000;
  r.path = {"site-a"};
  return r;
}

TEST(site_broker, a_direct_call_within_the_hop_limit_is_taken) {
  EXPECT_EQ(refuse_call(call_from_a(), "site-a", "site-b", 2), std::nullopt);
  EXPECT_EQ(arrived_path(call_from_a(), "site-a"), (std::vector<std::string>{"site-a"}));
}

TEST(site_broker, an_old_caller_without_a_path_is_put_on_it) {
  auto r = call_from_a();
  r.path.clear();
  EXPECT_EQ(arrived_path(r, "site-a"), (std::vector<std::string>{"site-a"}));
  EXPECT_EQ(refuse_call(r, "site-a", "site-b", 2), std::nullopt);
}

TEST(site_broker, a_call_that_visited_this_site_is_a_loop) {
  auto r = call_from_a();
  r.hops = 2;
  r.path = {"site-a", "site-b", "site-c"};
  auto why = refuse_call(r, "site-c", "site-a", 5);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "loop: the call has already visited site-a (path site-a > site-b > site-c)");
}

TEST(site_broker, the_hop_limit_counts_site_boundaries) {
  auto r = call_from_a();
  r.hops = 1; // a -> b already crossed; b -> c is the second boundary
  r.path = {"site-a", "site-b"};
  EXPECT_EQ(refuse_call(r, "site-b", "site-c", 2), std::nullopt);
  auto why = refuse_call(r, "site-b", "site-c", 1);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "hop limit 1 reached (the call has crossed 1 site boundaries before this one)");
}

TEST(site_broker, malformed_calls_are_refused_with_what_is_wrong) {
  auto r = call_from_a();
  r.job_id.clear();
  EXPECT_EQ(refuse_call(r, "site-a", "site-b", 2),
            std::optional<std::string>("malformed call for offers: no job_id or auction_id"));
  r = call_from_a();
  r.request.memory = -1;
  EXPECT_EQ(refuse_call(r, "site-a", "site-b", 2),
            std::optional<std::string>("malformed call for offers: negative resources"));
}

TEST(site_broker, the_onward_call_carries_the_path_the_hop_and_its_own_ids) {
  auto in = onward_call(call_from_a(), "site-a", "site-b", "fa-9", 700'000);
  resource_request want = call_from_a();
  want.job_id = "j-1.site-b";
  want.profile.job_id = "j-1.site-b";
  want.auction_id = "fa-9";
  want.round = 1;
  want.reply_by = 700'000;
  want.hops = 1;
  want.path = {"site-a", "site-b"};
  EXPECT_EQ(msgpack_bytes(in), msgpack_bytes(want));
}

TEST(site_broker, inner_job_ids_stay_valid_job_ids) {
  EXPECT_EQ(inner_job_id("j-1", "site-b"), "j-1.site-b");
  EXPECT_EQ(inner_job_id("j-1", "site b/ü"), "j-1.site_b___");
}

TEST(site_broker, invitees_leave_out_the_sites_on_the_path_and_itself) {
  std::vector<std::string> names{"local", "site-a", "site-c", "site-b", "gpu"};
  EXPECT_EQ(invitees(names, {"site-a"}, "site-b"), (std::vector<std::size_t>{0, 2, 4}));
  EXPECT_EQ(invitees(names, {"site-a", "site-c"}, "site-b"), (std::vector<std::size_t>{0, 4}));
}

TEST(site_broker, the_sub_budget_leaves_a_quarter_for_the_way_back) {
  EXPECT_EQ(sub_budget(1'000'000, 600'000, 999), 300'000);
  EXPECT_EQ(sub_budget(0, 600'000, 200'000), 150'000);
  EXPECT_EQ(sub_budget(500'000, 600'000, 200'000), 1'000); // already late: the minimum
}

TEST(site_broker, the_caller_sees_the_inner_offer_under_the_site_name) {
  offer inner;
  inner.offer_id = "o-7";
  inner.job_id = "j-1.site-b";
  inner.auction_id = "fa-9";
  inner.round = 1;
  inner.provider = "local";
  inner.granted.cpu = 4000;
  inner.price = 420;
  inner.rate_per_hour = 100;
  inner.earliest_start = 55;
  inner.terms = sla{0.99, 0.0, 1'000};
  inner.valid_until = 9'000'000;
  auto o = outward_offer(inner, call_from_a(), "site-b", "fo-3", 4'000);
  offer want = inner;
  want.offer_id = "fo-3";
  want.job_id = "j-1";
  want.auction_id = "a-1";
  want.round = 2;
  want.provider = "site-b";
  want.terms.latency = 4'000;
  EXPECT_EQ(msgpack_bytes(o), msgpack_bytes(want));
}

TEST(site_broker, the_callers_allocation_has_the_sites_own_id_and_token) {
  allocation inner;
  inner.allocation_id = "al-1";
  inner.job_id = "j-1.site-b";
  inner.offer_id = "o-7";
  inner.provider = "local";
  inner.price = 420;
  inner.lease_token = "inner-secret";
  inner.lease_expires = 77;
  auto a = outward_allocation(inner, "j-1", "fo-3", "site-b", "fal-1", "outer-secret", 0);
  allocation want = inner;
  want.allocation_id = "fal-1";
  want.job_id = "j-1";
  want.offer_id = "fo-3";
  want.provider = "site-b";
  want.lease_token = "outer-secret";
  EXPECT_EQ(msgpack_bytes(a), msgpack_bytes(want));
  EXPECT_EQ(outward_allocation(inner, "j-1", "fo-3", "site-b", "fal-1", "t", 300).price, 300);

  usage_report u;
  u.job_id = "j-1.site-b";
  u.allocation_id = "al-1";
  u.provider = "local";
  u.final = true;
  u.exit_code = 0;
  auto out = outward_usage(u, a, "site-b");
  usage_report want_u = u;
  want_u.job_id = "j-1";
  want_u.allocation_id = "fal-1";
  want_u.provider = "site-b";
  EXPECT_EQ(msgpack_bytes(out), msgpack_bytes(want_u));
}

TEST(site_broker, run_records_round_trip_and_garbage_is_named) {
  forwarded_run_record r;
  r.caller = "site-a";
  r.outer.allocation_id = "fal-1";
  r.outer.job_id = "j-1";
  r.inner.allocation_id = "al-1";
  r.inner.job_id = "j-1.site-b";
  r.inner.provider = "local";
  auto back = decode_record(encode_record(r), nullptr);
  ASSERT_TRUE(back);
  EXPECT_EQ(encode_record(*back), encode_record(r));
  std::string why;
  EXPECT_FALSE(decode_record("\xc1garbage", &why));
  EXPECT_NE(why.find("not a forwarded-run record"), std::string::npos) << why;
  EXPECT_FALSE(decode_record(encode_record(forwarded_run_record{}), &why));
  EXPECT_EQ(why, "no allocation id");
}

} // namespace
} // namespace tender
