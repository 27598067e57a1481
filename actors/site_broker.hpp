#pragma once
/// Federation's plain logic: how a site that takes part in a peer's auctions (as one
/// provider, actors/federation.hpp) turns the peer's call for offers into a call to
/// its own providers and their answers back into the peer's terms. No CAF, no sockets.
///
///   peer A's round --resource_request{hops h, path [A, ...]}--> site B
///     B refuses: B already on the path (a loop), h + 1 > hop_limit, or a bad call
///     B calls its own providers, except sites on the path:
///        resource_request{job "J.B", own auction id, hops h + 1, path [A, ..., B],
///                         reply_by well before A's}
///     best by B's own scorer --> A gets offer{provider "B", B's own offer id}
///   A --award--> B --award--> B's provider --commit_confirm--> B
///     B --commit_confirm{allocation with B's own id and lease token}--> A
///   launch / usage / release / scale are translated between the two allocations.
///
/// The inner job id ("J.B") keeps the sites' runs apart where job ids name things
/// (executor cgroups and run directories are per job id).

#include "protocol/envelope.hpp"

#include <msgpack.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tender {

/// The sites a call has visited as this site sees it: the call's path, with the caller
/// appended when the caller did not put itself last (an auction started by a node
/// that left the path empty).
std::vector<std::string> arrived_path(const resource_request& call, const std::string& caller);

/// Why site `self` must not take part in `call` from `caller`, or nothing:
/// a malformed call, a loop (`self` is on the path) or the hop limit.
std::optional<std::string> refuse_call(const resource_request& call, const std::string& caller,
                                       const std::string& self, std::int32_t hop_limit);

/// The job id this site's providers see for a peer's job `job_id`: "J.B" (characters
/// a job id may not hold replaced by '_').
std::string inner_job_id(const std::string& job_id, const std::string& self);

/// How long the site gives its own providers: a share of what is left until the
/// caller's `reply_by`, so that its answer still makes the caller's round; `fallback`
/// when the call sets no reply_by. Never below 1 ms.
usec sub_budget(usec reply_by, usec now, usec fallback);

/// The call this site sends its own providers for `call` from `caller`.
resource_request onward_call(const resource_request& call, const std::string& caller,
                             const std::string& self, std::string inner_auction_id, usec reply_by);

/// Indices of the providers to invite: every one but `self` and the sites on `path`
/// (a site never offers a peer's capacity back along the way the call came).
std::vector<std::size_t> invitees(const std::vector<std::string>& names,
                                  const std::vector<std::string>& path, const std::string& self);

/// The offer the caller sees for the site's best inner offer: the same resources,
/// price, start and terms, under the site's name and its own offer id. `answered_in`
/// (how long the site took) raises the stated latency when it is longer.
offer outward_offer(const offer& inner, const resource_request& call, const std::string& self,
                    std::string offer_id, usec answered_in);

/// The allocation the caller holds for an inner one: the site's own id and lease
/// token, the caller's job and offer id. `price` > 0 is the caller's clearing price.
allocation outward_allocation(const allocation& inner, const std::string& job_id,
                              const std::string& offer_id, const std::string& self,
                              std::string allocation_id, std::string lease_token, micros price);

/// An inner provider's usage report in the caller's terms.
usage_report outward_usage(usage_report r, const allocation& outer, const std::string& self);

/// What a site keeps on disk for every allocation it granted a peer: after a crash it
/// stops these runs (the peer has placed the job again by then), so nothing runs twice.
struct forwarded_run_record {
  std::string caller; ///< the peer site that holds `outer`
  allocation outer;
  allocation inner;
  MSGPACK_DEFINE_MAP(caller, outer, inner)
};

std::string encode_record(const forwarded_run_record& r);
/// Nothing when the bytes are not a record (the error names what was wrong).
std::optional<forwarded_run_record> decode_record(const std::string& bytes, std::string* why);

} // namespace tender
