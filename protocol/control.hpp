#pragma once
/// Control messages: provider registration, queries and errors.

#include "protocol/resources.hpp"

#include <msgpack.hpp>

#include <string>
#include <vector>

namespace tender {

/// Provider -> node: join the node's auctions. Capabilities are lists, not versions.
/// History: v1.
struct provider_hello {
  std::string name;
  std::string kind; ///< "local", "market", "slurm", ...
  std::vector<std::string> gpu_types;
  std::vector<std::string> software;
  std::vector<std::string> cpu_features;
  std::vector<std::string> protocols;
  resources capacity;
  MSGPACK_DEFINE_MAP(name, kind, gpu_types, software, cpu_features, protocols, capacity)
};

/// Node -> provider: registration accepted.
struct welcome {
  std::string node;
  std::string provider;
  MSGPACK_DEFINE_MAP(node, provider)
};

/// Client -> node: list providers (answered with provider_list).
struct providers_query {
  bool verbose = false;
  MSGPACK_DEFINE_MAP(verbose)
};

/// One provider as the node sees it.
struct provider_info {
  std::string name;
  std::string kind;
  bool remote = false;
  bool connected = true;
  resources capacity;
  resources free;
  std::int64_t offers = 0;
  std::int64_t wins = 0;
  std::int64_t breaches = 0;
  double risk = 0.0; ///< posterior mean breach probability
  std::vector<std::string> gpu_types;
  MSGPACK_DEFINE_MAP(name, kind, remote, connected, capacity, free, offers, wins, breaches, risk,
                     gpu_types)
};

struct provider_list {
  std::vector<provider_info> providers;
  MSGPACK_DEFINE_MAP(providers)
};

/// Anyone -> sender of a bad message. `type` and `field` name what was wrong.
/// History: v1.
struct error {
  std::string code; ///< "truncated", "invalid", "wrong_type", "unknown_type", "version", "oversized", "not_found", ...
  std::string message;
  std::string type;  ///< message type concerned (may be empty)
  std::string field; ///< field concerned (may be empty)
  MSGPACK_DEFINE_MAP(code, message, type, field)
};

} // namespace tender
