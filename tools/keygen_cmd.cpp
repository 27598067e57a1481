#include "tools/keygen_cmd.hpp"

#include "protocol/curve.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

namespace tender {

int run_keygen(const std::string& out, bool force) {
  auto k = curve::generate();
  if (auto* err = std::get_if<std::string>(&k)) {
    std::fprintf(stderr, "tender keygen: %s\n", err->c_str());
    return 1;
  }
  auto& pair = std::get<curve::key_pair>(k);
  if (auto err = curve::write_key_files(out, pair, force)) {
    std::fprintf(stderr, "tender keygen: %s\n", err->c_str());
    return 1;
  }
  std::printf("tender keygen: wrote %s (secret, mode 0600) and %s.pub\npublic key: %s\n",
              out.c_str(), out.c_str(), pair.public_key.c_str());
  return 0;
}

void add_keygen_command(CLI::App& app, std::function<int()>& action) {
  struct args {
    std::string out;
    bool force = false;
  };
  auto a = std::make_shared<args>();
  auto* kg = app.add_subcommand("keygen", "Create a CurveZMQ key pair: PATH (secret) and PATH.pub");
  kg->add_option("--out", a->out,
                 "Where to write the secret key file (PATH.pub gets the public key)")
      ->required();
  kg->add_flag("--force", a->force, "Overwrite existing key files");
  kg->callback([a, &action] { action = [a] { return run_keygen(a->out, a->force); }; });
}

std::string keygen_help_footer() {
  return R"(Security (CurveZMQ on every TCP endpoint):
  tender keygen --out node.key        node.key (secret, mode 0600) and node.key.pub
  [security] key = "node.key"         the node's key; allow = ["alice.key.pub", ...] and/or
                                      allow_dir = "clients" list the public keys let in
  tender status J --key alice.key --server-key node.key.pub   (or $TENDER_KEY, $TENDER_SERVER_KEY)
  tender provider ... --key prov.key --server-key node.key.pub
Without keys a node listens in plaintext only on loopback and only with --dev or --insecure
(or [security] insecure = true); clients without --key speak plaintext.)";
}

} // namespace tender
