// The agent's scheduler (actors/scheduler.hpp) on real threads: timers still fire, and
// the clock still lets go of an actor that set a timeout once it ends.

#include "actors/scheduler.hpp"

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;

struct system_fixture : ::testing::Test {
  system_fixture() {
    cfg.set("scheduler.max-threads", 2);
    cfg.set("logger.verbosity", caf::atom("quiet"));
    tender::use_tender_scheduler(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
};

/// Waits up to `limit` for `gone()`.
template <class F> bool eventually(F gone, std::chrono::seconds limit = std::chrono::seconds(10)) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (gone())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return gone();
}

// Spawned with an argument each: CAF 0.17 spawning a function of `self` alone trips
// UBSan (a null argument tuple is dereferenced in its init_fun_factory).

/// Answers a ping with a pong `delay_ms` later.
caf::behavior echo_later(caf::event_based_actor* self, int delay_ms) {
  return {[self, delay_ms](ping_atom) {
    self->delayed_send(caf::actor_cast<caf::actor>(self->current_sender()),
                       std::chrono::milliseconds(delay_ms), pong_atom::value);
  }};
}

/// Never answers a ping.
caf::behavior never_answers(caf::event_based_actor*, int) {
  return {[](ping_atom) -> caf::result<pong_atom> { return caf::delegated<pong_atom>(); }};
}

/// Asks `whom` with an hour's timeout, then quits at the first pong it is sent.
caf::behavior asks_then_quits(caf::event_based_actor* self, caf::actor whom) {
  self->request(whom, std::chrono::seconds(3600), ping_atom::value).then([](pong_atom) {});
  return {[self](pong_atom) { self->quit(); }};
}

} // namespace

TEST_F(system_fixture, delayed_messages_and_request_timeouts_still_fire) {
  // A delayed message arrives.
  auto echo = sys->spawn(echo_later, 20);
  caf::scoped_actor me{*sys};
  me->send(echo, ping_atom::value);
  bool got = false;
  me->receive([&](pong_atom) { got = true; }, caf::after(std::chrono::seconds(10)) >> [] {});
  EXPECT_TRUE(got);
  // A request to an actor that never answers times out.
  auto mute = sys->spawn(never_answers, 0);
  caf::error err;
  me->request(mute, std::chrono::milliseconds(50), ping_atom::value)
      .receive([](pong_atom) {}, [&](caf::error& e) { err = e; });
  EXPECT_EQ(err, caf::sec::request_timeout);
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(mute, caf::exit_reason::user_shutdown);
}

TEST_F(system_fixture, an_actor_that_set_a_timeout_is_let_go_when_it_ends) {
  // It waits an hour for an answer, then quits: the clock must drop its timeout (and
  // with it the last strong reference), not keep the actor for the hour.
  auto mute = sys->spawn(never_answers, 0);
  caf::weak_actor_ptr watched;
  {
    auto asker = sys->spawn(asks_then_quits, mute);
    watched = caf::actor_cast<caf::weak_actor_ptr>(asker);
    caf::anon_send(asker, pong_atom::value); // quits after setting its request timeout
  }
  EXPECT_TRUE(eventually([&] { return !watched.lock(); }))
      << "the actor outlived its end: the clock still holds its request timeout";
  caf::anon_send_exit(mute, caf::exit_reason::user_shutdown);
}

TEST_F(system_fixture, thousands_of_short_actors_end_without_timeouts_and_the_system_shuts_down) {
  caf::scoped_actor me{*sys};
  constexpr int n = 5000;
  for (int i = 0; i < n; ++i)
    sys->spawn(
        [](caf::event_based_actor* self, caf::actor to) {
          self->send(to, pong_atom::value);
          self->quit();
        },
        caf::actor_cast<caf::actor>(me));
  int got = 0;
  me->receive_for(got, n)([](pong_atom) {});
  EXPECT_EQ(got, n);
}
