#include "providers/local.hpp"

#include "protocol/json.hpp"

#include "providers/testing.hpp"

#include <gtest/gtest.h>

#include <map>
#include <regex>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

namespace tender {
namespace {

using tender::testing::gib;
using tender::testing::t0;
constexpr usec lease_ttl = 60 * sec_us;

using tender::testing::wall_now;

resources res(millicores cpu, bytes_t mem, std::int32_t gpus = 0, std::string gpu_type = "") {
  resources r;
  r.cpu = cpu;
  r.memory = mem;
  r.gpus = gpus;
  r.gpu_type = std::move(gpu_type);
  return r;
}

provider_config local_config() {
  provider_config c;
  c.name = "local";
  c.kind = "local";
  c.capacity = res(4000, 8 * gib);
  c.price_per_core_hour = 40'000; // $0.04
  c.price_per_gib_hour = 5'000;   // $0.005
  c.price_per_gpu_hour = 500'000;
  c.busy_markup = 1.5;
  c.reserve_price = 1'000;
  c.availability = 0.99;
  c.latency = 5'000;
  return c;
}

token_source counting_tokens() {
  auto n = std::make_shared<int>(0);
  return [n] { return "tok-" + std::to_string(++*n); };
}

using tender::testing::request;

class local_test : public ::testing::Test {
protected:
  void SetUp() override {
    root_ = tender::testing::scratch_root("tender-local");
    std::filesystem::create_directories(root_);
  }
  void TearDown() override {
    p_.reset();
    exec_.reset();
    std::filesystem::remove_all(root_);
  }

  local_provider& make(provider_config cfg = local_config()) {
    exec_ = std::make_unique<executor>((root_ / "runs").string());
    p_ = std::make_unique<local_provider>(std::move(cfg), *exec_, counting_tokens(), lease_ttl);
    return *p_;
  }

  offer bid_ok(const resource_request& r, usec now) {
    auto v = p_->bid(r, now);
    if (auto* d = std::get_if<decline>(&v)) {
      ADD_FAILURE() << "declined: " << d->reason;
      return {};
    }
    return std::get<offer>(v);
  }

  std::string decline_reason(const resource_request& r, usec now) {
    auto v = p_->bid(r, now);
    if (auto* d = std::get_if<decline>(&v)) {
      EXPECT_EQ(d->provider, "local");
      EXPECT_EQ(d->job_id, r.job_id);
      return d->reason;
    }
    ADD_FAILURE() << "offered " << std::get<offer>(v).price;
    return {};
  }

  allocation win(const offer& o, usec now) {
    award a;
    a.offer_id = o.offer_id;
    a.job_id = o.job_id;
    a.auction_id = o.auction_id;
    a.provider = o.provider;
    a.hold_ttl = 30 * sec_us;
    auto v = p_->hold(a, now);
    if (auto* r = std::get_if<commit_refuse>(&v)) {
      ADD_FAILURE() << "refused: " << r->reason;
      return {};
    }
    return std::get<commit_confirm>(v).alloc;
  }

  launch launch_of(const allocation& a, std::vector<std::string> argv) {
    launch l;
    l.job_id = a.job_id;
    l.allocation_id = a.allocation_id;
    l.lease_token = a.lease_token;
    l.spec.command = std::move(argv);
    return l;
  }

  /// Polls on the wall clock until the job's final report (at most 20 s).
  usage_report run_to_end(const std::string& job_id) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      for (auto& r : p_->poll(wall_now()))
        if (r.job_id == job_id && r.final)
          return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "no final report for " << job_id;
    return {};
  }

  std::filesystem::path root_;
  std::unique_ptr<executor> exec_;
  std::unique_ptr<local_provider> p_;
};

TEST_F(local_test, bid_is_cost_plus_for_the_profiles_runtime) {
  make();
  // (2 cores × $0.04 + 4 GiB × $0.005) × 0.5 h = $0.05, idle: no markup.
  offer o = bid_ok(request("j1", res(2000, 4 * gib), 1800 * sec_us), t0);
  offer want;
  // job / provider / round / this instance's nonce - counter
  EXPECT_TRUE(std::regex_match(o.offer_id, std::regex("j1/local/r1/[0-9a-f]{6}-1"))) << o.offer_id;
  want.offer_id = o.offer_id;
  want.job_id = "j1";
  want.auction_id = "auc-j1";
  want.round = 1;
  want.provider = "local";
  want.granted = res(2000, 4 * gib);
  want.price = 50'000;
  want.rate_per_hour = 100'000;
  want.earliest_start = t0;
  want.terms = sla{0.99, 0.0, 5'000};
  want.valid_until = t0 + 10 * sec_us;
  EXPECT_EQ(to_json_value(o).dump(1), to_json_value(want).dump(1));
}

TEST_F(local_test, markup_grows_with_utilisation_and_reserve_is_a_floor) {
  make();
  // Hold half the cores: utilisation 0.5, markup 1 + 0.5 × 0.5 = 1.25.
  win(bid_ok(request("big", res(2000, 2 * gib), 3600 * sec_us), t0), t0);
  offer o = bid_ok(request("j2", res(2000, 4 * gib), 1800 * sec_us), t0);
  EXPECT_EQ(o.price, 62'500);
  EXPECT_EQ(o.rate_per_hour, 125'000);
  // A tiny job costs less than the reserve price.
  offer tiny = bid_ok(request("j3", res(100, 0), 60 * sec_us), t0);
  EXPECT_EQ(tiny.price, 1'000);
}

TEST_F(local_test, later_rounds_improve_down_to_the_floor_never_below) {
  make();
  win(bid_ok(request("big", res(2000, 2 * gib), 3600 * sec_us), t0), t0);
  auto r = request("j2", res(2000, 4 * gib), 1800 * sec_us);
  EXPECT_EQ(bid_ok(r, t0).price, 62'500);
  // Round 1 ignores price_to_beat.
  r.price_to_beat = 60'000;
  EXPECT_EQ(bid_ok(r, t0).price, 62'500);
  // Round 2: undercut by 1 %.
  r.round = 2;
  EXPECT_EQ(bid_ok(r, t0).price, 59'400);
  // Cannot beat 40'000: offers its floor (cost without markup), not less.
  r.price_to_beat = 40'000;
  EXPECT_EQ(bid_ok(r, t0).price, 50'000);
  // Already cheaper than the price to beat: keeps its list price.
  r.price_to_beat = 100'000;
  EXPECT_EQ(bid_ok(r, t0).price, 62'500);
}

TEST_F(local_test, declines_name_the_reason) {
  make();
  EXPECT_EQ(decline_reason(request("j", res(1000, 16 * gib), sec_us), t0),
            "not enough memory: want " + format_bytes(16 * gib) + ", free " +
                format_bytes(8 * gib));
  EXPECT_EQ(decline_reason(request("j", res(6000, gib), sec_us), t0),
            "not enough cpu: want 6 cores, free 4");
  EXPECT_EQ(decline_reason(request("j", res(1000, gib, 1, "V100"), sec_us), t0),
            "no GPU of type V100");
  auto r = request("j", res(1000, gib), sec_us);
  r.software = {"sh"};
  EXPECT_TRUE(std::holds_alternative<offer>(p_->bid(r, t0))) << "sh is on PATH";
  r.software = {"sh", "tender-no-such-program-xyz"};
  EXPECT_EQ(decline_reason(r, t0), "software tender-no-such-program-xyz not installed");
  r.software = {};
  r.max_cost = 10;
  EXPECT_EQ(decline_reason(r, t0), "price floor 0.001000 USD above max_cost 0.000010 USD");
}

TEST_F(local_test, declared_software_list_replaces_path_lookup) {
  auto cfg = local_config();
  cfg.software = {"python3", "gcc"};
  make(cfg);
  auto r = request("j", res(1000, gib), sec_us);
  r.software = {"gcc"};
  EXPECT_TRUE(std::holds_alternative<offer>(p_->bid(r, t0)));
  r.software = {"sh"};
  EXPECT_EQ(decline_reason(r, t0), "software sh not installed");
}

TEST_F(local_test, gpu_requests) {
  auto cfg = local_config();
  cfg.capacity.gpus = 2;
  cfg.capacity.gpu_type = "T4";
  cfg.capacity.gpu_memory = 16 * gib;
  make(cfg);
  offer o = bid_ok(request("j", res(1000, gib, 1, "t4"), 3600 * sec_us), t0);
  resources granted = res(1000, gib, 1, "T4");
  granted.gpu_memory = 16 * gib;
  EXPECT_EQ(o.granted, granted);
  EXPECT_EQ(o.price, 40'000 + 5'000 + 500'000);
  EXPECT_EQ(decline_reason(request("j", res(1000, gib, 3), sec_us), t0),
            "not enough GPUs: want 3, free 2");
  auto big = request("j", res(1000, gib, 1), sec_us);
  big.request.gpu_memory = 32 * gib;
  EXPECT_EQ(decline_reason(big, t0), "not enough GPU memory: want " + format_bytes(32 * gib) +
                                         " per GPU, have " + format_bytes(16 * gib));
}

TEST_F(local_test, hold_is_idempotent_and_reserves_once) {
  make();
  offer o = bid_ok(request("j1", res(3000, 2 * gib), 3600 * sec_us), t0);
  allocation a = win(o, t0 + 5);
  allocation want;
  want.allocation_id = o.offer_id + "/a";
  want.job_id = "j1";
  want.offer_id = o.offer_id;
  want.provider = "local";
  want.granted = o.granted;
  want.price = o.price;
  want.rate_per_hour = o.rate_per_hour;
  want.terms = o.terms;
  want.lease_token = "tok-1";
  want.lease_expires = t0 + 5 + lease_ttl;
  want.start_at = t0 + 5;
  EXPECT_EQ(to_json_value(a).dump(1), to_json_value(want).dump(1));
  EXPECT_EQ(a.lease_token, "tok-1");
  allocation again = win(o, t0 + 10);
  EXPECT_EQ(to_json_value(again).dump(1), to_json_value(want).dump(1));
  EXPECT_EQ(again.lease_token, "tok-1");
  EXPECT_EQ(p_->book().free().cpu, 1000);
  EXPECT_EQ(p_->info(t0).wins, 1);
}

TEST_F(local_test, a_clearing_price_sets_the_allocation_price_never_below_the_offer) {
  make();
  offer o = bid_ok(request("j1", res(2000, 4 * gib), 1800 * sec_us), t0);
  award a;
  a.offer_id = o.offer_id;
  a.job_id = "j1";
  a.price = o.price - 1;
  auto v = p_->hold(a, t0);
  ASSERT_TRUE(std::holds_alternative<commit_refuse>(v));
  EXPECT_EQ(std::get<commit_refuse>(v).reason,
            "award price 0.049999 USD is below the offered 0.050000 USD");
  a.price = 70'000; // the second price
  v = p_->hold(a, t0);
  ASSERT_TRUE(std::holds_alternative<commit_confirm>(v));
  EXPECT_EQ(std::get<commit_confirm>(v).alloc.price, 70'000);
}

TEST_F(local_test, hold_refuses_unknown_expired_and_overbooked_offers) {
  make();
  offer o1 = bid_ok(request("j1", res(3000, gib), sec_us), t0);
  offer o2 = bid_ok(request("j2", res(3000, gib), sec_us), t0);
  win(o1, t0);
  award a;
  a.offer_id = o2.offer_id;
  a.job_id = "j2";
  auto v = p_->hold(a, t0);
  ASSERT_TRUE(std::holds_alternative<commit_refuse>(v));
  EXPECT_EQ(std::get<commit_refuse>(v).reason,
            "capacity gone: not enough cpu: want 3 cores, free 1");
  a.offer_id = "nonsense";
  v = p_->hold(a, t0);
  ASSERT_TRUE(std::holds_alternative<commit_refuse>(v));
  EXPECT_EQ(std::get<commit_refuse>(v).reason, "unknown or expired offer nonsense");
  // Offers are looked up by the number that ends their id, then the whole id compared:
  // an id that ends in the same number but is not the offer's, or that ends in no
  // number, a number too long for 64 bits or nothing after the dash, is unknown.
  const std::string number = o2.offer_id.substr(o2.offer_id.rfind('-'));
  for (const std::string forged : {"j2/other/r1/abcdef" + number, "x" + o2.offer_id,
                                   o2.offer_id + "x", o2.offer_id + "99999999999999999999",
                                   o2.offer_id.substr(0, o2.offer_id.rfind('-') + 1)}) {
    a.offer_id = forged;
    v = p_->hold(a, t0);
    ASSERT_TRUE(std::holds_alternative<commit_refuse>(v)) << forged;
    EXPECT_EQ(std::get<commit_refuse>(v).reason, "unknown or expired offer " + forged);
  }
  offer late = bid_ok(request("j3", res(500, gib), sec_us), t0);
  a.offer_id = late.offer_id;
  a.job_id = "j3";
  v = p_->hold(a, late.valid_until + 1);
  ASSERT_TRUE(std::holds_alternative<commit_refuse>(v));
  EXPECT_EQ(std::get<commit_refuse>(v).reason, "unknown or expired offer " + late.offer_id);
}

TEST_F(local_test, a_lost_auction_forgets_its_offers_and_no_other) {
  // The auction's decline to a loser (and a provider process's, over the mesh)
  // forgets the offers made there: they are no longer awardable, and under load
  // they no longer pile up until they expire. Offers to other auctions stay.
  make();
  auto r1 = request("j1", res(500, gib), sec_us);
  r1.auction_id = "a-1";
  auto r2 = request("j2", res(500, gib), sec_us);
  r2.auction_id = "a-2";
  offer lost1 = bid_ok(r1, t0);
  offer kept = bid_ok(r2, t0);
  provider& base = *p_;
  base.lost(decline{"j1", "a-1", lost1.offer_id, "auction", "another offer won"});
  base.lost(decline{"j9", "", "", "auction", "no auction named"}); // nothing to forget
  award a;
  a.offer_id = lost1.offer_id;
  a.job_id = "j1";
  auto v = p_->hold(a, t0);
  ASSERT_TRUE(std::holds_alternative<commit_refuse>(v));
  EXPECT_EQ(std::get<commit_refuse>(v).reason, "unknown or expired offer " + lost1.offer_id);
  EXPECT_EQ(win(kept, t0).job_id, "j2");
}

TEST_F(local_test, unused_lease_expires_and_returns_capacity) {
  make();
  allocation a = win(bid_ok(request("j1", res(4000, 8 * gib), sec_us), t0), t0);
  EXPECT_EQ(p_->book().free().cpu, 0);
  EXPECT_EQ(decline_reason(request("j2", res(1000, gib), sec_us), t0 + 1),
            "not enough cpu: want 1 cores, free 0");
  EXPECT_TRUE(p_->poll(a.lease_expires - 1).empty());
  EXPECT_EQ(p_->book().free().cpu, 0);
  EXPECT_TRUE(p_->poll(a.lease_expires).empty());
  EXPECT_EQ(p_->book().free(), local_config().capacity);
  auto err = p_->start(launch_of(a, {"true"}), a.lease_expires);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "lease");
  EXPECT_EQ(err->message, "the lease of allocation " + a.allocation_id + " has expired");
}

TEST_F(local_test, start_refuses_wrong_expired_and_foreign_tokens) {
  make();
  allocation a = win(bid_ok(request("j1", res(1000, gib), sec_us), t0), t0);
  allocation b = win(bid_ok(request("j2", res(1000, gib), sec_us), t0), t0);
  ASSERT_NE(a.lease_token, b.lease_token);

  launch wrong = launch_of(a, {"true"});
  wrong.lease_token = "tok-999";
  auto err = p_->start(wrong, t0 + 1);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "lease");
  EXPECT_EQ(err->message, "the lease token does not match allocation " + a.allocation_id);
  EXPECT_EQ(err->message.find("tok-"), std::string::npos) << "never echo a token";

  launch foreign = launch_of(a, {"true"});
  foreign.lease_token = b.lease_token;
  err = p_->start(foreign, t0 + 1);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "lease");
  EXPECT_EQ(err->message.find(b.lease_token), std::string::npos);

  launch empty = launch_of(a, {"true"});
  empty.lease_token.clear();
  EXPECT_TRUE(p_->start(empty, t0 + 1));

  launch other_job = launch_of(a, {"true"});
  other_job.job_id = "j2";
  err = p_->start(other_job, t0 + 1);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "allocation " + a.allocation_id + " is not for job j2");

  launch expired = launch_of(a, {"true"});
  err = p_->start(expired, a.lease_expires);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->message, "the lease of allocation " + a.allocation_id + " has expired");

  launch unknown = launch_of(a, {"true"});
  unknown.allocation_id = "nope";
  err = p_->start(unknown, t0 + 1);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "lease");
  EXPECT_EQ(err->message, "no allocation nope at provider local");
}

TEST(same_token, compares_whole_strings) {
  EXPECT_TRUE(same_token("abc", "abc"));
  EXPECT_FALSE(same_token("abc", "abd"));
  EXPECT_FALSE(same_token("abc", "abcd"));
  EXPECT_FALSE(same_token("", "a"));
  EXPECT_TRUE(same_token("", ""));
}

TEST(random_token, is_64_hex_digits_and_differs) {
  auto a = random_token();
  auto b = random_token();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

TEST_F(local_test, release_frees_a_lease) {
  make();
  allocation a = win(bid_ok(request("j1", res(4000, gib), sec_us), t0), t0);
  release r;
  r.allocation_id = a.allocation_id;
  p_->release(r, t0 + 1);
  EXPECT_EQ(p_->book().free(), local_config().capacity);
  EXPECT_TRUE(p_->start(launch_of(a, {"true"}), t0 + 2));
}

TEST_F(local_test, scale_a_lease_in_place_within_capacity) {
  make();
  allocation a = win(bid_ok(request("j1", res(1000, gib), 3600 * sec_us), t0), t0);
  scale_request s;
  s.job_id = "j1";
  s.allocation_id = a.allocation_id;
  s.wanted = res(3000, 2 * gib);
  scale_offer so = p_->scale(s, t0);
  EXPECT_TRUE(so.applied);
  EXPECT_TRUE(so.in_place);
  EXPECT_EQ(so.granted, res(3000, 2 * gib));
  // Two more cores and one more GiB for the hour, at cost.
  EXPECT_EQ(so.price_delta, 2 * 40'000 + 5'000);
  EXPECT_EQ(p_->book().free().cpu, 1000);
  s.wanted = res(5000, 2 * gib);
  so = p_->scale(s, t0);
  EXPECT_FALSE(so.applied);
  EXPECT_EQ(so.reason, "not enough cpu: want 5 cores, free 4");
  s.wanted = res(1000, gib, 1);
  so = p_->scale(s, t0);
  EXPECT_FALSE(so.applied);
  EXPECT_FALSE(so.in_place);
}

TEST_F(local_test, info_and_describe) {
  make();
  bid_ok(request("j1", res(1000, gib), sec_us), t0);
  win(bid_ok(request("j2", res(1000, gib), sec_us), t0), t0);
  provider_info i = p_->info(t0);
  EXPECT_EQ(i.name, "local");
  EXPECT_EQ(i.kind, "local");
  EXPECT_EQ(i.capacity, local_config().capacity);
  EXPECT_EQ(i.free, res(3000, 7 * gib));
  EXPECT_EQ(i.offers, 2);
  EXPECT_EQ(i.wins, 1);
  provider_hello h = p_->describe();
  EXPECT_EQ(h.name, "local");
  EXPECT_EQ(h.kind, "local");
  EXPECT_EQ(h.capacity, local_config().capacity);
  EXPECT_TRUE(h.gpu_types.empty());
}

// ---- real processes through the executor ------------------------------------

TEST_F(local_test, launches_a_real_process_and_reports_its_exit) {
  make();
  usec now = wall_now();
  allocation a = win(bid_ok(request("ok-job", res(1000, gib), sec_us), now), now);
  ASSERT_FALSE(p_->start(launch_of(a, {"true"}), wall_now()));
  // The same launch again does not start a second process.
  EXPECT_FALSE(p_->start(launch_of(a, {"true"}), wall_now()));
  usage_report fin = run_to_end("ok-job");
  EXPECT_TRUE(fin.final);
  EXPECT_EQ(fin.exit_code, 0);
  EXPECT_EQ(fin.allocation_id, a.allocation_id);
  EXPECT_EQ(fin.provider, "local");
  EXPECT_GE(fin.started_at, now);
  EXPECT_GE(fin.finished_at, fin.started_at);
  EXPECT_EQ(p_->book().free(), local_config().capacity);

  now = wall_now();
  allocation b = win(bid_ok(request("exit3", res(1000, gib), sec_us), now), now);
  ASSERT_FALSE(p_->start(launch_of(b, {"sh", "-c", "exit 3"}), wall_now()));
  fin = run_to_end("exit3");
  EXPECT_EQ(fin.exit_code, 3);
  EXPECT_FALSE(fin.reason.empty());
  EXPECT_EQ(p_->book().allocations(), 0u);
}

TEST_F(local_test, a_launch_that_cannot_start_is_an_error_and_frees_capacity) {
  make();
  usec now = wall_now();
  allocation a = win(bid_ok(request("bad", res(1000, gib), sec_us), now), now);
  auto err = p_->start(launch_of(a, {"tender-no-such-program-xyz"}), wall_now());
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "launch");
  EXPECT_EQ(p_->book().free(), local_config().capacity);
}

TEST_F(local_test, stop_kills_a_running_job) {
  make();
  usec now = wall_now();
  allocation a = win(bid_ok(request("sleeper", res(1000, gib), sec_us), now), now);
  ASSERT_FALSE(p_->start(launch_of(a, {"sleep", "30"}), wall_now()));
  p_->poll(wall_now());
  p_->stop("sleeper", "cancelled by user", wall_now());
  usage_report fin = run_to_end("sleeper");
  EXPECT_NE(fin.exit_code, 0);
  EXPECT_EQ(fin.reason.rfind("stopped: cancelled by user", 0), 0u) << fin.reason;
  EXPECT_EQ(p_->book().free(), local_config().capacity);
}

TEST_F(local_test, running_jobs_are_sampled) {
  make();
  usec now = wall_now();
  allocation a = win(bid_ok(request("busy", res(1000, gib), sec_us), now), now);
  ASSERT_FALSE(p_->start(launch_of(a, {"sh", "-c", "sleep 0.5"}), wall_now()));
  std::size_t samples = 0;
  usage_report fin;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!fin.final && std::chrono::steady_clock::now() < deadline) {
    for (auto& r : p_->poll(wall_now())) {
      EXPECT_EQ(r.job_id, "busy");
      samples += r.samples.size();
      if (r.final)
        fin = r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(fin.final);
  EXPECT_EQ(fin.exit_code, 0);
  EXPECT_GT(samples, 0u);
}

TEST_F(local_test, scale_a_running_job_in_place_or_roll_back) {
  make();
  usec now = wall_now();
  allocation a = win(bid_ok(request("grow", res(1000, gib), 3600 * sec_us), now), now);
  ASSERT_FALSE(p_->start(launch_of(a, {"sleep", "30"}), wall_now()));
  p_->poll(wall_now());
  scale_request s;
  s.job_id = "grow";
  s.allocation_id = a.allocation_id;
  s.wanted = res(2000, 2 * gib);
  scale_offer so = p_->scale(s, wall_now());
  if (exec_->mode() == "rlimit") {
    // Limits cannot change under rlimits: refused, and the ledger is as it was.
    EXPECT_FALSE(so.applied);
    EXPECT_EQ(so.reason.rfind("limits cannot change in place: ", 0), 0u) << so.reason;
    EXPECT_EQ(p_->book().committed(), res(1000, gib));
  } else {
    EXPECT_TRUE(so.applied) << so.reason;
    EXPECT_EQ(p_->book().committed(), res(2000, 2 * gib));
  }
  p_->stop("grow", "test over", wall_now());
  run_to_end("grow");
  EXPECT_EQ(p_->book().free(), local_config().capacity);
}

TEST_F(local_test, adopt_after_a_restart) {
  make();
  usec now = wall_now();
  allocation a = win(bid_ok(request("adoptee", res(2000, gib), sec_us), now), now);
  ASSERT_FALSE(p_->start(launch_of(a, {"sleep", "30"}), wall_now()));
  p_->poll(wall_now());
  // A new provider and executor over the same run dirs, as after `kill -9`.
  auto exec2 = std::make_unique<executor>((root_ / "runs").string());
  auto p2 = std::make_unique<local_provider>(local_config(), *exec2, counting_tokens(), lease_ttl);
  EXPECT_FALSE(p2->adopt(a, wall_now()));
  EXPECT_EQ(p2->book().free().cpu, 2000);
  EXPECT_FALSE(p2->adopt(a, wall_now())); // idempotent
  EXPECT_EQ(p2->book().free().cpu, 2000);
  p2->stop("adoptee", "test over", wall_now());
  usage_report fin;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!fin.final && std::chrono::steady_clock::now() < deadline) {
    for (auto& r : p2->poll(wall_now()))
      if (r.final)
        fin = r;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(fin.final);
  EXPECT_EQ(p2->book().free(), local_config().capacity);
  p2.reset();
  exec2.reset();
}

TEST_F(local_test, adopt_of_a_never_launched_lease_keeps_the_lease) {
  make();
  allocation a = win(bid_ok(request("later", res(2000, gib), sec_us), t0), t0);
  auto exec2 = std::make_unique<executor>((root_ / "runs2").string());
  local_provider p2(local_config(), *exec2, counting_tokens(), lease_ttl);
  EXPECT_FALSE(p2.adopt(a, t0 + 1));
  EXPECT_EQ(p2.book().holds(), 1u);
  p2.poll(a.lease_expires);
  EXPECT_EQ(p2.book().free(), local_config().capacity);
  auto lost = p2.adopt(a, a.lease_expires + 1);
  ASSERT_TRUE(lost);
  EXPECT_TRUE(lost->final);
  EXPECT_EQ(lost->exit_code, -1);
}

} // namespace
TEST_F(local_test, injected_refusals_follow_refuse_probability_and_are_idempotent) {
  auto cfg = local_config();
  cfg.refuse_probability = 1.0;
  make(cfg);
  offer o = bid_ok(request("j1", res(1000, gib), sec_us), t0);
  award a;
  a.offer_id = o.offer_id;
  a.job_id = "j1";
  auto v = p_->hold(a, t0);
  ASSERT_TRUE(std::holds_alternative<commit_refuse>(v));
  EXPECT_EQ(std::get<commit_refuse>(v).reason,
            "capacity not available right now (injected refusal)");
  // The same award again gets the same answer, and nothing was reserved.
  v = p_->hold(a, t0);
  ASSERT_TRUE(std::holds_alternative<commit_refuse>(v));
  EXPECT_EQ(p_->book().free(), cfg.capacity);

  cfg.refuse_probability = 0.0;
  make(cfg);
  win(bid_ok(request("j2", res(1000, gib), sec_us), t0), t0);
}

// --- planning ahead (plan_horizon > 0) ----------------------------------------

namespace {

provider_config planning_config(usec horizon = 2 * 3600 * sec_us) {
  provider_config c = local_config();
  c.plan_horizon = horizon;
  return c;
}

TEST_F(local_test, a_busy_planning_provider_offers_the_start_its_plan_projects) {
  make(planning_config());
  allocation a = win(bid_ok(request("a", res(3000, 2 * gib), 600 * sec_us), t0), t0);
  EXPECT_EQ(a.start_at, t0);
  // Only 1 core is free until a's predicted end.
  offer b = bid_ok(request("b", res(4000, 2 * gib), 100 * sec_us), t0);
  EXPECT_EQ(b.earliest_start, t0 + 600 * sec_us);
  offer c = bid_ok(request("c", res(1000, gib), 100 * sec_us), t0);
  EXPECT_EQ(c.earliest_start, t0) << "fits now beside a";
  EXPECT_EQ(decline_reason(request("d", res(8000, gib), sec_us), t0),
            "not enough cpu: want 8 cores, free 4 (in all)");

  make(planning_config(300 * sec_us));
  win(bid_ok(request("a", res(4000, 2 * gib), 600 * sec_us), t0), t0);
  EXPECT_EQ(decline_reason(request("b", res(1000, gib), 60 * sec_us), t0),
            "busy: the plan's earliest start is in 10m00s, beyond its horizon of 5m00s");

  // Without a horizon the provider only offers what is free now (as before).
  make();
  win(bid_ok(request("a", res(4000, 2 * gib), 600 * sec_us), t0), t0);
  EXPECT_EQ(decline_reason(request("b", res(1000, gib), 60 * sec_us), t0),
            "not enough cpu: want 1 cores, free 0");
}

TEST_F(local_test, later_jobs_backfill_without_delaying_the_first_waiting_one) {
  make(planning_config());
  win(bid_ok(request("a", res(3000, 2 * gib), 600 * sec_us), t0), t0);
  allocation b = win(bid_ok(request("b", res(4000, 2 * gib), 100 * sec_us), t0), t0);
  EXPECT_EQ(b.start_at, t0 + 600 * sec_us) << "b waits for a";
  // c (1 core, 300 s) ends before b's reservation: it starts now.
  allocation c = win(bid_ok(request("c", res(1000, gib), 300 * sec_us), t0), t0);
  EXPECT_EQ(c.start_at, t0);
  // d would run past b's reservation and nothing is left beside b then: it waits
  // until after b, and its offer says so.
  offer d = bid_ok(request("d", res(1000, gib), 900 * sec_us), t0);
  EXPECT_EQ(d.earliest_start, t0 + 700 * sec_us);
  allocation da = win(d, t0);
  EXPECT_EQ(da.start_at, t0 + 700 * sec_us);
  // The ledger holds exactly what the plan runs: a and c.
  EXPECT_EQ(p_->book().free().cpu, 0);
  ASSERT_NE(p_->plan(), nullptr);
  EXPECT_EQ(p_->plan()->running(), 2u);
  EXPECT_EQ(p_->plan()->waiting(), 2u);
  EXPECT_EQ(p_->plan()->free_now().cpu, p_->book().free().cpu);
}

TEST_F(local_test, a_waiting_award_starts_when_the_job_ahead_ends) {
  make(planning_config());
  const usec now = wall_now();
  allocation a = win(bid_ok(request("wait-a", res(4000, gib), 2 * sec_us), now), now);
  ASSERT_FALSE(p_->start(launch_of(a, {"sleep", "1"}), now).has_value());
  allocation b = win(bid_ok(request("wait-b", res(2000, gib), sec_us), now), now);
  EXPECT_EQ(b.start_at, now + 2 * sec_us);
  ASSERT_FALSE(p_->start(launch_of(b, {"true"}), now).has_value()) << "accepted, waits";
  auto fa = run_to_end("wait-a");
  auto fb = run_to_end("wait-b");
  EXPECT_EQ(fa.exit_code, 0) << fa.reason;
  EXPECT_EQ(fb.exit_code, 0) << fb.reason;
  EXPECT_GE(fb.started_at, fa.finished_at) << "b never ran beside a";
  EXPECT_EQ(p_->book().free(), local_config().capacity) << "all capacity returned";
  EXPECT_EQ(p_->plan()->running() + p_->plan()->waiting(), 0u);
}

TEST_F(local_test, after_a_restart_running_and_waiting_jobs_are_re_planned_and_each_runs_once) {
  make(planning_config());
  const usec now = wall_now();
  allocation a = win(bid_ok(request("restart-a", res(4000, gib), 2 * sec_us), now), now);
  ASSERT_FALSE(p_->start(launch_of(a, {"sleep", "2"}), now).has_value());
  allocation b = win(bid_ok(request("restart-b", res(3000, gib), sec_us), now), now);
  EXPECT_GT(b.start_at, now) << "b waits for a";
  p_->poll(wall_now());
  // `kill -9`: a new provider and executor over the same run dirs. The job actor
  // re-adopts both and launches the committed one again.
  auto exec2 = std::make_unique<executor>((root_ / "runs").string());
  auto p2 = std::make_unique<local_provider>(planning_config(), *exec2, counting_tokens(), lease_ttl);
  EXPECT_FALSE(p2->adopt(a, wall_now()));
  auto rb = p2->adopt(b, wall_now());
  EXPECT_FALSE(rb) << rb->reason;
  rb = p2->adopt(b, wall_now());
  EXPECT_FALSE(rb) << "idempotent: " << rb->reason;
  ASSERT_EQ(p2->plan()->running(), 1u);
  ASSERT_EQ(p2->plan()->waiting(), 1u);
  EXPECT_EQ(p2->book().free().cpu, 0) << "a's capacity is committed again";
  ASSERT_FALSE(p2->start(launch_of(b, {"true"}), wall_now()).has_value());
  std::map<std::string, int> finals;
  std::map<std::string, usage_report> last;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (finals.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    for (auto& r : p2->poll(wall_now()))
      if (r.final) {
        ++finals[r.job_id];
        last[r.job_id] = r;
      }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(finals["restart-a"], 1);
  EXPECT_EQ(finals["restart-b"], 1);
  EXPECT_EQ(last["restart-a"].exit_code, 0) << last["restart-a"].reason;
  EXPECT_EQ(last["restart-b"].exit_code, 0) << last["restart-b"].reason;
  EXPECT_GE(last["restart-b"].started_at, last["restart-a"].finished_at);
  EXPECT_EQ(p2->book().free(), local_config().capacity) << "nothing leaked";
  EXPECT_EQ(p2->plan()->running() + p2->plan()->waiting(), 0u);
  p2.reset();
  exec2.reset();
}

TEST_F(local_test, a_waiting_job_can_be_stopped_or_released_and_is_not_resized_before_it_starts) {
  make(planning_config());
  win(bid_ok(request("busy", res(4000, 2 * gib), 600 * sec_us), t0), t0);
  allocation b = win(bid_ok(request("queued-b", res(2000, gib), 60 * sec_us), t0), t0);
  allocation c = win(bid_ok(request("queued-c", res(2000, gib), 60 * sec_us), t0), t0);
  ASSERT_EQ(p_->plan()->waiting(), 2u);
  scale_request sr;
  sr.job_id = "queued-b";
  sr.allocation_id = b.allocation_id;
  sr.wanted = res(3000, gib);
  auto so = p_->scale(sr, t0);
  EXPECT_FALSE(so.applied);
  EXPECT_NE(so.reason.find("waits in the plan"), std::string::npos) << so.reason;
  // Stopped before it starts: a final report says so, and its place in the plan is gone.
  p_->stop("queued-b", "cancelled by the user", t0 + sec_us);
  auto reps = p_->poll(t0 + sec_us);
  ASSERT_EQ(reps.size(), 1u);
  EXPECT_TRUE(reps[0].final);
  EXPECT_EQ(reps[0].job_id, "queued-b");
  EXPECT_NE(reps[0].reason.find("stopped before start"), std::string::npos) << reps[0].reason;
  p_->release(tender::release{c.allocation_id, c.offer_id, "queued-c", "moved"}, t0 + sec_us);
  EXPECT_EQ(p_->plan()->waiting(), 0u);
  EXPECT_EQ(p_->plan()->running(), 1u);
}

TEST_F(local_test, an_orphaned_reservation_expires_and_its_capacity_returns) {
  // Short leases: an award not launched by its start + 1 s is dropped.
  exec_ = std::make_unique<executor>((root_ / "runs").string());
  p_ = std::make_unique<local_provider>(planning_config(), *exec_, counting_tokens(), sec_us);
  const usec now = wall_now();
  // a is planned for 1 s but runs 30 s: b's reservation keeps moving.
  allocation a = win(bid_ok(request("orphan-a", res(4000, gib), sec_us), now), now);
  auto err_a = p_->start(launch_of(a, {"sleep", "30"}), now);
  ASSERT_FALSE(err_a.has_value()) << err_a->message;
  allocation b = win(bid_ok(request("orphan-b", res(4000, gib), sec_us), now), now);
  EXPECT_EQ(b.start_at, now + sec_us);
  EXPECT_EQ(b.lease_expires, now + 2 * sec_us);
  // Nobody launches b.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  while (std::chrono::steady_clock::now() < until) {
    p_->poll(wall_now());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto err = p_->start(launch_of(b, {"true"}), wall_now());
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->message.find("has expired"), std::string::npos) << err->message;
  EXPECT_EQ(p_->plan()->waiting(), 0u);
  EXPECT_EQ(p_->plan()->running(), 1u) << "a still runs";
  p_->stop("orphan-a", "test over", wall_now());
  auto fa = run_to_end("orphan-a");
  EXPECT_NE(fa.reason.find("stopped"), std::string::npos) << fa.reason;
  EXPECT_EQ(p_->book().free(), local_config().capacity);
  EXPECT_EQ(p_->plan()->running(), 0u);
}

} // namespace

} // namespace tender

namespace tender {
namespace {

// After a restart, waiting jobs keep their places in the queue whatever order their
// owners re-adopt them in: the allocation carries when it was committed.
TEST_F(local_test, re_adopted_waiting_jobs_keep_their_order_in_the_queue) {
  make(planning_config());
  const usec now = wall_now();
  allocation a = win(bid_ok(request("order-a", res(4000, gib), 60 * sec_us), now), now);
  ASSERT_FALSE(p_->start(launch_of(a, {"sleep", "30"}), now).has_value());
  allocation b = win(bid_ok(request("order-b", res(4000, gib), 60 * sec_us), now + 1), now + 1);
  allocation c = win(bid_ok(request("order-c", res(4000, gib), 60 * sec_us), now + 2), now + 2);
  ASSERT_GT(b.start_at, now);
  ASSERT_GT(c.start_at, b.start_at);
  EXPECT_EQ(b.committed_at, now + 1);
  EXPECT_EQ(c.committed_at, now + 2);
  p_->poll(wall_now());

  // `kill -9`; the owners come back in the wrong order: c, then a, then b.
  auto exec2 = std::make_unique<executor>((root_ / "runs").string());
  auto p2 = std::make_unique<local_provider>(planning_config(), *exec2, counting_tokens(), lease_ttl);
  EXPECT_FALSE(p2->adopt(c, wall_now()));
  EXPECT_FALSE(p2->adopt(a, wall_now()));
  EXPECT_FALSE(p2->adopt(b, wall_now()));
  ASSERT_EQ(p2->plan()->waiting(), 2u);
  ASSERT_FALSE(p2->start(launch_of(c, {"sleep", "30"}), wall_now()).has_value());
  ASSERT_FALSE(p2->start(launch_of(b, {"sleep", "30"}), wall_now()).has_value());
  // When a ends, the job committed before the other starts: b, not c.
  p2->stop("order-a", "test over", wall_now());
  std::string first_started;
  bool a_ended = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (first_started.empty() && std::chrono::steady_clock::now() < deadline) {
    for (auto& r : p2->poll(wall_now())) {
      if (r.job_id == "order-a" && r.final)
        a_ended = true;
      else if (r.job_id != "order-a" && r.started_at > 0 && first_started.empty())
        first_started = r.job_id;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(a_ended);
  EXPECT_EQ(first_started, "order-b");
  EXPECT_EQ(p2->plan()->waiting(), 1u);
  // Nothing leaks: both stopped, every final report seen.
  p2->stop("order-b", "test over", wall_now());
  p2->stop("order-c", "test over", wall_now());
  std::set<std::string> finals;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (finals.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    for (auto& r : p2->poll(wall_now()))
      if (r.final)
        finals.insert(r.job_id);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(finals, (std::set<std::string>{"order-b", "order-c"}));
  EXPECT_EQ(p2->book().free(), local_config().capacity);
  p2.reset();
  exec2.reset();
}

} // namespace
} // namespace tender
