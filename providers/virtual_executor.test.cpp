#include "providers/virtual_executor.hpp"

#include <gtest/gtest.h>

using namespace tender;

namespace {

exec_request sleeper(const std::string& id, const std::string& seconds) {
  exec_request r;
  r.job_id = id;
  r.argv = {"sleep", seconds};
  r.limits.cpu = 2000;
  return r;
}

} // namespace

TEST(virtual_executor, a_sleep_ends_on_the_injected_clock_and_the_board_knows_when) {
  auto board = std::make_shared<virtual_executor::board>();
  virtual_executor x(board);
  const usec t0 = 1'000 * sec_us;
  ASSERT_TRUE(std::holds_alternative<exec_state>(x.launch(sleeper("a", "30"), t0)));
  ASSERT_TRUE(std::holds_alternative<exec_state>(x.launch(sleeper("b", "10.5"), t0)));
  EXPECT_EQ(board->running(), 2u);
  EXPECT_EQ(board->launched(), 2u);
  EXPECT_EQ(board->next_end(), t0 + 10'500'000);

  // Not yet: one sample each once time has moved, no exit.
  auto ev = x.poll(t0 + 10 * sec_us);
  ASSERT_EQ(ev.size(), 2u);
  for (auto& e : ev) {
    EXPECT_FALSE(e.exited);
    ASSERT_TRUE(e.sample);
    EXPECT_EQ(e.sample->cpu, 2000);
  }
  EXPECT_TRUE(x.poll(t0 + 10 * sec_us).empty()) << "no sample without time passing";

  // b ends at its own instant, whatever the poll's.
  ev = x.poll(t0 + 20 * sec_us);
  std::optional<exit_info> b_exit;
  for (auto& e : ev)
    if (e.job_id == "b")
      b_exit = e.exited;
  ASSERT_TRUE(b_exit);
  EXPECT_EQ(b_exit->exit_code, 0);
  EXPECT_EQ(b_exit->finished_at, t0 + 10'500'000);
  EXPECT_FALSE(x.running("b"));
  EXPECT_TRUE(x.running("a"));
  EXPECT_EQ(board->next_end(), t0 + 30 * sec_us);

  ev = x.poll(t0 + 30 * sec_us);
  ASSERT_EQ(ev.size(), 1u);
  ASSERT_TRUE(ev[0].exited);
  EXPECT_EQ(ev[0].job_id, "a");
  EXPECT_EQ(board->running(), 0u);
  EXPECT_FALSE(board->next_end());
}

TEST(virtual_executor, a_kill_ends_the_job_at_the_next_poll_with_its_reason) {
  virtual_executor x;
  ASSERT_TRUE(std::holds_alternative<exec_state>(x.launch(sleeper("k", "100"), 0)));
  x.kill("k", "cancelled: by the user", 2 * sec_us, 5 * sec_us);
  auto ev = x.poll(6 * sec_us);
  ASSERT_EQ(ev.size(), 1u);
  ASSERT_TRUE(ev[0].exited);
  EXPECT_EQ(ev[0].exited->exit_code, -1);
  EXPECT_EQ(ev[0].exited->reason, "cancelled: by the user");
  EXPECT_EQ(ev[0].exited->finished_at, 6 * sec_us);
  EXPECT_FALSE(x.shared()->next_end());
}

TEST(virtual_executor, anything_but_sleep_seconds_is_refused_naming_it) {
  virtual_executor x;
  exec_request r = sleeper("bad", "soon");
  auto a = x.launch(r, 0);
  ASSERT_TRUE(std::holds_alternative<std::string>(a));
  EXPECT_NE(std::get<std::string>(a).find("`soon` is not a number of seconds"), std::string::npos)
      << std::get<std::string>(a);
  r.argv = {"sh", "-c", "true"};
  a = x.launch(r, 0);
  ASSERT_TRUE(std::holds_alternative<std::string>(a));
  EXPECT_NE(std::get<std::string>(a).find("`sh -c true`"), std::string::npos)
      << std::get<std::string>(a);
  r.argv = {"sleep", "-5"};
  EXPECT_TRUE(std::holds_alternative<std::string>(x.launch(r, 0)));
  EXPECT_EQ(x.shared()->launched(), 0u);
  // Twice the same job id while it runs: refused.
  ASSERT_TRUE(std::holds_alternative<exec_state>(x.launch(sleeper("dup", "1"), 0)));
  EXPECT_TRUE(std::holds_alternative<std::string>(x.launch(sleeper("dup", "1"), 0)));
  EXPECT_TRUE(std::holds_alternative<std::string>(x.adopt("dup", 0)));
}

TEST(virtual_executor, executors_sharing_a_board_show_the_earliest_end_of_all) {
  auto board = std::make_shared<virtual_executor::board>();
  {
    virtual_executor x(board), y(board);
    ASSERT_TRUE(std::holds_alternative<exec_state>(x.launch(sleeper("x1", "50"), 0)));
    ASSERT_TRUE(std::holds_alternative<exec_state>(y.launch(sleeper("y1", "20"), 0)));
    EXPECT_EQ(board->next_end(), 20 * sec_us);
    EXPECT_EQ(board->running(), 2u);
  }
  EXPECT_EQ(board->running(), 0u) << "an executor takes its jobs off the board when it goes";
}
