// Placeholder registration; replaced by the real command.
#include <CLI/CLI.hpp>

#include "storepulse/cli/commands.hpp"

namespace storepulse::cli {
void register_serve(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "not built yet");
  cmd->callback([&exit_code] { exit_code = 2; });
}
}  // namespace storepulse::cli
