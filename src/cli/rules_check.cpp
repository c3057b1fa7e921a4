// `storepulse rules check DIR`: loads a rules folder exactly as the server
// does and reports every problem as `file:line:col: message` (exit 1), or a
// one-line-per-rule summary (exit 0).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "storepulse/cli/commands.hpp"
#include "storepulse/rules/rule_book.hpp"

namespace storepulse::cli {

namespace {

std::string human_duration(TimeUs us) {
  if (us <= 0) return "-";
  if (us % kUsPerDay == 0) return fmt::format("{}d", us / kUsPerDay);
  if (us % (3600 * kUsPerSecond) == 0) return fmt::format("{}h", us / (3600 * kUsPerSecond));
  if (us % (60 * kUsPerSecond) == 0) return fmt::format("{}m", us / (60 * kUsPerSecond));
  return fmt::format("{}s", us / kUsPerSecond);
}

int run_rules_check(const std::string& dir, bool verbose) {
  const rules::RuleLoadResult res = rules::load_rules(dir);
  if (!res.errors.empty()) {
    for (const auto& e : res.errors) std::cerr << e.str() << '\n';
    std::cerr << fmt::format("{} error{} in {} file{}\n", res.errors.size(),
                             res.errors.size() == 1 ? "" : "s", res.files.size(),
                             res.files.size() == 1 ? "" : "s");
    return 1;
  }
  std::cout << fmt::format("{:<28} {:>4}  {:<8} {:<5} {:<6} {:<8} {:<13} {}\n", "rule", "prio",
                           "channels", "wait", "cooldn", "holdout", "enabled", "on");
  for (const auto& r : res.rules->rules()) {
    std::string channels, on;
    for (const auto& a : r->actions)
      channels += (channels.empty() ? "" : ",") + std::string(rules::channel_str(a.channel));
    for (const auto& o : r->on) on += (on.empty() ? "" : ", ") + o;
    std::cout << fmt::format(
        "{:<28} {:>4}  {:<8} {:<5} {:<6} {:<8} {:<13} {}\n", r->name, r->priority, channels,
        r->wait_expr.empty() ? human_duration(r->wait) : std::string("expr"),
        human_duration(r->cooldown), fmt::format("{:.0f}%", r->holdout_basis_points / 100.0),
        r->enabled ? "yes" : "no", on);
    if (!r->wait_expr.empty()) std::cout << "  wait: " << r->wait_source << " (days)\n";
    if (verbose && !r->condition.empty())
      std::cout << "  if (" << r->condition.size() << " instructions, stack "
                << r->condition.max_stack() << "):\n"
                << r->condition.disassemble();
  }
  std::cout << fmt::format("{} rule{} OK in {}\n", res.rules->rules().size(),
                           res.rules->rules().size() == 1 ? "" : "s", dir);
  return 0;
}

}  // namespace

void register_rules(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("rules", "Work with rule files");
  cmd->require_subcommand(1);
  struct Args {
    std::string dir = "rules";
    bool verbose = false;
  };
  auto args = std::make_shared<Args>();
  auto* check = cmd->add_subcommand(
      "check", "Validate a rules folder; errors as file:line:col, exit 1 on any");
  check->add_option("dir", args->dir, "rules folder (default: rules)");
  check->add_flag("-v,--verbose", args->verbose, "also list each compiled condition");
  check->callback([args, &exit_code] { exit_code = run_rules_check(args->dir, args->verbose); });
}

}  // namespace storepulse::cli
