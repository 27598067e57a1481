#include "actors/offer_scorer.hpp"

#include <algorithm>
#include <cstdio>
#include <cmath>

namespace tender {

namespace {

constexpr double z90 = 1.6448536269514722; // two-sided 90 %

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

struct lognormal {
  double mu = 0;
  double sigma = 0;
};

lognormal fit(const resource_profile& p) {
  double v = std::max<double>(p.runtime, 1.0);
  double lo = std::max<double>(p.runtime_lo > 0 ? p.runtime_lo : v, 1.0);
  double hi = std::max<double>(p.runtime_hi > 0 ? p.runtime_hi : v, lo);
  lognormal d;
  d.mu = std::log(v);
  d.sigma = std::max((std::log(hi) - std::log(lo)) / (2 * z90), 1e-3);
  return d;
}

} // namespace

double breach_posterior(std::int64_t breaches, std::int64_t kept) {
  return (breach_prior_a + static_cast<double>(breaches)) /
         (breach_prior_a + breach_prior_b + static_cast<double>(breaches + kept));
}

bool slower_than_promised(usec elapsed, usec stated_latency) {
  return stated_latency > 0 && elapsed > stated_latency + latency_allowance;
}

score_terms score_breakdown::terms() const {
  score_terms t;
  t.scored = scored;
  t.expected_cost = expected_cost;
  t.worst_cost = worst_cost;
  t.p_deadline = p_deadline;
  t.breach_probability = breach_probability;
  t.risk = risk;
  t.cost_term = cost_term;
  t.deadline_term = deadline_term;
  t.risk_term = risk_term;
  t.risk_adjusted = risk_adjusted;
  t.note = why;
  return t;
}

micros cost_for(micros rate_per_hour, usec runtime) {
  // rate [µ$/h] * runtime [µs] / 3.6e9 [µs/h], rounded up, in exact integers.
  __int128 num = static_cast<__int128>(rate_per_hour) * runtime;
  __int128 den = 3'600'000'000;
  return static_cast<micros>((num + den - 1) / den);
}

score_breakdown offer_scorer::score(const offer& o, const resource_request& req,
                                    double breach_probability, usec now) const {
  score_breakdown s;
  s.breach_probability = breach_probability;
  auto d = fit(req.profile);
  // E[T] of a log-normal, in µs.
  double mean_runtime = std::exp(d.mu + d.sigma * d.sigma / 2);
  double rate = static_cast<double>(o.rate_per_hour);
  if (rate > 0) {
    s.expected_cost = rate * mean_runtime / 3.6e9;
    // A quote above rate x runtime carries a minimum charge (per-minute billing):
    // the expected cost is never below it.
    if (static_cast<double>(o.price) > rate * static_cast<double>(req.profile.runtime) / 3.6e9 + 1)
      s.expected_cost = std::max(s.expected_cost, static_cast<double>(o.price));
  } else {
    s.expected_cost = static_cast<double>(o.price); // a fixed-price offer
  }
  usec hi = req.profile.runtime_hi > 0 ? req.profile.runtime_hi : req.profile.runtime;
  s.worst_cost = o.rate_per_hour > 0 ? cost_for(o.rate_per_hour, hi) : o.price;

  // Probability of meeting the deadline.
  if (req.deadline > 0) {
    double start = static_cast<double>(std::max(o.earliest_start, now));
    double window = static_cast<double>(req.deadline) - start;
    if (window <= 0) {
      s.p_deadline = 0;
    } else {
      double p_run = normal_cdf((std::log(window) - d.mu) / d.sigma);
      // A preemption costs a restart: the job then needs about twice its run time.
      double hours = mean_runtime / 3.6e9;
      double p_pre = 1.0 - std::exp(-o.terms.preemption_probability * hours);
      double p_twice = normal_cdf((std::log(window / 2) - d.mu) / d.sigma);
      s.p_deadline = (1.0 - p_pre) * p_run + p_pre * p_twice;
    }
  }
  // What the provider's history says, and what it admits itself: the chance the
  // resources are not there for the run.
  double unavailable = 1.0 - std::clamp(o.terms.availability, 0.0, 1.0);
  double risk = 1.0 - (1.0 - breach_probability) * (1.0 - unavailable);

  // A miss or a breach costs the run again (the money is spent, the work redone).
  double penalty = std::max(s.expected_cost, 1.0);
  s.risk = risk;
  s.cost_term = w_.w_cost * s.expected_cost;
  s.deadline_term = w_.w_deadline * (1.0 - s.p_deadline) * penalty;
  s.risk_term = w_.w_risk * risk * penalty;
  s.risk_adjusted = s.cost_term + s.deadline_term + s.risk_term;
  s.scored = true;

  if (req.max_cost > 0 && s.worst_cost > req.max_cost) {
    s.feasible = false;
    s.why = "over budget: $" + format_usd(s.worst_cost) + " at the run time's upper end > max_cost $" +
            format_usd(req.max_cost);
  } else if (req.deadline > 0 && s.p_deadline < w_.deadline_target) {
    s.feasible = false;
    char buf[96];
    std::snprintf(buf, sizeof buf, "deadline: P(on time) %.2f < target %.2f", s.p_deadline,
                  w_.deadline_target);
    s.why = buf;
  }
  // A feasible offer's account (score_account) is made from its terms when shown.
  return s;
}

} // namespace tender
