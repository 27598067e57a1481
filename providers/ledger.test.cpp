#include "providers/ledger.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace tender {
namespace {

constexpr bytes_t gib = bytes_t{1} << 30;

resources res(millicores cpu, bytes_t mem, std::int32_t gpus = 0) {
  resources r;
  r.cpu = cpu;
  r.memory = mem;
  r.gpus = gpus;
  return r;
}

resources capacity() {
  resources r = res(8000, 16 * gib, 2);
  r.gpu_type = "T4";
  r.gpu_memory = 16 * gib;
  return r;
}

TEST(ledger, hold_counts_against_free_capacity) {
  ledger l(capacity());
  ASSERT_TRUE(l.try_hold("o1", res(3000, 4 * gib, 1), 0, 100));
  resources want = capacity();
  want.cpu = 5000;
  want.memory = 12 * gib;
  want.gpus = 1;
  EXPECT_EQ(l.free(), want);
  EXPECT_EQ(l.holds(), 1u);
  EXPECT_DOUBLE_EQ(l.utilisation(), 0.5); // the GPU share dominates
}

TEST(ledger, hold_refused_with_a_reason_when_it_does_not_fit) {
  ledger l(capacity());
  ASSERT_TRUE(l.try_hold("o1", res(1000, 12 * gib), 0, 100));
  std::string why;
  EXPECT_FALSE(l.try_hold("o2", res(1000, 8 * gib), 0, 100, &why));
  EXPECT_EQ(why, "not enough memory: want " + format_bytes(8 * gib) + ", free " +
                     format_bytes(4 * gib));
  EXPECT_FALSE(l.try_hold("o3", res(7500, gib), 0, 100, &why));
  EXPECT_EQ(why, "not enough cpu: want 7.5 cores, free 7");
  EXPECT_FALSE(l.try_hold("o4", res(0, 0, 3), 0, 100, &why));
  EXPECT_EQ(why, "not enough GPUs: want 3, free 2");
  EXPECT_EQ(l.holds(), 1u);
}

TEST(ledger, hold_is_idempotent_by_offer_id) {
  ledger l(capacity());
  ASSERT_TRUE(l.try_hold("o1", res(6000, gib), 0, 100));
  ASSERT_TRUE(l.try_hold("o1", res(6000, gib), 10, 100)); // would not fit twice
  EXPECT_EQ(l.free().cpu, 2000);
  EXPECT_EQ(l.holds(), 1u);
  EXPECT_EQ(l.find_hold("o1")->expires, 100); // the first hold stands
}

TEST(ledger, confirm_turns_a_hold_into_an_allocation_once) {
  ledger l(capacity());
  ASSERT_TRUE(l.try_hold("o1", res(2000, gib), 0, 100));
  ASSERT_TRUE(l.confirm("o1", "a1", 50));
  ASSERT_TRUE(l.confirm("o1", "a1", 60));
  EXPECT_EQ(l.holds(), 0u);
  EXPECT_EQ(l.allocations(), 1u);
  EXPECT_EQ(l.committed().cpu, 2000);
  EXPECT_EQ(l.held().cpu, 0);
  std::string why;
  EXPECT_FALSE(l.confirm("o1", "a2", 60, &why));
  EXPECT_EQ(why, "offer o1 is already allocation a1");
  // Holding the offer again after it became an allocation reserves nothing.
  ASSERT_TRUE(l.try_hold("o1", res(2000, gib), 70, 100));
  EXPECT_EQ(l.free().cpu, 6000);
  // Allocations do not expire.
  EXPECT_TRUE(l.expire(1'000'000).empty());
  EXPECT_EQ(l.allocations(), 1u);
}

TEST(ledger, expired_hold_returns_capacity_and_cannot_be_confirmed) {
  ledger l(capacity());
  ASSERT_TRUE(l.try_hold("o1", res(8000, gib), 0, 100));
  EXPECT_TRUE(l.expire(99).empty());
  std::string why;
  EXPECT_FALSE(l.try_hold("o2", res(1000, gib), 99, 100, &why));
  // At 100 the hold is gone: a new hold fits, the old one cannot be confirmed.
  ASSERT_TRUE(l.try_hold("o2", res(1000, gib), 100, 100));
  EXPECT_FALSE(l.confirm("o1", "a1", 100, &why));
  EXPECT_EQ(why, "no live hold for offer o1");
  auto gone = l.expire(100);
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].offer_id, "o1");
  EXPECT_EQ(gone[0].amount, res(8000, gib));
  EXPECT_EQ(gone[0].expires, 100);
  EXPECT_TRUE(l.expire(100).empty()); // reported once
  EXPECT_EQ(l.free().cpu, 7000);
}

TEST(ledger, release_by_offer_or_allocation_id) {
  ledger l(capacity());
  ASSERT_TRUE(l.try_hold("o1", res(1000, gib), 0, 100));
  ASSERT_TRUE(l.try_hold("o2", res(1000, gib), 0, 100));
  ASSERT_TRUE(l.confirm("o2", "a2", 1));
  ASSERT_TRUE(l.try_hold("o3", res(1000, gib), 0, 100));
  ASSERT_TRUE(l.confirm("o3", "a3", 1));
  EXPECT_TRUE(l.release("o1"));
  EXPECT_TRUE(l.release("a2"));
  EXPECT_TRUE(l.release("o3")); // the allocation made from o3
  EXPECT_FALSE(l.release("a2"));
  EXPECT_FALSE(l.release("nothing"));
  EXPECT_EQ(l.free(), capacity());
  EXPECT_EQ(l.holds() + l.allocations(), 0u);
}

TEST(ledger, resize_in_place_only_when_capacity_allows) {
  ledger l(capacity());
  ASSERT_TRUE(l.try_hold("o1", res(2000, 4 * gib), 0, 100));
  ASSERT_TRUE(l.confirm("o1", "a1", 1));
  ASSERT_TRUE(l.try_hold("o2", res(4000, 4 * gib), 0, 100));
  ASSERT_TRUE(l.resize("a1", res(4000, 8 * gib)));
  EXPECT_EQ(l.free().cpu, 0);
  std::string why;
  EXPECT_FALSE(l.resize("a1", res(4001, 8 * gib), &why));
  EXPECT_EQ(why, "not enough cpu: want 4.001 cores, free 4");
  EXPECT_EQ(l.find_allocation("a1")->amount, res(4000, 8 * gib));
  ASSERT_TRUE(l.resize("o2", res(1000, gib))); // a hold shrinks too
  EXPECT_EQ(l.free().cpu, 3000);
  EXPECT_FALSE(l.resize("zz", res(1, 1), &why));
  EXPECT_EQ(why, "no hold or allocation zz");
}

TEST(ledger, commit_enters_an_adopted_allocation) {
  ledger l(capacity());
  ASSERT_TRUE(l.commit("a1", "o1", res(6000, gib)));
  ASSERT_TRUE(l.commit("a1", "o1", res(6000, gib)));
  EXPECT_EQ(l.free().cpu, 2000);
  std::string why;
  EXPECT_FALSE(l.commit("a2", "o2", res(6000, gib), &why));
  EXPECT_EQ(why, "not enough cpu: want 6 cores, free 2");
  EXPECT_TRUE(l.release("o1"));
  EXPECT_EQ(l.free(), capacity());
}

TEST(ledger, negative_amounts_are_refused) {
  ledger l(capacity());
  std::string why;
  EXPECT_FALSE(l.try_hold("o1", res(-1, 0), 0, 100, &why));
  EXPECT_FALSE(l.try_hold("o1", res(1, 0), 0, 0, &why));
  EXPECT_EQ(l.free(), capacity());
}

// A reference model with the ledger's documented semantics, and the invariant.
TEST(ledger, random_operations_never_double_book) {
  std::mt19937_64 rng(20240531);
  const resources cap = capacity();
  ledger l(cap);
  struct model_hold {
    resources amount;
    usec expires;
  };
  std::map<std::string, model_hold> holds;
  std::map<std::string, std::pair<std::string, resources>> allocs; // alloc -> (offer, amount)
  std::map<std::string, std::string> by_offer;
  usec now = 0;
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
  auto sum = [](auto& m, auto get) {
    resources s;
    for (auto& [k, v] : m) {
      const resources& r = get(v);
      s.cpu += r.cpu;
      s.memory += r.memory;
      s.gpus += r.gpus;
    }
    return s;
  };
  auto model_sweep = [&] {
    for (auto it = holds.begin(); it != holds.end();)
      it = it->second.expires <= now ? holds.erase(it) : std::next(it);
  };
  int holds_ok = 0, confirms_ok = 0, releases_ok = 0, expired = 0;
  for (int step = 0; step < 20000; ++step) {
    now += pick(20);
    std::string offer = "o" + std::to_string(pick(40));
    std::string alloc = "a" + offer.substr(1);
    switch (pick(5)) {
    case 0:
    case 1: {
      resources r = res(pick(5) * 500, pick(6) * gib, pick(3) == 0 ? 1 : 0);
      usec ttl = 1 + pick(200);
      model_sweep();
      bool expect = true;
      if (!holds.count(offer) && !by_offer.count(offer)) {
        resources used = sum(holds, [](auto& h) -> const resources& { return h.amount; });
        resources c = sum(allocs, [](auto& a) -> const resources& { return a.second; });
        expect = used.cpu + c.cpu + r.cpu <= cap.cpu &&
                 used.memory + c.memory + r.memory <= cap.memory &&
                 used.gpus + c.gpus + r.gpus <= cap.gpus;
        if (expect)
          holds[offer] = {r, now + ttl};
      }
      ASSERT_EQ(l.try_hold(offer, r, now, ttl), expect) << "step " << step;
      holds_ok += expect;
      break;
    }
    case 2: {
      model_sweep();
      bool expect = false;
      if (auto b = by_offer.find(offer); b != by_offer.end()) {
        expect = b->second == alloc;
      } else if (auto h = holds.find(offer); h != holds.end()) {
        expect = true;
        allocs[alloc] = {offer, h->second.amount};
        by_offer[offer] = alloc;
        holds.erase(h);
      }
      ASSERT_EQ(l.confirm(offer, alloc, now), expect) << "step " << step;
      confirms_ok += expect;
      break;
    }
    case 3: {
      // release() takes no time: expired holds not yet swept can still be released,
      // in the model as in the ledger.
      std::string id = pick(2) ? offer : alloc;
      bool expect = false;
      if (holds.count(id)) {
        expect = true;
        holds.erase(id);
      } else if (allocs.count(id) || by_offer.count(id)) {
        std::string a = allocs.count(id) ? id : by_offer[id];
        by_offer.erase(allocs[a].first);
        allocs.erase(a);
        expect = true;
      }
      ASSERT_EQ(l.release(id), expect) << "step " << step;
      releases_ok += expect;
      break;
    }
    case 4: {
      model_sweep();
      auto gone = l.expire(now);
      expired += static_cast<int>(gone.size());
      for (auto& g : gone)
        ASSERT_LE(g.expires, now);
      break;
    }
    }
    // The invariant: every live hold and allocation counted once, never above capacity.
    resources held = sum(holds, [](auto& h) -> const resources& { return h.amount; });
    resources committed = sum(allocs, [](auto& a) -> const resources& { return a.second; });
    ASSERT_EQ(l.held().cpu, held.cpu) << "step " << step;
    ASSERT_EQ(l.held().memory, held.memory) << "step " << step;
    ASSERT_EQ(l.held().gpus, held.gpus) << "step " << step;
    ASSERT_EQ(l.committed().cpu, committed.cpu) << "step " << step;
    ASSERT_EQ(l.committed().memory, committed.memory) << "step " << step;
    ASSERT_EQ(l.committed().gpus, committed.gpus) << "step " << step;
    ASSERT_EQ(l.holds(), holds.size());
    ASSERT_EQ(l.allocations(), allocs.size());
    ASSERT_LE(held.cpu + committed.cpu, cap.cpu);
    ASSERT_LE(held.memory + committed.memory, cap.memory);
    ASSERT_LE(held.gpus + committed.gpus, cap.gpus);
    ASSERT_GE(l.free().cpu, 0);
  }
  // The run exercised every path.
  EXPECT_GT(holds_ok, 1000);
  EXPECT_GT(confirms_ok, 300);
  EXPECT_GT(releases_ok, 200);
  EXPECT_GT(expired, 100);
}

} // namespace
} // namespace tender
