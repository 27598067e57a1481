#pragma once
/// `tender produce` (stream jobs to a node's bus) and `tender bench bus` (bus
/// throughput with a real agent killed and restarted midway).

#include <functional>

namespace CLI {
class App;
}

namespace tender {

/// Adds `produce` and `bench bus` to `app`; when one is chosen, parsing sets `action`.
void add_bus_commands(CLI::App& app, std::function<int()>& action);

} // namespace tender
