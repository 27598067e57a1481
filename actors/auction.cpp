// The auction round actor: one per round of a job's negotiation.
//
//   collecting --(all answered | round timeout)--> evaluating
//   evaluating --(iterated, improved, rounds left)--> done: "next round"
//   evaluating --(no feasible offer)--> done: refused with the reasons
//   evaluating --> committing: award best; confirm -> done: committed
//                              refuse / commit timeout -> award next best
//   done --> draining: a late confirm for an abandoned award is released
//
// Late, duplicate, expired or foreign offers are rejected by the auction_book
// with a logged reason and never change the outcome. A provider that declined a
// round is not called again in the same negotiation.

#include "actors/actors.hpp"
#include "actors/auction_book.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <map>
#include <mutex>
#include <vector>

namespace tender {

namespace {

// --- round timers --------------------------------------------------------------
//
// A CAF timer costs a wake-up of the clock thread when it is set and another when it
// fires (also for a round that ended long ago: the clock keeps it alive until then).
// At thousands of rounds a second that is most of the kernel's work, so the rounds of
// an actor system share one timer actor: a round asks it for an alarm (its own CAF
// timeout message, delivered `after` from now), the alarms due within the same
// millisecond share one CAF timer, and an alarm for a round that is gone costs nothing.

using alarm_atom = caf::atom_constant<caf::atom("alarm")>;
constexpr usec alarm_slack = 1'000; ///< alarms are rounded up to whole milliseconds

struct timers_state {
  /// Alarms by the millisecond they are due in: who gets what.
  std::map<usec, std::vector<std::pair<caf::weak_actor_ptr, caf::message>>> due;
  static inline const char* name = "round_timers";
};

using timers_actor = caf::stateful_actor<timers_state>;

caf::behavior round_timers(timers_actor* self, caf::actor lifeline) {
  if (lifeline)
    self->link_to(lifeline);
  return {
      // `now` is the asking round's clock (virtual time in tests and replays).
      [self](alarm_atom, usec now, usec after, caf::message& what) {
        auto& st = self->state;
        const usec at =
            (now + std::max<usec>(after, 0) + alarm_slack - 1) / alarm_slack * alarm_slack;
        auto [slot, fresh] = st.due.try_emplace(at);
        slot->second.emplace_back(caf::actor_cast<caf::weak_actor_ptr>(self->current_sender()),
                                  std::move(what));
        if (fresh)
          self->delayed_send(self, std::chrono::microseconds(at - now), tick_atom::value, at);
      },
      [self](tick_atom, usec at) {
        auto& st = self->state;
        const auto end = st.due.upper_bound(at);
        for (auto slot = st.due.begin(); slot != end; ++slot)
          for (auto& [to, what] : slot->second)
            if (auto alive = caf::actor_cast<caf::actor>(to.lock()))
              self->send(alive, std::move(what));
        st.due.erase(st.due.begin(), end);
      },
  };
}

/// The actor system's round timer actor (spawned on first use, kept in its registry).
caf::actor round_timers_of(caf::actor_system& sys) {
  static std::mutex spawning;
  const auto key = caf::atom("rtimers");
  if (auto a = sys.registry().get<caf::actor>(key))
    return a;
  std::lock_guard<std::mutex> g(spawning);
  if (auto a = sys.registry().get<caf::actor>(key))
    return a;
  // Hidden: it never holds up the system's shutdown. It ends with the system's spawn
  // server, which the system stops first thing when it shuts down: an actor still
  // running when the registry is destroyed would crash the process.
  auto a =
      sys.spawn<caf::hidden>(round_timers, sys.registry().get<caf::actor>(caf::atom("SpawnServ")));
  sys.registry().put(key, a);
  return a;
}

struct round_state {
  context_ptr ctx;
  round_args args;
  usec reply_by = 0;
  usec opened_at = 0;
  std::set<std::string> answered;
  std::vector<const book_entry*> candidates;
  std::size_t next_candidate = 0;
  std::string awarded; ///< offer id awaiting confirmation
  usec awarded_at = 0;
  std::set<std::string> abandoned; ///< awards we gave up on
  micros clearing_price = 0;
  std::vector<std::string> refusals;
  bool evaluated = false; ///< collecting is over
  caf::actor timers;      ///< the shared round timer actor
  /// The round keeps itself alive until it quits: the job drops the handle spawn_round
  /// returns and the timer actor holds rounds weakly, so a round waiting only for its
  /// alarm (providers silent, or their offers rejected as late) would otherwise be
  /// destroyed as unreachable and its negotiation never hear back. Released with the
  /// state when the round quits.
  caf::actor keep_alive;
  static inline const char* name = "round";
};

using round_actor = caf::stateful_actor<round_state>;

std::vector<offer_summary> summaries(const auction_book& b) {
  std::vector<offer_summary> v;
  for (auto& e : b.entries())
    v.push_back(offer_summary{e.o.offer_id, e.o.provider, e.o.round, e.o.price, e.o.earliest_start,
                              e.score.risk_adjusted, e.verdict.empty() ? "candidate" : e.verdict});
  return v;
}

caf::actor provider_of(const round_state& st, const std::string& name) {
  auto& d = st.args.providers;
  for (std::size_t i = 0; i < d.names.size(); ++i)
    if (d.names[i] == name)
      return d.actors[i];
  return {};
}

/// `what` arrives at this round after `after` (a timeout message; see round_timers).
template <class... Ts> void alarm(round_actor* self, usec after, Ts&&... what) {
  auto& st = self->state;
  self->send(st.timers, alarm_atom::value, st.ctx->now(), after,
             caf::make_message(std::forward<Ts>(what)...));
}

void finish(round_actor* self, round_result r);
void evaluate(round_actor* self);
void award_next(round_actor* self);

void finish(round_actor* self, round_result r) {
  auto& st = self->state;
  r.auction_id = st.args.book->request().auction_id;
  r.round = st.args.round;
  r.offers = summaries(*st.args.book);
  auto& book = *st.args.book;
  auto now = st.ctx->now();
  if (!r.next_round) {
    // Every offer of every round, with its final verdict, once the negotiation has its
    // outcome: earlier rounds' rows would only be rewritten here (a negotiation cut short
    // by a crash starts afresh, so nothing depends on them). One write with the
    // negotiation's last word, for `tender explain`.
    std::vector<journal::offer_outcome> offers;
    offers.reserve(book.entries().size());
    for (auto& e : book.entries())
      offers.push_back({&e.o, e.score.terms(), e.verdict.empty() ? "candidate" : e.verdict});
    negotiation_record n;
    n.job_id = book.request().job_id;
    n.auction_id = book.request().auction_id;
    n.protocol = book.request().protocol;
    n.rounds = st.args.round;
    n.declines = book.decline_notes();
    n.rejected = book.rejections_by_reason();
    n.outcome = r.reason;
    n.at = now;
    st.ctx->journal->save_outcome(offers, n);
  }
  self->send(st.args.job, std::move(r));
  // Stay a little to release confirmations that arrive after we moved on.
  if (st.abandoned.empty())
    return self->quit();
  self->become(
      [self](commit_confirm& c) {
        auto& st = self->state;
        if (st.abandoned.count(c.offer_id)) {
          st.ctx->log->warn("auction: late confirm for {} from {}: released", c.offer_id,
                            c.alloc.provider);
          auto to = provider_of(st, c.alloc.provider);
          if (!to)
            to = caf::actor_cast<caf::actor>(self->current_sender());
          self->send(to,
                     release{c.alloc.allocation_id, c.offer_id, c.job_id, "confirmed too late"});
          st.ctx->record_sla(c.alloc.provider, "late_confirm", true);
        }
      },
      [](commit_refuse&) {}, [](offer&) {}, [](decline&) {}, [self](timeout_atom, std::string&) {},
      [self](timeout_atom) { self->quit(); });
  alarm(self, st.ctx->cfg.auction.commit_timeout * 2, timeout_atom::value);
}

void evaluate(round_actor* self) {
  auto& st = self->state;
  if (st.evaluated)
    return;
  st.evaluated = true;
  auto now = st.ctx->now();
  auto& book = *st.args.book;
  auto& cfg = st.ctx->cfg.auction;
  micros best = book.best_price(now);
  bool iterated = book.request().protocol != protocols::vickrey;
  bool improved = st.args.round == 1 ? best > 0 : (best > 0 && best < st.args.previous_best);
  if (iterated && improved && st.args.round < cfg.max_rounds) {
    round_result r;
    r.next_round = true;
    r.best_price = best;
    r.reason = "round " + std::to_string(st.args.round) + " best $" + format_usd(best);
    return finish(self, std::move(r));
  }
  auto ctx = st.ctx;
  auto rk = book.rank(
      offer_scorer{ctx->scoring()},
      [ctx](const std::string& p) { return ctx->breach_probability(p); }, now);
  if (rk.feasible.empty()) {
    round_result r;
    std::string why;
    for (auto* e : rk.infeasible)
      why += (why.empty() ? "" : "; ") + e->o.provider + ": " + e->score.why;
    for (auto& [p, reason] : book.declines())
      why += (why.empty() ? "" : "; ") + p + " declined: " + reason;
    if (why.empty())
      why = "no provider answered in time";
    r.reason = "no acceptable offer: " + why;
    return finish(self, std::move(r));
  }
  st.candidates = rk.feasible;
  st.clearing_price = book.request().protocol == protocols::vickrey ? book.second_price(rk) : 0;
  for (auto* e : rk.feasible)
    book.set_verdict(e->o.offer_id, "");
  award_next(self);
}

void award_next(round_actor* self) {
  auto& st = self->state;
  auto& book = *st.args.book;
  while (st.next_candidate < st.candidates.size()) {
    auto* e = st.candidates[st.next_candidate++];
    auto prov = provider_of(st, e->o.provider);
    if (!prov) {
      book.set_verdict(e->o.offer_id, "refused: provider disconnected");
      continue;
    }
    award a;
    a.offer_id = e->o.offer_id;
    a.job_id = e->o.job_id;
    a.auction_id = e->o.auction_id;
    a.provider = e->o.provider;
    a.hold_ttl = st.ctx->cfg.auction.hold_ttl;
    a.price = st.clearing_price > 0 && st.next_candidate == 1 ? st.clearing_price : 0;
    st.awarded = a.offer_id;
    st.awarded_at = st.ctx->now();
    st.ctx->journal->save_award(a, st.awarded_at);
    self->send(prov, a);
    alarm(self, st.ctx->cfg.auction.commit_timeout, timeout_atom::value, a.offer_id);
    return;
  }
  round_result r;
  std::string why;
  for (auto& x : st.refusals)
    why += (why.empty() ? "" : "; ") + x;
  r.reason = "every acceptable offer fell through: " + why;
  finish(self, std::move(r));
}

void decline_losers(round_actor* self, const std::string& winner_offer, const std::string& winner) {
  auto& st = self->state;
  std::set<std::string> told{winner};
  for (auto& e : st.args.book->entries()) {
    if (e.o.offer_id == winner_offer || told.count(e.o.provider))
      continue;
    if (auto p = provider_of(st, e.o.provider)) {
      told.insert(e.o.provider);
      self->send(
          p, decline{e.o.job_id, e.o.auction_id, e.o.offer_id, e.o.provider, "another offer won"});
    }
  }
}

} // namespace

caf::actor spawn_round(caf::actor_system& sys, context_ptr ctx, round_args args) {
  // Moved in once (a lambda capturing the args by value would be copied by spawn).
  auto moved = std::make_shared<round_args>(std::move(args));
  return sys.spawn(
      [moved](round_actor* self, context_ptr ctx) -> caf::behavior {
        auto& st = self->state;
        st.keep_alive = caf::actor_cast<caf::actor>(self);
        st.ctx = ctx;
        st.args = std::move(*moved);
        st.opened_at = ctx->now();
        st.reply_by = st.opened_at + ctx->cfg.auction.round_timeout;
        // One message shared by every provider (they read it, none copies it). A
        // provider that declined an earlier round of this negotiation has no offer to
        // improve: it is not called again, and counts as having answered.
        auto call = caf::make_message(st.args.book->call_for(st.args.round, st.reply_by));
        const auto& declined = st.args.book->declines();
        const auto& names = st.args.providers.names;
        for (std::size_t i = 0; i < names.size(); ++i) {
          if (declined.count(names[i]))
            st.answered.insert(names[i]);
          else
            self->send(st.args.providers.actors[i], call);
        }
        st.timers = round_timers_of(self->system());
        if (st.answered.size() >= names.size())
          self->send(self, timeout_atom::value); // nobody to wait for: evaluate at once
        else
          alarm(self, ctx->cfg.auction.round_timeout, timeout_atom::value);
        auto& book = *st.args.book;
        (void)book;
        return {
            // collecting
            [self](offer& o) {
              auto& st = self->state;
              auto now = st.ctx->now();
              auto& book = *st.args.book;
              // Read before the book takes the offer over (an accepted one is moved in).
              const bool to_us = o.auction_id == book.request().auction_id &&
                                 static_cast<bool>(provider_of(st, o.provider));
              const bool slow = slower_than_promised(now - st.opened_at, o.terms.latency);
              const std::string provider = o.provider;
              std::optional<std::string> why;
              if (st.evaluated) {
                // The book is frozen now; a second copy of an offer is still a duplicate.
                why = book.seen(o.offer_id) ? "duplicate offer " + o.offer_id
                                            : std::string("late: arrived after the round closed");
                book.count_rejected(*why);
              } else {
                why = book.add(std::move(o), now, st.reply_by);
              }
              // An answer slower than the provider's stated latency is an SLA breach,
              // whether or not it still made the round. Strangers and offers for other
              // auctions say nothing about this provider's promise to us.
              const bool ours = to_us && (!why || why->rfind("late", 0) == 0);
              if (ours && slow)
                st.ctx->record_sla(provider, "slow_answer", true);
              if (why) {
                st.ctx->log->warn("auction {}: rejected offer {} from {}: {}", o.auction_id,
                                  o.offer_id, o.provider, *why);
                // Filed under this negotiation's job, never over the real offer of that id.
                st.ctx->journal->save_rejected_offer(book.request().job_id, o, "rejected: " + *why,
                                                     now);
                return;
              }
              st.answered.insert(provider);
              if (st.answered.size() >= st.args.providers.names.size())
                evaluate(self);
            },
            [self](decline& d) {
              auto& st = self->state;
              st.args.book->add_decline(d, st.args.round);
              st.answered.insert(d.provider);
              if (st.answered.size() >= st.args.providers.names.size())
                evaluate(self);
            },
            [self](timeout_atom) { evaluate(self); },
            // committing
            [self](commit_confirm& c) {
              auto& st = self->state;
              if (c.offer_id != st.awarded) {
                // Confirm for something we no longer want: give it back at once.
                if (auto p = caf::actor_cast<caf::actor>(self->current_sender()))
                  self->send(p, release{c.alloc.allocation_id, c.offer_id, c.job_id,
                                        "not awarded (anymore)"});
                return;
              }
              st.ctx->record_sla(c.alloc.provider, "confirm", false);
              st.args.book->set_verdict(c.offer_id, "won");
              st.args.book->close_open_offers("lost");
              decline_losers(self, c.offer_id, c.alloc.provider);
              round_result r;
              r.committed = true;
              r.alloc = c.alloc;
              if (st.clearing_price > 0 && st.next_candidate == 1)
                r.alloc.price = st.clearing_price;
              r.reason = "won by " + c.alloc.provider + " at $" + format_usd(r.alloc.price);
              st.awarded.clear();
              finish(self, std::move(r));
            },
            [self](commit_refuse& c) {
              auto& st = self->state;
              if (c.offer_id != st.awarded)
                return;
              st.ctx->record_sla(c.provider, "refuse", true);
              st.args.book->set_verdict(c.offer_id, "refused: " + c.reason);
              st.refusals.push_back(c.provider + " refused: " + c.reason);
              st.awarded.clear();
              award_next(self);
            },
            [self](timeout_atom, std::string& offer_id) {
              auto& st = self->state;
              if (offer_id != st.awarded)
                return;
              std::string provider;
              for (auto& e : st.args.book->entries())
                if (e.o.offer_id == offer_id)
                  provider = e.o.provider;
              st.ctx->record_sla(provider, "timeout", true);
              st.args.book->set_verdict(offer_id, "refused: no confirmation in time");
              st.refusals.push_back(provider + ": no confirmation in time");
              st.abandoned.insert(offer_id);
              if (auto p = provider_of(st, provider))
                self->send(
                    p, release{"", offer_id, st.args.book->request().job_id, "commit timed out"});
              st.awarded.clear();
              award_next(self);
            },
        };
      },
      ctx);
}

} // namespace tender
