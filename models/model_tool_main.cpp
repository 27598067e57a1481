// `tender-model`: the model subcommands on their own, for working on models/ without
// building the whole node (configure with -DTENDER_MODEL_TOOL=ON). The `tender`
// binary registers the same commands.

#include "tools/model_cmd.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"tender model tools"};
  app.require_subcommand(1);
  std::function<int()> action;
  tender::add_model_commands(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return action ? action() : 2;
}
