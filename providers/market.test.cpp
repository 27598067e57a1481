#include "providers/market.hpp"

#include "protocol/json.hpp"

#include "providers/testing.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <regex>
#include <tuple>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <cmath>
#include <filesystem>
#include <thread>

namespace tender {
namespace {

using tender::testing::gib;
using tender::testing::t0;
constexpr usec hour = 3600 * sec_us;

using tender::testing::wall_now;

instance_type type(std::string name, int vcpus, int mem_gib, micros on_demand, micros spot,
                   int gpus = 0, std::string gpu = "", int gpu_mem_gib = 0) {
  instance_type t;
  t.family = name.substr(0, name.find('.'));
  t.name = std::move(name);
  t.cpu = vcpus * 1000;
  t.memory = mem_gib * gib;
  t.gpus = gpus;
  t.gpu_type = std::move(gpu);
  t.gpu_memory = gpu_mem_gib * gib;
  t.on_demand_per_hour = on_demand;
  t.spot_per_hour = spot;
  return t;
}

/// A slice of config/catalogues/cloud-a.toml (on-demand us-east-1, spot from the
/// real price sheet's median rule).
std::vector<instance_type> cloud_a_slice() {
  return {
      type("m5.large", 2, 8, 96'000, 31'800),
      type("c5.large", 2, 4, 85'000, 31'400),
      type("r5.large", 2, 16, 126'000, 36'900),
      type("m5.xlarge", 4, 16, 192'000, 65'500),
      type("g4dn.xlarge", 4, 16, 526'000, 213'000, 1, "T4", 16),
      type("p3.2xlarge", 8, 61, 3'060'000, 1'146'900, 1, "V100", 16),
      type("p3.8xlarge", 32, 244, 12'240'000, 5'438'800, 4, "V100", 16),
  };
}

provider_config market_config() {
  provider_config c;
  c.name = "cloud-a";
  c.kind = "market";
  c.types = cloud_a_slice();
  c.offer_spot = true;
  c.offer_on_demand = true;
  c.provisioning_delay = 90 * sec_us;
  c.preemption_per_hour = 0.05;
  c.availability = 0.999;
  c.latency = 20'000;
  c.seed = 42;
  return c;
}

token_source counting_tokens() {
  auto n = std::make_shared<int>(0);
  return [n] { return "tok-" + std::to_string(++*n); };
}

resources res(millicores cpu, bytes_t mem, std::int32_t gpus = 0, std::string gpu_type = "") {
  resources r;
  r.cpu = cpu;
  r.memory = mem;
  r.gpus = gpus;
  r.gpu_type = std::move(gpu_type);
  return r;
}

using tender::testing::request;

class market_test : public ::testing::Test {
protected:
  void SetUp() override {
    root_ = tender::testing::scratch_root("tender-market");
  }
  void TearDown() override {
    providers_.clear();
    executors_.clear();
    std::filesystem::remove_all(root_);
  }

  market_provider& make(provider_config cfg = market_config()) {
    executors_.push_back(std::make_unique<executor>(
        (root_ / ("runs" + std::to_string(executors_.size()))).string()));
    providers_.push_back(std::make_unique<market_provider>(std::move(cfg), *executors_.back(),
                                                           counting_tokens(), 60 * sec_us));
    return *providers_.back();
  }

  static offer bid_ok(market_provider& p, const resource_request& r, usec now) {
    auto v = p.bid(r, now);
    if (auto* d = std::get_if<decline>(&v)) {
      ADD_FAILURE() << "declined: " << d->reason;
      return {};
    }
    return std::get<offer>(v);
  }

  static std::string decline_reason(market_provider& p, const resource_request& r, usec now) {
    auto v = p.bid(r, now);
    if (auto* d = std::get_if<decline>(&v))
      return d->reason;
    ADD_FAILURE() << "offered " << std::get<offer>(v).instance_type;
    return {};
  }

  static std::variant<commit_confirm, commit_refuse> award_of(market_provider& p, const offer& o,
                                                              usec now) {
    award a;
    a.offer_id = o.offer_id;
    a.job_id = o.job_id;
    a.auction_id = o.auction_id;
    a.provider = o.provider;
    return p.hold(a, now);
  }

  static launch launch_of(const allocation& a, std::vector<std::string> argv) {
    launch l;
    l.job_id = a.job_id;
    l.allocation_id = a.allocation_id;
    l.lease_token = a.lease_token;
    l.spec.command = std::move(argv);
    return l;
  }

  /// Polls `p` on the wall clock until `done(every report so far)` or `seconds` pass.
  template <class Done>
  static std::vector<usage_report> poll_until(market_provider& p, Done done, int seconds) {
    std::vector<usage_report> seen;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      for (auto& r : p.poll(wall_now()))
        seen.push_back(r);
      if (done(seen))
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return seen;
  }

  std::filesystem::path root_;
  std::vector<std::unique_ptr<executor>> executors_;
  std::vector<std::unique_ptr<market_provider>> providers_;
};

TEST(market_billing, per_second_with_a_minute_minimum_rounded_up) {
  EXPECT_EQ(market_provider::billed(31'400, hour), 31'400);
  EXPECT_EQ(market_provider::billed(31'400, 30 * sec_us), 524);           // 60 s: 523.33
  EXPECT_EQ(market_provider::billed(31'400, 90 * sec_us + 500'000), 794); // 91 s: 793.72
  EXPECT_EQ(market_provider::billed(3'600, 61 * sec_us), 61);
  EXPECT_EQ(market_provider::billed(32'772'600, 24 * hour), 786'542'400);
  // Rate x seconds beyond 64 bits (1e20) is still exact: ceil(1e20 / 3600).
  EXPECT_EQ(market_provider::billed(1'000'000'000'000'000, 100'000 * sec_us),
            27'777'777'777'777'778);
  // Near the 64-bit edge of the product: 9.2e18 / 3600, rounded up.
  EXPECT_EQ(market_provider::billed(153'722'867'280'912'930, 60 * sec_us),
            2'562'047'788'015'216);
}

TEST_F(market_test, offers_the_cheapest_covering_type_on_spot) {
  auto& p = make();
  offer o = bid_ok(p, request("j1", res(2000, 4 * gib), hour), t0);
  offer want;
  // job / provider / round / this instance's nonce - counter
  EXPECT_TRUE(std::regex_match(o.offer_id, std::regex("j1/cloud-a/r1/[0-9a-f]{6}-1"))) << o.offer_id;
  want.offer_id = o.offer_id;
  want.job_id = "j1";
  want.auction_id = "auc-j1";
  want.round = 1;
  want.provider = "cloud-a";
  want.granted = res(2000, 4 * gib);
  want.price = 31'400;
  want.rate_per_hour = 31'400;
  want.earliest_start = t0 + 90 * sec_us;
  want.terms = sla{0.999 * std::exp(-0.05), 0.05, 20'000};
  want.valid_until = t0 + 10 * sec_us;
  want.instance_type = "c5.large";
  want.spot = true;
  EXPECT_EQ(to_json_value(o).dump(1), to_json_value(want).dump(1));
  EXPECT_DOUBLE_EQ(o.terms.availability, 0.999 * std::exp(-0.05));

  // More memory: m5.large is the cheapest that covers 6 GiB.
  o = bid_ok(p, request("j2", res(2000, 6 * gib), 2 * hour), t0);
  EXPECT_EQ(o.instance_type, "m5.large");
  EXPECT_EQ(o.granted, res(2000, 8 * gib));
  EXPECT_EQ(o.price, 63'600);
}

TEST_F(market_test, on_demand_when_spot_is_not_offered) {
  auto cfg = market_config();
  cfg.offer_spot = false;
  auto& p = make(cfg);
  offer o = bid_ok(p, request("j1", res(2000, 4 * gib), hour / 2), t0);
  EXPECT_EQ(o.instance_type, "c5.large");
  EXPECT_FALSE(o.spot);
  EXPECT_EQ(o.price, 42'500);
  EXPECT_EQ(o.terms.preemption_probability, 0.0);
  EXPECT_DOUBLE_EQ(o.terms.availability, 0.999);
}

TEST_F(market_test, gpu_requests_match_type_and_memory) {
  auto& p = make();
  offer o = bid_ok(p, request("j1", res(4000, 8 * gib, 1, "T4"), hour), t0);
  EXPECT_EQ(o.instance_type, "g4dn.xlarge");
  EXPECT_EQ(o.granted.gpu_type, "T4");
  EXPECT_EQ(o.granted.gpu_memory, 16 * gib);
  EXPECT_EQ(o.price, 213'000);
  o = bid_ok(p, request("j2", res(4000, 8 * gib, 2, "V100"), hour), t0);
  EXPECT_EQ(o.instance_type, "p3.8xlarge");
  EXPECT_EQ(decline_reason(p, request("j3", res(4000, 8 * gib, 1, "A100"), hour), t0),
            "no GPU of type A100");
  auto big = request("j4", res(4000, 8 * gib, 1, "T4"), hour);
  big.request.gpu_memory = 32 * gib;
  EXPECT_EQ(decline_reason(p, big, t0),
            "no instance type covers 4 cores, " + format_bytes(8 * gib) + ", 1 GPUs of " +
                format_bytes(32 * gib));
  EXPECT_EQ(decline_reason(p, request("j5", res(64000, 8 * gib), hour), t0),
            "no instance type covers 64 cores, " + format_bytes(8 * gib) + ", 0 GPUs");
}

TEST_F(market_test, later_rounds_may_switch_purchase_option_never_below_cost) {
  auto cfg = market_config();
  // Spot above on-demand happens in real sheets for scarce types.
  cfg.types = {type("x.odd", 2, 8, 100'000, 200'000), type("y.other", 2, 8, 150'000, 120'000)};
  auto& p = make(cfg);
  auto r = request("j1", res(1000, gib), hour);
  offer o = bid_ok(p, r, t0);
  EXPECT_EQ(o.instance_type, "y.other");
  EXPECT_TRUE(o.spot);
  EXPECT_EQ(o.price, 120'000);
  r.round = 2;
  r.price_to_beat = 110'000;
  o = bid_ok(p, r, t0);
  EXPECT_EQ(o.instance_type, "x.odd");
  EXPECT_FALSE(o.spot);
  EXPECT_EQ(o.price, 100'000);
  r.price_to_beat = 50'000; // cannot beat it: still the catalogue price
  EXPECT_EQ(bid_ok(p, r, t0).price, 100'000);
}

// bid() walks the catalogue from the cheapest floor price up and stops early; it must
// offer what pricing every allowed (type, purchase option) would: the least billed price,
// then the earlier catalogue entry, then on-demand over spot of the same type. Random
// catalogues with many equal prices and 60 s minimum bills (ties), zero prices (nothing
// to buy that way), spot series and capacity that some types exceed.
TEST_F(market_test, bids_match_pricing_every_type_and_purchase_option) {
  std::mt19937_64 g(20261205);
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(g);
  };
  const micros prices[] = {0, 30'000, 31'000, 31'020, 60'000, 96'000, 100'000};
  int offers = 0, declines = 0, spot = 0, on_demand = 0;
  for (int trial = 0; trial < 60; ++trial) {
    auto cfg = market_config();
    cfg.name = "m" + std::to_string(trial);
    cfg.offer_spot = pick(0, 4) > 0;
    cfg.offer_on_demand = pick(0, 4) > 0;
    cfg.spot_follow = pick(0, 1) == 1;
    cfg.spot_follow_speed = static_cast<std::int32_t>(pick(1, 3));
    cfg.capacity = pick(0, 1) ? resources{} : res(pick(2, 8) * 1000, pick(4, 32) * gib);
    cfg.types.clear();
    const auto n = pick(1, 12);
    for (std::int64_t i = 0; i < n; ++i) {
      const bool gpu = pick(0, 3) == 0;
      auto t = type("t" + std::to_string(i) + ".x", static_cast<int>(pick(1, 8)),
                    static_cast<int>(pick(1, 32)), prices[pick(0, 6)], prices[pick(0, 6)],
                    gpu ? 1 : 0, gpu ? (pick(0, 1) ? "T4" : "V100") : "", gpu ? 16 : 0);
      if (pick(0, 1)) {
        t.spot_window = 100 * sec_us;
        for (usec at = 0; at < t.spot_window; at += pick(5, 40) * sec_us)
          t.spot_series.push_back({at, prices[pick(0, 6)]});
      }
      cfg.types.push_back(std::move(t));
    }
    auto& p = make(cfg);
    for (int k = 0; k < 25; ++k) {
      const bool gpu = pick(0, 4) == 0;
      auto r = request("j" + std::to_string(trial) + "-" + std::to_string(k),
                       res(pick(1, 8) * 1000, pick(1, 32) * gib, gpu ? 1 : 0,
                           gpu ? (pick(0, 1) ? "T4" : "V100") : ""),
                       pick(0, 2) ? pick(1, 120) * sec_us : pick(1, 30) * hour,
                       static_cast<std::int32_t>(pick(1, 2)), pick(0, 1) ? 40'000 : 0);
      const usec now = t0 + pick(0, 1'000) * sec_us;
      const usec runtime = r.profile.runtime;
      const bool later = r.round > 1 && r.price_to_beat > 0;

      // Every allowed purchase, priced, in catalogue order.
      std::optional<std::tuple<micros, std::size_t, bool, micros>> want; // price, index, spot, rate
      for (std::size_t i = 0; i < cfg.types.size(); ++i) {
        const auto& t = cfg.types[i];
        const bool covers = t.cpu >= r.request.cpu && t.memory >= r.request.memory &&
                            t.gpus >= r.request.gpus &&
                            (r.request.gpus == 0 || t.gpu_type == r.request.gpu_type);
        const bool fits = (cfg.capacity.cpu == 0 || t.cpu <= cfg.capacity.cpu) &&
                          (cfg.capacity.memory == 0 || t.memory <= cfg.capacity.memory);
        if (!covers || !fits)
          continue;
        const micros s = market_provider::spot_price(t, cfg, now);
        const bool has_spot = cfg.offer_spot && s > 0;
        auto consider = [&](bool is_spot, micros rate) {
          // Ordered by (price, catalogue index, on-demand first).
          std::tuple<micros, std::size_t, bool, micros> c{market_provider::billed(rate, runtime),
                                                          i, is_spot, rate};
          if (!want || std::make_tuple(std::get<0>(c), std::get<1>(c), std::get<2>(c)) <
                         std::make_tuple(std::get<0>(*want), std::get<1>(*want),
                                         std::get<2>(*want)))
            want = c;
        };
        if (has_spot)
          consider(true, s);
        if (cfg.offer_on_demand && t.on_demand_per_hour > 0 && (later || !has_spot))
          consider(false, t.on_demand_per_hour);
      }

      auto v = p.bid(r, now);
      const auto* o = std::get_if<offer>(&v);
      if (!want) {
        EXPECT_TRUE(std::holds_alternative<decline>(v))
          << "trial " << trial << " request " << k << ": offered " << o->instance_type;
        ++declines;
        continue;
      }
      ASSERT_NE(o, nullptr) << "trial " << trial << " request " << k << ": declined "
                            << std::get<decline>(v).reason;
      const auto& [price, index, is_spot, rate] = *want;
      EXPECT_EQ(o->instance_type, cfg.types[index].name) << "trial " << trial << " request " << k;
      EXPECT_EQ(o->spot, is_spot) << "trial " << trial << " request " << k;
      EXPECT_EQ(o->price, price) << "trial " << trial << " request " << k;
      EXPECT_EQ(o->rate_per_hour, rate) << "trial " << trial << " request " << k;
      ++offers;
      (is_spot ? spot : on_demand)++;
    }
  }
  // The draws reach every outcome.
  EXPECT_GT(offers, 300);
  EXPECT_GT(declines, 100);
  EXPECT_GT(spot, 100);
  EXPECT_GT(on_demand, 50);
}

TEST_F(market_test, declines_over_budget_and_missing_software) {
  auto cfg = market_config();
  cfg.software = {"python3"};
  auto& p = make(cfg);
  auto r = request("j1", res(2000, 4 * gib), hour);
  r.max_cost = 30'000;
  EXPECT_EQ(decline_reason(p, r, t0),
            "cheapest instance c5.large costs 0.031400 USD, above max_cost 0.030000 USD");
  r.max_cost = 0;
  r.software = {"python3", "matlab"};
  EXPECT_EQ(decline_reason(p, r, t0), "software matlab not available");
}

TEST_F(market_test, capacity_limits_instances_and_resources) {
  auto cfg = market_config();
  cfg.max_instances = 1;
  auto& p = make(cfg);
  offer o1 = bid_ok(p, request("j1", res(2000, 4 * gib), hour), t0);
  offer o2 = bid_ok(p, request("j2", res(2000, 4 * gib), hour), t0);
  ASSERT_TRUE(std::holds_alternative<commit_confirm>(award_of(p, o1, t0)));
  EXPECT_EQ(decline_reason(p, request("j3", res(2000, 4 * gib), hour), t0),
            "capacity exhausted: 1 of 1 instances in use");
  auto v = award_of(p, o2, t0);
  ASSERT_TRUE(std::holds_alternative<commit_refuse>(v));
  EXPECT_EQ(std::get<commit_refuse>(v).reason, "capacity exhausted: 1 of 1 instances in use");

  auto cfg2 = market_config();
  cfg2.capacity.cpu = 4000; // 4 vCPUs in all
  auto& q = make(cfg2);
  ASSERT_TRUE(std::holds_alternative<commit_confirm>(
      award_of(q, bid_ok(q, request("k1", res(2000, 4 * gib), hour), t0), t0)));
  // c5.large still fits; m5.xlarge (4 vCPUs) no longer does.
  EXPECT_EQ(bid_ok(q, request("k2", res(2000, 4 * gib), hour), t0).instance_type, "c5.large");
  EXPECT_EQ(decline_reason(q, request("k3", res(3000, 4 * gib), hour), t0),
            "capacity exhausted: not enough cpu: want 4 cores, free 2");
  provider_info i = q.info(t0);
  EXPECT_EQ(i.capacity.cpu, 4000);
  EXPECT_EQ(i.free.cpu, 2000);
  EXPECT_EQ(i.free.memory, 0); // unlimited dimensions show as 0
}

TEST_F(market_test, injected_refusals_are_deterministic_by_seed) {
  auto pattern = [&](std::uint64_t seed) {
    auto cfg = market_config();
    cfg.refuse_probability = 0.5;
    cfg.seed = seed;
    auto& p = make(cfg);
    std::string out;
    for (int i = 0; i < 40; ++i) {
      offer o = bid_ok(p, request("j" + std::to_string(i), res(1000, gib), hour), t0);
      auto v = award_of(p, o, t0);
      out += std::holds_alternative<commit_confirm>(v) ? 'c' : 'r';
      // The same award again gets the same answer without a new draw.
      auto again = award_of(p, o, t0);
      EXPECT_EQ(again.index(), v.index());
      if (auto* r = std::get_if<commit_refuse>(&v)) {
        EXPECT_EQ(r->reason, "no c5.large spot capacity available right now (injected refusal)");
        EXPECT_EQ(std::get<commit_refuse>(again).reason, r->reason);
      }
    }
    return out;
  };
  std::string a = pattern(7);
  EXPECT_EQ(a, pattern(7));
  EXPECT_NE(a, pattern(8));
  auto refusals = std::count(a.begin(), a.end(), 'r');
  EXPECT_GT(refusals, 5);
  EXPECT_LT(refusals, 35);

  auto cfg = market_config();
  cfg.refuse_probability = 0.0;
  auto& never = make(cfg);
  for (int i = 0; i < 20; ++i)
    EXPECT_TRUE(std::holds_alternative<commit_confirm>(award_of(
        never, bid_ok(never, request("n" + std::to_string(i), res(1000, gib), hour), t0), t0)));
}

TEST_F(market_test, hold_confirms_an_allocation_of_the_whole_instance) {
  auto& p = make();
  offer o = bid_ok(p, request("j1", res(1000, gib), hour), t0);
  auto v = award_of(p, o, t0 + 1);
  ASSERT_TRUE(std::holds_alternative<commit_confirm>(v));
  const allocation& a = std::get<commit_confirm>(v).alloc;
  EXPECT_EQ(a.instance_type, "c5.large");
  EXPECT_EQ(a.granted, res(2000, 4 * gib));
  EXPECT_EQ(a.start_at, o.earliest_start);
  EXPECT_EQ(a.lease_token, "tok-1");
  EXPECT_EQ(a.price, o.price);
  auto again = award_of(p, o, t0 + 2);
  EXPECT_EQ(std::get<commit_confirm>(again).alloc.lease_token, "tok-1");
  EXPECT_EQ(p.book().allocations() + p.book().holds(), 1u);

  scale_request s;
  s.allocation_id = a.allocation_id;
  s.wanted = res(2000, 3 * gib);
  scale_offer so = p.scale(s, t0 + 3);
  EXPECT_TRUE(so.applied);
  EXPECT_EQ(so.price_delta, 0);
  s.wanted = res(4000, 3 * gib);
  so = p.scale(s, t0 + 3);
  EXPECT_FALSE(so.applied);
  EXPECT_FALSE(so.in_place);
}

TEST_F(market_test, gpu_vendor_describes_its_gpu_types) {
  auto cfg = market_config();
  cfg.name = "gpu-vendor";
  cfg.types = {type("g5.xlarge", 4, 16, 1'006'000, 358'500, 1, "A10G", 24),
               type("p4d.24xlarge", 96, 1152, 32'772'600, 14'003'300, 8, "A100", 40)};
  auto& p = make(cfg);
  provider_hello h = p.describe();
  EXPECT_EQ(h.kind, "market");
  EXPECT_EQ(h.gpu_types, (std::vector<std::string>{"A10G", "A100"}));
  offer o = bid_ok(p, request("j1", res(8000, 64 * gib, 4, "A100"), 2 * hour), t0);
  EXPECT_EQ(o.instance_type, "p4d.24xlarge");
  EXPECT_EQ(o.price, 28'006'600);
}

// ---- real processes ---------------------------------------------------------

TEST_F(market_test, launch_waits_for_provisioning_and_reports_the_real_start) {
  auto cfg = market_config();
  cfg.provisioning_delay = 300'000; // 0.3 s
  auto& p = make(cfg);
  usec now = wall_now();
  offer o = bid_ok(p, request("m-exit3", res(1000, gib), hour), now);
  auto v = award_of(p, o, now);
  ASSERT_TRUE(std::holds_alternative<commit_confirm>(v));
  allocation a = std::get<commit_confirm>(v).alloc;
  launch l = launch_of(a, {"sh", "-c", "exit 3"});
  ASSERT_FALSE(p.start(l, wall_now()));
  l.lease_token = "tok-wrong";
  auto err = p.start(l, wall_now());
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "lease");

  usage_report fin;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!fin.final && std::chrono::steady_clock::now() < deadline) {
    for (auto& r : p.poll(wall_now()))
      if (r.final)
        fin = r;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(fin.final);
  EXPECT_EQ(fin.exit_code, 3);
  EXPECT_GE(fin.started_at, a.start_at);
  EXPECT_EQ(fin.provider, "cloud-a");
  EXPECT_EQ(p.book().allocations(), 0u);
}

TEST_F(market_test, spot_jobs_are_preempted_at_the_configured_rate) {
  auto cfg = market_config();
  cfg.provisioning_delay = 0;
  cfg.preemption_per_hour = 1e9; // certain within any poll interval
  auto& p = make(cfg);
  usec now = wall_now();
  offer o = bid_ok(p, request("m-spot", res(1000, gib), hour), now);
  ASSERT_TRUE(o.spot);
  allocation a = std::get<commit_confirm>(award_of(p, o, now)).alloc;
  launch l = launch_of(a, {"sleep", "30"});
  ASSERT_FALSE(p.start(l, wall_now()));
  usage_report fin;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!fin.final && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (auto& r : p.poll(wall_now()))
      if (r.final)
        fin = r;
  }
  ASSERT_TRUE(fin.final);
  EXPECT_EQ(fin.reason.rfind("preempted: spot c5.large reclaimed", 0), 0u) << fin.reason;
}

/// The real series of config/catalogues/cloud-a.toml (tools/derive-catalogue: the low
/// median over zones of each zone's latest record, as the price sheet's 2022-05-31
/// 18:20-24:00 UTC window goes by; `at` in seconds into the window).
void with_series(instance_type& t, std::vector<std::pair<std::int64_t, micros>> points) {
  for (auto& [at, price] : points)
    t.spot_series.push_back({at * sec_us, price});
  t.spot_window = 20400 * sec_us;
}

provider_config following_config() {
  auto c = market_config();
  for (auto& t : c.types) {
    if (t.name == "m5.large")
      with_series(t, {{1050, 20'000}, {3007, 28'700}, {11834, 31'400}, {13634, 30'400},
                      {14110, 31'400}, {15597, 31'800}});
    if (t.name == "c5.large")
      with_series(t, {{3478, 32'600}, {11935, 30'300}, {12267, 31'400}, {13643, 30'300},
                      {20036, 31'400}});
    if (t.name == "r5.large")
      with_series(t, {{1688, 40'300}, {10214, 32'200}, {11932, 30'000}, {14030, 32'200},
                      {14830, 33'800}, {16431, 36'600}, {16678, 36'000}, {17090, 36'600},
                      {18654, 36'900}});
  }
  c.spot_follow = true;
  return c;
}

TEST_F(market_test, spot_prices_follow_the_price_sheet_on_the_providers_clock) {
  auto& p = make(following_config());
  auto snapshot_cfg = following_config();
  snapshot_cfg.spot_follow = false;
  auto& snapshot = make(snapshot_cfg);
  const usec window = 20400 * sec_us;
  const usec base = (t0 / window + 1) * window; // the window's start, replayed
  // 2 cores, 4 GiB, one hour: c5.large, m5.large and r5.large all cover it.
  struct step {
    std::int64_t into_s;
    const char* type;
    micros price;
  };
  int n = 0;
  for (auto [into_s, type, price] : std::vector<step>{
           {0, "c5.large", 31'400},     // no record yet this window: the window's last prices
           {1049, "c5.large", 31'400},  //
           {1050, "m5.large", 20'000},  // us-east-2's m5.large record appears
           {3007, "m5.large", 28'700},  // three eu-north-1 zones lift m5.large's median
           {11935, "r5.large", 30'000}, // r5.large drops below both
           {14030, "c5.large", 30'300}, // and rises again
           {20399, "c5.large", 31'400}, // the window's end: the catalogue's snapshot
       }) {
    SCOPED_TRACE(std::to_string(into_s) + " s into the window");
    const usec now = base + into_s * sec_us;
    auto id = "f" + std::to_string(++n);
    offer o = bid_ok(p, request(id, res(2000, 4 * gib), hour), now);
    EXPECT_EQ(o.instance_type, type);
    EXPECT_TRUE(o.spot);
    EXPECT_EQ(o.rate_per_hour, price);
    EXPECT_EQ(o.price, price);
    // The snapshot market bids the same at every instant.
    offer s = bid_ok(snapshot, request(id + "s", res(2000, 4 * gib), hour), now);
    EXPECT_EQ(s.instance_type, "c5.large");
    EXPECT_EQ(s.price, 31'400);
  }
  // The window repeats: one window later m5.large is cheap again.
  EXPECT_EQ(bid_ok(p, request("again", res(2000, 4 * gib), hour), base + window + 1050 * sec_us)
                .price,
            20'000);
}

TEST_F(market_test, spot_following_can_replay_the_window_faster) {
  auto cfg = following_config();
  cfg.spot_follow_speed = 60; // the 5 h 40 min window in 5 min 40 s
  auto& p = make(cfg);
  const usec window = 20400 * sec_us;
  const usec base = (t0 / window + 1) * window;
  // 1050 s into the window is 17.5 s of the provider's clock.
  EXPECT_EQ(bid_ok(p, request("s1", res(2000, 4 * gib), hour), base + 17'500'000).price, 20'000);
  EXPECT_EQ(bid_ok(p, request("s2", res(2000, 4 * gib), hour), base + 17'499'999).price, 31'400);
  EXPECT_EQ(market_provider::spot_price(cfg.types[0], cfg, base + (3007 * sec_us + 59) / 60),
            28'700); // m5.large
}

} // namespace
} // namespace tender

namespace tender {
namespace {

// With resize_delay a market changes a running job's instance type as a cloud does:
// stop, change type, start. The job restarts on the larger type after the delay (a
// real process, relaunched with the new limits), the rest of its predicted run is billed
// at the new rate, and the stop is no final report.
TEST_F(market_test, a_resize_changes_the_instance_type_and_restarts_the_job_after_the_delay) {
  auto cfg = market_config();
  cfg.offer_spot = false;
  cfg.provisioning_delay = 0;
  cfg.resize_delay = 500'000; // 0.5 s
  auto& p = make(cfg);
  usec now = wall_now();
  offer o = bid_ok(p, request("m-resize", res(1000, gib), hour), now);
  auto v = award_of(p, o, now);
  ASSERT_TRUE(std::holds_alternative<commit_confirm>(v));
  allocation a = std::get<commit_confirm>(v).alloc;
  ASSERT_EQ(a.instance_type, "c5.large");
  // Counts its runs in a file in its workdir; the second run ends at once.
  launch l = launch_of(
    a, {"sh", "-c", "echo run >> runs; [ $(wc -l < runs) -ge 2 ] && exit 0; sleep 60"});
  const std::string dir = (root_ / "work").string();
  std::filesystem::create_directories(dir);
  l.spec.workdir = dir;
  ASSERT_FALSE(p.start(l, wall_now()));

  auto started = [](const std::vector<usage_report>& s) {
    return std::any_of(s.begin(), s.end(), [](auto& r) { return r.started_at > 0; });
  };
  auto first = poll_until(p, started, 20);
  ASSERT_TRUE(started(first));
  const usec first_start = first.front().started_at;
  // The first run has counted itself (a stop before its `echo` would leave the second
  // run counting one and sleeping).
  auto counted = [&](const std::vector<usage_report>&) {
    std::ifstream f(dir + "/runs");
    std::string line;
    return static_cast<bool>(std::getline(f, line));
  };
  for (auto& r : poll_until(p, counted, 20))
    first.push_back(r);
  ASSERT_TRUE(counted(first));

  scale_request s;
  s.job_id = a.job_id;
  s.allocation_id = a.allocation_id;
  s.wanted = res(2000, 6 * gib); // c5.large has 4 GiB: m5.large (8 GiB) is the cheapest
  const usec asked = wall_now();
  scale_offer so = p.scale(s, asked);
  ASSERT_TRUE(so.applied) << so.reason;
  EXPECT_TRUE(so.in_place);
  EXPECT_EQ(so.granted, res(2000, 8 * gib));
  EXPECT_EQ(so.delay, 500'000);
  EXPECT_NE(so.reason.find("c5.large -> m5.large"), std::string::npos) << so.reason;
  // 96,000 - 85,000 micro-dollars an hour over what remains of the predicted hour.
  const usec remaining = hour - (asked - first_start);
  EXPECT_EQ(so.price_delta, static_cast<micros>(__int128{11'000} * remaining / hour));
  EXPECT_EQ(p.book().allocations(), 1u);

  auto fin_seen = poll_until(
    p,
    [](const std::vector<usage_report>& s) {
      return std::any_of(s.begin(), s.end(), [](auto& r) { return r.final; });
    },
    30);
  std::vector<usage_report> finals;
  usec restarted_at = 0;
  for (auto& r : fin_seen) {
    if (r.final)
      finals.push_back(r);
    else if (r.started_at > first_start)
      restarted_at = r.started_at;
  }
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(finals[0].exit_code, 0) << finals[0].reason;
  EXPECT_GT(finals[0].started_at, first_start);
  // Not before the delay was over.
  EXPECT_GE(finals[0].started_at, asked + 500'000);
  if (restarted_at) {
    EXPECT_EQ(restarted_at, finals[0].started_at);
  }
  std::ifstream runs(dir + "/runs");
  std::string line;
  int n = 0;
  while (std::getline(runs, line))
    ++n;
  EXPECT_EQ(n, 2);
  EXPECT_EQ(p.book().allocations(), 0u);
}

// A job stopped while its instance is being resized ends: it is not started again.
TEST_F(market_test, a_job_stopped_during_its_resize_is_not_restarted) {
  auto cfg = market_config();
  cfg.offer_spot = false;
  cfg.provisioning_delay = 0;
  cfg.resize_delay = 200'000;
  auto& p = make(cfg);
  const usec now = wall_now();
  offer o = bid_ok(p, request("m-resize-stop", res(1000, gib), hour), now);
  allocation a = std::get<commit_confirm>(award_of(p, o, now)).alloc;
  launch l = launch_of(a, {"sleep", "60"});
  ASSERT_FALSE(p.start(l, wall_now()));
  auto started = [](const std::vector<usage_report>& s) {
    return std::any_of(s.begin(), s.end(), [](auto& r) { return r.started_at > 0; });
  };
  ASSERT_TRUE(started(poll_until(p, started, 20)));
  scale_request s;
  s.job_id = a.job_id;
  s.allocation_id = a.allocation_id;
  s.wanted = res(2000, 6 * gib);
  ASSERT_TRUE(p.scale(s, wall_now()).applied);
  p.stop(a.job_id, "cancelled by its owner", wall_now());
  std::vector<usage_report> finals;
  usec last_start = 0;
  // Well past the resize delay.
  for (auto& r : poll_until(p, [](const std::vector<usage_report>&) { return false; }, 3)) {
    if (r.final)
      finals.push_back(r);
    last_start = std::max(last_start, r.started_at);
  }
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_NE(finals[0].reason.find("stopped: cancelled by its owner"), std::string::npos)
    << finals[0].reason;
  EXPECT_EQ(last_start, finals[0].started_at) << "no second run";
  EXPECT_EQ(p.book().allocations(), 0u);
}

TEST_F(market_test, without_resize_delay_or_a_covering_type_a_resize_needs_a_new_allocation) {
  auto cfg = market_config();
  auto& p = make(cfg);
  offer o = bid_ok(p, request("m-noresize", res(1000, gib), hour), t0);
  auto v = award_of(p, o, t0 + 1);
  allocation a = std::get<commit_confirm>(v).alloc;
  scale_request s;
  s.allocation_id = a.allocation_id;
  s.wanted = res(4000, 3 * gib);
  scale_offer so = p.scale(s, t0 + 2);
  EXPECT_FALSE(so.applied);
  EXPECT_FALSE(so.in_place);
  EXPECT_NE(so.reason.find("resize_delay"), std::string::npos) << so.reason;

  cfg.name = "cloud-r";
  cfg.resize_delay = sec_us;
  auto& q = make(cfg);
  o = bid_ok(q, request("m-toobig", res(1000, gib), hour), t0);
  a = std::get<commit_confirm>(award_of(q, o, t0 + 1)).alloc;
  s.allocation_id = a.allocation_id;
  s.wanted = res(64000, 3 * gib); // no type has 64 cores
  so = q.scale(s, t0 + 2);
  EXPECT_FALSE(so.applied);
  EXPECT_FALSE(so.in_place);
  EXPECT_NE(so.reason.find("no instance type"), std::string::npos) << so.reason;
  // Before the job starts a resize restarts nothing.
  s.wanted = res(4000, 3 * gib);
  so = q.scale(s, t0 + 2);
  EXPECT_TRUE(so.applied) << so.reason;
  EXPECT_EQ(so.delay, 0);
  EXPECT_EQ(so.granted.cpu, 4000);
  EXPECT_NE(so.reason.find("before the job started"), std::string::npos) << so.reason;
}

} // namespace
} // namespace tender
