#include "protocol/amounts.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <random>

namespace tender {
namespace {

constexpr usec example_instant = 1'795'611'229'123'000; // 2026-11-25T12:53:49.123Z

// ---------------------------------------------------------------- money

TEST(format_usd, prints_six_decimals_exactly) {
  EXPECT_EQ(format_usd(0), "0.000000");
  EXPECT_EQ(format_usd(500'000), "0.500000");
  EXPECT_EQ(format_usd(12'345'678), "12.345678");
  EXPECT_EQ(format_usd(1), "0.000001");
  EXPECT_EQ(format_usd(-1), "-0.000001");
  EXPECT_EQ(format_usd(-2'500'000), "-2.500000");
  EXPECT_EQ(format_usd(std::numeric_limits<micros>::max()), "9223372036854.775807");
  EXPECT_EQ(format_usd(std::numeric_limits<micros>::min()), "-9223372036854.775808");
}

TEST(parse_usd, accepts_decimal_dollars) {
  micros m = -7;
  ASSERT_TRUE(parse_usd("0.5", m));
  EXPECT_EQ(m, 500'000);
  ASSERT_TRUE(parse_usd("12", m));
  EXPECT_EQ(m, 12'000'000);
  ASSERT_TRUE(parse_usd("0.000001", m));
  EXPECT_EQ(m, 1);
  ASSERT_TRUE(parse_usd("-1.25", m));
  EXPECT_EQ(m, -1'250'000);
  ASSERT_TRUE(parse_usd("+3", m));
  EXPECT_EQ(m, 3'000'000);
  ASSERT_TRUE(parse_usd(".75", m));
  EXPECT_EQ(m, 750'000);
  ASSERT_TRUE(parse_usd("9223372036854.775807", m));
  EXPECT_EQ(m, std::numeric_limits<micros>::max());
}

TEST(parse_usd, rejects_garbage_and_lost_precision) {
  for (const char* bad : {"", "-", "+", ".", "5.", "1.0000001", "abc", "1,5", " 1", "1 ", "--1",
                          "+-1", "1e3", "$1", "9223372036855", "1.2.3", "0x10"}) {
    micros m = 42;
    EXPECT_FALSE(parse_usd(bad, m)) << bad;
    EXPECT_EQ(m, 42) << "output touched on failure for " << bad;
  }
}

TEST(parse_usd, round_trips_format_usd) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<micros> dist(-1'000'000'000'000, 1'000'000'000'000);
  for (int i = 0; i < 2000; ++i) {
    micros x = dist(rng);
    micros back = 0;
    ASSERT_TRUE(parse_usd(format_usd(x), back)) << format_usd(x);
    EXPECT_EQ(back, x);
  }
}

TEST(to_usd, converts_for_display) {
  EXPECT_EQ(to_usd(123'456), 0.123456);
  EXPECT_EQ(to_usd(2'500'000), 2.5);
  EXPECT_EQ(to_usd(-1'500'000), -1.5);
  EXPECT_EQ(to_usd(0), 0.0);
}

// ---------------------------------------------------------------- time

TEST(format_time, rfc3339_utc_with_milliseconds) {
  EXPECT_EQ(format_time(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_time(example_instant), "2026-11-25T12:53:49.123Z");
  EXPECT_EQ(format_time(example_instant + 999), "2026-11-25T12:53:49.123Z"); // truncates µs
  EXPECT_EQ(format_time(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_time(1'709'208'000'000'000), "2024-02-29T12:00:00.000Z");
  EXPECT_EQ(format_time(951'782'400'000'000), "2000-02-29T00:00:00.000Z");
}

TEST(parse_time, accepts_utc_offsets_and_fractions) {
  usec t = 0;
  ASSERT_TRUE(parse_time("2026-11-25T12:53:49.123Z", t));
  EXPECT_EQ(t, example_instant);
  ASSERT_TRUE(parse_time("2026-11-25T13:53:49.123+01:00", t));
  EXPECT_EQ(t, example_instant);
  ASSERT_TRUE(parse_time("2026-11-25T07:23:49.123-05:30", t));
  EXPECT_EQ(t, example_instant);
  ASSERT_TRUE(parse_time("2026-11-25t12:53:49.123z", t));
  EXPECT_EQ(t, example_instant);
  ASSERT_TRUE(parse_time("2026-11-25T12:53:49Z", t));
  EXPECT_EQ(t, example_instant - 123'000);
  ASSERT_TRUE(parse_time("2026-11-25T12:53:49.123456789Z", t));
  EXPECT_EQ(t, example_instant + 456);
  ASSERT_TRUE(parse_time("2026-11-25T12:53:49.5Z", t));
  EXPECT_EQ(t, example_instant - 123'000 + 500'000);
  ASSERT_TRUE(parse_time("1969-12-31T23:59:59.999Z", t));
  EXPECT_EQ(t, -1000);
  ASSERT_TRUE(parse_time("2024-02-29T00:00:00Z", t));
}

TEST(parse_time, rejects_malformed) {
  for (const char* bad :
       {"", "2026-11-25", "2026-11-25T12:53:49", "2026-11-25T12:53:49.Z", "2026-02-30T00:00:00Z",
        "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
        "2026-11-25T25:00:00Z", "2026-11-25T12:60:00Z", "2026-11-25T12:53:49+0100",
        "2026-11-25T12:53:49+24:00", "2026-11-25T12:53:49Zjunk", "26-11-25T12:53:49Z",
        "2026/11/25T12:53:49Z", "2026-11-25X12:53:49Z", "yesterday"}) {
    usec t = 42;
    EXPECT_FALSE(parse_time(bad, t)) << bad;
    EXPECT_EQ(t, 42) << bad;
  }
}

TEST(parse_time, round_trips_format_time_at_millisecond_precision) {
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<usec> dist(-2'000'000'000'000'000, 4'000'000'000'000'000);
  for (int i = 0; i < 2000; ++i) {
    usec x = dist(rng) / ms_us * ms_us;
    usec back = 0;
    ASSERT_TRUE(parse_time(format_time(x), back)) << format_time(x);
    EXPECT_EQ(back, x) << format_time(x);
  }
}

// ---------------------------------------------------------------- durations

TEST(parse_duration, accepts_units_and_plain_seconds) {
  struct {
    const char* text;
    usec want;
  } cases[] = {
      {"250ms", 250 * ms_us},
      {"10s", 10 * sec_us},
      {"30m", 1800 * sec_us},
      {"1h30m", 5400 * sec_us},
      {"2d", 172'800 * sec_us},
      {"10", 10 * sec_us},
      {"0", 0},
      {"1.5h", 5400 * sec_us},
      {"100us", 100},
      {"1h02m03s", 3723 * sec_us},
      {"1.25s", 1'250'000},
      {"1m30s500ms", 90'500'000},
  };
  for (const auto& c : cases) {
    usec d = -1;
    ASSERT_TRUE(parse_duration(c.text, d)) << c.text;
    EXPECT_EQ(d, c.want) << c.text;
  }
}

TEST(parse_duration, rejects_negative_garbage_and_overflow) {
  for (const char* bad :
       {"", "-5s", "-5", "5x", "h", "1h30", "s", " 5s", "5s ", "1.5", "5 s",
        "99999999999999999999s", "999999999999d", "9223372036854775808", "1e3s", "1..5s"}) {
    usec d = 42;
    EXPECT_FALSE(parse_duration(bad, d)) << bad;
    EXPECT_EQ(d, 42) << bad;
  }
}

TEST(format_duration, readable_and_parseable) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(250 * ms_us), "250ms");
  EXPECT_EQ(format_duration(15), "15us");
  EXPECT_EQ(format_duration(5 * sec_us), "5s");
  EXPECT_EQ(format_duration(90 * sec_us), "1m30s");
  EXPECT_EQ(format_duration(3723 * sec_us), "1h02m03s");
  EXPECT_EQ(format_duration(1'500'000), "1.5s");
  EXPECT_EQ(format_duration(172'800 * sec_us), "48h00m00s");
  EXPECT_EQ(format_duration(-90 * sec_us), "-1m30s");

  std::mt19937_64 rng(3);
  std::uniform_int_distribution<usec> dist(0, 400'000 * sec_us);
  for (int i = 0; i < 2000; ++i) {
    usec x = dist(rng);
    usec back = -1;
    ASSERT_TRUE(parse_duration(format_duration(x), back)) << format_duration(x);
    EXPECT_EQ(back, x) << format_duration(x);
  }
}

// ---------------------------------------------------------------- bytes

TEST(parse_bytes, binary_and_decimal_units) {
  struct {
    const char* text;
    bytes_t want;
  } cases[] = {
      {"1GiB", 1LL << 30},    {"512MiB", 512LL << 20},
      {"100MB", 100'000'000}, {"1.5GiB", 1'610'612'736},
      {"1024", 1024},         {"10B", 10},
      {"1K", 1000},           {"1KB", 1000},
      {"1Ki", 1024},          {"1KiB", 1024},
      {"2TiB", 2LL << 40},    {"3T", 3'000'000'000'000},
      {"1 GiB", 1LL << 30},   {"1gib", 1LL << 30},
      {"0.5KiB", 512},        {"0", 0},
  };
  for (const auto& c : cases) {
    bytes_t b = -1;
    ASSERT_TRUE(parse_bytes(c.text, b)) << c.text;
    EXPECT_EQ(b, c.want) << c.text;
  }
}

TEST(parse_bytes, rejects_garbage_negative_and_overflow) {
  for (const char* bad :
       {"", "-1", "-1GiB", "1.5", "1XB", "GiB", "1GiBs", "1.5.5", "1iB", "9999999999999999999",
        "9000PiB", "1  GiB", " 1GiB", "1e9", "0x10", "1GiB "}) {
    bytes_t b = 42;
    EXPECT_FALSE(parse_bytes(bad, b)) << bad;
    EXPECT_EQ(b, 42) << bad;
  }
}

TEST(format_bytes, for_people) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1 KiB");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(1'610'612'736), "1.5 GiB");
  EXPECT_EQ(format_bytes(512LL << 20), "512 MiB");
  EXPECT_EQ(format_bytes((1LL << 20) - 1), "1 MiB"); // rounds up into the next unit
  EXPECT_EQ(format_bytes(-2048), "-2 KiB");
  bytes_t back = 0;
  ASSERT_TRUE(parse_bytes(format_bytes(1'610'612'736), back));
  EXPECT_EQ(back, 1'610'612'736);
}

} // namespace
} // namespace tender
