#pragma once
/// Configuration of the built-in providers, filled by config/ from the node's TOML.

#include "protocol/resources.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace tender {

/// One instance type of a market catalogue.
struct instance_type {
  std::string name;      ///< "m5.large"
  std::string family;    ///< "m5"
  millicores cpu = 0;    ///< vCPUs * 1000
  bytes_t memory = 0;
  std::int32_t gpus = 0;
  std::string gpu_type;  ///< "", "T4", "V100", "A10G", ...
  bytes_t gpu_memory = 0; ///< per GPU
  micros on_demand_per_hour = 0;
  micros spot_per_hour = 0; ///< from the real price sheet (median across zones); 0 = no spot
  /// The spot price over the price sheet's window (catalogue `spot_at`/`spot_usd`, added
  /// with spot following): from `at` (time into the window) on, the price is `price`,
  /// until the next point; ascending `at`. Empty: only the snapshot `spot_per_hour`.
  struct spot_point {
    usec at = 0;
    micros price = 0;
  };
  std::vector<spot_point> spot_series;
  usec spot_window = 0; ///< the window's length (catalogue `spot_window`); the series repeat
};

struct provider_config {
  std::string name;
  std::string kind; ///< "local" | "market" | "slurm"

  // Capacity (local: the node's share; market: max concurrent instances' worth).
  resources capacity;
  std::int32_t max_instances = 0; ///< market: 0 = unlimited

  // local pricing: cost-plus with utilisation-based markup.
  micros price_per_core_hour = 0;
  micros price_per_gib_hour = 0;
  micros price_per_gpu_hour = 0;
  double busy_markup = 1.0; ///< price multiplier at 100 % utilisation (linear from 1.0)
  micros reserve_price = 0; ///< never offers below this per job

  // market
  std::string catalogue;         ///< path of the catalogue TOML
  std::vector<instance_type> types;
  bool offer_spot = true;
  bool offer_on_demand = true;
  usec provisioning_delay = 0;   ///< earliest start = now + this
  /// local: how far ahead a busy provider offers starts from its plan (0 = it only
  /// offers what is free now, declining otherwise).
  usec plan_horizon = 0;
  double refuse_probability = 0; ///< injected commit refusals
  double preemption_per_hour = 0; ///< spot preemption rate (SLA and injected)
  double availability = 0.999;
  std::uint64_t seed = 1;
  /// market (added with spot following): spot prices follow the catalogue's series over
  /// the price sheet's window instead of its snapshot. The window is replayed on the
  /// provider's clock, `spot_follow_speed` times faster than real time, repeating,
  /// aligned to the Unix epoch: at time `now` the series is read at
  /// (now * spot_follow_speed) mod spot_window.
  bool spot_follow = false;
  std::int32_t spot_follow_speed = 1;
  /// market (added with market resizes): a running job's instance can change type in
  /// place, as a cloud does it: the instance stops, changes type and starts again, so the
  /// job restarts after this delay on the larger (or smaller) type and pays the new
  /// type's price from then on. Negative: no resizes (a change needs a new allocation).
  usec resize_delay = -1;

  // slurm (added with the slurm provider): where the cluster is and how to talk to it.
  // Pricing reuses price_per_core_hour, price_per_gib_hour and reserve_price; capacity,
  // when set, bounds what one offer may ask of the cluster.
  std::string slurm_conf;        ///< SLURM_CONF for the Slurm tools ("" = their default)
  std::string partition;         ///< "" = the cluster's default partition
  std::string account;           ///< sbatch --account ("" = none)
  std::string reservation_user;  ///< reservations' Users= ("" = this process's user)
  std::string slurm_bin_dir;     ///< where sbatch, scontrol, ... are ("" = PATH)
  usec command_timeout = 10 * sec_us; ///< each Slurm command's deadline
  usec poll_interval = sec_us;           ///< how often running jobs are queried

  usec latency = 5'000;   ///< promised answer latency (SLA)
  usec hold_ttl = 0;      ///< 0 = take the award's
  std::vector<std::string> software;
  std::vector<std::string> cpu_features;
};

} // namespace tender
