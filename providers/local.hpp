#pragma once
/// The local provider: this machine's share (provider_config kind "local"), priced
/// cost-plus with a markup that grows with utilisation, running jobs as real
/// processes through the executor.
///
/// Price of an offer, exact in micro-dollars (each step rounded up):
///
///   cost   = (cores × price_per_core_hour + GiB × price_per_gib_hour
///             + gpus × price_per_gpu_hour) × runtime hours
///   list   = cost × (1 + (busy_markup − 1) × utilisation)    (utilisation before this job)
///   floor  = max(cost, reserve_price)
///   price  = max(list, reserve_price), lowered towards the floor when
///            * round > 1 and price_to_beat > 0: to price_to_beat − 1 % (at least 1 µ$);
///            * the request's max_cost is below it (declined when the floor is above it).
///
/// runtime is the profile's estimate (`default_runtime` when it has none).
/// Declines name the reason: "no GPU of type T", "software S not installed",
/// "not enough memory: want X, free Y", "price floor X above max_cost Y".
/// Software: each name in the request must be in config.software, or — when that
/// list is empty — resolve to an executable on this process's PATH.

#include "providers/leasing.hpp"

#include <random>

namespace tender {

class local_provider final : public leasing_provider {
public:
  /// Runs jobs through `exec`, which must outlive the provider and serve no other.
  local_provider(provider_config cfg, executor& exec, token_source tokens = random_token,
                 usec lease_ttl = 600 * sec_us);
  /// Owns an executor whose run dirs live under `run_root`.
  local_provider(provider_config cfg, std::string run_root, token_source tokens = random_token,
                 usec lease_ttl = 600 * sec_us);
  /// Owns `exec`.
  local_provider(provider_config cfg, std::unique_ptr<executor> exec,
                 token_source tokens = random_token, usec lease_ttl = 600 * sec_us);

  provider_hello describe() const override;
  std::variant<offer, decline> bid(const resource_request& req, usec now) override;

  /// Hourly cost of `r` without markup, rounded up to a micro-dollar.
  micros hourly_rate(const resources& r) const override;
  /// Cost of `r` for `runtime` without markup, rounded up to a micro-dollar.
  micros cost(const resources& r, usec runtime) const;

protected:
  /// Injected commit refusals (`refuse_probability`, seeded by `seed`), for testing
  /// how negotiations treat an unreliable provider.
  std::string admit(const offer& o, usec now) override;

private:
  std::string software_missing(const std::vector<std::string>& wanted) const;
  std::mt19937_64 refusals_{config().seed};
};

/// True when `name` is an executable file on PATH (or, with a '/', at that path).
bool on_path(const std::string& name);

} // namespace tender
