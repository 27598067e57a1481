#pragma once
/// `tender keygen`: a CurveZMQ key pair for a node, a remote provider or a CLI user.

#include <functional>
#include <string>

namespace CLI {
class App;
}

namespace tender {

/// Adds `tender keygen --out PATH [--force]`; `action` is set when it was chosen.
void add_keygen_command(CLI::App& app, std::function<int()>& action);

/// Writes PATH (the pair, mode 0600) and PATH.pub; prints the public key. Exit code.
int run_keygen(const std::string& out, bool force);

/// `tender --help`'s footer: how keys, --key, --server-key and --insecure fit together.
std::string keygen_help_footer();

} // namespace tender
