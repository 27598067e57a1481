#pragma once
/// In-process messages between actors. Actors exchange the protocol's body structs
/// as typed C++ values (no encoding); these atoms and small structs add what only
/// matters inside a node. Kept light: no caf/all.hpp here.

#include "actors/journal.hpp"
#include "protocol/envelope.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include <string>
#include <vector>

namespace tender {

using tick_atom = caf::atom_constant<caf::atom("tick")>;
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using adopt_atom = caf::atom_constant<caf::atom("adopt")>;
using info_atom = caf::atom_constant<caf::atom("info")>;
using providers_atom = caf::atom_constant<caf::atom("providers")>;
using register_atom = caf::atom_constant<caf::atom("register")>;
using inbound_atom = caf::atom_constant<caf::atom("inbound")>;
using outbound_atom = caf::atom_constant<caf::atom("outbound")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using round_atom = caf::atom_constant<caf::atom("round")>;
using profile_atom = caf::atom_constant<caf::atom("profile")>;
using update_atom = caf::atom_constant<caf::atom("update")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using gone_atom = caf::atom_constant<caf::atom("gone")>;
using retrain_atom = caf::atom_constant<caf::atom("retrain")>;
/// Console -> provider actor: (drain_atom, true) drains, (drain_atom, false) re-enables;
/// answered with the provider's provider_info.
using drain_atom = caf::atom_constant<caf::atom("drain")>;

/// Gateway -> actors: a decoded message from a ZeroMQ peer.
struct inbound {
  std::string peer; ///< ZeroMQ routing id of the sender
  envelope msg;
};

/// A round actor's news for its job actor.
struct round_result {
  std::string auction_id;
  std::int32_t round = 0;
  bool committed = false;    ///< an allocation was confirmed
  bool next_round = false;   ///< the job should run another round
  allocation alloc;          ///< when committed
  micros best_price = 0;     ///< plain best price after this round
  std::string reason;        ///< why refused / what happened
  std::vector<offer_summary> offers; ///< every offer of every round so far, with verdicts
};

/// One named provider actor handle is passed around as this (the actor itself is
/// a caf::actor; see node.cpp).
struct provider_ref {
  std::string name;
  bool remote = false;
};

} // namespace tender

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::envelope)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::body)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::inbound)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::round_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::job_submit)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::job_status)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::job_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::jobs_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::job_list)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::job_cancel)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::job_spec)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::resource_profile)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::resource_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::offer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::decline)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::award)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::commit_confirm)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::commit_refuse)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::allocation)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::release)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::launch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::usage_report)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::scale_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::scale_offer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::provider_hello)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::providers_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::provider_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::provider_list)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::error)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::provider_ref)

#include <caf/actor.hpp>

namespace tender {
/// The node's providers, as handed to job and round actors.
struct provider_directory {
  std::vector<std::string> names;
  std::vector<caf::actor> actors;
  std::vector<bool> remote;
  /// Peer sites offering their providers' capacity (federation). May be shorter
  /// than `names`: a missing entry is not a site.
  std::vector<bool> site;
  bool is_site(std::size_t i) const { return i < site.size() && site[i]; }
};
} // namespace tender
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::provider_directory)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::job_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::model_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::model_status)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::explain_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tender::explanation)
