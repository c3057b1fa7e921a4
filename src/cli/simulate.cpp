// `storepulse simulate`: synthetic store + web shoppers with hidden shopping types,
// written as NDJSON events (the wire format) and, optionally, the truth as CSV.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>

#include "storepulse/analytics/progress.hpp"
#include "storepulse/analytics/simulator.hpp"
#include "storepulse/cli/commands.hpp"
#include "storepulse/common/time.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::cli {

namespace {

struct SimulateArgs {
  int customers = 1000;
  int days = 90;
  std::uint64_t seed = 1;
  std::string out;
  std::string truth;
  std::string end = "2026-11-25";
  int stores = 6;
  double visitors = 0.2;
};

int run_simulate(const SimulateArgs& a) {
  if (a.customers < 1) {
    std::cerr << "storepulse simulate: --customers must be at least 1\n";
    return 2;
  }
  if (a.days < 1 || a.days > 3650) {
    std::cerr << "storepulse simulate: --days must be from 1 to 3650\n";
    return 2;
  }
  auto end = parse_iso8601(a.end);
  if (!end) {
    std::cerr << "storepulse simulate: --end '" << a.end
              << "' is not a date (expected YYYY-MM-DD or an ISO-8601 time)\n";
    return 2;
  }
  analytics::SimulatorConfig cfg;
  cfg.customers = a.customers;
  cfg.days = a.days;
  cfg.seed = a.seed;
  cfg.end = *end;
  cfg.stores = a.stores;
  cfg.anonymous_visitor_share = a.visitors;

  std::ofstream file;
  std::ostream* out = &std::cout;
  if (a.out != "-") {
    file.open(a.out, std::ios::binary | std::ios::trunc);
    if (!file) {
      std::cerr << "storepulse simulate: cannot write --out " << a.out << ": "
                << std::strerror(errno) << "\n";
      return 1;
    }
    out = &file;
  }

  analytics::ShopperSimulator sim(cfg);
  {
    analytics::ProgressBar bar("simulating", 1000);
    protocol::Event ev;
    std::string line;
    while (sim.next(ev)) {
      line = protocol::encode_event(ev);
      line.push_back('\n');
      out->write(line.data(), static_cast<std::streamsize>(line.size()));
      if ((sim.stats().events & 1023) == 0)
        bar.update(static_cast<std::uint64_t>(sim.progress() * 1000));
    }
    bar.finish();
  }
  out->flush();
  if (!*out) {
    std::cerr << "storepulse simulate: write to " << a.out << " failed\n";
    return 1;
  }

  if (!a.truth.empty()) {
    std::ofstream tf(a.truth, std::ios::trunc);
    if (!tf) {
      std::cerr << "storepulse simulate: cannot write --truth " << a.truth << ": "
                << std::strerror(errno) << "\n";
      return 1;
    }
    analytics::write_truth_csv(sim.truth(), tf);
    if (!tf.flush()) {
      std::cerr << "storepulse simulate: write to " << a.truth << " failed\n";
      return 1;
    }
  }

  const auto& st = sim.stats();
  std::cerr << fmt::format(
      "simulated {} customers over {} days ({} .. {}): {} events, {} orders ({} web), "
      "revenue {}.{:02d}, {} refunds, {} abandoned carts\n",
      cfg.customers, cfg.days, format_iso8601(sim.start_time()), format_iso8601(sim.end_time()),
      st.events, st.orders, st.web_orders, st.revenue / 100, st.revenue % 100, st.refunds,
      st.abandoned_carts);
  return 0;
}

}  // namespace

void register_simulate(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<SimulateArgs>();
  auto* cmd = app.add_subcommand(
      "simulate", "Write synthetic store + web shoppers (hidden shopping types) as NDJSON events");
  cmd->add_option("--customers", args->customers, "Members to simulate")->default_val(1000);
  cmd->add_option("--days", args->days, "Days simulated, ending at --end")->default_val(90);
  cmd->add_option("--seed", args->seed, "Random seed; the same seed gives the same file")
      ->default_val(1);
  cmd->add_option("--out", args->out, "Output NDJSON file ('-' for stdout)")->required();
  cmd->add_option("--truth", args->truth, "Also write userId,type,... of every member as CSV");
  cmd->add_option("--end", args->end, "End of the simulated period (exclusive), YYYY-MM-DD")
      ->default_val("2026-11-25");
  cmd->add_option("--stores", args->stores, "Number of stores")
      ->default_val(6)
      ->check(CLI::Range(1, 99));
  cmd->add_option("--visitors", args->visitors,
                  "Anonymous web visitors who never join, as a share of --customers")
      ->default_val(0.2)
      ->check(CLI::Range(0.0, 10.0));
  cmd->callback([args, &exit_code] { exit_code = run_simulate(*args); });
}

}  // namespace storepulse::cli
