#pragma once
/// The book of one negotiation: the offers of every round, checked and ranked.
/// Plain class; the round actors feed it and ask it who wins.
///
/// An offer is rejected, with a logged reason, when it is late (after the round's
/// reply_by), a duplicate (same offer id), expired (valid_until passed), foreign
/// (another job or auction, or a provider not invited), malformed (negative price,
/// empty id), or does not cover the request (resources, GPU type). Rejected offers
/// never change the outcome.

#include "actors/offer_scorer.hpp"
#include "protocol/negotiation.hpp"

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

namespace tender {

struct book_entry {
  offer o;
  score_breakdown score;
  std::string verdict; ///< "", "won", "lost", "rejected: ...", "refused: ...", "infeasible: ..."
};

struct ranking {
  std::vector<const book_entry*> feasible; ///< best (lowest risk-adjusted cost) first
  std::vector<const book_entry*> infeasible;
};

class auction_book {
public:
  /// `providers`: the invited providers; offers from anyone else are foreign.
  auction_book(resource_request base, std::set<std::string> providers);

  const resource_request& request() const { return base_; }
  /// The call for offers of round `round`, carrying the plain best price so far.
  resource_request call_for(std::int32_t round, usec reply_by) const;

  /// Adds an offer; returns the rejection reason, or nothing when accepted.
  std::optional<std::string> add(const offer& o, usec now, usec reply_by);
  /// As above; an accepted offer is moved into the book (a rejected one is left as is).
  std::optional<std::string> add(offer&& o, usec now, usec reply_by);
  /// True when an offer with this id was accepted before.
  bool seen(const std::string& offer_id) const { return seen_ids_.count(offer_id) > 0; }
  /// Counts an offer rejected outside `add` (the round had already closed).
  void count_rejected(const std::string& why);
  void add_decline(const decline& d);
  /// A decline answering the call for offers of `round` (kept for `tender explain`).
  void add_decline(const decline& d, std::int32_t round);

  /// Lowest plain price among accepted, unexpired offers (0 = none).
  micros best_price(usec now) const;
  /// Scores every accepted, unexpired offer; `breach` gives each provider's risk.
  /// Offers superseded by their provider's later one are scored too (for
  /// `tender explain`) but never ranked.
  ranking rank(const offer_scorer& scorer, const std::function<double(const std::string&)>& breach,
               usec now);
  /// Vickrey: the price the winner pays (second-lowest plain price among feasible
  /// offers, or the winner's own when it is the only one).
  micros second_price(const ranking& r) const;

  void set_verdict(const std::string& offer_id, const std::string& verdict);
  /// After a commit: every offer still open (ranked but not awarded) has lost.
  void close_open_offers(const std::string& verdict = "lost");
  /// Every decline with the round it answered, in arrival order.
  const std::vector<decline_note>& decline_notes() const { return decline_notes_; }
  const std::vector<book_entry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& declines() const { return declines_; }
  std::int64_t rejected() const { return rejected_; }
  const std::map<std::string, std::int64_t>& rejections_by_reason() const { return reasons_; }

private:
  std::optional<std::string> check(const offer& o, usec now, usec reply_by) const;

  resource_request base_;
  std::set<std::string> providers_;
  std::vector<book_entry> entries_;
  std::unordered_set<std::string> seen_ids_; ///< offer ids share long prefixes: hashed, not compared
  std::map<std::string, std::string> declines_; ///< provider -> reason
  std::vector<decline_note> decline_notes_;
  std::int64_t rejected_ = 0;
  std::map<std::string, std::int64_t> reasons_;
};

/// One sentence on a negotiation's outcome for `tender explain`, from its offers
/// (with verdicts and score terms), the job's state and reason: why the winner won
/// ("cheapest risk-adjusted cost: $X from P vs next best $Y from Q (its risk term
/// +$Z)"), that it won after cheaper offers fell through, or why the job was refused.
std::string explain_outcome(const explanation& x);

} // namespace tender
