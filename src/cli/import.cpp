// `storepulse import <online-retail|cdnow|baskets> FILE [--out events.ndjson]`:
// retailer files -> protocol events as NDJSON (one event a line), plus a summary
// on stderr so nothing is dropped silently.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "storepulse/analytics/importers.hpp"
#include "storepulse/analytics/report_table.hpp"
#include "storepulse/cli/commands.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::cli {

namespace {

namespace an = storepulse::analytics;

struct ImportArgs {
  std::string file;
  std::string out;  // empty or "-" = stdout
  bool skip_guests = false;
  std::string start = "2000-01-01";
};

// Opens the output; the sink writes one encoded event per line.
class NdjsonWriter {
 public:
  bool open(const std::string& path, std::string& err) {
    if (path.empty() || path == "-") {
      os_ = &std::cout;
      return true;
    }
    file_ = std::make_unique<std::ofstream>(path, std::ios::binary | std::ios::trunc);
    if (!*file_) {
      err = fmt::format("--out {}: cannot open for writing", path);
      return false;
    }
    os_ = file_.get();
    return true;
  }
  an::EventSink sink() {
    return [this](const protocol::Event& ev) {
      std::string line = protocol::encode_event(ev);
      line.push_back('\n');
      os_->write(line.data(), static_cast<std::streamsize>(line.size()));
    };
  }
  bool close(const std::string& path, std::string& err) {
    os_->flush();
    if (!*os_) {
      err = fmt::format("--out {}: write failed", path.empty() ? "-" : path);
      return false;
    }
    return true;
  }

 private:
  std::unique_ptr<std::ofstream> file_;
  std::ostream* os_ = nullptr;
};

int fail(const std::string& msg) {
  std::cerr << "storepulse import: " << msg << '\n';
  return 1;
}

int run_online_retail(const ImportArgs& a) {
  NdjsonWriter w;
  std::string err;
  if (!w.open(a.out, err)) return fail(err);
  an::OnlineRetailImportOptions o;
  o.skip_guests = a.skip_guests;
  auto r = an::import_online_retail(a.file, w.sink(), o);
  if (!r) return fail(r.status().detail());
  if (!w.close(a.out, err)) return fail(err);
  const auto& s = *r;
  std::cerr << fmt::format(
      "imported {}\n"
      "  rows                      {}\n"
      "  invoices                  {}\n"
      "  customers (CustomerID)    {}\n"
      "  Order Completed events    {} ({} member orders, {} guest orders)\n"
      "  member order lines        {}\n"
      "  members with an order     {}\n"
      "  member revenue            {}\n"
      "  Order Refunded events     {} (from {} C-rows in {} C-invoices)\n"
      "  rows without CustomerID   {} in {} invoices -> {}\n"
      "  skipped: A-invoice rows   {} (bad-debt adjustments)\n"
      "  skipped: UnitPrice <= 0   {}\n"
      "  skipped: Quantity <= 0    {} (non-cancellation rows)\n"
      "  time range                {} .. {}\n",
      a.file, s.rows, s.invoices, s.customers_any, s.orders_emitted, s.member_orders,
      s.guest_orders_emitted, s.member_order_lines, s.members, an::fmt_money(s.member_revenue),
      s.refunds_emitted, s.cancellation_rows, s.cancellation_invoices, s.rows_without_customer,
      s.invoices_without_customer,
      a.skip_guests ? "skipped (--skip-guests)"
                    : "emitted as guest orders (anonymousId guest-<invoice>)",
      s.adjustment_rows, s.nonpositive_price_rows, s.nonpositive_quantity_rows,
      format_iso8601(s.first_time), format_iso8601(s.last_time));
  return 0;
}

int run_cdnow(const ImportArgs& a) {
  NdjsonWriter w;
  std::string err;
  if (!w.open(a.out, err)) return fail(err);
  auto r = an::import_cdnow(a.file, w.sink());
  if (!r) return fail(r.status().detail());
  if (!w.close(a.out, err)) return fail(err);
  std::cerr << fmt::format("imported {} ({} layout): {} transactions, {} customers, revenue {}\n",
                           a.file, r->sample_layout ? "sample" : "master", r->rows, r->customers,
                           an::fmt_money(r->revenue));
  return 0;
}

int run_baskets(const ImportArgs& a) {
  auto start = parse_iso8601(a.start);
  if (!start) return fail(fmt::format("--start '{}': expected a date YYYY-MM-DD", a.start));
  NdjsonWriter w;
  std::string err;
  if (!w.open(a.out, err)) return fail(err);
  auto r = an::import_baskets(a.file, w.sink(), *start);
  if (!r) return fail(r.status().detail());
  if (!w.close(a.out, err)) return fail(err);
  std::cerr << fmt::format(
      "imported {}: {} baskets, {} item occurrences, {} distinct items, {} duplicate items "
      "dropped, "
      "{} empty lines\n",
      a.file, r->baskets, r->items, r->distinct_items, r->duplicate_items, r->empty_lines);
  return 0;
}

}  // namespace

void register_import(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("import", "Convert retailer files into NDJSON events");
  cmd->require_subcommand(1);
  auto args = std::make_shared<ImportArgs>();

  auto* ore = cmd->add_subcommand("online-retail", "UCI Online Retail CSV (.csv or .csv.gz)");
  ore->add_option("file", args->file, "CSV file")->required();
  ore->add_option("--out,-o", args->out, "output NDJSON file (default stdout)");
  ore->add_flag("--skip-guests", args->skip_guests,
                "do not emit orders of rows without a CustomerID (still counted)");
  ore->callback([args, &exit_code] { exit_code = run_online_retail(*args); });

  auto* cd = cmd->add_subcommand("cdnow", "CDNOW master or sample transaction log");
  cd->add_option("file", args->file, "CDNOW_master.txt or CDNOW_sample.txt")->required();
  cd->add_option("--out,-o", args->out, "output NDJSON file (default stdout)");
  cd->callback([args, &exit_code] { exit_code = run_cdnow(*args); });

  auto* bk = cmd->add_subcommand("baskets", "one basket per line, items separated by commas");
  bk->add_option("file", args->file, "basket CSV")->required();
  bk->add_option("--out,-o", args->out, "output NDJSON file (default stdout)");
  bk->add_option("--start", args->start, "timestamp of the first basket (YYYY-MM-DD)");
  bk->callback([args, &exit_code] { exit_code = run_baskets(*args); });
}

}  // namespace storepulse::cli
