#include "protocol/job.hpp"

#include <gtest/gtest.h>

namespace tender {
namespace {

TEST(job_state, names_round_trip) {
  const char* names[] = {"submitted", "profiling", "negotiating", "committed", "running",
                         "rescaling", "done",      "failed",      "refused",   "cancelled"};
  for (int i = 0; i < 10; ++i) {
    auto s = static_cast<job_state>(i);
    EXPECT_STREQ(to_string(s), names[i]);
    job_state back = job_state::running;
    ASSERT_TRUE(parse_job_state(names[i], back)) << names[i];
    EXPECT_EQ(back, s);
  }
}

TEST(job_state, unknown_names_and_values) {
  job_state s = job_state::running;
  EXPECT_FALSE(parse_job_state("Running", s));
  EXPECT_FALSE(parse_job_state("", s));
  EXPECT_FALSE(parse_job_state("finished", s));
  EXPECT_EQ(s, job_state::running);
  EXPECT_STREQ(to_string(static_cast<job_state>(42)), "unknown");
}

TEST(job_state, final_states) {
  for (int i = 0; i < 10; ++i) {
    auto s = static_cast<job_state>(i);
    bool want = s == job_state::done || s == job_state::failed || s == job_state::refused ||
                s == job_state::cancelled;
    EXPECT_EQ(is_final(s), want) << to_string(s);
  }
}

} // namespace
} // namespace tender
