// storepulse: one binary, subcommands (see `storepulse --help`).
#include <CLI/CLI.hpp>

#include "storepulse/cli/commands.hpp"
#include "storepulse_version.h"

int main(int argc, char** argv) {
  CLI::App app{"StorePulse: real-time personalisation for stores and web shops"};
  app.set_version_flag(
      "--version",
      std::string("storepulse ") + STOREPULSE_VERSION + " (commit " + STOREPULSE_COMMIT + ")",
      "Print the version and the git commit it was built from, and exit");
  app.require_subcommand(1);
  int exit_code = 0;
  storepulse::cli::register_serve(app, exit_code);
  storepulse::cli::register_send(app, exit_code);
  storepulse::cli::register_simulate(app, exit_code);
  storepulse::cli::register_analyze(app, exit_code);
  storepulse::cli::register_import(app, exit_code);
  storepulse::cli::register_demo_feed(app, exit_code);
  storepulse::cli::register_loadgen(app, exit_code);
  storepulse::cli::register_rules(app, exit_code);
  storepulse::cli::register_backtest(app, exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
