#pragma once
/// A cloud market (provider_config kind "market"): a fake cloud API driven by a real
/// price sheet. It sells whole instances from its catalogue (config.types) and runs
/// the job on the instance as a real process through the executor, limited to the
/// instance's cpu and memory. A "specialised hardware vendor" is a market whose
/// catalogue holds GPU types only.
///
/// Bidding:
/// * candidates are the types whose vcpus, memory, GPU count, GPU type and GPU memory
///   (per GPU) cover the request;
/// * round 1 (or no price_to_beat yet): each type is priced spot when config.offer_spot
///   and the type has a spot price, else on-demand; the cheapest type wins;
/// * the spot price is the catalogue's snapshot, or with config.spot_follow the
///   catalogue's series from the real price sheet, replayed on the clock (spot_price());
/// * later rounds with a price_to_beat: every allowed (type, purchase option) pair
///   is considered and the cheapest is offered — possibly the other purchase option —
///   never below the catalogue price (the market's cost);
/// * price = hourly price × runtime, billed per second (runtime rounded up to whole
///   seconds, 60 s minimum), rounded up to a micro-dollar;
/// * earliest_start = now + provisioning_delay; spot offers carry
///   preemption_probability = preemption_per_hour and availability =
///   config.availability × exp(−preemption_per_hour × runtime hours);
/// * capacity: config.capacity (a zero dimension is unlimited) and max_instances
///   (0 = unlimited) bound the instances held or running.
///
/// Injected faults, deterministic from config.seed (std::mt19937_64):
/// * hold() refuses with probability refuse_probability (one draw per first award of
///   an offer; a repeated award gets the same answer);
/// * a running spot job is preempted at each poll with probability
///   1 − exp(−preemption_per_hour × hours since the last poll) (a second generator,
///   so refusals do not depend on the poll rate).
///
/// Provisioning: start() is accepted at once; the process starts at the first poll at
/// or after earliest_start, and the usage report's started_at tells the real instant.
/// scale(): the job already has the whole instance; a request it covers is applied at
/// no charge. A larger one, with config.resize_delay >= 0, changes the instance's type
/// as a cloud does (stop, change type, start): the cheapest type covering the request
/// at the allocation's purchase option (a GPU job keeps its GPU unless the request
/// names another), the ledger permitting; the job restarts after resize_delay
/// (scale_offer.delay) and the rest of its predicted run is billed at the new rate
/// (scale_offer.price_delta). Without resize_delay anything larger needs a new
/// allocation (in_place = false).

#include "providers/leasing.hpp"

#include <optional>
#include <random>

namespace tender {

class market_provider final : public leasing_provider {
public:
  /// Runs jobs through `exec`, which must outlive the provider and serve no other.
  market_provider(provider_config cfg, executor& exec, token_source tokens = random_token,
                  usec lease_ttl = 600 * sec_us);
  /// Owns an executor whose run dirs live under `run_root`.
  market_provider(provider_config cfg, std::string run_root, token_source tokens = random_token,
                  usec lease_ttl = 600 * sec_us);
  /// Owns `exec`.
  market_provider(provider_config cfg, std::unique_ptr<executor> exec,
                  token_source tokens = random_token, usec lease_ttl = 600 * sec_us);

  provider_hello describe() const override;
  provider_info info(usec now) const override;
  std::variant<offer, decline> bid(const resource_request& req, usec now) override;
  scale_offer scale(const scale_request& r, usec now) override;

  /// `per_hour` for `runtime`, billed per second with a 60 s minimum, rounded up.
  static micros billed(micros per_hour, usec runtime);
  /// The instance's resources as granted by an offer.
  static resources shape(const instance_type& t);
  /// The type's spot price per hour at `now`: with `c.spot_follow`, the catalogue's series
  /// read at (now * spot_follow_speed) mod spot_window (the price sheet's window replayed
  /// on the provider's clock, repeating); otherwise, or without a series, the snapshot.
  static micros spot_price(const instance_type& t, const provider_config& c, usec now);

protected:
  std::string admit(const offer& o, usec now) override;
  std::string interrupt(const alloc_record& rec, usec last_poll, usec now) override;
  micros hourly_rate(const resources& r) const override;

private:
  /// A way to buy a type (on-demand or spot) and the least it can cost per hour.
  struct purchase {
    micros floor = 0;
    std::uint32_t type = 0; ///< index in config().types
    bool spot = false;
  };
  struct pick {
    const instance_type* type = nullptr;
    bool spot = false;
    micros per_hour = 0;
    micros price = 0;
  };
  void index_catalogue();
  /// The offer bid() makes when anything covers `want` and fits in `free`: the same
  /// winner as its scan of the whole catalogue, found from the cheapest floor up.
  std::optional<pick> cheapest(const resources& want, const resources& free, usec runtime,
                               bool later_round, usec now) const;
  std::variant<offer, decline> offer_for(const instance_type& t, bool spot, micros per_hour,
                                         micros price, const resource_request& req, usec runtime,
                                         usec now);

  std::vector<purchase> by_floor_; ///< every allowed purchase, by ascending floor
  std::mt19937_64 refusals_;
  std::mt19937_64 preemptions_;
};

} // namespace tender
