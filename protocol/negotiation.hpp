#pragma once
/// Negotiation messages: the call for offers, offers, and the two-phase commit.
///
///   auction --resource_request--> providers        (round r, price_to_beat)
///   providers --offer | decline--> auction
///   auction --award--> winner      --decline--> losers
///   winner --commit_confirm{allocation} | commit_refuse--> auction
///   anyone --release--> provider   (ends an allocation or a hold)

#include "protocol/allocation.hpp"
#include "protocol/profile.hpp"
#include "protocol/resources.hpp"
#include "protocol/scaling.hpp"

#include <msgpack.hpp>

#include <map>
#include <string>
#include <vector>

namespace tender {

/// Auction protocols a call for offers can name.
namespace protocols {
constexpr const char* iterated = "iterated"; ///< iterated reverse auction (contract net)
constexpr const char* vickrey = "vickrey";   ///< sealed-bid second price
} // namespace protocols

/// Call for offers, one per auction round.
/// History: v1. `hops` and `path` added with federation: a site that offers its own
/// providers' capacity to a peer (actors/federation.hpp) forwards the call one hop on;
/// a missing key means a call straight from the auction (no hop, empty path).
struct resource_request {
  std::string job_id;
  std::string auction_id;
  std::int32_t round = 1;
  resource_profile profile;
  resources request; ///< what the offer must cover
  std::vector<std::string> software;
  usec deadline = 0;
  micros max_cost = 0;
  std::string protocol = protocols::iterated;
  micros price_to_beat = 0; ///< plain best price so far (0 = none yet)
  usec reply_by = 0;        ///< offers after this instant are late
  std::int32_t hops = 0;    ///< site boundaries this call has crossed (federation)
  std::vector<std::string> path; ///< sites it has visited, first the one that runs the auction
  MSGPACK_DEFINE_MAP(job_id, auction_id, round, profile, request, software, deadline, max_cost,
                     protocol, price_to_beat, reply_by, hops, path)
};

/// A provider's offer.
/// History: v1.
struct offer {
  std::string offer_id;
  std::string job_id;
  std::string auction_id;
  std::int32_t round = 1;
  std::string provider;
  resources granted;        ///< the concrete resources offered
  micros price = 0;         ///< total for the profile's runtime estimate
  micros rate_per_hour = 0; ///< what the price is made of
  usec earliest_start = 0;
  sla terms;
  usec valid_until = 0;
  std::string instance_type; ///< market providers: the instance type
  bool spot = false;
  MSGPACK_DEFINE_MAP(offer_id, job_id, auction_id, round, provider, granted, price, rate_per_hour,
                     earliest_start, terms, valid_until, instance_type, spot)
};

/// Either side: "no". A provider that will not bid, or the auction telling a loser.
/// History: v1.
struct decline {
  std::string job_id;
  std::string auction_id;
  std::string offer_id; ///< empty when a provider declines a request
  std::string provider;
  std::string reason;
  MSGPACK_DEFINE_MAP(job_id, auction_id, offer_id, provider, reason)
};

/// Auction -> winner: hold the offered capacity and confirm.
/// History: v1.
struct award {
  std::string offer_id;
  std::string job_id;
  std::string auction_id;
  std::string provider;
  usec hold_ttl = 0; ///< the hold expires this long after the provider takes it
  micros price = 0;  ///< clearing price (Vickrey: the second price); 0 = the offer's own
  MSGPACK_DEFINE_MAP(offer_id, job_id, auction_id, provider, hold_ttl, price)
};

/// Winner -> auction: the capacity is held; here is the allocation.
/// History: v1.
struct commit_confirm {
  std::string offer_id;
  std::string job_id;
  allocation alloc;
  MSGPACK_DEFINE_MAP(offer_id, job_id, alloc)
};

/// Winner -> auction: cannot hold what was offered.
/// History: v1.
struct commit_refuse {
  std::string offer_id;
  std::string job_id;
  std::string provider;
  std::string reason;
  MSGPACK_DEFINE_MAP(offer_id, job_id, provider, reason)
};

/// How an offer was scored, term by term (what `tender explain` shows). Money in
/// micro-dollars; doubles because these are expectations, not amounts paid.
///
///   risk_adjusted = cost_term + deadline_term + risk_term
///   cost_term     = w_cost * expected_cost
///   deadline_term = w_deadline * (1 - p_deadline) * expected_cost
///   risk_term     = w_risk * risk * expected_cost,
///   risk          = 1 - (1 - breach_probability) * availability
///
/// History: v1 (added with `tender explain`).
struct score_terms {
  bool scored = false;        ///< false: never ranked (rejected, or the round moved on)
  double expected_cost = 0;   ///< over the predicted run-time distribution
  micros worst_cost = 0;      ///< at the run time's upper end (budget check)
  double p_deadline = 1.0;    ///< probability of meeting the deadline
  double breach_probability = 0; ///< the provider's posterior from its SLA history
  double risk = 0;            ///< breach or unavailability, combined
  double cost_term = 0;
  double deadline_term = 0;
  double risk_term = 0;
  double risk_adjusted = 0;   ///< the score: lower is better
  std::string note;           ///< the scorer's account, or why infeasible
  MSGPACK_DEFINE_MAP(scored, expected_cost, worst_cost, p_deadline, breach_probability, risk,
                     cost_term, deadline_term, risk_term, risk_adjusted, note)
};

/// The account of a scored offer that was feasible, made from its terms:
/// "E[cost] $1.050001, P(on time) 1.000, P(breach) 0.050" (as printf's "%.6f", "%.3f",
/// "%.3f" print them). The scorer leaves `note` empty for such offers and readers make
/// the account when they show one: every offer is scored and recorded, few are explained.
std::string score_account(const score_terms& t);
/// Fills an empty `note` of scored terms with their score_account.
inline void fill_account(score_terms& t) {
  if (t.scored && t.note.empty())
    t.note = score_account(t);
}

/// One offer of a negotiation with its score and verdict.
/// History: v1 (added with `tender explain`).
struct offer_explanation {
  std::string offer_id;
  std::string auction_id;
  std::int32_t round = 0;
  std::string provider;
  micros price = 0;
  micros rate_per_hour = 0;
  usec earliest_start = 0;
  sla terms;
  std::string instance_type;
  score_terms score;
  std::string verdict; ///< "won", "lost", "rejected: ...", "refused: ...", "infeasible: ...",
                       ///< "superseded by a later offer", "candidate" (still open)
  MSGPACK_DEFINE_MAP(offer_id, auction_id, round, provider, price, rate_per_hour, earliest_start,
                     terms, instance_type, score, verdict)
};

/// A provider's "no" to a call for offers, with the round it answered.
/// History: v1 (added with `tender explain`).
struct decline_note {
  std::string auction_id;
  std::int32_t round = 0;
  std::string provider;
  std::string reason;
  MSGPACK_DEFINE_MAP(auction_id, round, provider, reason)
};

/// Client -> node: why did a job get (or not get) its allocation? Answered with
/// `explanation`, or `error{not_found}` for an unknown job.
/// History: v1 (added with `tender explain`).
struct explain_query {
  std::string job_id;
  MSGPACK_DEFINE_MAP(job_id)
};

/// Node -> client: every offer of every round of a job's negotiation with its score
/// breakdown and verdict, the declines, the rejected offers counted by reason, and
/// one sentence on why the winner won (or why the job was refused). Read from the
/// journal, so it survives a restart of the node.
/// History: v1 (added with `tender explain`).
struct explanation {
  std::string job_id;
  job_state state = job_state::submitted;
  std::string reason;   ///< the job's own reason (a refusal names every answer)
  std::string protocol; ///< "iterated" or "vickrey"
  std::int32_t rounds = 0;
  std::string winner;   ///< provider of the committed allocation ("" = none)
  std::string offer_id; ///< the winning offer
  micros price = 0;     ///< what the job pays (Vickrey: the second price)
  std::string why;      ///< one sentence: why the winner won, or why the job was refused
  std::vector<offer_explanation> offers; ///< by round, then arrival
  std::vector<decline_note> declines;
  std::map<std::string, std::int64_t> rejected; ///< rejected offers by reason ("late", ...)
  /// Every scaling decision while the job ran, oldest first. Added with scaling.
  std::vector<scaling_decision> scaling;
  MSGPACK_DEFINE_MAP(job_id, state, reason, protocol, rounds, winner, offer_id, price, why, offers,
                     declines, rejected, scaling)
};

} // namespace tender
