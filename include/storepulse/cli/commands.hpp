#pragma once
// Each subcommand registers itself on the root CLI11 app. The callback it sets
// stores the exit code in `exit_code`; main() returns it.
namespace CLI {
class App;
}

namespace storepulse::cli {

void register_serve(CLI::App& app, int& exit_code);
void register_send(CLI::App& app, int& exit_code);
void register_simulate(CLI::App& app, int& exit_code);
void register_analyze(CLI::App& app, int& exit_code);
void register_import(CLI::App& app, int& exit_code);
void register_demo_feed(CLI::App& app, int& exit_code);
void register_loadgen(CLI::App& app, int& exit_code);
void register_rules(CLI::App& app, int& exit_code);
void register_backtest(CLI::App& app, int& exit_code);

}  // namespace storepulse::cli
