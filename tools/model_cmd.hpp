#pragma once
/// `tender model eval|train` and `tender bench model`: run-time models from SWF traces.

#include <functional>

namespace CLI {
class App;
}

namespace tender {

/// Adds the `model` subcommand (with `eval` and `train`) and `bench model` to `app`.
/// When one of them is chosen, parsing sets `action`; calling it runs the command and
/// returns the exit code (0 ok, 1 failure, 2 bad input).
void add_model_commands(CLI::App& app, std::function<int()>& action);

} // namespace tender
