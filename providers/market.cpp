#include "providers/market.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>

namespace tender {

namespace {

__extension__ using i128 = __int128;

constexpr std::int64_t unlimited = std::numeric_limits<std::int64_t>::max() / 4;
constexpr std::int32_t unlimited_gpus = std::numeric_limits<std::int32_t>::max() / 4;

resources ledger_capacity(const provider_config& c) {
  resources r = c.capacity;
  if (r.cpu == 0)
    r.cpu = unlimited;
  if (r.memory == 0)
    r.memory = unlimited;
  if (r.gpus == 0)
    r.gpus = unlimited_gpus;
  return r;
}

bool iequal(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool covers_request(const instance_type& t, const resources& want) {
  if (t.cpu < want.cpu || t.memory < want.memory || t.gpus < want.gpus)
    return false;
  if (want.gpus > 0) {
    if (!want.gpu_type.empty() && !iequal(want.gpu_type, t.gpu_type))
      return false;
    if (t.gpu_memory < want.gpu_memory)
      return false;
  }
  return true;
}

/// A uniform draw in [0, 1) from the top 53 bits: the same on every platform.
double uniform(std::mt19937_64& g) {
  return static_cast<double>(g() >> 11) * 0x1.0p-53;
}

} // namespace

market_provider::market_provider(provider_config cfg, executor& exec, token_source tokens,
                                 usec lease_ttl)
    : leasing_provider(cfg, ledger_capacity(cfg), exec, std::move(tokens), lease_ttl),
      refusals_(cfg.seed), preemptions_(cfg.seed ^ 0x9e3779b97f4a7c15ull) {
  index_catalogue();
}

market_provider::market_provider(provider_config cfg, std::string run_root, token_source tokens,
                                 usec lease_ttl)
    : market_provider(std::move(cfg), std::make_unique<executor>(std::move(run_root)),
                      std::move(tokens), lease_ttl) {}

market_provider::market_provider(provider_config cfg, std::unique_ptr<executor> exec,
                                 token_source tokens, usec lease_ttl)
    : leasing_provider(cfg, ledger_capacity(cfg), std::move(exec), std::move(tokens), lease_ttl),
      refusals_(cfg.seed), preemptions_(cfg.seed ^ 0x9e3779b97f4a7c15ull) {
  index_catalogue();
}

resources market_provider::shape(const instance_type& t) {
  resources r;
  r.cpu = t.cpu;
  r.memory = t.memory;
  r.gpus = t.gpus;
  if (t.gpus > 0) {
    r.gpu_type = t.gpu_type;
    r.gpu_memory = t.gpu_memory;
  }
  return r;
}

micros market_provider::billed(micros per_hour, usec runtime) {
  // In 64 bits when nothing overflows (every bid prices every covering type twice,
  // and a 128-bit division is a library call); in 128 bits otherwise.
  if (runtime >= 0 && runtime <= std::numeric_limits<std::int64_t>::max() - sec_us &&
      per_hour >= 0) {
    const std::int64_t seconds64 = std::max<std::int64_t>(60, (runtime + sec_us - 1) / sec_us);
    std::int64_t num64 = 0;
    if (!__builtin_mul_overflow(per_hour, seconds64, &num64) &&
        num64 <= std::numeric_limits<std::int64_t>::max() - 3599)
      return (num64 + 3599) / 3600;
  }
  const i128 seconds = std::max<i128>(60, (static_cast<i128>(runtime) + sec_us - 1) / sec_us);
  const i128 num = static_cast<i128>(per_hour) * seconds;
  return static_cast<micros>((num + 3599) / 3600);
}

provider_hello market_provider::describe() const {
  const auto& c = config();
  provider_hello h;
  h.name = c.name;
  h.kind = c.kind.empty() ? "market" : c.kind;
  for (const auto& t : c.types)
    if (t.gpus > 0 && std::find(h.gpu_types.begin(), h.gpu_types.end(), t.gpu_type) ==
                          h.gpu_types.end())
      h.gpu_types.push_back(t.gpu_type);
  h.software = c.software;
  h.cpu_features = c.cpu_features;
  h.protocols = {protocols::iterated, protocols::vickrey};
  h.capacity = c.capacity;
  return h;
}

provider_info market_provider::info(usec now) const {
  provider_info i = leasing_provider::info(now);
  // Unlimited dimensions show as 0, as in the configuration.
  const auto& cap = config().capacity;
  i.capacity = cap;
  if (cap.cpu == 0)
    i.free.cpu = 0;
  if (cap.memory == 0)
    i.free.memory = 0;
  if (cap.gpus == 0)
    i.free.gpus = 0;
  return i;
}

micros market_provider::hourly_rate(const resources& r) const {
  micros best = 0;
  for (const auto& t : config().types)
    if (covers_request(t, r) && (best == 0 || t.on_demand_per_hour < best))
      best = t.on_demand_per_hour;
  return best;
}

micros market_provider::spot_price(const instance_type& t, const provider_config& c, usec now) {
  if (!c.spot_follow || t.spot_series.empty() || t.spot_window <= 0)
    return t.spot_per_hour;
  // Where the replayed window is: (now * speed) mod window, kept non-negative.
  const usec span = t.spot_window;
  const usec into = ((now % span) * c.spot_follow_speed % span + span) % span;
  const auto& s = t.spot_series;
  // The last point at or before `into`; before the first one, the window's last price
  // (the replay repeats, so that is the price in force).
  auto after =
      std::upper_bound(s.begin(), s.end(), into,
                       [](usec x, const instance_type::spot_point& p) { return x < p.at; });
  return after == s.begin() ? s.back().price : std::prev(after)->price;
}

std::variant<offer, decline> market_provider::bid(const resource_request& req, usec now) {
  tidy(now);
  const auto& c = config();
  const resources& want = req.request;

  for (const auto& s : req.software)
    if (!c.software.empty() && std::find(c.software.begin(), c.software.end(), s) ==
                                   c.software.end())
      return declined(req, "software " + s + " not available");

  const usec runtime = req.profile.runtime > 0 ? req.profile.runtime : default_runtime;
  const bool later_round = req.round > 1 && req.price_to_beat > 0;
  const std::size_t in_use = book().holds() + book().allocations();
  const bool instances_left =
      c.max_instances <= 0 || in_use < static_cast<std::size_t>(c.max_instances);

  // The fast way to the winner (index_catalogue()); the scan below runs only when there is
  // none, to say why.
  if (instances_left)
    if (auto best = cheapest(want, book().free(), runtime, later_round, now))
      return offer_for(*best->type, best->spot, best->per_hour, best->price, req, runtime, now);

  std::vector<const instance_type*> covering;
  covering.reserve(c.types.size());
  for (const auto& t : c.types)
    if (covers_request(t, want))
      covering.push_back(&t);
  if (covering.empty()) {
    if (want.gpus > 0) {
      bool type_known = std::any_of(c.types.begin(), c.types.end(), [&](const instance_type& t) {
        return t.gpus > 0 && (want.gpu_type.empty() || iequal(t.gpu_type, want.gpu_type));
      });
      if (!type_known)
        return declined(req, "no GPU of type " + (want.gpu_type.empty() ? "any" : want.gpu_type));
    }
    return declined(req, "no instance type covers " + format_cores(want.cpu) + " cores, " +
                             format_bytes(want.memory) + ", " + std::to_string(want.gpus) +
                             " GPUs" +
                             (want.gpus > 0 ? " of " + format_bytes(want.gpu_memory) : ""));
  }

  // Capacity: instances held or running, and the ledger's free resources.
  if (!instances_left)
    return declined(req, "capacity exhausted: " + std::to_string(in_use) + " of " +
                             std::to_string(c.max_instances) + " instances in use");
  const resources free = book().free();

  std::optional<pick> best;
  std::string first_shortfall;
  // Ties: the earlier catalogue entry, then on-demand (no preemption risk).
  auto consider = [&](const instance_type* t, bool spot, micros per_hour) {
    const micros price = billed(per_hour, runtime);
    if (!best || price < best->price ||
        (price == best->price && best->spot && !spot && best->type == t))
      best = pick{t, spot, per_hour, price};
  };
  for (const instance_type* t : covering) {
    // What `shortfall(shape(*t), free)` checks, without building the message for every type.
    if (t->cpu > free.cpu || t->memory > free.memory || t->gpus > free.gpus) {
      if (first_shortfall.empty())
        first_shortfall = shortfall(shape(*t), free);
      continue;
    }
    const micros spot = spot_price(*t, c, now);
    const bool has_spot = c.offer_spot && spot > 0;
    const bool has_od = c.offer_on_demand && t->on_demand_per_hour > 0;
    if (has_spot)
      consider(t, true, spot);
    // The first round offers spot where there is spot; later rounds weigh on-demand too
    // (the cheaper one is offered).
    if (has_od && (later_round || !has_spot))
      consider(t, false, t->on_demand_per_hour);
  }
  if (!best) {
    if (!first_shortfall.empty())
      return declined(req, "capacity exhausted: " + first_shortfall);
    return declined(req, "no purchase option offered for the covering instance types");
  }
  return offer_for(*best->type, best->spot, best->per_hour, best->price, req, runtime, now);
}

std::variant<offer, decline> market_provider::offer_for(const instance_type& t, bool spot,
                                                        micros per_hour, micros price,
                                                        const resource_request& req, usec runtime,
                                                        usec now) {
  const auto& c = config();
  if (req.max_cost > 0 && price > req.max_cost)
    return declined(req, "cheapest instance " + t.name + " costs " + format_usd(price) +
                             " USD, above max_cost " + format_usd(req.max_cost) + " USD");

  offer o;
  o.granted = shape(t);
  o.price = price;
  o.rate_per_hour = per_hour;
  o.earliest_start = now + c.provisioning_delay;
  o.instance_type = t.name;
  o.spot = spot;
  o.terms.latency = c.latency;
  o.terms.availability = c.availability;
  if (spot) {
    o.terms.preemption_probability = c.preemption_per_hour;
    const double hours = static_cast<double>(runtime) / static_cast<double>(3600 * sec_us);
    o.terms.availability = c.availability * std::exp(-c.preemption_per_hour * hours);
  }
  return remember(std::move(o), req, runtime, now);
}

void market_provider::index_catalogue() {
  const auto& c = config();
  for (std::size_t i = 0; i < c.types.size(); ++i) {
    const auto& t = c.types[i];
    const auto index = static_cast<std::uint32_t>(i);
    if (c.offer_on_demand && t.on_demand_per_hour > 0)
      by_floor_.push_back(purchase{t.on_demand_per_hour, index, false});
    if (!c.offer_spot)
      continue;
    // The lowest price spot_price() can return for the type.
    micros floor = t.spot_per_hour;
    if (c.spot_follow && !t.spot_series.empty() && t.spot_window > 0) {
      floor = t.spot_series.front().price;
      for (const auto& p : t.spot_series)
        floor = std::min(floor, p.price);
    }
    by_floor_.push_back(purchase{std::max<micros>(floor, 0), index, true});
  }
  std::stable_sort(by_floor_.begin(), by_floor_.end(),
                   [](const purchase& a, const purchase& b) { return a.floor < b.floor; });
}

std::optional<market_provider::pick> market_provider::cheapest(const resources& want,
                                                               const resources& free, usec runtime,
                                                               bool later_round, usec now) const {
  // The scan's winner is the least (price, catalogue index, on-demand before spot) over
  // every allowed (type, purchase option) that covers the request and fits: the scan
  // keeps the earlier catalogue entry on a tie, and for one type considers spot before
  // on-demand, which replaces it at an equal price. Visited by ascending floor price,
  // anything from a floor billed above the best price found cannot win or tie (billed()
  // does not decrease with the hourly price), so the walk stops there.
  const auto& c = config();
  std::optional<pick> best;
  std::uint32_t best_index = 0;
  for (const auto& p : by_floor_) {
    if (best && billed(p.floor, runtime) > best->price)
      break;
    const instance_type& t = c.types[p.type];
    if (!covers_request(t, want) || t.cpu > free.cpu || t.memory > free.memory ||
        t.gpus > free.gpus)
      continue;
    micros per_hour = 0;
    if (p.spot) {
      per_hour = spot_price(t, c, now);
      if (per_hour <= 0)
        continue;
    } else {
      // The first round offers spot where there is spot.
      if (!later_round && c.offer_spot && spot_price(t, c, now) > 0)
        continue;
      per_hour = t.on_demand_per_hour;
    }
    const micros price = billed(per_hour, runtime);
    if (!best || price < best->price ||
        (price == best->price &&
         (p.type < best_index || (p.type == best_index && best->spot && !p.spot)))) {
      best = pick{&t, p.spot, per_hour, price};
      best_index = p.type;
    }
  }
  return best;
}

std::string market_provider::admit(const offer& o, usec) {
  const auto& c = config();
  const std::size_t in_use = book().holds() + book().allocations();
  if (c.max_instances > 0 && in_use >= static_cast<std::size_t>(c.max_instances))
    return "capacity exhausted: " + std::to_string(in_use) + " of " +
           std::to_string(c.max_instances) + " instances in use";
  if (uniform(refusals_) < c.refuse_probability)
    return "no " + o.instance_type + (o.spot ? " spot" : "") +
           " capacity available right now (injected refusal)";
  return {};
}

std::string market_provider::interrupt(const alloc_record& rec, usec last_poll, usec now) {
  const double rate = config().preemption_per_hour;
  if (!rec.spot || rate <= 0 || now <= last_poll)
    return {};
  const double hours = static_cast<double>(now - last_poll) / static_cast<double>(3600 * sec_us);
  if (uniform(preemptions_) < 1.0 - std::exp(-rate * hours))
    return "preempted: spot " + rec.alloc.instance_type + " reclaimed";
  return {};
}

scale_offer market_provider::scale(const scale_request& r, usec now) {
  scale_offer s;
  s.job_id = r.job_id;
  s.allocation_id = r.allocation_id;
  s.provider = name();
  auto it = allocs_.find(r.allocation_id);
  if (it == allocs_.end()) {
    s.reason = "no allocation " + r.allocation_id;
    return s;
  }
  alloc_record& rec = it->second;
  const resources have = rec.alloc.granted;
  const auto& c = config();
  resources want = r.wanted;
  if (have.gpus > 0 && want.gpus == 0) {
    // The GPU stays: a change of CPU or memory keeps the job's GPU type and memory.
    want.gpus = have.gpus;
    want.gpu_type = have.gpu_type;
    want.gpu_memory = have.gpu_memory;
  }
  // The cheapest type that covers the request, at the allocation's purchase option.
  const instance_type* best = nullptr;
  micros best_rate = 0;
  for (const auto& t : c.types) {
    if (!covers_request(t, want))
      continue;
    const micros rate = rec.spot ? spot_price(t, c, now) : t.on_demand_per_hour;
    if (rate <= 0)
      continue;
    if (!best || rate < best_rate) {
      best = &t;
      best_rate = rate;
    }
  }
  // A request the instance covers is met (a smaller type would restart the job to save
  // money: not worth the work lost).
  if (covers(have, want)) {
    s.applied = true;
    s.granted = have;
    s.reason = "the " + rec.alloc.instance_type + " instance already covers it";
    return s;
  }
  if (c.resize_delay < 0) {
    s.in_place = false;
    s.reason = "instances are not resized here (resize_delay not set): a new allocation is "
               "needed for more than " + rec.alloc.instance_type + " has";
    return s;
  }
  if (!best) {
    s.in_place = false;
    s.reason = "no instance type " + std::string(rec.spot ? "(spot) " : "") + "covers it: a "
               "new allocation is needed";
    return s;
  }
  const micros old_rate = rec.alloc.rate_per_hour;
  const std::string from = rec.alloc.instance_type;
  const bool running = rec.state == phase::running;
  const std::string why = "resizing " + from + " -> " + best->name;
  if (auto e = resize_by_restart(rec, shape(*best), c.resize_delay, why, now); !e.empty()) {
    s.reason = "cannot resize " + from + " to " + best->name + ": " + e;
    return s;
  }
  rec.alloc.instance_type = best->name;
  rec.alloc.rate_per_hour = best_rate;
  // What the rest of the predicted run costs more (or less), billed per second.
  const usec elapsed = running ? now - rec.started_at : 0;
  const usec remaining = std::max<usec>(0, rec.runtime - elapsed);
  const i128 delta = static_cast<i128>(best_rate - old_rate) * remaining;
  s.price_delta = static_cast<micros>(delta / (3600 * sec_us));
  rec.alloc.price += s.price_delta;
  s.applied = true;
  s.granted = rec.alloc.granted;
  s.delay = running ? c.resize_delay : 0;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f s", static_cast<double>(c.resize_delay) / sec_us);
  s.reason = "resized " + from + " -> " + best->name +
             (running ? std::string(": the instance stopped, changed type and starts again in ") +
                          buf + "; the job restarts"
                      : std::string(" before the job started"));
  return s;
}

} // namespace tender
