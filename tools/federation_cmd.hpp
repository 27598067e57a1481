#pragma once
/// `tender bench federation`: submit-to-commit latency of jobs placed by the site's
/// own provider against jobs its site cannot place and a peer site takes, with two
/// real nodes joined over ZeroMQ on loopback.

#include <functional>

namespace CLI {
class App;
}

namespace tender {

/// Adds `bench federation` to `app`; when it is chosen, parsing sets `action`.
void add_federation_commands(CLI::App& app, std::function<int()>& action);

} // namespace tender
