#pragma once
/// Negotiation messages: the call for offers, offers, and the two-phase commit.
///
///   auction --resource_request--> providers        (round r, price_to_beat)
///   providers --offer | decline--> auction
///   auction --award--> winner      --decline--> losers
///   winner --commit_confirm{allocation} | commit_refuse--> auction
///   anyone --release--> provider   (ends an allocation or a hold)

#include "protocol/allocation.hpp"
#include "protocol/profile.hpp"
#include "protocol/resources.hpp"

#include <msgpack.hpp>

#include <string>
#include <vector>

namespace tender {

/// Auction protocols a call for offers can name.
namespace protocols {
constexpr const char* iterated = "iterated"; ///< iterated reverse auction (contract net)
constexpr const char* vickrey = "vickrey";   ///< sealed-bid second price
} // namespace protocols

/// Call for offers, one per auction round.
/// History: v1.
struct resource_request {
  std::string job_id;
  std::string auction_id;
  std::int32_t round = 1;
  resource_profile profile;
  resources request; ///< what the offer must cover
  std::vector<std::string> software;
  usec deadline = 0;
  micros max_cost = 0;
  std::string protocol = protocols::iterated;
  micros price_to_beat = 0; ///< plain best price so far (0 = none yet)
  usec reply_by = 0;        ///< offers after this instant are late
  MSGPACK_DEFINE_MAP(job_id, auction_id, round, profile, request, software, deadline, max_cost,
                     protocol, price_to_beat, reply_by)
};

/// A provider's offer.
/// History: v1.
struct offer {
  std::string offer_id;
  std::string job_id;
  std::string auction_id;
  std::int32_t round = 1;
  std::string provider;
  resources granted;        ///< the concrete resources offered
  micros price = 0;         ///< total for the profile's runtime estimate
  micros rate_per_hour = 0; ///< what the price is made of
  usec earliest_start = 0;
  sla terms;
  usec valid_until = 0;
  std::string instance_type; ///< market providers: the instance type
  bool spot = false;
  MSGPACK_DEFINE_MAP(offer_id, job_id, auction_id, round, provider, granted, price, rate_per_hour,
                     earliest_start, terms, valid_until, instance_type, spot)
};

/// Either side: "no". A provider that will not bid, or the auction telling a loser.
/// History: v1.
struct decline {
  std::string job_id;
  std::string auction_id;
  std::string offer_id; ///< empty when a provider declines a request
  std::string provider;
  std::string reason;
  MSGPACK_DEFINE_MAP(job_id, auction_id, offer_id, provider, reason)
};

/// Auction -> winner: hold the offered capacity and confirm.
/// History: v1.
struct award {
  std::string offer_id;
  std::string job_id;
  std::string auction_id;
  std::string provider;
  usec hold_ttl = 0; ///< the hold expires this long after the provider takes it
  micros price = 0;  ///< clearing price (Vickrey: the second price); 0 = the offer's own
  MSGPACK_DEFINE_MAP(offer_id, job_id, auction_id, provider, hold_ttl, price)
};

/// Winner -> auction: the capacity is held; here is the allocation.
/// History: v1.
struct commit_confirm {
  std::string offer_id;
  std::string job_id;
  allocation alloc;
  MSGPACK_DEFINE_MAP(offer_id, job_id, alloc)
};

/// Winner -> auction: cannot hold what was offered.
/// History: v1.
struct commit_refuse {
  std::string offer_id;
  std::string job_id;
  std::string provider;
  std::string reason;
  MSGPACK_DEFINE_MAP(offer_id, job_id, provider, reason)
};

} // namespace tender
