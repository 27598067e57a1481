#include "models/forecast_sizer.hpp"
#include "models/deviation.hpp"

#include <gtest/gtest.h>

using namespace tender;

namespace {

constexpr usec step = 5 * 60 * sec_us;
constexpr std::int64_t day = 288; // buckets

/// 200 millicores, with an hour at 1000 every day from bucket 100 of the day on.
millicores daily(std::int64_t i) {
  const auto phase = i % day;
  return phase >= 100 && phase < 112 ? 1000 : 200;
}

/// Feeds buckets [from, to) of `f`, one sample at each bucket's end, unthrottled.
void feed(forecast_sizer& s, std::int64_t from, std::int64_t to, millicores (*f)(std::int64_t)) {
  for (std::int64_t i = from; i < to; ++i) {
    s.observe((i + 1) * step, f(i), false);
    s.advance((i + 1) * step);
  }
}

forecast_options costly_shortage() {
  forecast_options o;
  o.enabled = true;
  o.short_cost = 20000; // a job whose owner wants to be short almost never
  return o;
}

} // namespace

/// The recurring-rise forecasters alone: no linear forecaster, headroom in millicores.
forecast_options rises_only() {
  forecast_options o = costly_shortage();
  o.linear_forgetting.clear();
  o.scale_smoothing = 0;
  return o;
}

TEST(forecast_sizer, a_daily_rise_is_covered_before_it_comes) {
  forecast_sizer s(rises_only());
  feed(s, 0, 4 * day + 99, daily);
  // The last complete bucket is 4 * day + 98, still at 200: the size is for bucket
  // 4 * day + 99, one before the rise (the phase window reaches one bucket either side).
  auto z = s.size();
  ASSERT_TRUE(z);
  EXPECT_EQ(z->level, 200);
  EXPECT_GE(z->cpu, 1000) << "the rise recurred on the last two days: grow before it";
  EXPECT_EQ(z->period, 24 * 3600 * sec_us);
  // Away from the rise the size comes back down.
  feed(s, 4 * day + 99, 4 * day + 200, daily);
  z = s.size();
  ASSERT_TRUE(z);
  EXPECT_LT(z->cpu, 1000);
  EXPECT_GE(z->cpu, 200);
}

TEST(forecast_sizer, the_daily_lookback_needs_two_days_of_history) {
  forecast_sizer s(costly_shortage());
  EXPECT_FALSE(s.size()) << "no history, no opinion";
  feed(s, 0, 5, daily);
  EXPECT_FALSE(s.size()) << "fewer than min_buckets residuals";
  // One day of history: the rise has been seen once, not twice: not forecast yet.
  feed(s, 5, day + 99, daily);
  auto z = s.size();
  ASSERT_TRUE(z);
  EXPECT_LT(z->cpu, 1000);
  EXPECT_EQ(z->period, 0);
}

TEST(forecast_sizer, the_linear_forecaster_learns_a_daily_rise_to_the_bucket) {
  // The same series with the default forecasters: the linear fit weighs the same time
  // yesterday, so the rise is forecast for its first bucket and not one before.
  forecast_sizer s(costly_shortage());
  feed(s, 0, 4 * day + 99, daily);
  auto z = s.size();
  ASSERT_TRUE(z);
  EXPECT_LT(z->cpu, 1000) << "bucket 99 of the day is still at 200";
  feed(s, 4 * day + 99, 4 * day + 100, daily);
  z = s.size();
  ASSERT_TRUE(z);
  EXPECT_GE(z->cpu, 1000) << "bucket 100 is the rise's first";
  EXPECT_GT(z->forgetting, 0) << "chosen: a linear forecaster";
  EXPECT_LE(z->cpu, 1100);
  feed(s, 4 * day + 100, 4 * day + 112, daily);
  z = s.size();
  ASSERT_TRUE(z);
  EXPECT_LT(z->cpu, 300) << "and back down for the bucket after the rise";
}

TEST(forecast_sizer, an_alternating_series_is_forecast_exactly) {
  // 200, 800, 200, 800, ...: the median of the last three is wrong every other bucket;
  // a linear fit (the value two buckets back) is exact, so no headroom is needed.
  auto alternating = [](std::int64_t i) -> millicores { return i % 2 ? 800 : 200; };
  forecast_sizer s(costly_shortage());
  feed(s, 0, day, alternating);
  for (std::int64_t i = day; i < day + 4; ++i) {
    auto z = s.size();
    ASSERT_TRUE(z);
    EXPECT_GT(z->forgetting, 0) << i;
    // What headroom there is covers the fit's first, learning buckets, still in the window.
    EXPECT_LE(z->headroom, 20) << i;
    EXPECT_GE(z->cpu, alternating(i)) << i;
    EXPECT_LE(z->cpu, alternating(i) + 20) << i;
    feed(s, i, i + 1, alternating);
  }
  forecast_sizer level(rises_only());
  feed(level, 0, day, alternating);
  EXPECT_GE(level.size()->cpu, 1400) << "without it: the level misses by 600 every other "
                                        "bucket, and the headroom covers that";
}

TEST(forecast_sizer, the_headroom_follows_the_recent_error_scale) {
  // Two days of +-400 around 1000, then six quiet hours (+-4): the headroom relative to
  // the recent error scale shrinks with it; in millicores over the day's residuals it
  // still covers the noisy part.
  auto noisy_then_quiet = [](std::int64_t i) -> millicores {
    const millicores amp = i < 2 * day ? 400 : 4;
    return 1000 + (i * 7 % 5 - 2) * amp / 2;
  };
  forecast_options scaled = costly_shortage(), plain = rises_only();
  scaled.linear_forgetting.clear(); // the level and the rises, scaled or not
  forecast_sizer a(scaled), b(plain);
  for (std::int64_t i = 0; i < 2 * day + 72; ++i)
    for (auto* s : {&a, &b}) {
      s->observe((i + 1) * step, noisy_then_quiet(i), false);
      s->advance((i + 1) * step);
    }
  auto za = a.size(), zb = b.size();
  ASSERT_TRUE(za && zb);
  EXPECT_GE(zb->headroom, 200) << "the day's residuals reach 800 above the median";
  EXPECT_LT(za->headroom, zb->headroom / 2);
  EXPECT_GE(za->cpu, 1004) << "still covers the quiet noise";
}

TEST(forecast_sizer, a_flat_month_keeps_the_linear_fit_finite) {
  // A flat series moves the features in one direction only; with forgetting, the fit's
  // inverse covariance would grow without end in the others (0.97^-8640 overflows).
  forecast_options o = costly_shortage();
  o.linear_forgetting = {0.97};
  forecast_sizer s(o);
  auto flat = [](std::int64_t) -> millicores { return 500; };
  feed(s, 0, 30 * day, flat);
  auto z = s.size();
  ASSERT_TRUE(z);
  EXPECT_EQ(z->cpu, 500);
  // A step after the month is followed as it would be by a fresh sizer.
  auto step_up = [](std::int64_t i) -> millicores { return i < 30 * day ? 500 : 900; };
  feed(s, 30 * day, 30 * day + 6, step_up);
  z = s.size();
  ASSERT_TRUE(z);
  EXPECT_GE(z->cpu, 900);
  EXPECT_LT(z->cpu, 4000);
}

TEST(forecast_sizer, sizes_from_the_past_only) {
  // Two series equal up to bucket k: every size up to k is the same.
  auto a = [](std::int64_t i) -> millicores { return daily(i) + (i * 37) % 90; };
  auto b = [](std::int64_t i) -> millicores {
    return i < 3 * day ? daily(i) + (i * 37) % 90 : 3900;
  };
  forecast_sizer sa(costly_shortage()), sb(costly_shortage());
  bool differ = false;
  for (std::int64_t i = 0; i < 4 * day; ++i) {
    sa.observe((i + 1) * step, a(i), false);
    sb.observe((i + 1) * step, b(i), false);
    sa.advance((i + 1) * step);
    sb.advance((i + 1) * step);
    auto za = sa.size(), zb = sb.size();
    ASSERT_EQ(za.has_value(), zb.has_value()) << i;
    if (!za)
      continue;
    if (i < 3 * day) {
      ASSERT_EQ(za->cpu, zb->cpu) << i;
    } else {
      differ = differ || za->cpu != zb->cpu;
    }
  }
  EXPECT_TRUE(differ) << "the sizer ignores what it sees";
}

TEST(forecast_sizer, a_throttled_bucket_grows_the_size_once) {
  forecast_options o;
  o.enabled = true;
  forecast_sizer s(o);
  auto flat = [](std::int64_t) -> millicores { return 500; };
  feed(s, 0, 30, flat);
  auto z = s.size();
  ASSERT_TRUE(z);
  EXPECT_EQ(z->cpu, 500);
  // Many samples in the next bucket, all at the 500 limit: the bucket's value is the
  // highest seen; the size is 500 * 1.2 once the bucket is over, not before.
  for (int k = 1; k <= 30; ++k)
    s.observe(30 * step + k * 10 * sec_us, 500, true);
  s.advance(30 * step + 300 * sec_us - 1);
  EXPECT_EQ(s.size()->cpu, 500) << "the bucket is not over";
  s.advance(31 * step);
  z = s.size();
  EXPECT_TRUE(z->throttled);
  EXPECT_EQ(z->cpu, 600);
}

TEST(forecast_sizer, the_detector_grows_in_place_ahead_of_a_daily_rise) {
  // What the job is seen using is capped at what it holds (a throttled job cannot show
  // more): the rise is learned from capped buckets, and grown ahead of a little more each day (a
  // capped bucket is kept as the limit * 1.2), until the whole rise is expected.
  auto used_at = [](std::int64_t i) -> millicores {
    const auto phase = i % day;
    return phase >= 100 && phase < 112 ? 700 : 450;
  };
  deviation_options o;
  o.forecast = costly_shortage();
  job_holding h;
  h.cpu = 500;
  h.cpu_max = 4000;
  deviation_detector d(h, o);
  millicores held = h.cpu;
  millicores before_rise = 0;
  std::string reason;
  std::int64_t short_in_rise = 0;
  for (std::int64_t i = 0; i < 8 * day; ++i) {
    const millicores used = used_at(i);
    if (i >= 7 * day && i % day >= 99 && i % day < 112)
      short_in_rise += used > held;
    if (i == 7 * day + 99)
      before_rise = held; // what the job holds in the bucket before the rise
    const usec now = (i + 1) * step;
    d.observe({now, std::min(used, held), 0, 0, used >= held});
    if (auto need = d.check(now)) {
      EXPECT_FALSE(need->disruptive);
      if (i == 7 * day + 98)
        reason = need->reason;
      job_holding g = d.holding();
      g.cpu = need->cpu;
      d.applied(*need, g, now);
      held = g.cpu;
    }
  }
  EXPECT_GE(before_rise, 700) << "grown before the rise on day 8";
  EXPECT_NE(reason.find("recurring every 1440 min"), std::string::npos) << reason;
  EXPECT_EQ(short_in_rise, 0) << "on day 8 the rise finds the job already grown";
  EXPECT_LT(held, 700) << "and shrunk again after it";
}
