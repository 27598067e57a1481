#pragma once
/// Builds a provider plain class from its configuration.

#include "providers/provider.hpp"
#include "providers/provider_config.hpp"

#include <functional>
#include <memory>
#include <string>
#include <variant>

namespace tender {

class executor;

/// Makes the executor a local or market provider runs its jobs with (a replay through
/// the agent gives them virtual executors). Empty: real processes.
using executor_maker = std::function<std::unique_ptr<executor>(const provider_config&)>;

/// `data_dir` holds the provider's run directories (`<data_dir>/runs/<provider>`).
/// Errors name the provider and what is wrong with it.
std::variant<std::unique_ptr<provider>, std::string>
make_provider(const provider_config& cfg, const std::string& data_dir, token_source tokens,
              usec lease_ttl, const executor_maker& make_executor = {});

} // namespace tender
