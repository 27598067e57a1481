#pragma once
/// Scores offers on cost and risk. Plain class: the auction actor calls it.
///
/// risk_adjusted = w_cost * expected_cost
///               + w_deadline * (1 - p_deadline) * expected_cost
///               + w_risk * risk * expected_cost
///
/// expected_cost integrates the offer's hourly rate over the predicted run-time
/// distribution (a log-normal fitted to the profile's 90 % interval), not a point
/// estimate. Budget feasibility uses the interval's upper end. p_deadline is the
/// probability that start + run time (+ a restart after a preemption) meets the
/// deadline. breach_probability is the posterior mean of a Beta(a + breaches,
/// b + kept) over the provider's SLA history, with a prior Beta(1, 19): a new
/// provider is assumed to keep 95 % of its promises until its history says
/// otherwise. Risk combines that with the offer's own stated availability.

#include "config/node_config.hpp"
#include "protocol/negotiation.hpp"

#include <string>

namespace tender {

struct score_breakdown {
  double expected_cost = 0; ///< micro-dollars
  micros worst_cost = 0;    ///< cost at the interval's upper end
  double p_deadline = 1.0;
  double breach_probability = 0.0;
  double risk = 0.0;          ///< breach or unavailability, combined
  double cost_term = 0;       ///< w_cost * expected_cost
  double deadline_term = 0;   ///< w_deadline * (1 - p_deadline) * penalty
  double risk_term = 0;       ///< w_risk * risk * penalty
  double risk_adjusted = 0; ///< micro-dollars, lower is better: the sum of the three terms
  bool scored = false;      ///< set by offer_scorer::score
  bool feasible = true;
  std::string why; ///< why infeasible; empty when feasible (see score_account)

  /// The wire view (`tender explain`).
  score_terms terms() const;
};

constexpr double breach_prior_a = 1.0;
constexpr double breach_prior_b = 19.0;
/// Beta(a + breaches, b + kept) posterior mean.
double breach_posterior(std::int64_t breaches, std::int64_t kept);

class offer_scorer {
public:
  explicit offer_scorer(scoring_config weights) : w_(weights) {}
  score_breakdown score(const offer& o, const resource_request& req, double breach_probability,
                        usec now) const;
  const scoring_config& weights() const { return w_; }

private:
  scoring_config w_;
};

/// An answer slower than the provider's stated latency is an SLA breach. `elapsed`
/// runs from the call for offers to the answer's arrival, so it includes the node's
/// own dispatch and, for a remote provider, the network: `latency_allowance` is
/// granted on top of the stated latency for that.
constexpr usec latency_allowance = 50'000;
bool slower_than_promised(usec elapsed, usec stated_latency);

/// Cost of running `runtime` at `rate_per_hour`, rounded up to whole micro-dollars.
micros cost_for(micros rate_per_hour, usec runtime);

} // namespace tender
