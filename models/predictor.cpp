#include "models/predictor.hpp"

#include <algorithm>

namespace tender {

predictor::~predictor() = default;

void predictor::submitted(const job_spec&, usec) {}

void predictor::withdrawn(const job_spec&) {}

prediction baseline_predictor::predict(const job_spec& spec, const resource_profile& measured,
                                       usec) const {
  prediction p;
  auto it = by_user_.find(spec.user);
  if (it != by_user_.end() && it->second.size() >= 2) {
    auto& h = it->second;
    auto a = h[h.size() - 1], b = h[h.size() - 2];
    p.runtime = (a + b) / 2;
    p.runtime_lo = std::min(a, b) / 2;
    p.runtime_hi = std::max(a, b) * 2;
    p.model_version = "baseline:last2";
    p.basis = "average of " + spec.user + "'s last two run times";
  } else if (measured.runtime > 0) {
    p.runtime = measured.runtime;
    p.runtime_lo = measured.runtime_lo > 0 ? measured.runtime_lo : measured.runtime / 2;
    p.runtime_hi = measured.runtime_hi > 0 ? measured.runtime_hi : measured.runtime * 2;
    p.model_version = "baseline:profile";
    p.basis = "sandbox profile run";
  } else if (spec.walltime > 0) {
    p.runtime = spec.walltime / 2;
    p.runtime_lo = spec.walltime / 20;
    p.runtime_hi = spec.walltime;
    p.model_version = "baseline:walltime";
    p.basis = "half of the user's walltime estimate, capped by it";
  } else {
    p.runtime = 60 * sec_us;
    p.runtime_lo = sec_us;
    p.runtime_hi = 3600 * sec_us;
    p.model_version = "baseline:default";
    p.basis = "no history, no estimate: global default";
  }
  if (spec.walltime > 0) {
    p.runtime = std::min(p.runtime, spec.walltime);
    p.runtime_hi = std::min(std::max(p.runtime_hi, p.runtime), spec.walltime);
  }
  p.runtime_lo = std::min(p.runtime_lo, p.runtime);
  return p;
}

void baseline_predictor::observe(const finished_job& job) {
  auto& h = by_user_[job.spec.user];
  h.push_back(job.runtime);
  while (h.size() > 8)
    h.pop_front();
}

prediction requested_predictor::predict(const job_spec& spec, const resource_profile&,
                                        usec) const {
  prediction p;
  if (spec.walltime > 0) {
    p.runtime = spec.walltime;
    p.basis = "the user's requested time";
  } else if (!finished_.empty()) {
    // The median as `job_history::global_median` takes it (the replay's fallback).
    const std::size_t n = finished_.size();
    p.runtime = n % 2 == 1 ? finished_[n / 2] : (finished_[n / 2 - 1] + finished_[n / 2]) / 2;
    p.basis = "no requested time: the median run time of finished jobs";
  } else {
    p.runtime = 3600 * sec_us;
    p.basis = "no requested time and no finished job: an hour";
  }
  p.runtime_lo = p.runtime;
  p.runtime_hi = p.runtime;
  p.model_version = version();
  return p;
}

void requested_predictor::observe(const finished_job& job) {
  finished_.insert(std::upper_bound(finished_.begin(), finished_.end(), job.runtime), job.runtime);
}

} // namespace tender
