#include "providers/local.hpp"

#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdlib>

namespace tender {

namespace {

__extension__ using i128 = __int128;

constexpr i128 gib = i128{1} << 30;
constexpr i128 hour_us = i128{3600} * sec_us;
constexpr i128 i128_max = ((i128{1} << 126) - 1) * 2 + 1;

micros ceil_div(i128 num, i128 den) {
  if (num <= 0)
    return static_cast<micros>(num / den);
  return static_cast<micros>((num + den - 1) / den);
}

bool iequal(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

} // namespace

bool on_path(const std::string& name) {
  auto executable = [](const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (name.empty())
    return false;
  if (name.find('/') != std::string::npos)
    return executable(name);
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos)
      end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty())
      dir = ".";
    if (executable(dir + "/" + name))
      return true;
    start = end + 1;
  }
  return false;
}

local_provider::local_provider(provider_config cfg, executor& exec, token_source tokens,
                               usec lease_ttl)
    : leasing_provider(cfg, cfg.capacity, exec, std::move(tokens), lease_ttl) {
  if (config().plan_horizon > 0)
    plan_ahead(config().plan_horizon);
}

local_provider::local_provider(provider_config cfg, std::string run_root, token_source tokens,
                               usec lease_ttl)
    : local_provider(std::move(cfg), std::make_unique<executor>(std::move(run_root)),
                     std::move(tokens), lease_ttl) {}

local_provider::local_provider(provider_config cfg, std::unique_ptr<executor> exec,
                               token_source tokens, usec lease_ttl)
    : leasing_provider(cfg, cfg.capacity, std::move(exec), std::move(tokens), lease_ttl) {
  if (config().plan_horizon > 0)
    plan_ahead(config().plan_horizon);
}

std::string local_provider::admit(const offer&, usec) {
  if (config().refuse_probability <= 0)
    return {};
  // A uniform draw in [0, 1) from the top 53 bits, as the market providers draw.
  const double u = static_cast<double>(refusals_() >> 11) * 0x1.0p-53;
  return u < config().refuse_probability ? "capacity not available right now (injected refusal)"
                                         : std::string();
}

provider_hello local_provider::describe() const {
  const auto& c = config();
  provider_hello h;
  h.name = c.name;
  h.kind = c.kind.empty() ? "local" : c.kind;
  if (c.capacity.gpus > 0 && !c.capacity.gpu_type.empty())
    h.gpu_types.push_back(c.capacity.gpu_type);
  h.software = c.software;
  h.cpu_features = c.cpu_features;
  h.protocols = {protocols::iterated, protocols::vickrey};
  h.capacity = c.capacity;
  return h;
}

/// The hourly rate of `r` in micro-dollars, scaled by 1000 (millicores) × GiB so
/// that every term is an integer.
static i128 scaled_rate(const provider_config& c, const resources& r) {
  return i128{r.cpu} * c.price_per_core_hour * gib + i128{r.memory} * c.price_per_gib_hour * 1000 +
         i128{r.gpus} * c.price_per_gpu_hour * 1000 * gib;
}

micros local_provider::hourly_rate(const resources& r) const {
  return ceil_div(scaled_rate(config(), r), 1000 * gib);
}

micros local_provider::cost(const resources& r, usec runtime) const {
  const i128 num = scaled_rate(config(), r);
  // num × runtime overflows 128 bits only for absurd inputs; divide in two steps then.
  if (runtime <= 0 || num <= i128_max / runtime)
    return ceil_div(num * std::max<usec>(runtime, 0), 1000 * gib * hour_us);
  return ceil_div(ceil_div(num, 1000 * gib) * static_cast<i128>(runtime), hour_us);
}

std::string local_provider::software_missing(const std::vector<std::string>& wanted) const {
  const auto& have = config().software;
  for (const auto& s : wanted) {
    bool ok = have.empty() ? on_path(s)
                           : std::find(have.begin(), have.end(), s) != have.end();
    if (!ok)
      return s;
  }
  return {};
}

std::variant<offer, decline> local_provider::bid(const resource_request& req, usec now) {
  tidy(now);
  const auto& c = config();
  const resources& want = req.request;

  if (want.gpus > 0) {
    const std::string type = want.gpu_type.empty() ? "any" : want.gpu_type;
    if (c.capacity.gpus <= 0 ||
        (!want.gpu_type.empty() && !iequal(want.gpu_type, c.capacity.gpu_type)))
      return declined(req, "no GPU of type " + type);
    if (want.gpu_memory > c.capacity.gpu_memory)
      return declined(req, "not enough GPU memory: want " + format_bytes(want.gpu_memory) +
                               " per GPU, have " + format_bytes(c.capacity.gpu_memory));
  }
  if (auto s = software_missing(req.software); !s.empty())
    return declined(req, "software " + s + " not installed");
  resources granted;
  granted.cpu = want.cpu;
  granted.memory = want.memory;
  granted.gpus = want.gpus;
  if (want.gpus > 0) {
    granted.gpu_type = c.capacity.gpu_type;
    granted.gpu_memory = c.capacity.gpu_memory;
  }
  const usec runtime = req.profile.runtime > 0 ? req.profile.runtime : default_runtime;
  const usec runtime_hi = std::max(req.profile.runtime_hi, runtime);

  usec start = now;
  if (!plan()) {
    if (auto s = shortfall(want, book().free()); !s.empty())
      return declined(req, s);
  } else {
    if (auto s = shortfall(want, c.capacity); !s.empty())
      return declined(req, s + " (in all)");
    // The start the plan projects when every job ahead runs as predicted.
    auto at = projected_start(granted, runtime, now);
    if (!at)
      return declined(req, shortfall(want, book().free()));
    if (*at - now > plan_horizon())
      return declined(req, "busy: the plan's earliest start is in " +
                               format_duration(*at - now) + ", beyond its horizon of " +
                               format_duration(plan_horizon()));
    start = *at;
  }
  const micros base = cost(granted, runtime);
  const double u = book().utilisation();
  const auto markup_ppm =
      static_cast<std::int64_t>(std::llround((1.0 + (c.busy_markup - 1.0) * u) * 1e6));
  const micros list = ceil_div(i128{base} * std::max<std::int64_t>(markup_ppm, 0), 1'000'000);
  const micros floor = std::max(base, c.reserve_price);
  micros price = std::max(list, c.reserve_price);

  if (req.round > 1 && req.price_to_beat > 0 && price >= req.price_to_beat) {
    const micros target = req.price_to_beat - std::max<micros>(1, req.price_to_beat / 100);
    price = std::max(floor, std::min(price, target));
  }
  if (req.max_cost > 0 && price > req.max_cost) {
    if (floor > req.max_cost)
      return declined(req, "price floor " + format_usd(floor) + " USD above max_cost " +
                               format_usd(req.max_cost) + " USD");
    price = req.max_cost;
  }

  offer o;
  o.granted = granted;
  o.price = price;
  o.rate_per_hour = ceil_div(i128{price} * hour_us, runtime);
  o.earliest_start = start;
  o.terms.availability = c.availability;
  o.terms.preemption_probability = 0.0;
  o.terms.latency = c.latency;
  return remember(std::move(o), req, runtime, now, runtime_hi);
}

} // namespace tender
