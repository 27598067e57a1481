// The scaler on synthetic usage streams: what it plans for each need, and what it
// journals for every answer. No actors, no clock: time is the samples' own.

#include "actors/scaler.hpp"

#include <gtest/gtest.h>

namespace tender {
namespace {

constexpr bytes_t MiB = bytes_t{1} << 20;

allocation alloc_of(const std::string& provider, millicores cpu, bytes_t memory) {
  allocation a;
  a.allocation_id = provider + "/a1";
  a.job_id = "j1";
  a.provider = provider;
  a.granted.cpu = cpu;
  a.granted.memory = memory;
  return a;
}

scaling_config fast_config() {
  scaling_config c;
  c.memory_horizon = 5 * sec_us; // act 5 s before the limit
  return c;
}

/// Memory growing 2 MiB every 100 ms from 10 MiB: 20 MiB/s.
usage_sample growing(int i) {
  usage_sample s;
  s.at = i * 100'000;
  s.cpu = 500;
  s.rss = 10 * MiB + i * 2 * MiB;
  return s;
}

/// Feeds samples from `from` on until `check` returns a plan (or `to` is reached).
std::optional<scaling_plan> feed_until_plan(scaler& s, int from, int to, int* at = nullptr) {
  for (int i = from; i < to; ++i) {
    s.observe(growing(i));
    if (auto p = s.check(growing(i).at)) {
      if (at)
        *at = i;
      return p;
    }
  }
  return std::nullopt;
}

TEST(scaler, growing_memory_is_raised_in_place_before_the_limit) {
  scaler s("j1", alloc_of("local", 1000, 200 * MiB), 0, 0, fast_config());
  int at = 0;
  auto p = feed_until_plan(s, 0, 200, &at);
  ASSERT_TRUE(p);
  // Seen at ~100 MiB, 5 s of trend before the 200 MiB limit: ahead of time.
  EXPECT_LT(growing(at).rss, 200 * MiB);
  EXPECT_EQ(p->action, scaling_action::in_place);
  EXPECT_EQ(p->need.kind, scaling_kind::grow_memory);
  EXPECT_FALSE(p->need.disruptive);
  EXPECT_EQ(p->held, (resources{1000, 200 * MiB, 0, "", 0}));
  // The detector sizes for an hour of trend; one step is capped at 4 x.
  EXPECT_EQ(p->wanted, (resources{1000, 800 * MiB, 0, "", 0}));
  const std::string capped = "; capped at 4 x what is held (1.000 cores, 800 MiB) for this step";
  ASSERT_GE(p->need.reason.size(), capped.size());
  EXPECT_EQ(p->need.reason.substr(p->need.reason.size() - capped.size()), capped);

  const scale_request r = s.request(*p);
  EXPECT_EQ(r.job_id, "j1");
  EXPECT_EQ(r.allocation_id, "local/a1");
  EXPECT_EQ(r.wanted, p->wanted);
  EXPECT_TRUE(r.in_place_only);
  EXPECT_EQ(r.reason, "grow_memory: " + p->need.reason);

  scale_offer o;
  o.job_id = "j1";
  o.allocation_id = "local/a1";
  o.provider = "local";
  o.applied = true;
  o.granted = p->wanted;
  o.price_delta = 42;
  o.reason = r.reason;
  const usec now = growing(at).at;
  auto a = s.answered(*p, o, now);
  scaling_decision want;
  want.job_id = "j1";
  want.at = now;
  want.need = "grow_memory";
  want.action = "in_place";
  want.outcome = "granted";
  want.by = "local";
  want.allocation_id = "local/a1";
  want.held = p->held;
  want.wanted = p->wanted;
  want.granted = p->wanted;
  want.price_delta = 42;
  want.reason = p->need.reason;
  want.detail = "1.000 cores, 200 MiB -> 1.000 cores, 800 MiB in place";
  EXPECT_EQ(a.decision, want);
  EXPECT_FALSE(a.move);
  EXPECT_EQ(s.allocated(), p->wanted);
  EXPECT_EQ(s.holding().memory, 800 * MiB);
  // The job keeps growing to 400 MiB: well inside the new limit, nothing more to do.
  EXPECT_FALSE(feed_until_plan(s, at + 1, 196));
}

TEST(scaler, refused_memory_growth_moves_the_job_and_the_next_need_is_held_back) {
  scaler s("j1", alloc_of("local", 1000, 200 * MiB), 0, 0, fast_config());
  int at = 0;
  auto p = feed_until_plan(s, 0, 200, &at);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->action, scaling_action::in_place);
  scale_offer o;
  o.provider = "local";
  o.reason = "limits cannot change in place: in-place resize needs cgroups";
  auto a = s.answered(*p, o, growing(at).at);
  EXPECT_TRUE(a.move);
  EXPECT_EQ(a.decision.outcome, "refused");
  EXPECT_EQ(a.decision.by, "local");
  EXPECT_EQ(a.decision.granted, p->held);
  EXPECT_EQ(a.decision.detail, o.reason);
  EXPECT_FALSE(s.holding().memory_in_place);
  EXPECT_TRUE(s.holding().cpu_in_place); // CPU was not asked for
  EXPECT_EQ(s.move_target(*p), p->wanted);

  allocation to = alloc_of("local-b", 1000, 800 * MiB);
  const usec now = growing(at + 3).at;
  p->action = scaling_action::move; // as the job actor does when it moves
  auto d = s.moved(*p, to, "restarted on local-b", now);
  scaling_decision want;
  want.job_id = "j1";
  want.at = now;
  want.need = "grow_memory";
  want.action = "move";
  want.outcome = "moved";
  want.by = "local-b";
  want.allocation_id = "local-b/a1";
  want.held = p->held;
  want.wanted = p->wanted;
  want.granted = to.granted;
  want.disruptive = true;
  want.reason = p->need.reason;
  want.detail = "restarted on local-b";
  EXPECT_EQ(d, want);
  EXPECT_EQ(s.allocation_id(), "local-b/a1");
  EXPECT_EQ(s.allocated(), to.granted);

  // The restarted run grows again, faster than the new limit allows for long. The new
  // provider is asked in place first; when it refuses, a second move within the hour
  // is held back by the budget, and so is every later (now disruptive) need.
  std::optional<scaling_plan> q;
  usec t = now;
  int i = 0;
  auto next = [&] {
    usage_sample x;
    x.at = t = now + (++i) * 100'000;
    x.cpu = 500;
    x.rss = 10 * MiB + i * 3 * MiB;
    s.observe(x);
    return s.check(x.at);
  };
  while (!q && i < 400)
    q = next();
  ASSERT_TRUE(q);
  EXPECT_EQ(q->action, scaling_action::in_place);
  EXPECT_EQ(q->held.memory, 800 * MiB);
  scale_offer no;
  no.provider = "local-b";
  no.reason = "no room";
  auto b = s.answered(*q, no, t);
  EXPECT_FALSE(b.move);
  EXPECT_EQ(b.decision.detail, "no room; no move: the last one was 0.4 min ago (at most one "
                               "per 60 min)");
  for (int k = 0; k < 1000; ++k)
    ASSERT_FALSE(next()) << "sample " << i << ": " << s.held_back();
  EXPECT_NE(s.held_back().find("disruptive"), std::string::npos) << s.held_back();
}

// A market applies a larger size by changing the instance's type: the job restarts
// after the answer's delay. That spends the hour's disruptive budget, and later changes
// on the allocation are disruptive.
TEST(scaler, a_resize_that_restarts_the_job_is_disruptive) {
  scaler s("j1", alloc_of("cloud-a", 2000, 200 * MiB), 0, 0, fast_config());
  int at = 0;
  auto p = feed_until_plan(s, 0, 200, &at);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->action, scaling_action::in_place);
  scale_offer o;
  o.provider = "cloud-a";
  o.applied = true;
  o.granted = p->wanted;
  o.granted.memory = 1024 * MiB; // the next instance type up
  o.delay = 2 * sec_us;
  o.price_delta = 5'000;
  o.reason = "resized c5.large -> m5.large: the instance stopped, changed type and starts "
             "again in 2 s; the job restarts";
  auto a = s.answered(*p, o, growing(at).at);
  EXPECT_FALSE(a.move);
  EXPECT_EQ(a.decision.outcome, "granted");
  EXPECT_TRUE(a.decision.disruptive);
  EXPECT_EQ(a.decision.granted.memory, 1024 * MiB);
  EXPECT_EQ(a.decision.price_delta, 5'000);
  EXPECT_NE(a.decision.detail.find("the job restarts"), std::string::npos) << a.decision.detail;
  EXPECT_FALSE(s.holding().memory_in_place);
  EXPECT_FALSE(s.holding().cpu_in_place);
  // Within the hour, a GPU-memory move after the restart is held back too.
  auto g = s.gpu_memory_short(20LL << 30, "CUDA out of memory", growing(at + 10).at);
  EXPECT_EQ(g.action, scaling_action::none);
  EXPECT_NE(s.not_acted(g, growing(at + 10).at).detail.find("disruptive"), std::string::npos);

  // An in-place answer without a delay is not disruptive (the cgroup case).
  scaler l("j2", alloc_of("local", 1000, 200 * MiB), 0, 0, fast_config());
  auto q = feed_until_plan(l, 0, 200, &at);
  ASSERT_TRUE(q);
  scale_offer fine;
  fine.provider = "local";
  fine.applied = true;
  fine.granted = q->wanted;
  auto b = l.answered(*q, fine, growing(at).at);
  EXPECT_FALSE(b.decision.disruptive);
  EXPECT_TRUE(l.holding().memory_in_place);
}

// A run that ended out of GPU memory plans a move to any GPU type with the memory it
// needs plus the margin; the held GPU is what it ran out on.
TEST(scaler, out_of_gpu_memory_plans_a_move_to_a_gpu_with_more_memory) {
  allocation a = alloc_of("gpu-vendor", 4000, 16384 * MiB);
  a.granted.gpus = 1;
  a.granted.gpu_type = "T4";
  a.granted.gpu_memory = 16384 * MiB;
  scaling_config c = fast_config();
  c.memory_margin = 0.10;
  scaler s("j1", a, 0, 0, c);
  auto p = s.gpu_memory_short(18000 * MiB, "CUDA out of memory. Tried to allocate 2.00 GiB", sec_us);
  EXPECT_EQ(p.action, scaling_action::move);
  EXPECT_EQ(p.need.kind, scaling_kind::grow_gpu_memory);
  EXPECT_TRUE(p.need.disruptive);
  EXPECT_EQ(p.held, a.granted);
  EXPECT_EQ(p.wanted.gpu_memory, 19800 * MiB);
  EXPECT_EQ(p.wanted.gpu_type, "");
  EXPECT_EQ(p.wanted.gpus, 1);
  EXPECT_EQ(p.wanted.cpu, 4000);
  EXPECT_EQ(p.wanted.memory, 16384 * MiB);
  EXPECT_NE(p.need.reason.find("on T4 with 16384 MiB per GPU; it needs 18000 MiB"),
            std::string::npos)
    << p.need.reason;
  EXPECT_NE(p.need.reason.find("CUDA out of memory"), std::string::npos);
  // Less than held (fragmentation): still more than the GPU it ran out on.
  EXPECT_GT(s.gpu_memory_short(1000 * MiB, "x", sec_us).wanted.gpu_memory, 16384 * MiB);
  // After the move the budget holds back another within the hour.
  allocation to = a;
  to.allocation_id = "cloud/a2";
  to.provider = "cloud";
  to.granted.gpu_type = "A10G";
  to.granted.gpu_memory = 24576 * MiB;
  s.moved(p, to, "restarted", 2 * sec_us);
  EXPECT_EQ(s.gpu_memory_short(26000 * MiB, "x", 3 * sec_us).action, scaling_action::none);
  EXPECT_EQ(s.gpu_memory_short(26000 * MiB, "x", 2 * sec_us + c.disruptive_gap).action,
            scaling_action::move);
  c.move = false;
  scaler off("j3", a, 0, 0, c);
  auto n = off.gpu_memory_short(18000 * MiB, "x", sec_us);
  EXPECT_EQ(n.action, scaling_action::none);
  EXPECT_NE(off.not_acted(n, sec_us).detail.find("moves are disabled"), std::string::npos);
}

TEST(scaler, a_disruptive_memory_need_plans_a_move_straight_away) {
  scaling_config c = fast_config();
  c.disruptive_gap = 30 * sec_us; // quiet lasts the gap, at least a minute
  scaler s("j1", alloc_of("local", 1000, 200 * MiB), 0, 0, c);
  int at = 0;
  auto p = feed_until_plan(s, 0, 200, &at);
  ASSERT_TRUE(p);
  scale_offer refused;
  refused.provider = "local";
  refused.reason = "no room";
  ASSERT_TRUE(s.answered(*p, refused, growing(at).at).move);
  // The move did not happen (no provider had room): quiet, then a move again.
  auto f = s.move_failed(*p, "no acceptable offer", growing(at + 1).at);
  EXPECT_EQ(f.outcome, "move_failed");
  EXPECT_EQ(f.by, "tender");
  EXPECT_EQ(f.detail, "no acceptable offer");
  EXPECT_FALSE(feed_until_plan(s, at + 2, at + 100)); // quiet for a minute
  auto later = feed_until_plan(s, at + 600, at + 700); // a minute later
  ASSERT_TRUE(later) << s.held_back();
  EXPECT_EQ(later->action, scaling_action::move);
  EXPECT_TRUE(later->need.disruptive);
}

TEST(scaler, moves_are_only_for_memory_and_can_be_disabled) {
  scaling_config c = fast_config();
  c.move = false;
  c.disruptive_gap = 0;
  scaler s("j1", alloc_of("local", 1000, 200 * MiB), 0, 0, c);
  int at = 0;
  auto p = feed_until_plan(s, 0, 200, &at);
  ASSERT_TRUE(p);
  scale_offer refused;
  refused.provider = "local";
  refused.reason = "no room";
  auto a = s.answered(*p, refused, growing(at).at);
  EXPECT_FALSE(a.move);
  EXPECT_EQ(a.decision.outcome, "refused");
  // Quiet for a minute; then the need is disruptive and cannot be acted on.
  EXPECT_FALSE(feed_until_plan(s, at + 1, at + 100));
  auto later = feed_until_plan(s, at + 600, at + 700);
  ASSERT_TRUE(later) << s.held_back();
  EXPECT_EQ(later->action, scaling_action::none);
  auto d = s.not_acted(*later, growing(at + 600).at);
  EXPECT_EQ(d.outcome, "refused");
  EXPECT_EQ(d.by, "tender");
  EXPECT_EQ(d.detail,
            "the provider cannot change it in place and moves are disabled ([scaling] move)");
}

TEST(scaler, low_use_gives_capacity_back_in_place) {
  scaling_config c;
  c.shrink_window = 10 * sec_us;
  scaler s("j1", alloc_of("local", 2000, 1024 * MiB), 0, 0, c);
  std::optional<scaling_plan> p;
  usec now = 0;
  for (int i = 0; i < 200 && !p; ++i) {
    usage_sample x;
    x.at = now = i * 100'000;
    x.cpu = 400;
    x.rss = 100 * MiB;
    s.observe(x);
    p = s.check(x.at);
  }
  ASSERT_TRUE(p);
  EXPECT_EQ(p->need.kind, scaling_kind::shrink);
  EXPECT_EQ(p->action, scaling_action::in_place);
  // CPU: the peaks (0.4) + 10 %; memory: the 100 MiB peak + 10 %.
  // (100 MiB x 1.1 rounds up to 111 MiB: the detector's MiB rounding is not forgiving
  // the product's last bits.)
  EXPECT_EQ(p->wanted, (resources{440, 111 * MiB, 0, "", 0}));
  scale_offer o;
  o.provider = "local";
  o.applied = true;
  o.granted = p->wanted;
  o.price_delta = -7;
  auto a = s.answered(*p, o, now);
  EXPECT_EQ(a.decision.outcome, "granted");
  EXPECT_EQ(a.decision.price_delta, -7);
  EXPECT_EQ(s.allocated(), p->wanted);

  // A refused shrink never moves the job.
  scaler r("j1", alloc_of("local", 2000, 1024 * MiB), 0, 0, c);
  std::optional<scaling_plan> q;
  for (int i = 0; i < 200 && !q; ++i) {
    usage_sample x;
    x.at = now = i * 100'000;
    x.cpu = 400;
    x.rss = 100 * MiB;
    r.observe(x);
    q = r.check(x.at);
  }
  ASSERT_TRUE(q);
  auto b = r.unanswered(*q, "timeout", now);
  EXPECT_FALSE(b.move);
  EXPECT_EQ(b.decision.outcome, "refused");
  EXPECT_EQ(b.decision.detail, "no answer: timeout");
  EXPECT_EQ(b.decision.by, "local");
}

TEST(scaler, an_idle_job_keeps_a_tenth_of_a_core_and_64_mib) {
  scaling_config c;
  c.shrink_window = 10 * sec_us;
  scaler s("j1", alloc_of("local", 2000, 1024 * MiB), 0, 0, c);
  std::optional<scaling_plan> p;
  for (int i = 0; i < 200 && !p; ++i) {
    usage_sample x;
    x.at = i * 100'000;
    x.cpu = 0;
    x.rss = 1 * MiB;
    s.observe(x);
    p = s.check(x.at);
  }
  ASSERT_TRUE(p);
  EXPECT_EQ(p->wanted, (resources{100, 64 * MiB, 0, "", 0}));

  // Already at the floors: nothing to give back.
  scaler f("j1", alloc_of("local", 100, 64 * MiB), 0, 0, c);
  for (int i = 0; i < 200; ++i) {
    usage_sample x;
    x.at = i * 100'000;
    x.cpu = 0;
    x.rss = 1 * MiB;
    f.observe(x);
    ASSERT_FALSE(f.check(x.at)) << i;
  }
}

TEST(scaler, a_job_past_its_predicted_end_extends_it_without_a_provider) {
  scaler s("j1", alloc_of("local", 1000, 200 * MiB), 0, 10 * sec_us, fast_config());
  std::optional<scaling_plan> p;
  usec now = 0;
  for (int i = 0; i < 200 && !p; ++i) {
    usage_sample x;
    x.at = now = i * 100'000;
    x.cpu = 500;
    x.rss = 50 * MiB;
    s.observe(x);
    p = s.check(x.at);
  }
  ASSERT_TRUE(p);
  EXPECT_EQ(p->need.kind, scaling_kind::overrun_runtime);
  EXPECT_EQ(p->action, scaling_action::extend);
  EXPECT_EQ(p->wanted, p->held);
  auto d = s.extended(*p, now);
  EXPECT_EQ(d.outcome, "noted");
  EXPECT_EQ(d.by, "tender");
  EXPECT_EQ(d.detail, "predicted end moved from 0.2 to 0.2 min after the start");
  EXPECT_EQ(s.holding().runtime_hi, p->need.runtime_hi);
  EXPECT_GT(p->need.runtime_hi, 10 * sec_us);
  EXPECT_FALSE(s.check(now)); // extended: nothing more now
}

TEST(scaler, detector_options_come_from_the_config) {
  scaling_config c;
  c.memory_horizon = 7;
  c.memory_window = 8;
  c.memory_margin = 0.3;
  c.throttle_window = 9;
  c.throttle_share = 0.7;
  c.throttle_min_span = 12;
  c.cpu_margin = 0.2;
  c.shrink_window = 10;
  c.runtime_extension = 0.6;
  c.min_gain = 0.08;
  c.disruptive_gap = 11;
  c.forecast_short_cost = 640;
  auto o = detector_options(c);
  EXPECT_TRUE(o.forecast.enabled); // the agent sizes CPU by forecast by default
  EXPECT_DOUBLE_EQ(o.forecast.short_cost, 640);
  c.cpu_forecast = false;
  EXPECT_FALSE(detector_options(c).forecast.enabled);
  EXPECT_EQ(o.memory_horizon, 7);
  EXPECT_EQ(o.memory_window, 8);
  EXPECT_DOUBLE_EQ(o.memory_margin, 0.3);
  EXPECT_EQ(o.throttle_window, 9);
  EXPECT_DOUBLE_EQ(o.throttle_share, 0.7);
  EXPECT_EQ(o.throttle_min_span, 12);
  EXPECT_DOUBLE_EQ(o.cpu_margin, 0.2);
  EXPECT_EQ(o.shrink_window, 10);
  EXPECT_DOUBLE_EQ(o.runtime_extension, 0.6);
  EXPECT_DOUBLE_EQ(o.min_gain, 0.08);
  EXPECT_EQ(o.disruptive_gap, 11);
}

} // namespace
} // namespace tender
