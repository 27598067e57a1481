#include "providers/factory.hpp"

#include "providers/local.hpp"
#include "providers/market.hpp"
#include "providers/slurm.hpp"

namespace tender {

std::variant<std::unique_ptr<provider>, std::string>
make_provider(const provider_config& cfg, const std::string& data_dir, token_source tokens,
              usec lease_ttl, const executor_maker& make_executor) {
  auto root = data_dir + "/runs/" + cfg.name;
  if (make_executor) {
    if (cfg.kind == "local")
      return std::unique_ptr<provider>(std::make_unique<local_provider>(
        cfg, make_executor(cfg), std::move(tokens), lease_ttl));
    if (cfg.kind == "market" && !cfg.types.empty())
      return std::unique_ptr<provider>(std::make_unique<market_provider>(
        cfg, make_executor(cfg), std::move(tokens), lease_ttl));
    if (cfg.kind == "slurm")
      return "provider " + cfg.name + ": a slurm provider cannot run on another executor";
  }
  if (cfg.kind == "local")
    return std::unique_ptr<provider>(
      std::make_unique<local_provider>(cfg, root, std::move(tokens), lease_ttl));
  if (cfg.kind == "market") {
    if (cfg.types.empty())
      return "provider " + cfg.name + ": market with an empty catalogue";
    return std::unique_ptr<provider>(
      std::make_unique<market_provider>(cfg, root, std::move(tokens), lease_ttl));
  }
  if (cfg.kind == "slurm")
    return std::unique_ptr<provider>(
      std::make_unique<slurm_provider>(cfg, root, std::move(tokens), lease_ttl));
  return "provider " + cfg.name + ": unknown kind '" + cfg.kind +
         "' (expected local, market or slurm)";
}

} // namespace tender
