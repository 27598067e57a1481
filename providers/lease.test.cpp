// Lease tokens at launch, for both built-in leasing providers (local and market) with
// the real token source: unguessable, scoped to their allocation, and dead with it
// (expired, released or finished). A launch with a wrong, an expired or another
// allocation's token is refused, and no refusal echoes a token.

#include "providers/local.hpp"
#include "providers/market.hpp"

#include "providers/testing.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

namespace tender {
namespace {

using tender::testing::gib;
using tender::testing::request;
using tender::testing::t0;
using tender::testing::wall_now;
constexpr usec lease_ttl = 60 * sec_us;

resources res(millicores cpu, bytes_t mem) {
  resources r;
  r.cpu = cpu;
  r.memory = mem;
  return r;
}

provider_config local_config() {
  provider_config c;
  c.name = "lease-local";
  c.kind = "local";
  c.capacity = res(4000, 8 * gib);
  c.price_per_core_hour = 40'000;
  c.price_per_gib_hour = 5'000;
  c.busy_markup = 1.5;
  c.availability = 0.99;
  return c;
}

provider_config market_config() {
  instance_type t;
  t.family = "m5";
  t.name = "m5.large";
  t.cpu = 2000;
  t.memory = 8 * gib;
  t.on_demand_per_hour = 96'000;
  t.spot_per_hour = 31'800;
  provider_config c;
  c.name = "lease-market";
  c.kind = "market";
  c.types = {t};
  c.offer_spot = false;
  c.offer_on_demand = true;
  c.provisioning_delay = 0;
  c.availability = 0.999;
  c.seed = 7;
  return c;
}

/// Runs each test against a local and a market provider.
class lease_test : public ::testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    root_ = tender::testing::scratch_root("tender-lease-" + GetParam());
    std::filesystem::create_directories(root_);
    exec_ = std::make_unique<executor>((root_ / "runs").string());
    if (GetParam() == "local")
      p_ = std::make_unique<local_provider>(local_config(), *exec_, random_token, lease_ttl);
    else
      p_ = std::make_unique<market_provider>(market_config(), *exec_, random_token, lease_ttl);
  }
  void TearDown() override {
    p_.reset();
    exec_.reset();
    std::filesystem::remove_all(root_);
  }

  allocation win(const std::string& job, usec now) {
    // Job ids are the executor's cgroup names, global on the machine: the local and the
    // market instance of a test may run at the same time (ctest -j2), so they differ.
    auto v = p_->bid(request(job + "-" + GetParam(), res(1000, gib), sec_us), now);
    if (auto* d = std::get_if<decline>(&v)) {
      ADD_FAILURE() << "declined: " << d->reason;
      return {};
    }
    auto& o = std::get<offer>(v);
    award a;
    a.offer_id = o.offer_id;
    a.job_id = o.job_id;
    a.auction_id = o.auction_id;
    a.provider = o.provider;
    a.hold_ttl = 30 * sec_us;
    auto h = p_->hold(a, now);
    if (auto* r = std::get_if<commit_refuse>(&h)) {
      ADD_FAILURE() << "refused: " << r->reason;
      return {};
    }
    return std::get<commit_confirm>(h).alloc;
  }

  static launch launch_of(const allocation& a, const std::string& token) {
    launch l;
    l.job_id = a.job_id;
    l.allocation_id = a.allocation_id;
    l.lease_token = token;
    l.spec.command = {"true"};
    return l;
  }

  /// The launch is refused with a lease error that does not echo `token`.
  void expect_refused(const launch& l, usec now, const std::string& why) {
    auto err = p_->start(l, now);
    ASSERT_TRUE(err) << why << ": accepted";
    EXPECT_EQ(err->code, "lease") << why;
    EXPECT_EQ(err->field, "lease_token") << why;
    if (!l.lease_token.empty()) {
      EXPECT_EQ(err->message.find(l.lease_token), std::string::npos) << why << ": " << err->message;
    }
  }

  std::filesystem::path root_;
  std::unique_ptr<executor> exec_;
  std::unique_ptr<leasing_provider> p_;
};

TEST_P(lease_test, tokens_are_unguessable_and_one_per_allocation) {
  auto a = win("lt-a", t0), b = win("lt-b", t0);
  for (const auto* t : {&a.lease_token, &b.lease_token}) {
    EXPECT_EQ(t->size(), 64u) << "256 random bits, hex";
    EXPECT_EQ(t->find_first_not_of("0123456789abcdef"), std::string::npos);
  }
  EXPECT_NE(a.lease_token, b.lease_token);
  EXPECT_EQ(a.lease_expires, t0 + lease_ttl);
}

TEST_P(lease_test, wrong_expired_and_another_allocations_token_are_refused_at_launch) {
  auto a = win("lt-a", t0), b = win("lt-b", t0);
  auto wrong = a.lease_token;
  wrong.back() = wrong.back() == '0' ? '1' : '0'; // one character off
  expect_refused(launch_of(a, wrong), t0 + 1, "a wrong token");
  expect_refused(launch_of(a, b.lease_token), t0 + 1, "another allocation's token");
  expect_refused(launch_of(a, ""), t0 + 1, "no token");
  expect_refused(launch_of(a, a.lease_token + a.lease_token), t0 + 1, "a longer token");
  // b's own token does not open a either way round: a's token on b is refused too.
  expect_refused(launch_of(b, a.lease_token), t0 + 1, "a's token on b");
  // At the lease's expiry even the right token is refused, and the capacity is back.
  expect_refused(launch_of(a, a.lease_token), a.lease_expires, "an expired lease");
  EXPECT_EQ(p_->start(launch_of(a, a.lease_token), a.lease_expires)->message,
            "the lease of allocation " + a.allocation_id + " has expired");
}

TEST_P(lease_test, a_token_dies_with_its_allocation) {
  auto now = wall_now();
  auto a = win("lt-run", now);
  auto b = win("lt-released", now);
  // Released before launch: its token no longer opens anything.
  tender::release r;
  r.allocation_id = b.allocation_id;
  r.offer_id = b.offer_id;
  r.job_id = b.job_id;
  r.reason = "test";
  p_->release(r, now);
  expect_refused(launch_of(b, b.lease_token), now + 1, "a released allocation's token");

  // Run a to the end; afterwards its token is refused like any other.
  ASSERT_FALSE(p_->start(launch_of(a, a.lease_token), wall_now()));
  bool ended = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!ended && std::chrono::steady_clock::now() < deadline) {
    for (auto& r : p_->poll(wall_now()))
      ended |= r.job_id == a.job_id && r.final;
    if (!ended)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(ended) << "no final report";
  expect_refused(launch_of(a, a.lease_token), wall_now(), "a finished allocation's token");
}

INSTANTIATE_TEST_SUITE_P(providers, lease_test, ::testing::Values("local", "market"),
                         [](const auto& info) { return info.param; });

} // namespace
} // namespace tender
