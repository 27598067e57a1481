#pragma once
/// A provider's logic, free of actors and sockets: it bids on calls for offers,
/// holds capacity under a lease when awarded, launches jobs on valid leases,
/// reports usage and resizes in place where it can. The provider actor (local)
/// and `tender provider` (remote, over the mesh) both drive this interface.
///
/// Commit is two-phase: `bid` -> offer; `hold(award)` -> commit_confirm with an
/// allocation (capacity now reserved) or commit_refuse; `release` frees a hold
/// or an allocation. `hold` is idempotent by offer id: the same award twice
/// returns the same allocation and reserves nothing more.

#include "protocol/envelope.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

namespace tender {

/// Produces unguessable lease tokens; tests may inject a seeded one.
using token_source = std::function<std::string()>;
/// 32 random bytes from the OS (getrandom), hex-encoded.
std::string random_token();

class provider {
public:
  virtual ~provider();

  virtual const std::string& name() const = 0;
  virtual provider_hello describe() const = 0;
  virtual provider_info info(usec now) const = 0;

  virtual std::variant<offer, decline> bid(const resource_request& req, usec now) = 0;
  virtual std::variant<commit_confirm, commit_refuse> hold(const award& a, usec now) = 0;
  virtual void release(const tender::release& r, usec now) = 0;

  /// Starts the job on its allocation. Refuses (returns the error) a wrong,
  /// expired or foreign lease token.
  virtual std::optional<error> start(const launch& l, usec now) = 0;
  /// Periodic work: expire holds, sample running jobs. Returns usage reports.
  virtual std::vector<usage_report> poll(usec now) = 0;
  /// In-place resize of a running job.
  virtual scale_offer scale(const scale_request& r, usec now) = 0;
  /// Stops a running job (cancel); its final usage_report follows from poll().
  virtual void stop(const std::string& job_id, const std::string& reason, usec now) = 0;
  /// After a restart: re-adopt a job this provider was running.
  virtual std::optional<usage_report> adopt(const allocation& a, usec now) = 0;
  /// The auction says this provider lost (its `decline` to a loser): what it
  /// remembers of the offers it made there may go. Awards and allocations stay.
  virtual void lost(const decline& d) { (void)d; }
};

} // namespace tender
