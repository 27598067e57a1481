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

#include <algorithm>
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
  bool twice = false;    ///< sends every offer and every confirm twice
  usec latency = 0;      ///< the latency its offers promise
};

/// What the fakes saw, for whole-value assertions.
struct observed {
  std::vector<std::string> calls;    ///< "provider:rROUND" for every call for offers
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
      seen->calls.push_back(spec.name + ":r" + std::to_string(r.round));
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
      o.terms.latency = spec.latency;
      o.valid_until = 0;
      self->send(to, o);
      if (spec.twice)
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
      if (spec.award_reply == on_award::confirm) {
        self->send(to, c);
        if (spec.twice)
          self->send(to, c);
      }
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
    ctx->clock = [this] { return now; }; // virtual time: moves only when a test says so
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
                   const std::string& protocol = protocols::iterated,
                   const std::string& job_id = "j1") {
    if (!book) {
      resource_request req;
      req.job_id = job_id;
      req.auction_id = "a-" + job_id;
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
    round_actor = spawn_round(*sys, ctx, a);
  }

  /// Ends the current negotiation's fakes and book so that the next start_round
  /// begins another job's (the node context, with its SLA history, stays).
  void next_job() {
    sched->run();
    while (sched->trigger_timeouts() > 0)
      sched->run();
    for (auto& a : dir_.actors)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched->run();
    dir_ = {};
    book.reset();
    *seen = observed{};
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
  caf::actor round_actor;
  usec now = 1'000'000'000;
};

/// Records the offers it gets as "name:offer id".
caf::behavior recording_round(caf::event_based_actor*,
                              std::shared_ptr<std::vector<std::string>> got, std::string name) {
  return {[got, name](offer& o) { got->push_back(name + ":" + o.offer_id); }};
}

/// An offer row as the journal holds it.
std::string journaled_verdict(journal& j, const std::string& job_id, const std::string& offer_id) {
  for (auto& x : j.offer_explanations(job_id))
    if (x.offer_id == offer_id)
      return x.verdict;
  return "(none)";
}

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

// Nobody but the round's own timer needs to know the round: the job and the bench drop
// the handle spawn_round returns, and the shared timer actor holds rounds weakly. A
// round waiting only for its timeout (its providers silent, or their offers rejected as
// late) must still end and report, not vanish as an unreachable actor (it did: under
// overload, negotiations hung for ever).
TEST_F(auction_fixture, a_round_nobody_holds_still_ends_at_its_timeout) {
  start_round({{"mute", 100, true}, {"mute2", 200, true}}, 1, 0);
  round_actor = nullptr; // as the job actor does: it keeps no handle
  sched->run();
  EXPECT_TRUE(seen->results.empty());
  ASSERT_TRUE(sched->trigger_timeout());
  sched->run();
  ASSERT_EQ(seen->results.size(), 1u);
  EXPECT_FALSE(seen->results[0].next_round);
  EXPECT_EQ(seen->results[0].reason, "no acceptable offer: no provider answered in time");
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

TEST_F(auction_fixture, a_provider_that_declined_a_round_is_not_called_again) {
  std::vector<fake_spec> fakes{{"a", 700, false, on_award::confirm, 450}, {"b", 500}, {"full", 0}};
  start_round(fakes, 1, 0);
  sched->run();
  ASSERT_EQ(seen->results.size(), 1u);
  ASSERT_TRUE(seen->results[0].next_round);
  start_round(fakes, 2, seen->results[0].best_price);
  sched->run(); // no timeout fires: the round does not wait for the decliner
  ASSERT_EQ(seen->results.size(), 2u);
  EXPECT_TRUE(seen->results[1].committed) << seen->results[1].reason;
  std::vector<std::string> calls = seen->calls;
  std::sort(calls.begin(), calls.end());
  EXPECT_EQ(calls, (std::vector<std::string>{"a:r1", "a:r2", "b:r1", "b:r2", "full:r1"}));
  ASSERT_EQ(book->decline_notes().size(), 1u);
  EXPECT_EQ(book->decline_notes()[0].round, 1);
}

TEST_F(auction_fixture, a_round_whose_providers_all_declined_before_ends_at_once) {
  std::vector<fake_spec> fakes{{"full", 0}, {"busy", 0}};
  start_round(fakes, 1, 0);
  sched->run();
  ASSERT_EQ(seen->results.size(), 1u); // both answered: refused without a timeout
  EXPECT_FALSE(seen->results[0].committed);
  start_round(fakes, 2, 0); // a round over the same book, with nobody left to call
  sched->run();
  ASSERT_EQ(seen->results.size(), 2u); // ended without its timeout
  EXPECT_FALSE(seen->results[1].committed);
  EXPECT_NE(seen->results[1].reason.find("full declined: full"), std::string::npos)
      << seen->results[1].reason;
  EXPECT_EQ(seen->calls.size(), 2u); // round 2 called nobody
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

TEST_F(auction_fixture, a_provider_answering_twice_gets_one_offer_and_one_allocation) {
  ctx->cfg.auction.max_rounds = 1;
  ctx->journal->insert_job("j1", "", job_spec{}, now);
  start_round({{"echo", 400, false, on_award::confirm, 0, true}, {"next", 600}}, 1, 0);
  sched->run();
  ASSERT_EQ(seen->results.size(), 1u);
  auto& r = seen->results[0];
  ASSERT_TRUE(r.committed) << r.reason;
  EXPECT_EQ(r.alloc.provider, "echo");
  // Its second offer was rejected as a duplicate and counted; its second confirm
  // neither made a second allocation nor released the first.
  EXPECT_EQ(book->rejections_by_reason(), (std::map<std::string, std::int64_t>{{"duplicate", 1}}));
  EXPECT_EQ(seen->awards, std::vector<std::string>{"echo:echo-r1"});
  EXPECT_TRUE(seen->releases.empty()) << ::testing::PrintToString(seen->releases);
  // The journal keeps the real offer's verdict, not the duplicate's rejection.
  EXPECT_EQ(journaled_verdict(*ctx->journal, "j1", "echo-r1"), "won");
  EXPECT_EQ(journaled_verdict(*ctx->journal, "j1", "next-r1"), "lost");
  auto ns = ctx->journal->negotiations("j1");
  ASSERT_EQ(ns.size(), 1u);
  EXPECT_EQ(ns[0].rejected, book->rejections_by_reason());
  EXPECT_EQ(ns[0].outcome, r.reason);
}

TEST_F(auction_fixture, a_silent_winner_then_a_stale_confirm_ends_with_one_allocation_and_a_journal) {
  ctx->cfg.auction.max_rounds = 1;
  ctx->journal->insert_job("j1", "", job_spec{}, now);
  start_round({{"stale", 300, false, on_award::silent}, {"next", 600}}, 1, 0);
  sched->run();
  ASSERT_EQ(seen->withheld.size(), 1u);
  while (seen->results.empty() && sched->trigger_timeout())
    sched->run();
  ASSERT_EQ(seen->results.size(), 1u);
  EXPECT_EQ(seen->results[0].alloc.provider, "next");
  // The hold of the award "stale" never confirmed was given back at the timeout,
  // and its confirm, arriving after that, is released again, not kept.
  EXPECT_EQ(seen->releases, std::vector<std::string>{"stale-r1"});
  auto [to, confirm] = seen->withheld.front();
  caf::anon_send(to, confirm);
  sched->run();
  EXPECT_EQ(seen->releases, (std::vector<std::string>{"stale-r1", "stale-r1"}));
  EXPECT_EQ(journaled_verdict(*ctx->journal, "j1", "stale-r1"), "refused: no confirmation in time");
  EXPECT_EQ(journaled_verdict(*ctx->journal, "j1", "next-r1"), "won");
  std::vector<std::string> kinds;
  for (auto& e : ctx->journal->sla_events("stale"))
    kinds.push_back(e.kind + (e.breach ? "!" : ""));
  EXPECT_EQ(kinds, (std::vector<std::string>{"timeout!", "late_confirm!"}));
}

TEST_F(auction_fixture, an_answer_slower_than_its_stated_latency_is_a_breach) {
  ctx->cfg.auction.max_rounds = 1;
  start_round({{"slowpoke", 400, true}, {"quick", 600, false, on_award::confirm, 0, false, 1'000}},
              1, 0);
  sched->run();
  // "slowpoke" promised 1 ms and answers 120 ms after the call for offers.
  now += 120'000;
  offer o;
  o.offer_id = "slowpoke-r1";
  o.job_id = "j1";
  o.auction_id = "a-j1";
  o.provider = "slowpoke";
  o.granted = book->request().request;
  o.price = 400;
  o.rate_per_hour = 2400;
  o.terms.availability = 1.0;
  o.terms.latency = 1'000;
  caf::anon_send(round_actor, o);
  sched->run();
  auto events = ctx->journal->sla_events("slowpoke");
  ASSERT_EQ(events.size(), 2u); // the slow answer, then the kept confirm of its award
  EXPECT_EQ(events[0].kind, "slow_answer");
  EXPECT_TRUE(events[0].breach);
  // "quick" answered at once: no slow_answer for it.
  for (auto& e : ctx->journal->sla_events("quick"))
    EXPECT_NE(e.kind, "slow_answer");
  EXPECT_TRUE(slower_than_promised(1'000 + latency_allowance + 1, 1'000));
  EXPECT_FALSE(slower_than_promised(1'000 + latency_allowance, 1'000));
  EXPECT_FALSE(slower_than_promised(10 * sec_us, 0)); // no promise, no breach
}

TEST_F(auction_fixture, a_flaky_provider_earns_breaches_and_then_loses_to_an_equal_price) {
  ctx->cfg.auction.max_rounds = 1;
  // Same price; "a-flaky" sorts first, so it wins the tie while both are unknown.
  std::vector<fake_spec> fakes{{"a-flaky", 500, false, on_award::refuse}, {"steady", 500}};
  double before = ctx->breach_probability("a-flaky");
  for (int job = 1; job <= 2; ++job) {
    start_round(fakes, 1, 0, protocols::iterated, "job" + std::to_string(job));
    sched->run();
    ASSERT_EQ(seen->results.size(), 1u);
    EXPECT_EQ(seen->results[0].alloc.provider, "steady");
    if (job == 1) // awarded first, it refused; the job fell back to "steady"
      EXPECT_EQ(seen->awards, (std::vector<std::string>{"a-flaky:a-flaky-r1", "steady:steady-r1"}));
    else // now ranked below the equal price of a provider that keeps its promises
      EXPECT_EQ(seen->awards, std::vector<std::string>{"steady:steady-r1"});
    next_job();
  }
  EXPECT_GT(ctx->breach_probability("a-flaky"), before);
  EXPECT_LT(ctx->breach_probability("steady"), before);
  // The history is the journal's: a fresh context reading it agrees.
  node_context fresh;
  fresh.journal = std::get<std::unique_ptr<journal>>(journal::open(dir + "/journal.db"));
  fresh.clock = [] { return usec{0}; };
  EXPECT_DOUBLE_EQ(fresh.breach_probability("a-flaky"), breach_posterior(1, 0));
  EXPECT_DOUBLE_EQ(fresh.breach_probability("steady"), breach_posterior(0, 2));
}

TEST_F(auction_fixture, a_remote_providers_offers_reach_the_latest_round_of_their_auction) {
  // The proxy of a provider in another process sends each call for offers out as a frame
  // and hands the offers that come back (as the gateway passes them on) to the round
  // that called, the latest one of the auction. It remembers the last 4,096 calls: an
  // auction called again by a later round stays as of that call, however many calls
  // came between its first and the offer.
  std::vector<std::string> posted;
  wire_post post = [&posted](const std::string& peer, std::string bytes) {
    EXPECT_EQ(peer, "peer-1");
    posted.push_back(std::move(bytes));
    return true;
  };
  provider_hello hello;
  hello.name = "far";
  hello.kind = "local";
  auto proxy = spawn_remote_provider(*sys, ctx, post, "peer-1", hello);
  auto got = std::make_shared<std::vector<std::string>>(); // "round:offer"
  // Spawned with arguments: CAF 0.17 binds a null reference for a lambda actor spawned
  // without any (UBSan reports it).
  auto round = [&](const std::string& name) { return sys->spawn(recording_round, got, name); };
  auto first = round("first"), second = round("second"), others = round("others");
  auto call = [&](const caf::actor& from, const std::string& auction) {
    resource_request r;
    r.job_id = "job-" + auction;
    r.auction_id = auction;
    caf::send_as(from, proxy, r);
    sched->run();
  };
  auto answer = [&](const std::string& auction, const std::string& offer_id) {
    offer o;
    o.offer_id = offer_id;
    o.auction_id = auction;
    o.job_id = "job-" + auction;
    o.provider = "far";
    caf::anon_send(proxy, inbound_atom::value, make_envelope(o, "far", now, "m-" + offer_id));
    sched->run();
  };
  call(first, "a-kept");
  for (int i = 0; i < 3000; ++i)
    call(others, "a-early-" + std::to_string(i));
  call(second, "a-kept"); // its round 2
  for (int i = 0; i < 3000; ++i)
    call(others, "a-late-" + std::to_string(i));
  answer("a-kept", "o-kept");         // first called 6,001 calls ago, last 3,000 ago
  answer("a-early-0", "o-early");     // called once, 6,000 calls ago: forgotten
  answer("a-late-2999", "o-late");    // the latest call
  answer("a-early-2999", "o-early2"); // 3,001 calls ago: still known
  EXPECT_EQ(*got, (std::vector<std::string>{"second:o-kept", "others:o-late", "others:o-early2"}));
  // Every call went out as a frame, in order.
  ASSERT_EQ(posted.size(), 6002u);
  auto d = decode(posted.front());
  ASSERT_TRUE(d) << d.failure.message;
  EXPECT_EQ(std::get<resource_request>(d.message->body).auction_id, "a-kept");
  d = decode(posted[3001]);
  ASSERT_TRUE(d);
  EXPECT_EQ(std::get<resource_request>(d.message->body).auction_id, "a-kept");
  for (auto& a : {proxy, first, second, others})
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}
