// Actor tests of the auction round on CAF's deterministic test coordinator: no
// sleeps, no wall clock. Fake providers answer (or stay silent) as each test says,
// and the test fires the round's timers on demand.

#include "actors/actors.hpp"
#include "actors/auction_book.hpp"

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>

using namespace tender;

namespace {

enum class on_award { confirm, refuse, silent };

struct fake_spec {
  std::string name;
  micros price = 0;      ///< 0 = decline the request
  bool silent = false;   ///< never answers the request
  on_award award_reply = on_award::confirm;
  micros improve_to = 0; ///< price offered in round 2 (0 = same as round 1)
};

/// What the fakes saw, for whole-value assertions.
struct observed {
  std::vector<std::string> awards;   ///< "provider:offer"
  std::vector<std::string> declines; ///< providers told they lost
  std::vector<std::string> releases; ///< offer ids released
  std::vector<round_result> results;
  std::vector<std::pair<caf::actor, commit_confirm>> withheld; ///< confirms not sent yet
};

caf::behavior fake_provider(caf::event_based_actor* self, fake_spec spec,
                            std::shared_ptr<observed> seen) {
  return {
    [=](resource_request& r) {
      if (spec.silent)
        return;
      auto to = caf::actor_cast<caf::actor>(self->current_sender());
      if (spec.price == 0) {
        self->send(to, decline{r.job_id, r.auction_id, "", spec.name, "full"});
        return;
      }
      offer o;
      o.offer_id = spec.name + "-r" + std::to_string(r.round);
      o.job_id = r.job_id;
      o.auction_id = r.auction_id;
      o.round = r.round;
      o.provider = spec.name;
      o.granted = r.request;
      o.price = r.round > 1 && spec.improve_to > 0 ? spec.improve_to : spec.price;
      o.rate_per_hour = o.price * 6; // runtime is 10 minutes
      o.terms.availability = 1.0;
      o.valid_until = 0;
      self->send(to, o);
    },
    [=](award& a) {
      seen->awards.push_back(spec.name + ":" + a.offer_id);
      auto to = caf::actor_cast<caf::actor>(self->current_sender());
      commit_confirm c;
      c.offer_id = a.offer_id;
      c.job_id = a.job_id;
      c.alloc.allocation_id = "alloc-" + a.offer_id;
      c.alloc.provider = spec.name;
      c.alloc.offer_id = a.offer_id;
      c.alloc.price = spec.price;
      if (spec.award_reply == on_award::confirm)
        self->send(to, c);
      else if (spec.award_reply == on_award::refuse)
        self->send(to, commit_refuse{a.offer_id, a.job_id, spec.name, "capacity gone"});
      else
        seen->withheld.emplace_back(to, c);
    },
    [=](decline&) { seen->declines.push_back(spec.name); },
    [=](release& r) { seen->releases.push_back(r.offer_id); },
  };
}

caf::behavior fake_job(caf::event_based_actor*, std::shared_ptr<observed> seen) {
  return {[=](round_result& r) { seen->results.push_back(r); }};
}

struct auction_fixture : ::testing::Test {
  auction_fixture() {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.verbosity", caf::atom("quiet"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    char tmpl[] = "/tmp/tender-auction-test-XXXXXX";
    dir = mkdtemp(tmpl);
    ctx = std::make_shared<node_context>();
    ctx->data_dir = dir;
    ctx->clock = [] { return usec{1'000'000'000}; }; // virtual time: it never moves
    ctx->log = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
    ctx->journal = std::get<std::unique_ptr<journal>>(journal::open(dir + "/journal.db"));
    ctx->cfg.auction.max_rounds = 2;
    seen = std::make_shared<observed>();
  }
  ~auction_fixture() override {
    // Let every actor end: the fakes by an exit, the rounds by their timers.
    for (auto& a : dir_.actors)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    if (job)
      caf::anon_send_exit(job, caf::exit_reason::user_shutdown);
    sched->run();
    while (sched->trigger_timeouts() > 0)
      sched->run();
    sys->await_actors_before_shutdown(false);
    sys.reset();
    std::filesystem::remove_all(dir);
  }

  /// Starts round `round` over fakes; returns the job actor.
  void start_round(const std::vector<fake_spec>& fakes, std::int32_t round, micros previous_best,
                   const std::string& protocol = protocols::iterated) {
    if (!book) {
      resource_request req;
      req.job_id = "j1";
      req.auction_id = "a1";
      req.request.cpu = 1000;
      req.request.memory = 1 << 30;
      req.profile.runtime = 600 * sec_us;
      req.profile.runtime_lo = 300 * sec_us;
      req.profile.runtime_hi = 1200 * sec_us;
      req.protocol = protocol;
      std::set<std::string> names;
      for (auto& f : fakes)
        names.insert(f.name);
      book = std::make_shared<auction_book>(req, names);
      for (auto& f : fakes) {
        dir_.names.push_back(f.name);
        dir_.actors.push_back(sys->spawn(fake_provider, f, seen));
        dir_.remote.push_back(false);
      }
      job = sys->spawn(fake_job, seen);
    }
    round_args a;
    a.book = book;
    a.providers = dir_;
    a.round = round;
    a.previous_best = previous_best;
    a.job = job;
    spawn_round(*sys, ctx, a);
  }

  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::string dir;
  context_ptr ctx;
  std::shared_ptr<observed> seen;
  std::shared_ptr<auction_book> book;
  provider_directory dir_;
  caf::actor job;
};

} // namespace

TEST_F(auction_fixture, a_silent_provider_cannot_stall_a_round) {
  start_round({{"cheap", 500}, {"dear", 900}, {"mute", 100, true}}, 1, 0);
  sched->run();
  EXPECT_TRUE(seen->results.empty()); // still waiting for "mute"
  ASSERT_TRUE(sched->trigger_timeout());
  sched->run();
  ASSERT_EQ(seen->results.size(), 1u);
  EXPECT_TRUE(seen->results[0].next_round);
  EXPECT_EQ(seen->results[0].best_price, 500);
}

TEST_F(auction_fixture, iterated_rounds_end_when_no_offer_improves_and_commit_the_best) {
  std::vector<fake_spec> fakes{{"a", 700, false, on_award::confirm, 450}, {"b", 500}};
  start_round(fakes, 1, 0);
  sched->run();
  ASSERT_EQ(seen->results.size(), 1u);
  ASSERT_TRUE(seen->results[0].next_round);
  EXPECT_EQ(book->call_for(2, 0).price_to_beat, 500);
  start_round(fakes, 2, seen->results[0].best_price);
  sched->run();
  ASSERT_EQ(seen->results.size(), 2u);
  auto& r = seen->results[1];
  ASSERT_TRUE(r.committed) << r.reason;
  EXPECT_EQ(r.alloc.provider, "a");
  EXPECT_EQ(seen->awards, std::vector<std::string>{"a:a-r2"});
  EXPECT_EQ(seen->declines, std::vector<std::string>{"b"});
  // Every offer of both rounds is in the result, with its verdict.
  ASSERT_EQ(r.offers.size(), 4u);
  int won = 0;
  for (auto& o : r.offers)
    won += o.verdict == "won";
  EXPECT_EQ(won, 1);
}

TEST_F(auction_fixture, a_refused_commit_falls_back_to_the_next_best_offer) {
  ctx->cfg.auction.max_rounds = 1;
  start_round({{"best", 400, false, on_award::refuse}, {"next", 600}}, 1, 0);
  sched->run();
  ASSERT_EQ(seen->results.size(), 1u);
  auto& r = seen->results[0];
  ASSERT_TRUE(r.committed) << r.reason;
  EXPECT_EQ(r.alloc.provider, "next");
  EXPECT_EQ(seen->awards, (std::vector<std::string>{"best:best-r1", "next:next-r1"}));
  EXPECT_GT(ctx->breach_probability("best"), ctx->breach_probability("next"));
}

TEST_F(auction_fixture, a_confirm_after_the_commit_timeout_is_released_not_double_booked) {
  ctx->cfg.auction.max_rounds = 1;
  start_round({{"slow", 400, false, on_award::silent}, {"next", 600}}, 1, 0);
  sched->run();
  ASSERT_TRUE(seen->results.empty());
  ASSERT_EQ(seen->withheld.size(), 1u);
  // Fires the (spent) round timer and the commit timeout for "slow".
  ASSERT_GE(sched->trigger_timeouts(), 1u);
  sched->run();
  ASSERT_EQ(seen->results.size(), 1u);
  EXPECT_EQ(seen->results[0].alloc.provider, "next");
  // "slow" confirms at last: the round releases it instead of keeping two.
  auto [to, confirm] = seen->withheld.front();
  caf::anon_send(to, confirm);
  sched->run();
  EXPECT_NE(std::find(seen->releases.begin(), seen->releases.end(), "slow-r1"),
            seen->releases.end());
}

TEST_F(auction_fixture, no_feasible_offer_is_a_refusal_with_the_reasons) {
  start_round({{"full", 0}, {"also-full", 0}}, 1, 0);
  sched->run();
  ASSERT_EQ(seen->results.size(), 1u);
  EXPECT_FALSE(seen->results[0].committed);
  EXPECT_NE(seen->results[0].reason.find("full declined: full"), std::string::npos)
    << seen->results[0].reason;
}

TEST_F(auction_fixture, vickrey_is_one_round_at_the_second_price) {
  start_round({{"p1", 500}, {"p2", 800}, {"p3", 650}}, 1, 0, protocols::vickrey);
  sched->run();
  ASSERT_EQ(seen->results.size(), 1u);
  ASSERT_TRUE(seen->results[0].committed);
  EXPECT_EQ(seen->results[0].alloc.provider, "p1");
  EXPECT_EQ(seen->results[0].alloc.price, 650);
}
