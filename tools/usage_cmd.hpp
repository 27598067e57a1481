#pragma once
/// `tender replay-usage`: real usage series against static, VPA-style and tender's
/// monitor-and-renegotiate allocation (models/usage_replay.hpp).

#include <functional>

namespace CLI {
class App;
}

namespace tender {

/// Adds the `replay-usage` subcommand to `app`. When it is chosen, parsing sets
/// `action`; calling it runs the replay and returns the exit code (0 ok, 2 bad input).
void add_usage_commands(CLI::App& app, std::function<int()>& action);

} // namespace tender
