#pragma once
/// `tender replay`: a job trace through the internal cluster's scheduling code on
/// virtual time.

#include <functional>

namespace CLI {
class App;
}

namespace tender {

/// Adds `replay` to `app`; when chosen, parsing sets `action` (exit code: 0 ok,
/// 2 bad input).
void add_replay_commands(CLI::App& app, std::function<int()>& action);

} // namespace tender
