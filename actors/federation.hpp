#pragma once
/// Federation: a node takes part in a peer site's auctions as one provider named after
/// itself (`[node] name`), offering its own providers' capacity (site-as-provider).
///
///   this node                                   peer site (`[[peers]] endpoint`)
///   [peer link] --DEALER--provider_hello{kind "site", heartbeat}--> gateway -> proxy
///        |       <--resource_request--   (the peer's round)
///        +--> sub-auction among this node's providers (not the sites on the path)
///        |       --offer{provider = this node} | decline{why}-->
///        |       <--award-- --> award the chosen provider --> commit_confirm
///        |       --commit_confirm{our allocation id, our lease token}-->
///        |       <--launch{our token}-- --> launch{the provider's token}
///        |       --usage_report ... final-->  <--release-- --> release
///
/// The peer knows it by its hello's heartbeat: after three silent periods its proxy
/// declares it gone, refuses its pending award and tells the jobs it held, which are
/// negotiated again elsewhere (actors/job.cpp). Every allocation granted to a peer
/// is kept in `DATA_DIR/federation/<peer>/` until its run ends; after a crash the link
/// stops those runs and releases their capacity (the peer has placed them again),
/// so nothing runs twice. The plain logic (paths, hop limit, translation) is in
/// actors/site_broker.hpp.

#include "actors/actors.hpp"

#include <functional>
#include <memory>
#include <string>

namespace tender {

struct peer_link_handle {
  caf::actor actor;
  std::function<void()> stop_io; ///< stops the I/O thread (no more frames in or out)
  std::shared_ptr<void> keep;    ///< keeps the socket's context alive
};

/// Connects to `peer` and joins its auctions. `intake` gives the provider directory.
/// Errors (a bad endpoint): one line naming the peer and the endpoint.
std::variant<peer_link_handle, std::string> start_peer_link(caf::actor_system& sys, context_ptr ctx,
                                                            caf::actor intake,
                                                            const peer_config& peer);

} // namespace tender
