#include "actors/auction_book.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tender {

auction_book::auction_book(resource_request base, std::set<std::string> providers)
    : base_(std::move(base)), providers_(std::move(providers)) {
  entries_.reserve(2 * providers_.size());
}

resource_request auction_book::call_for(std::int32_t round, usec reply_by) const {
  auto r = base_;
  r.round = round;
  r.reply_by = reply_by;
  r.price_to_beat = 0;
  micros best = 0;
  for (auto& e : entries_)
    if (e.verdict.empty() && (best == 0 || e.o.price < best))
      best = e.o.price;
  r.price_to_beat = best;
  return r;
}

std::optional<std::string> auction_book::check(const offer& o, usec now, usec reply_by) const {
  if (o.offer_id.empty())
    return "malformed: empty offer_id";
  if (seen_ids_.count(o.offer_id))
    return "duplicate offer " + o.offer_id;
  if (o.job_id != base_.job_id)
    return "foreign: offer for job " + o.job_id;
  if (o.auction_id != base_.auction_id)
    return "foreign: offer for auction " + o.auction_id;
  if (!providers_.count(o.provider))
    return "foreign: unknown provider " + o.provider;
  if (o.price < 0 || o.rate_per_hour < 0)
    return "malformed: negative price";
  if (reply_by > 0 && now > reply_by)
    return "late: arrived after the round closed";
  if (o.valid_until > 0 && o.valid_until < now)
    return "expired: valid_until passed";
  if (!covers(o.granted, base_.request))
    return "does not cover the request";
  if (o.terms.availability < 0 || o.terms.availability > 1 || o.terms.preemption_probability < 0)
    return "malformed: SLA out of range";
  return std::nullopt;
}

std::optional<std::string> auction_book::add(const offer& o, usec now, usec reply_by) {
  return add(offer(o), now, reply_by);
}

std::optional<std::string> auction_book::add(offer&& o, usec now, usec reply_by) {
  auto why = check(o, now, reply_by);
  if (why) {
    count_rejected(*why);
    return why;
  }
  seen_ids_.insert(o.offer_id);
  entries_.emplace_back().o = std::move(o); // one move of the offer, not two
  return std::nullopt;
}

void auction_book::count_rejected(const std::string& why) {
  ++rejected_;
  auto key = why.substr(0, why.find(':'));
  if (key.rfind("duplicate", 0) == 0)
    key = "duplicate";
  ++reasons_[key];
}

void auction_book::add_decline(const decline& d) {
  add_decline(d, 0);
}

void auction_book::add_decline(const decline& d, std::int32_t round) {
  if (!providers_.count(d.provider) || (!d.auction_id.empty() && d.auction_id != base_.auction_id))
    return;
  declines_[d.provider] = d.reason;
  decline_notes_.push_back(decline_note{base_.auction_id, round, d.provider, d.reason});
}

micros auction_book::best_price(usec now) const {
  micros best = 0;
  for (auto& e : entries_)
    if (e.verdict.empty() && (e.o.valid_until == 0 || e.o.valid_until >= now) &&
        (best == 0 || e.o.price < best))
      best = e.o.price;
  return best;
}

ranking auction_book::rank(const offer_scorer& scorer,
                           const std::function<double(const std::string&)>& breach, usec now) {
  // Per provider (a handful: a linear search): its newest offer, which supersedes its
  // earlier ones, and its breach probability, asked for once.
  struct provider_slot {
    const std::string* name;
    std::size_t newest;
    double breach = 0;
    bool asked = false;
  };
  std::vector<provider_slot> slots;
  slots.reserve(providers_.size());
  auto slot_of = [&](const std::string& provider) -> provider_slot* {
    for (auto& s : slots)
      if (*s.name == provider)
        return &s;
    return nullptr;
  };
  auto risk_of = [&](provider_slot* s, const std::string& provider) {
    if (!s)
      return breach(provider);
    if (!s->asked) {
      s->breach = breach(provider);
      s->asked = true;
    }
    return s->breach;
  };
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    auto& e = entries_[i];
    if (!e.verdict.empty() && e.verdict.rfind("superseded", 0) != 0 &&
        e.verdict.rfind("infeasible", 0) != 0)
      continue;
    provider_slot* s = slot_of(e.o.provider);
    if (!s)
      slots.push_back(provider_slot{&e.o.provider, i});
    else if (entries_[s->newest].o.round <= e.o.round)
      s->newest = i;
  }
  ranking r;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    auto& e = entries_[i];
    provider_slot* s = slot_of(e.o.provider);
    bool current = s && s->newest == i;
    if (!current) {
      if (e.verdict.empty() || e.verdict.rfind("superseded", 0) == 0) {
        e.verdict = "superseded by a later offer";
        e.score = scorer.score(e.o, base_, risk_of(s, e.o.provider), now);
      }
      continue;
    }
    if (e.o.valid_until > 0 && e.o.valid_until < now) {
      e.verdict = "expired before the decision";
      continue;
    }
    e.score = scorer.score(e.o, base_, risk_of(s, e.o.provider), now);
    if (e.score.feasible) {
      e.verdict.clear();
      r.feasible.push_back(&e);
    } else {
      e.verdict = "infeasible: " + e.score.why;
      r.infeasible.push_back(&e);
    }
  }
  auto by_score = [](const book_entry* a, const book_entry* b) {
    if (a->score.risk_adjusted != b->score.risk_adjusted)
      return a->score.risk_adjusted < b->score.risk_adjusted;
    if (a->o.price != b->o.price)
      return a->o.price < b->o.price;
    return a->o.offer_id < b->o.offer_id; // deterministic tie-break
  };
  std::sort(r.feasible.begin(), r.feasible.end(), by_score);
  std::sort(r.infeasible.begin(), r.infeasible.end(), by_score);
  return r;
}

micros auction_book::second_price(const ranking& r) const {
  if (r.feasible.empty())
    return 0;
  micros own = r.feasible.front()->o.price;
  micros second = 0;
  for (auto* e : r.feasible)
    if (e != r.feasible.front() && (second == 0 || e->o.price < second))
      second = e->o.price;
  return second > 0 ? std::max(second, own) : own;
}

void auction_book::set_verdict(const std::string& offer_id, const std::string& verdict) {
  for (auto& e : entries_)
    if (e.o.offer_id == offer_id)
      e.verdict = verdict;
}

void auction_book::close_open_offers(const std::string& verdict) {
  for (auto& e : entries_)
    if (e.verdict.empty())
      e.verdict = verdict;
}

namespace {

std::string dollars(double micro) {
  return "$" + format_usd(static_cast<micros>(std::llround(micro)));
}

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

/// Why `b` scores worse than `a`, naming the term that differs most.
std::string worse_because(const offer_explanation& a, const offer_explanation& b) {
  struct term {
    const char* name;
    double mine, theirs;
  };
  term terms[] = {{"cost", a.score.cost_term, b.score.cost_term},
                  {"deadline", a.score.deadline_term, b.score.deadline_term},
                  {"risk", a.score.risk_term, b.score.risk_term}};
  const term* most = &terms[0];
  for (auto& t : terms)
    if (t.theirs - t.mine > most->theirs - most->mine)
      most = &t;
  std::string out = "its " + std::string(most->name) + " term +" + dollars(most->theirs) +
                    " vs +" + dollars(most->mine);
  if (std::string(most->name) == "risk") {
    char buf[96];
    std::snprintf(buf, sizeof buf, "; breach probability %.3f vs %.3f",
                  b.score.breach_probability, a.score.breach_probability);
    out += buf;
  } else if (std::string(most->name) == "deadline") {
    char buf[96];
    std::snprintf(buf, sizeof buf, "; P(on time) %.3f vs %.3f", b.score.p_deadline,
                  a.score.p_deadline);
    out += buf;
  }
  if (a.price == b.price)
    out += "; same price " + dollars(static_cast<double>(a.price));
  return out;
}

} // namespace

std::string explain_outcome(const explanation& x) {
  const offer_explanation* won = nullptr;
  for (auto& o : x.offers)
    if (o.verdict == "won")
      won = &o;
  if (!won) {
    if (x.state == job_state::refused)
      return "refused: " + x.reason;
    if (is_final(x.state))
      return std::string("no allocation: the job ended ") + to_string(x.state) +
             (x.reason.empty() ? "" : " (" + x.reason + ")");
    return std::string("no decision yet: the job is ") + to_string(x.state);
  }
  // The winner's competitors: the other ranked, feasible offers of its auction.
  std::vector<const offer_explanation*> others;
  std::vector<const offer_explanation*> refused;
  std::size_t infeasible = 0;
  for (auto& o : x.offers) {
    if (&o == won || o.auction_id != won->auction_id || !o.score.scored)
      continue;
    if (o.verdict == "lost")
      others.push_back(&o);
    else if (starts_with(o.verdict, "refused"))
      refused.push_back(&o);
    else if (starts_with(o.verdict, "infeasible"))
      ++infeasible;
  }
  auto by_score = [](const offer_explanation* a, const offer_explanation* b) {
    return a->score.risk_adjusted < b->score.risk_adjusted;
  };
  std::sort(others.begin(), others.end(), by_score);
  std::string out;
  if (refused.empty()) {
    out = "cheapest risk-adjusted cost: ";
  } else {
    out = won->provider + " won after better-ranked offers fell through (";
    for (std::size_t i = 0; i < refused.size(); ++i)
      out += (i ? "; " : "") + refused[i]->provider + " " + refused[i]->verdict;
    out += "): risk-adjusted cost ";
  }
  out += dollars(won->score.risk_adjusted) + " from " + won->provider + " (price " +
         dollars(static_cast<double>(won->price)) + ", risk term +" +
         dollars(won->score.risk_term) + ")";
  if (x.price > 0 && x.price != won->price)
    out += ", paying the second price " + dollars(static_cast<double>(x.price));
  if (!others.empty()) {
    auto* next = others.front();
    out += " vs next best " + dollars(next->score.risk_adjusted) + " from " + next->provider +
           " (" + worse_because(*won, *next) + ")";
  } else {
    out += ", the only acceptable offer";
  }
  if (infeasible > 0)
    out += "; " + std::to_string(infeasible) + " infeasible";
  return out;
}

} // namespace tender
