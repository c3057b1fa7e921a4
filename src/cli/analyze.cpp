// `storepulse analyze <rfm|grades|segments|baskets|clv|channels|report>`:
// retail analytics over recorded events (an NDJSON file, or a server data
// folder's journals), printed as a table, CSV or JSON, per-member CSV files,
// and model files the engine loads. docs/analytics.md is the user's page.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "storepulse/analytics/basket_rules.hpp"
#include "storepulse/analytics/channels.hpp"
#include "storepulse/analytics/clv.hpp"
#include "storepulse/analytics/event_reader.hpp"
#include "storepulse/analytics/grades.hpp"
#include "storepulse/analytics/importers.hpp"
#include "storepulse/analytics/report_html.hpp"
#include "storepulse/analytics/report_table.hpp"
#include "storepulse/analytics/rfm.hpp"
#include "storepulse/analytics/segments.hpp"
#include "storepulse/cli/commands.hpp"
#include "storepulse/models/model_file.hpp"

namespace storepulse::cli {

namespace {

namespace an = storepulse::analytics;

struct AnalyzeArgs {
  // input
  std::string events;
  std::string journal;
  bool lenient = false;
  bool net_of_refunds = false;
  // output
  std::string format = "table";
  std::string out;
  std::size_t limit = 20;
  bool limit_set = false;
  std::string model_out;
  std::string members_out;
  // rfm / grades
  std::string snapshot;
  double monthly_min = 0;
  // baskets
  std::string baskets_csv;
  double min_support = 0.01;
  double min_confidence = 0.5;
  double min_lift = 0;
  int min_len = 1;
  int max_len = 10;
  std::string item_key = "product";
  // clv
  std::string summary_csv;
  std::string calibration_end;
  double horizon = 39;
  int months = 12;
  double discount = 0.01;
  double margin = 1.0;
  double time_unit_days = 7;
  bool pareto = false;
  // channels
  double browse_days = 7;
  double promo_days = 7;
  double abandon_hours = 24;
  // segments
  int k = 0;
  std::string k_criterion = "bic";
  int min_orders = 3;
  // report
  std::string html;
};

class CliError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

an::OutputFormat output_format(const AnalyzeArgs& a) {
  an::OutputFormat f;
  if (!an::parse_output_format(a.format, f))
    throw CliError(fmt::format("--format '{}': expected table, csv or json", a.format));
  return f;
}

an::EventLog load_events(const AnalyzeArgs& a) {
  if (!a.events.empty() && !a.journal.empty())
    throw CliError("give either --events FILE or --journal DIR, not both");
  an::EventReadOptions o;
  o.strict = !a.lenient;
  Result<an::EventLog> r =
      !a.journal.empty() ? an::read_journal_dir(a.journal, o)
      : !a.events.empty()
          ? an::read_event_file(a.events, o)
          : Result<an::EventLog>(Status(ErrorCode::kBadField,
                                        "no input: give --events FILE (NDJSON) or --journal DIR"));
  if (!r) throw CliError(r.status().detail());
  if (r->bad_lines) {
    std::cerr << fmt::format("warning: {} undecodable lines skipped (--lenient); first:\n",
                             r->bad_lines);
    for (const auto& e : r->first_errors) std::cerr << "  " << e << '\n';
  }
  return std::move(*r);
}

std::optional<TimeUs> parse_date_flag(const std::string& flag, const std::string& v) {
  if (v.empty()) return std::nullopt;
  auto t = parse_iso8601(v);
  if (!t) throw CliError(fmt::format("{} '{}': expected a date YYYY-MM-DD", flag, v));
  return t;
}

// --format csv --out DIR: one plain CSV per table, so a spreadsheet or
// pandas reads each file as it is. A name ending in .csv is refused rather
// than made into a folder: that user wanted one file, which CSV cannot hold.
void emit_csv_dir(const std::string& dir, const an::Report& rep, std::size_t rows) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool exists = fs::exists(dir, ec);
  if (exists && !fs::is_directory(dir, ec))
    throw CliError(fmt::format(
        "--out {}: is a file; --format csv writes one CSV per table into a folder: give a "
        "folder, or --format json for one file",
        dir));
  if (!exists && dir.size() > 4 && dir.compare(dir.size() - 4, 4, ".csv") == 0)
    throw CliError(fmt::format(
        "--out {}: --format csv writes one CSV per table into a folder, not one file: give a "
        "folder, or --format json for one file",
        dir));
  if (!exists && !fs::create_directories(dir, ec) && ec)
    throw CliError(fmt::format("--out {}: cannot create the folder: {}", dir, ec.message()));
  std::string names;
  auto files = an::csv_files(rep, rows);
  for (const auto& f : files) {
    const std::string path = (fs::path(dir) / f.name).string();
    if (Status s = models::write_file_atomic(path, f.text); !s)
      throw CliError(fmt::format("--out {}: {}", dir, s.detail()));
    names += (names.empty() ? "" : ", ") + f.name;
  }
  std::cerr << fmt::format("{} files written to {}: {}\n", files.size(), dir, names);
}

// Writes the report to --out or stdout.
void emit(const AnalyzeArgs& a, const an::Report& rep) {
  auto fmt_ = output_format(a);
  std::size_t rows = a.limit_set ? a.limit : (fmt_ == an::OutputFormat::kTable ? a.limit : 0);
  if (fmt_ == an::OutputFormat::kCsv && !a.out.empty() && a.out != "-") {
    emit_csv_dir(a.out, rep, rows);
    return;
  }
  if (a.out.empty() || a.out == "-") {
    an::render_report(rep, fmt_, std::cout, rows);
    return;
  }
  std::ofstream f(a.out, std::ios::binary | std::ios::trunc);
  if (!f) throw CliError(fmt::format("--out {}: cannot open for writing", a.out));
  an::render_report(rep, fmt_, f, rows);
  if (!f) throw CliError(fmt::format("--out {}: write failed", a.out));
}

// --model-out PATH: a directory (existing, or ending in '/') gets NAME in it.
// Written to a temporary file and renamed, so a server watching the folder
// never loads half a model.
void write_model(const std::string& model_out, std::string_view name, const std::string& json) {
  if (model_out.empty()) return;
  std::filesystem::path p(model_out);
  std::error_code ec;
  if (model_out.back() == '/' || std::filesystem::is_directory(p, ec)) {
    std::filesystem::create_directories(p, ec);
    p /= name;
  }
  if (Status s = models::write_file_atomic(p.string(), json); !s)
    throw CliError(fmt::format("--model-out {}: {}", p.string(), s.detail()));
  std::cerr << "model written to " << p.string() << '\n';
}

// --members-out FILE.csv: one plain CSV row per member, for tools that join
// it to their own customer table. Written through FILE.tmp + rename, so a
// reader polling the file never sees half of it.
void write_members(const std::string& path, const an::ReportTable& members) {
  if (path.empty()) return;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw CliError(fmt::format("--members-out {}: is a directory; give a file name, e.g. {}/{}.csv",
                               path, path, members.name));
  if (Status s = models::write_file_atomic(path, an::csv_table(members)); !s)
    throw CliError(fmt::format("--members-out {}: {}", path, s.detail()));
  std::cerr << fmt::format("{} members written to {}\n", members.rows.size(), path);
}

void add_members_out(CLI::App* c, AnalyzeArgs& a, std::string_view columns) {
  c->add_option("--members-out", a.members_out,
                fmt::format("also write one CSV row per member to FILE ({})", columns));
}

// Fitted-on metadata for a model file: the input and the wall clock.
models::ModelMeta model_meta(const AnalyzeArgs& a, std::uint64_t subjects) {
  models::ModelMeta m;
  m.fitted_on = !a.events.empty()        ? a.events
                : !a.journal.empty()     ? a.journal
                : !a.summary_csv.empty() ? a.summary_csv
                                         : a.baskets_csv;
  m.fitted_at = wall_clock_us();
  m.subjects = subjects;
  return m;
}

an::OrderBook order_book(const an::EventLog& log, const AnalyzeArgs& a) {
  an::OrderBookOptions o;
  o.net_of_refunds = a.net_of_refunds;
  return an::build_order_book(log.events, o);
}

an::BasketRuleOptions basket_options(const AnalyzeArgs& a) {
  if (!(a.min_support > 0 && a.min_support <= 1))
    throw CliError(fmt::format("--min-support {}: expected 0 < s <= 1", a.min_support));
  if (!(a.min_confidence >= 0 && a.min_confidence <= 1))
    throw CliError(fmt::format("--min-confidence {}: expected 0..1", a.min_confidence));
  if (a.min_len < 1 || a.max_len < a.min_len)
    throw CliError(fmt::format("--min-len {} / --max-len {}: need 1 <= min-len <= max-len",
                               a.min_len, a.max_len));
  an::BasketRuleOptions o;
  o.min_support = a.min_support;
  o.min_confidence = a.min_confidence;
  o.min_lift = a.min_lift;
  o.min_len = a.min_len;
  o.max_len = a.max_len;
  return o;
}

an::BasketSet basket_set(const AnalyzeArgs& a) {
  if (!a.baskets_csv.empty()) {
    auto raw = an::read_basket_file(a.baskets_csv);
    if (!raw) throw CliError(raw.status().detail());
    return an::make_basket_set(*raw);
  }
  an::BasketItemKey key;
  if (a.item_key == "product")
    key = an::BasketItemKey::kProductId;
  else if (a.item_key == "name")
    key = an::BasketItemKey::kName;
  else if (a.item_key == "category")
    key = an::BasketItemKey::kCategory;
  else
    throw CliError(fmt::format("--item-key '{}': expected product, name or category", a.item_key));
  return an::baskets_from_events(load_events(a).events, key);
}

an::ClvOptions clv_options(const AnalyzeArgs& a) {
  an::ClvOptions o;
  if (a.horizon <= 0) throw CliError("--horizon: must be positive");
  if (a.time_unit_days <= 0) throw CliError("--time-unit-days: must be positive");
  o.horizon_time_units = a.horizon;
  o.clv_months = a.months;
  o.monthly_discount_rate = a.discount;
  o.margin = a.margin;
  o.time_units_per_month = 365.25 / 12 / a.time_unit_days;
  o.pareto_nbd = a.pareto;
  return o;
}

struct ClvRun {
  std::vector<an::ClvCustomer> customers;
  an::ClvModel model;
  std::vector<an::ClvCustomerResult> results;
};

ClvRun run_clv_model(const AnalyzeArgs& a, const an::EventLog* log) {
  ClvRun run;
  auto o = clv_options(a);
  TimeUs cal_end = 0;
  if (!a.summary_csv.empty()) {
    auto r = an::read_clv_summary_csv(a.summary_csv);
    if (!r) throw CliError(r.status().detail());
    run.customers = std::move(*r);
  } else {
    auto book = an::build_order_book(log->events);
    auto end = parse_date_flag("--calibration-end", a.calibration_end);
    cal_end = end ? *end : book.last_time;
    an::ClvSummaryOptions so;
    so.calibration_end = cal_end;
    so.time_unit_days = a.time_unit_days;
    run.customers = an::summarize_for_clv(book, so);
  }
  if (run.customers.size() < 10)
    throw CliError(
        fmt::format("clv: {} customers is too few to fit a model", run.customers.size()));
  run.model = an::fit_clv(run.customers, o);
  run.model.time_unit_days = a.time_unit_days;
  run.model.calibration_end = cal_end;
  for (const auto& c : run.customers) run.results.push_back(an::score_customer(run.model, c, o));
  if (auto why = an::bgnbd_degeneracy(run.model.bgnbd, run.results); !why.empty())
    std::cerr << "warning: degenerate BG/NBD fit (" << why
              << "): the data show no dropout the model can see; P(alive) and CLV are not "
                 "usable\n";
  return run;
}

an::ChannelOptions channel_options(const AnalyzeArgs& a) {
  an::ChannelOptions o;
  o.browse_window = static_cast<TimeUs>(a.browse_days * static_cast<double>(kUsPerDay));
  o.promo_window = static_cast<TimeUs>(a.promo_days * static_cast<double>(kUsPerDay));
  o.abandon_after =
      static_cast<TimeUs>(a.abandon_hours * 3600.0 * static_cast<double>(kUsPerSecond));
  return o;
}

an::SegmentOptions segment_options(const AnalyzeArgs& a) {
  an::SegmentOptions o;
  o.fixed_k = a.k;
  o.min_orders = a.min_orders;
  if (!an::parse_k_criterion(a.k_criterion, o.k_criterion))
    throw CliError(
        fmt::format("--k-criterion '{}': expected bic, gap or silhouette", a.k_criterion));
  return o;
}

int run(const char* what, const std::function<void()>& body) {
  try {
    body();
    return 0;
  } catch (const CliError& e) {
    std::cerr << "storepulse analyze " << what << ": " << e.what() << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "storepulse analyze " << what << ": " << e.what() << '\n';
    return 1;
  }
}

void add_input(CLI::App* c, AnalyzeArgs& a) {
  c->add_option("--events", a.events, "NDJSON event file (plain or .gz)");
  c->add_option("--journal", a.journal,
                "a server data folder (every shard-NNN journal, archived segments included) or "
                "one shard folder; read-only, safe on a running server");
  c->add_flag("--lenient", a.lenient, "skip undecodable lines instead of failing");
}

void add_output(CLI::App* c, AnalyzeArgs& a) {
  c->add_option("--format", a.format,
                "table | csv | json (csv on stdout: every table in one stream, each after a "
                "'# title' line; with --out DIR: one plain CSV per table)")
      ->capture_default_str();
  c->add_option("--out,-o", a.out,
                "write the result to FILE instead of stdout; with --format csv a folder DIR "
                "(created if missing) that gets one CSV per table");
  c->add_option_function<std::size_t>(
      "--limit",
      [&a](std::size_t n) {
        a.limit = n;
        a.limit_set = true;
      },
      "rows per table (0 = all; default 20 for table, all for csv/json)");
}

void add_basket_flags(CLI::App* c, AnalyzeArgs& a) {
  c->add_option("--min-support", a.min_support, "minimum support (share of baskets)")
      ->capture_default_str();
  c->add_option("--min-confidence", a.min_confidence, "minimum confidence")->capture_default_str();
  c->add_option("--min-lift", a.min_lift, "minimum lift")->capture_default_str();
  c->add_option("--min-len", a.min_len, "minimum rule length (LHS + RHS)")->capture_default_str();
  c->add_option("--max-len", a.max_len, "maximum rule length (LHS + RHS)")->capture_default_str();
  c->add_option("--item-key", a.item_key, "basket item: product | name | category")
      ->capture_default_str();
}

void add_clv_flags(CLI::App* c, AnalyzeArgs& a) {
  c->add_option("--calibration-end", a.calibration_end,
                "last day of the calibration period (default: last event)");
  c->add_option("--horizon", a.horizon, "expected purchases over this many time units")
      ->capture_default_str();
  c->add_option("--months", a.months, "CLV horizon in months")->capture_default_str();
  c->add_option("--discount", a.discount, "monthly discount rate")->capture_default_str();
  c->add_option("--margin", a.margin, "profit margin applied to spend")->capture_default_str();
  c->add_option("--time-unit-days", a.time_unit_days, "model time unit in days (7 = weeks)")
      ->capture_default_str();
  c->add_flag("--pareto-nbd", a.pareto,
              "also fit Pareto/NBD (slow when the data has almost no dropout: its 2F1 series "
              "converges slowly)");
}

}  // namespace

void register_analyze(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("analyze", "Retail analytics over recorded events");
  cmd->require_subcommand(1);
  auto a = std::make_shared<AnalyzeArgs>();

  auto* rfm = cmd->add_subcommand("rfm", "recency / frequency / monetary, quintile scores, Pareto");
  add_input(rfm, *a);
  add_output(rfm, *a);
  rfm->add_option("--snapshot", a->snapshot,
                  "recency reference day (default: day after the last order)");
  rfm->add_flag("--net-of-refunds", a->net_of_refunds, "subtract Order Refunded from revenue");
  add_members_out(rfm, *a, "userId,recency,frequency,monetary,grade");
  rfm->callback([a, &exit_code] {
    exit_code = run("rfm", [&] {
      auto log = load_events(*a);
      an::RfmOptions o;
      o.snapshot = parse_date_flag("--snapshot", a->snapshot);
      auto res = an::compute_rfm(order_book(log, *a), o);
      emit(*a, an::rfm_report(res));
      write_members(a->members_out, an::rfm_members_table(res));
    });
  });

  auto* grades = cmd->add_subcommand("grades", "value grades: amount x frequency vs the averages");
  add_input(grades, *a);
  add_output(grades, *a);
  grades
      ->add_option("--monthly-min", a->monthly_min,
                   "list members spending less per month than this")
      ->capture_default_str();
  grades->add_flag("--net-of-refunds", a->net_of_refunds, "subtract Order Refunded from spend");
  grades->callback([a, &exit_code] {
    exit_code = run("grades", [&] {
      auto log = load_events(*a);
      an::GradeOptions o;
      o.monthly_minimum = a->monthly_min;
      emit(*a, an::grades_report(an::compute_grades(order_book(log, *a), o), o));
    });
  });

  auto* seg = cmd->add_subcommand("segments", "shopping-type segments + discriminant classifier");
  add_input(seg, *a);
  add_output(seg, *a);
  seg->add_option("--k", a->k, "number of segments (default: chosen by --k-criterion)");
  seg->add_option("--k-criterion", a->k_criterion,
                  "how k is chosen: bic (Gaussian mixture), gap (gap statistic) or silhouette; "
                  "all three are scored per k in the report")
      ->capture_default_str();
  seg->add_option("--min-orders", a->min_orders, "members with fewer orders are not segmented")
      ->capture_default_str();
  seg->add_option("--model-out", a->model_out,
                  "write the segment model (file, or directory -> segments.json)");
  add_members_out(seg, *a, "userId,segment; members with --min-orders orders");
  seg->callback([a, &exit_code] {
    exit_code = run("segments", [&] {
      auto log = load_events(*a);
      auto rep = an::run_segments(log.events, segment_options(*a));
      emit(*a, an::segments_report(rep));
      for (const auto* flag : {&a->model_out, &a->members_out})
        if (!flag->empty() && rep.model.segment_names.empty())
          throw CliError(
              fmt::format("{}: no segments were fitted (too few members with --min-orders orders)",
                          flag == &a->model_out ? "--model-out" : "--members-out"));
      write_members(a->members_out, an::segment_members_table(rep));
      rep.model.meta = model_meta(*a, rep.members_segmented);
      write_model(a->model_out, models::kSegmentsFile, an::segment_model_json(rep.model));
    });
  });

  auto* bk = cmd->add_subcommand("baskets", "association rules (support, confidence, lift)");
  add_input(bk, *a);
  add_output(bk, *a);
  add_basket_flags(bk, *a);
  bk->add_option("--baskets", a->baskets_csv, "read a basket-per-line CSV instead of events");
  bk->add_option("--model-out", a->model_out,
                 "write the rules model (file, or directory -> baskets.json)");
  bk->callback([a, &exit_code] {
    exit_code = run("baskets", [&] {
      auto opts = basket_options(*a);
      auto data = basket_set(*a);
      auto res = an::mine_basket_rules(data, opts);
      emit(*a, an::basket_report(data, res, opts));
      if (!a->model_out.empty()) {
        auto model =
            an::to_basket_model(data, res, opts, a->baskets_csv.empty() ? a->item_key : "name");
        model.meta = model_meta(*a, res.transactions);
        write_model(a->model_out, models::kBasketsFile, models::basket_model_json(model));
      }
    });
  });

  auto* clv = cmd->add_subcommand(
      "clv", "BG/NBD, Pareto/NBD, Gamma-Gamma: P(alive), expected purchases, CLV");
  add_input(clv, *a);
  add_output(clv, *a);
  add_clv_flags(clv, *a);
  clv->add_option("--summary", a->summary_csv,
                  "fit a lifetimes summary CSV (ID,x,t_x,T,zbar) instead of events");
  clv->add_option("--model-out", a->model_out,
                  "write the CLV model (file, or directory -> clv.json)");
  add_members_out(clv, *a, "userId,p_alive,expected_purchases,expected_value");
  clv->callback([a, &exit_code] {
    exit_code = run("clv", [&] {
      std::optional<an::EventLog> log;
      if (a->summary_csv.empty()) log = load_events(*a);
      auto r = run_clv_model(*a, log ? &*log : nullptr);
      auto o = clv_options(*a);
      emit(*a, an::clv_report(r.model, r.customers, r.results, o));
      write_members(a->members_out, an::clv_members_table(r.customers, r.results));
      r.model.meta = model_meta(*a, r.customers.size());
      write_model(a->model_out, models::kClvFile, an::clv_model_json(r.model, o));
    });
  });

  auto* ch = cmd->add_subcommand(
      "channels", "online vs store: share, cannibalisation, browse-then-store, promotions, carts");
  add_input(ch, *a);
  add_output(ch, *a);
  ch->add_option("--browse-days", a->browse_days, "web view -> store purchase window, days")
      ->capture_default_str();
  ch->add_option("--promo-days", a->promo_days, "promotion -> order window, days")
      ->capture_default_str();
  ch->add_option("--abandon-hours", a->abandon_hours,
                 "cart add not bought within this many hours = abandoned")
      ->capture_default_str();
  ch->callback([a, &exit_code] {
    exit_code = run("channels", [&] {
      auto log = load_events(*a);
      auto o = channel_options(*a);
      emit(*a, an::channels_report(an::analyze_channels(log.events, o), o));
    });
  });

  auto* rep = cmd->add_subcommand("report", "one self-contained HTML page with every analysis");
  add_input(rep, *a);
  add_basket_flags(rep, *a);
  add_clv_flags(rep, *a);
  rep->add_option("--html", a->html, "output HTML file")->required();
  rep->add_flag("--net-of-refunds", a->net_of_refunds, "subtract Order Refunded from revenue");
  rep->add_option("--monthly-min", a->monthly_min, "grades: monthly minimum spend");
  rep->add_option("--k-criterion", a->k_criterion,
                  "segments: how k is chosen (bic, gap or silhouette)")
      ->capture_default_str();
  rep->add_option(
      "--model-out", a->model_out,
      "also write every model the report fits (clv.json, baskets.json, segments.json) into DIR");
  rep->callback([a, &exit_code] {
    exit_code = run("report", [&] {
      auto log = load_events(*a);
      auto book = order_book(log, *a);
      an::HtmlReportInput in;
      in.source = !a->events.empty() ? a->events : a->journal;
      auto rfm = an::compute_rfm(book);
      an::GradeOptions go;
      go.monthly_minimum = a->monthly_min;
      auto grades = an::compute_grades(book, go);
      in.rfm = &rfm;
      in.grades = &grades;
      an::BasketItemKey key = a->item_key == "name"       ? an::BasketItemKey::kName
                              : a->item_key == "category" ? an::BasketItemKey::kCategory
                                                          : an::BasketItemKey::kProductId;
      auto bset = an::baskets_from_events(log.events, key);
      auto rules = an::mine_basket_rules(bset, basket_options(*a));
      in.baskets = &bset;
      in.rules = &rules;
      std::optional<ClvRun> clv;
      try {
        clv = run_clv_model(*a, &log);
        in.clv = &clv->model;
        in.clv_customers = &clv->customers;
        in.clv_results = &clv->results;
      } catch (const CliError& e) {
        std::cerr << "report: CLV section skipped: " << e.what() << '\n';
      }
      an::ChannelResult channels;
      bool has_channels = false;
      for (const auto& ev : log.events)
        if (ev.channel == protocol::Channel::kPos) {
          has_channels = true;
          break;
        }
      if (has_channels) {
        channels = an::analyze_channels(log.events, channel_options(*a));
        in.channels = &channels;
      }
      auto seg = an::run_segments(log.events, segment_options(*a));
      if (seg.members_segmented > 0) in.extra.push_back(an::segments_report(seg));
      if (!a->model_out.empty()) {
        std::string dir = a->model_out;
        if (dir.back() != '/') dir.push_back('/');  // always a folder here: three files
        if (clv) {
          clv->model.meta = model_meta(*a, clv->customers.size());
          write_model(dir, models::kClvFile, an::clv_model_json(clv->model, clv_options(*a)));
        }
        auto bm = an::to_basket_model(bset, rules, basket_options(*a), a->item_key);
        bm.meta = model_meta(*a, rules.transactions);
        write_model(dir, models::kBasketsFile, models::basket_model_json(bm));
        if (!seg.model.segment_names.empty()) {
          seg.model.meta = model_meta(*a, seg.members_segmented);
          write_model(dir, models::kSegmentsFile, an::segment_model_json(seg.model));
        } else {
          std::cerr << "report: no segment model (too few members with enough orders)\n";
        }
      }
      std::ofstream f(a->html, std::ios::binary | std::ios::trunc);
      if (!f) throw CliError(fmt::format("--html {}: cannot open for writing", a->html));
      f << an::render_html_report(in);
      if (!f) throw CliError(fmt::format("--html {}: write failed", a->html));
      std::cerr << "report written to " << a->html << '\n';
    });
  });
}

}  // namespace storepulse::cli
