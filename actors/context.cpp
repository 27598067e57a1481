#include "actors/context.hpp"

#include <sys/random.h>

#include <cstdio>

namespace tender {

std::string node_context::new_id(const char* prefix) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (epoch_.empty()) {
      unsigned char b[3] = {0, 0, 0};
      if (getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
        auto t = static_cast<unsigned>(clock());
        b[0] = t & 0xff, b[1] = (t >> 8) & 0xff, b[2] = (t >> 16) & 0xff;
      }
      char buf[8];
      std::snprintf(buf, sizeof buf, "%02x%02x%02x", b[0], b[1], b[2]);
      epoch_ = buf;
    }
  }
  return std::string(prefix) + "-" + epoch_ + "-" + std::to_string(++counter_);
}

prediction node_context::predict(const job_spec& spec, const resource_profile& measured) {
  std::lock_guard<std::mutex> g(mu_);
  return predictor_->predict(spec, measured, clock());
}

void node_context::observe(const finished_job& j) {
  std::lock_guard<std::mutex> g(mu_);
  predictor_->observe(j);
}

void node_context::set_predictor(std::unique_ptr<predictor> p) {
  std::lock_guard<std::mutex> g(mu_);
  predictor_ = std::move(p);
}

double node_context::breach_probability(const std::string& provider) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = sla_.find(provider);
  if (it == sla_.end()) {
    std::pair<std::int64_t, std::int64_t> counts{0, 0};
    if (journal)
      for (auto& e : journal->sla_events(provider))
        (e.breach ? counts.first : counts.second)++;
    it = sla_.emplace(provider, counts).first;
  }
  return breach_posterior(it->second.first, it->second.second);
}

void node_context::record_sla(const std::string& provider, const std::string& kind, bool breach) {
  breach_probability(provider); // loads history first
  {
    std::lock_guard<std::mutex> g(mu_);
    auto& c = sla_[provider];
    (breach ? c.first : c.second)++;
  }
  if (journal)
    journal->save_sla_event(sla_event{provider, kind, breach, clock()});
}

} // namespace tender
