#include "actors/scaler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tender {

namespace {

constexpr usec min_quiet = 60 * sec_us;
constexpr millicores min_cpu = 100;           ///< never shrink below 0.1 core ...
constexpr bytes_t min_memory = bytes_t{64} << 20; ///< ... nor 64 MiB

job_holding holding_of(const resources& r, usec started_at, usec runtime_hi) {
  job_holding h;
  h.cpu = r.cpu;
  h.memory = r.memory;
  h.started_at = started_at;
  h.runtime_hi = runtime_hi;
  return h;
}

/// `proposed`, but at most `step` times `held` when it grows.
std::int64_t cap_growth(std::int64_t held, std::int64_t proposed, double step) {
  if (held <= 0 || proposed <= held)
    return proposed;
  const auto cap = static_cast<std::int64_t>(std::floor(static_cast<double>(held) * step));
  return std::min(proposed, std::max(cap, held));
}

std::string amounts(const resources& r) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.3f cores, %.0f MiB", static_cast<double>(r.cpu) / 1000.0,
                static_cast<double>(r.memory) / static_cast<double>(1 << 20));
  return buf;
}

} // namespace

deviation_options detector_options(const scaling_config& c) {
  deviation_options o;
  o.memory_window = c.memory_window;
  o.memory_horizon = c.memory_horizon;
  o.memory_margin = c.memory_margin;
  o.runtime_extension = c.runtime_extension;
  o.throttle_window = c.throttle_window;
  o.throttle_share = c.throttle_share;
  o.throttle_min_span = c.throttle_min_span;
  o.cpu_margin = c.cpu_margin;
  o.shrink_window = c.shrink_window;
  o.min_gain = c.min_gain;
  o.disruptive_gap = c.disruptive_gap;
  o.forecast.enabled = c.cpu_forecast;
  o.forecast.short_cost = c.forecast_short_cost;
  return o;
}

const char* to_string(scaling_action a) {
  switch (a) {
  case scaling_action::in_place:
    return "in_place";
  case scaling_action::move:
    return "move";
  case scaling_action::extend:
    return "extend";
  case scaling_action::none:
    return "none";
  }
  return "?";
}

scaler::scaler(std::string job_id, const allocation& a, usec started_at, usec runtime_hi,
               const scaling_config& c)
    : job_id_(std::move(job_id)), allocation_id_(a.allocation_id), provider_(a.provider),
      held_(a.granted), cfg_(c),
      detector_(holding_of(a.granted, started_at, runtime_hi), detector_options(c)) {}

void scaler::observe(const usage_sample& s) {
  usage_point p;
  p.at = s.at;
  p.cpu = s.cpu;
  p.memory = s.rss;
  detector_.observe(p);
}

usec scaler::quiet_period() const { return std::max(cfg_.disruptive_gap, min_quiet); }

void scaler::quiet(scaling_kind k, usec now) { quiet_until_[k] = now + quiet_period(); }

std::optional<scaling_plan> scaler::check(usec now) {
  auto need = detector_.check(now);
  if (!need)
    return std::nullopt;
  if (auto q = quiet_until_.find(need->kind); q != quiet_until_.end() && now < q->second)
    return std::nullopt;
  scaling_plan p;
  p.held = held_;
  p.wanted = held_;
  if (need->kind != scaling_kind::overrun_runtime) {
    const millicores cpu_asked = need->cpu;
    const bytes_t memory_asked = need->memory;
    need->cpu = cap_growth(held_.cpu, need->cpu, cfg_.max_step);
    need->memory = cap_growth(held_.memory, need->memory, cfg_.max_step);
    if (need->cpu != cpu_asked || need->memory != memory_asked) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "; capped at %.4g x what is held (%s) for this step",
                    cfg_.max_step, amounts({need->cpu, need->memory, 0, "", 0}).c_str());
      need->reason += buf;
    }
    // An idle job would be shrunk to nothing; keep what a process needs to wake up.
    if (need->cpu > 0 && need->cpu < held_.cpu)
      need->cpu = std::min(held_.cpu, std::max(need->cpu, min_cpu));
    if (need->memory > 0 && need->memory < held_.memory)
      need->memory = std::min(held_.memory, std::max(need->memory, min_memory));
    if (need->cpu == held_.cpu && need->memory == held_.memory)
      return std::nullopt; // the floors took the whole change back
    p.wanted.cpu = need->cpu > 0 ? need->cpu : held_.cpu;
    p.wanted.memory = need->memory > 0 ? need->memory : held_.memory;
  }
  if (need->kind == scaling_kind::overrun_runtime)
    p.action = scaling_action::extend;
  else if (!need->disruptive)
    p.action = scaling_action::in_place;
  else if (need->kind == scaling_kind::grow_memory && cfg_.move)
    p.action = scaling_action::move;
  else
    p.action = scaling_action::none;
  p.need = std::move(*need);
  return p;
}

scaling_plan scaler::gpu_memory_short(bytes_t needed, const std::string& line,
                                      usec now) const {
  constexpr bytes_t mib = bytes_t{1} << 20;
  scaling_plan p;
  p.held = held_;
  p.wanted = held_;
  const bytes_t with_margin =
    needed + std::llround(static_cast<double>(needed) * std::max(0.0, cfg_.memory_margin));
  const bytes_t want = std::max(with_margin, held_.gpu_memory + 1);
  p.wanted.gpu_memory = (want + mib - 1) / mib * mib;
  p.wanted.gpu_type.clear(); // any GPU with the memory
  p.wanted.gpus = std::max<std::int32_t>(1, held_.gpus);
  p.need.kind = scaling_kind::grow_gpu_memory;
  p.need.cpu = held_.cpu;
  p.need.memory = held_.memory;
  p.need.runtime_hi = detector_.holding().runtime_hi;
  p.need.disruptive = true;
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "the run ended out of GPU memory on %s with %lld MiB per GPU; it needs %lld MiB "
                "(+%.0f %%): ",
                held_.gpu_type.empty() ? "its GPU" : held_.gpu_type.c_str(),
                static_cast<long long>(held_.gpu_memory / mib),
                static_cast<long long>((needed + mib - 1) / mib), cfg_.memory_margin * 100.0);
  p.need.reason = buf + line;
  if (!cfg_.move)
    p.action = scaling_action::none;
  else if (last_disruptive_ >= 0 && now - last_disruptive_ < cfg_.disruptive_gap)
    p.action = scaling_action::none;
  else
    p.action = scaling_action::move;
  return p;
}

scale_request scaler::request(const scaling_plan& p) const {
  scale_request r;
  r.job_id = job_id_;
  r.allocation_id = allocation_id_;
  r.wanted = p.wanted;
  r.reason = std::string(to_string(p.need.kind)) + ": " + p.need.reason;
  r.in_place_only = true;
  return r;
}

scaling_decision scaler::decision(const scaling_plan& p, usec now) const {
  scaling_decision d;
  d.job_id = job_id_;
  d.at = now;
  d.need = to_string(p.need.kind);
  d.action = to_string(p.action);
  d.allocation_id = allocation_id_;
  d.held = p.held;
  d.wanted = p.wanted;
  d.granted = p.held;
  d.disruptive = p.need.disruptive;
  d.reason = p.need.reason;
  return d;
}

scaling_answer scaler::answered(const scaling_plan& p, const scale_offer& o, usec now) {
  scaling_answer a;
  a.decision = decision(p, now);
  a.decision.by = o.provider.empty() ? provider_ : o.provider;
  a.decision.detail = o.reason;
  if (o.applied) {
    resources got = o.granted;
    // A provider that answers without amounts granted what was asked.
    if (got.cpu <= 0 && got.memory <= 0)
      got = p.wanted;
    a.decision.outcome = "granted";
    a.decision.granted = got;
    a.decision.price_delta = o.price_delta;
    // The provider echoes the request's reason; anything else it says is news.
    a.decision.detail = amounts(p.held) + " -> " + amounts(got) + " in place";
    if (!o.reason.empty() && o.reason != request(p).reason)
      a.decision.detail += ": " + o.reason;
    job_holding h = detector_.holding();
    h.cpu = got.cpu;
    h.memory = got.memory;
    held_ = got;
    scaling_need done = p.need;
    done.disruptive = false;
    if (o.delay > 0) {
      // The provider restarts the job to apply it (a market changing the instance's
      // type): a disruptive action, and so will the next change on this allocation be.
      done.disruptive = true;
      a.decision.disruptive = true;
      h.cpu_in_place = false;
      h.memory_in_place = false;
      last_disruptive_ = now;
    }
    detector_.applied(done, h, now);
    return a;
  }
  a.decision.outcome = "refused";
  if (a.decision.detail.empty())
    a.decision.detail = "refused without a reason";
  // What the provider cannot change in place, later needs will know is disruptive.
  job_holding h = detector_.holding();
  if (p.wanted.memory != p.held.memory)
    h.memory_in_place = false;
  if (p.wanted.cpu != p.held.cpu)
    h.cpu_in_place = false;
  scaling_need none = p.need;
  none.disruptive = false;
  detector_.applied(none, h, now); // same amounts: no clock restarts
  a.move = p.need.kind == scaling_kind::grow_memory && cfg_.move;
  if (a.move && last_disruptive_ >= 0 && now - last_disruptive_ < cfg_.disruptive_gap) {
    // A move is disruptive: the hourly budget applies to it as to any restart.
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "; no move: the last one was %.1f min ago (at most one per %.0f min)",
                  static_cast<double>(now - last_disruptive_) / (60.0 * sec_us),
                  static_cast<double>(cfg_.disruptive_gap) / (60.0 * sec_us));
    a.decision.detail += buf;
    a.move = false;
  }
  if (!a.move)
    quiet(p.need.kind, now);
  return a;
}

scaling_answer scaler::unanswered(const scaling_plan& p, const std::string& why, usec now) {
  scale_offer silent;
  silent.provider = provider_;
  silent.reason = "no answer: " + why;
  return answered(p, silent, now);
}

scaling_decision scaler::extended(const scaling_plan& p, usec now) {
  scaling_decision d = decision(p, now);
  d.outcome = "noted";
  d.by = "tender";
  char buf[128];
  std::snprintf(buf, sizeof buf, "predicted end moved from %.1f to %.1f min after the start",
                static_cast<double>(detector_.holding().runtime_hi) / (60.0 * sec_us),
                static_cast<double>(p.need.runtime_hi) / (60.0 * sec_us));
  d.detail = buf;
  job_holding h = detector_.holding();
  h.runtime_hi = p.need.runtime_hi;
  detector_.applied(p.need, h, now);
  return d;
}

scaling_decision scaler::not_acted(const scaling_plan& p, usec now) {
  scaling_decision d = decision(p, now);
  d.outcome = "refused";
  d.by = "tender";
  if (p.need.kind == scaling_kind::grow_gpu_memory)
    d.detail = !cfg_.move ? "moves are disabled ([scaling] move)"
                          : "the last move was under " +
                              std::to_string(cfg_.disruptive_gap / (60 * sec_us)) +
                              " min ago (at most one disruptive action per [scaling] "
                              "disruptive_gap)";
  else
    d.detail = p.need.kind == scaling_kind::grow_memory
                 ? "the provider cannot change it in place and moves are disabled ([scaling] move)"
                 : "the provider cannot change it in place, and a restart elsewhere would lose "
                   "the job's work for a job that is not at risk of being killed";
  quiet(p.need.kind, now);
  return d;
}

scaling_decision scaler::moved(const scaling_plan& p, const allocation& to,
                               const std::string& detail, usec now) {
  scaling_decision d = decision(p, now);
  d.outcome = "moved";
  d.by = to.provider;
  d.allocation_id = to.allocation_id;
  d.granted = to.granted;
  d.disruptive = true;
  d.detail = detail;
  // The new run starts with a fresh history on the new allocation; one disruptive
  // action was spent now.
  job_holding h = holding_of(to.granted, now, detector_.holding().runtime_hi);
  deviation_detector fresh(h, detector_options(cfg_));
  scaling_need spent = p.need;
  spent.disruptive = true;
  fresh.applied(spent, h, now);
  detector_ = std::move(fresh);
  allocation_id_ = to.allocation_id;
  provider_ = to.provider;
  held_ = to.granted;
  quiet_until_.clear();
  last_disruptive_ = now;
  return d;
}

scaling_decision scaler::move_failed(const scaling_plan& p, const std::string& why, usec now) {
  scaling_decision d = decision(p, now);
  d.outcome = "move_failed";
  d.by = "tender";
  d.disruptive = false;
  d.detail = why;
  quiet(p.need.kind, now);
  return d;
}

} // namespace tender
