// `storepulse backtest --rules DIR --events FILE`: replays a recorded event
// history through the engine the server runs (engine::Engine with its shards,
// journal, profiles, identity and RuleBook; a temporary data folder, fsync
// never) and reports what each rule would have done and earned.
//
// Event time drives everything: the history is replayed in timestamp order,
// the engine's watermark clock is ours (never the wall clock), so a timer fires
// when the replayed events pass its due time, as on a live server in real time.
// The run is deterministic: the same files give the same report.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "storepulse/analytics/event_reader.hpp"
#include "storepulse/analytics/importers.hpp"
#include "storepulse/analytics/progress.hpp"
#include "storepulse/analytics/report_html.hpp"
#include "storepulse/analytics/report_table.hpp"
#include "storepulse/cli/commands.hpp"
#include "storepulse/cli/config.hpp"
#include "storepulse/engine/engine.hpp"
#include "storepulse/protocol/event_binary.hpp"
#include "storepulse/rules/rule_book.hpp"

namespace storepulse::cli {

namespace {

using analytics::history_limits;
using analytics::Report;
using analytics::ReportTable;

constexpr std::size_t kWindow = 1024;  // events in flight to the engine

struct BadArgs {
  std::string message;
};

struct History {
  struct Item {
    TimeUs t;
    std::string event;  // the decoded event, in the journal's binary form (event_binary.hpp)
  };
  std::vector<Item> events;
  std::size_t lines = 0;
  std::size_t skipped_range = 0;
  std::unordered_set<std::string> customers;
};

History read_history(const std::string& path, std::optional<TimeUs> from,
                     std::optional<TimeUs> to) {
  analytics::TextFileReader in;
  if (Status s = in.open(path); !s) throw BadArgs{fmt::format("--events {}: {}", path, s.detail())};
  protocol::EventDecoder dec(history_limits());
  History h;
  std::string line;
  const std::size_t pad = protocol::decode_padding();
  analytics::ProgressBar bar("reading " + path, in.file_size());
  while (in.next_line(line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++h.lines;
    if ((h.lines & 4095) == 0) bar.update(in.bytes_read());
    const std::size_t len = line.size();
    line.reserve(len + pad);
    protocol::Event ev;
    // Receive time 0: an event without a timestamp decodes at 0, which we refuse
    // (a replay runs on event time; "now" would make it irreproducible).
    if (Status s = dec.decode(std::string_view(line.data(), len), 0, ev); !s)
      throw BadArgs{fmt::format("{}:{}: {}", path, in.line_number(), s.detail())};
    if (ev.timestamp == 0)
      throw BadArgs{fmt::format("{}:{}: timestamp: missing (a backtest replays event time)", path,
                                in.line_number())};
    if ((from && ev.timestamp < *from) || (to && ev.timestamp > *to)) {
      ++h.skipped_range;
      continue;
    }
    h.customers.emplace(ev.customer_key());
    // Validated once, here: each run copies the fields back from the binary
    // form (as recovery does) instead of running the JSON decoder again.
    auto& item = h.events.emplace_back(History::Item{ev.timestamp, {}});
    protocol::encode_event_binary(ev, item.event);
  }
  if (!in.error().empty()) throw BadArgs{fmt::format("--events {}: {}", path, in.error())};
  bar.finish();
  std::stable_sort(h.events.begin(), h.events.end(),
                   [](const auto& a, const auto& b) { return a.t < b.t; });
  return h;
}

struct RuleResult {
  std::string name;
  std::string channels;
  double holdout_percent = 0;
  std::uint64_t evaluated = 0, matched = 0, fired = 0, held_out = 0;
  std::array<std::uint64_t, rules::kSuppressionCount> suppressed{};
  std::array<std::uint64_t, rules::kChannelCount> fires{};  // actions delivered per channel
  std::uint64_t sms_peak_day = 0;
  std::string sms_peak_date;
  rules::RuleOutcome outcome;
};

struct RunResult {
  std::vector<RuleResult> rules;
  std::vector<protocol::Action> actions;  // sorted by time, customer, rule, channel
  std::uint64_t applied = 0;
  std::uint64_t rejected = 0;
  std::vector<std::string> first_errors;
  std::uint64_t sms_peak_day = 0;
  std::string sms_peak_date;
};

/// Collects the engine's replies. The engine runs on the backtest's own thread
/// (one external core), so replies arrive there, inside run_until_idle.
class ReplyCounter final : public engine::ReplyTarget {
 public:
  void deliver(std::string message) override {
    if (message.rfind(R"({"type":"error")", 0) == 0) {
      ++rejected_;
      if (errors_.size() < 10) errors_.push_back(std::move(message));
    } else {
      ++applied_;
    }
  }
  std::uint64_t applied() const { return applied_; }
  std::uint64_t rejected() const { return rejected_; }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::uint64_t applied_ = 0, rejected_ = 0;
  std::vector<std::string> errors_;
};

std::string day_of(TimeUs t) {
  return format_iso8601(t - ((t % kUsPerDay) + kUsPerDay) % kUsPerDay).substr(0, 10);
}

/// A scratch data folder for the engine, removed when the run ends.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "storepulse-backtest-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
      throw std::runtime_error("cannot create a temporary folder for the backtest");
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

RunResult run_rules(const std::shared_ptr<rules::RuleBook>& book, const History& h,
                    const engine::EngineOptions& base, std::optional<TimeUs> end,
                    const std::string& label) {
  ScratchDir scratch;
  engine::EngineOptions opts = base;
  opts.data_dir = scratch.path();
  // Never the production Redis a config may name, and no journal at all: the
  // engine's state dies with the run, so its log keeps nothing (same commit
  // path as live, no disk writes, no snapshots, nothing to seal).
  opts.store_kind = "memory";
  opts.seal_records = false;
  opts.fsync = store::FsyncPolicy::kNever;
  opts.archive_segments = false;
  opts.limits = history_limits();
  opts.queue_capacity = std::max<std::size_t>(opts.queue_capacity, 4 * kWindow);
  opts.snapshot_interval_us = 365LL * kUsPerDay;  // a scratch run needs no snapshots
  opts.snapshot_min_records = ~0ull;
  // Our clock: only event time moves the watermark, until the end of the run.
  auto clock = std::make_shared<std::atomic<TimeUs>>(std::numeric_limits<TimeUs>::min());
  opts.watermark_clock = [clock] { return clock->load(std::memory_order_acquire); };

  RunResult res;
  std::mutex mu;
  Metrics metrics;
  {
    engine::Engine eng(opts, book, metrics);
    eng.set_action_observer([&](const protocol::Action& a) {
      std::lock_guard<std::mutex> lk(mu);
      res.actions.push_back(a);
    });
    // One core, and it is this thread: every shard is applied here, in the
    // order submitted, with no thread hand-off; the same code as live.
    eng.use_external_cores({[] {}});
    eng.start();
    eng.enter_core(0);
    auto replies = std::make_shared<ReplyCounter>();
    analytics::ProgressBar bar(label, h.events.size());
    std::size_t queued = 0;
    protocol::Event ev;  // reused: submit swaps the pooled Work's strings back in
    for (std::size_t i = 0; i < h.events.size(); ++i) {
      const auto& item = h.events[i];
      if (!protocol::decode_event_binary(item.event, ev)) continue;  // encoded by read_history
      // As on /v1/pos and POST /v1/events: no channel given means the till.
      if (ev.channel == protocol::Channel::kUnknown) ev.channel = protocol::Channel::kPos;
      // Identity work (links, merges) crosses shards: such an event is applied
      // alone, after everything before it and settled before anything after,
      // so the merge lands at the same point of the history on every run.
      const bool identity = ev.type == protocol::EventType::kAlias ||
                            (!ev.user_id.empty() && !ev.anonymous_id.empty()) ||
                            !ev.traits.phone.empty() || !ev.traits.email.empty();
      if (identity && queued > 0) {
        eng.run_until_idle();
        queued = 0;
      }
      // Below the queue bound a submit cannot be refused; if it were, the reply
      // target was told and counts it.
      (void)eng.submit(std::move(ev), std::string(), item.t, replies);
      if (identity || ++queued >= kWindow) {
        eng.run_until_idle();
        queued = 0;
      }
      if ((i & 4095) == 0) bar.update(i);
    }
    eng.run_until_idle();
    bar.finish();
    if (end) clock->store(*end, std::memory_order_release);
    eng.run_until_idle();
    eng.stop();
    res.applied = replies->applied();
    res.rejected = replies->rejected();
    res.first_errors = replies->errors();
  }
  std::sort(res.actions.begin(), res.actions.end(), [](const auto& a, const auto& b) {
    return std::tie(a.at, a.customer, a.rule, a.channel) <
           std::tie(b.at, b.customer, b.rule, b.channel);
  });

  std::map<std::string, std::uint64_t> sms_days;
  std::map<std::string, std::map<std::string, std::uint64_t>> rule_sms_days;
  for (const auto& a : res.actions)
    if (a.channel == "sms") {
      ++sms_days[day_of(a.at)];
      ++rule_sms_days[a.rule][day_of(a.at)];
    }
  for (const auto& [d, n] : sms_days)
    if (n > res.sms_peak_day) res.sms_peak_day = n, res.sms_peak_date = d;

  for (const auto& rp : book->rules()) {
    const auto& r = *rp;
    const auto& c = r.counters;
    RuleResult rr;
    rr.name = r.name;
    for (const auto& a : r.actions)
      rr.channels += (rr.channels.empty() ? "" : ",") + std::string(rules::channel_str(a.channel));
    rr.holdout_percent = r.holdout_basis_points / 100.0;
    rr.evaluated = c.evaluated.load();
    rr.matched = c.matched.load();
    rr.fired = c.fired.load();
    rr.held_out = c.held_out.load();
    for (std::size_t s = 0; s < rules::kSuppressionCount; ++s)
      rr.suppressed[s] = c.suppressed[s].load();
    rr.outcome = rules::rule_outcome(c);
    for (const auto& a : res.actions) {
      if (a.rule != r.name) continue;
      for (std::size_t ch = 0; ch < rules::kChannelCount; ++ch)
        if (a.channel == rules::channel_str(static_cast<rules::ActionChannel>(ch))) ++rr.fires[ch];
    }
    for (const auto& [d, n] : rule_sms_days[r.name])
      if (n > rr.sms_peak_day) rr.sms_peak_day = n, rr.sms_peak_date = d;
    res.rules.push_back(std::move(rr));
  }
  return res;
}

std::shared_ptr<rules::RuleBook> load_book(const std::string& dir, std::string_view flag) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw BadArgs{fmt::format("{} {}: no such rules folder", flag, dir)};
  auto res = rules::load_rules(dir);
  if (!res.errors.empty()) {
    for (const auto& e : res.errors) std::cerr << e.str() << '\n';
    std::cerr << fmt::format("{} error{} in {}: nothing was replayed\n", res.errors.size(),
                             res.errors.size() == 1 ? "" : "s", dir);
    return nullptr;
  }
  return res.rules;
}

std::string opt_num(std::optional<double> v) {
  return v ? fmt::format("{:.4f}", *v) : "null";
}
std::string pct(std::optional<double> v) {
  return v ? fmt::format("{:+.1f}%", *v * 100) : "-";
}

void append_rule_json(std::string& o, const RuleResult& r) {
  using rules::kGroupHoldout;
  using rules::kGroupTreated;
  o += "{\"rule\":";
  protocol::append_json_string(o, r.name);
  o += fmt::format(",\"evaluated\":{},\"matched\":{},\"fired\":{},\"fires\":{{", r.evaluated,
                   r.matched, r.fired);
  for (std::size_t ch = 0; ch < rules::kChannelCount; ++ch)
    o += fmt::format("{}\"{}\":{}", ch ? "," : "",
                     rules::channel_str(static_cast<rules::ActionChannel>(ch)), r.fires[ch]);
  o += "},\"suppressed\":{";
  for (std::size_t s = 0; s < rules::kSuppressionCount; ++s)
    o += fmt::format("{}\"{}\":{}", s ? "," : "",
                     rules::suppression_name(static_cast<rules::Suppression>(s)), r.suppressed[s]);
  const auto& out = r.outcome;
  o += fmt::format(
      "}},\"heldOut\":{},\"holdoutPercent\":{:.2f},\"smsPeakPerDay\":{},\"smsPeakDate\":{},"
      "\"contacts\":{{\"treated\":{},\"holdout\":{}}},\"converted\":{{\"treated\":{},\"holdout\":{}"
      "}},"
      "\"revenue\":{{\"treated\":{:.2f},\"holdout\":{:.2f}}},\"conversionRate\":{{\"treated\":{:."
      "4f},\"holdout\":{:.4f}}},"
      "\"revenuePerContact\":{{\"treated\":{:.2f},\"holdout\":{:.2f}}},\"lift\":{{\"conversion\":{}"
      ",\"revenue\":{}}}}}",
      r.held_out, r.holdout_percent, r.sms_peak_day,
      r.sms_peak_date.empty() ? "null" : "\"" + r.sms_peak_date + "\"", out.contacts[kGroupTreated],
      out.contacts[kGroupHoldout], out.converted[kGroupTreated], out.converted[kGroupHoldout],
      out.revenue[kGroupTreated] / 100.0, out.revenue[kGroupHoldout] / 100.0,
      out.rate(kGroupTreated), out.rate(kGroupHoldout), out.revenue_per_contact(kGroupTreated),
      out.revenue_per_contact(kGroupHoldout), opt_num(out.conversion_lift()),
      opt_num(out.revenue_lift()));
}

void append_run_json(std::string& o, const RunResult& run) {
  o += fmt::format(
      "{{\"applied\":{},\"rejected\":{},\"actions\":{},\"smsPeakPerDay\":{},\"smsPeakDate\":{},"
      "\"rules\":[",
      run.applied, run.rejected, run.actions.size(), run.sms_peak_day,
      run.sms_peak_date.empty() ? "null" : "\"" + run.sms_peak_date + "\"");
  for (std::size_t i = 0; i < run.rules.size(); ++i) {
    if (i) o.push_back(',');
    append_rule_json(o, run.rules[i]);
  }
  o += "]}";
}

void append_action_json(std::string& o, const protocol::Action& a) {
  o += "{\"rule\":";
  protocol::append_json_string(o, a.rule);
  o += ",\"channel\":";
  protocol::append_json_string(o, a.channel);
  o += ",\"customer\":";
  protocol::append_json_string(o, a.customer);
  o += ",\"at\":\"" + format_iso8601(a.at) + "\",\"text\":";
  protocol::append_json_string(o, a.text);
  if (!a.offer_json.empty()) o += ",\"offer\":" + a.offer_json;
  o += "}";
}

// The figures compared between the rule set and its baseline, per rule.
struct DiffField {
  const char* name;
  double (*get)(const RuleResult&);
  int decimals;
};
const DiffField kDiffFields[] = {
    {"fired", [](const RuleResult& r) { return double(r.fired); }, 0},
    {"held_out", [](const RuleResult& r) { return double(r.held_out); }, 0},
    {"sms", [](const RuleResult& r) { return double(r.fires[2]); }, 0},
    {"suppressed",
     [](const RuleResult& r) {
       double n = 0;
       for (auto v : r.suppressed) n += double(v);
       return n;
     },
     0},
    {"converted",
     [](const RuleResult& r) { return double(r.outcome.converted[rules::kGroupTreated]); }, 0},
    {"revenue", [](const RuleResult& r) { return r.outcome.revenue[rules::kGroupTreated] / 100.0; },
     2},
};

const RuleResult* find_rule(const RunResult& run, const std::string& name) {
  for (const auto& r : run.rules)
    if (r.name == name) return &r;
  return nullptr;
}

std::vector<std::string> diff_rule_names(const RunResult& cur, const RunResult& base) {
  std::vector<std::string> names;
  for (const auto& r : cur.rules) names.push_back(r.name);
  for (const auto& r : base.rules)
    if (!find_rule(cur, r.name)) names.push_back(r.name);
  return names;
}

std::string diff_json(const RunResult& cur, const RunResult& base) {
  std::string o = "[";
  bool first = true;
  for (const auto& name : diff_rule_names(cur, base)) {
    const RuleResult* a = find_rule(cur, name);
    const RuleResult* b = find_rule(base, name);
    if (!first) o.push_back(',');
    first = false;
    o += "{\"rule\":";
    protocol::append_json_string(o, name);
    o += fmt::format(",\"status\":\"{}\"", a && b ? "both" : a ? "added" : "removed");
    for (const auto& f : kDiffFields) {
      const double x = a ? f.get(*a) : 0, y = b ? f.get(*b) : 0;
      o += fmt::format(",\"{}\":{{\"current\":{:.{}f},\"baseline\":{:.{}f},\"delta\":{:.{}f}}}",
                       f.name, x, f.decimals, y, f.decimals, x - y, f.decimals);
    }
    o += "}";
  }
  return o + "]";
}

Report build_report(const RunResult& run, const History& h, const std::string& rules_dir,
                    const std::string& events, const RunResult* base,
                    const std::string& baseline_dir) {
  using rules::kGroupHoldout;
  using rules::kGroupTreated;
  Report rep;
  rep.analysis = "backtest";
  rep.figures.push_back({"rules", rules_dir});
  rep.figures.push_back(
      {"events", fmt::format("{} ({} replayed, {} rejected, {} outside --from/--to)", events,
                             run.applied, run.rejected, h.skipped_range)});
  if (!h.events.empty())
    rep.figures.push_back({"period", fmt::format("{} .. {}", format_iso8601(h.events.front().t),
                                                 format_iso8601(h.events.back().t))});
  rep.figures.push_back({"customers", std::to_string(h.customers.size())});
  rep.figures.push_back({"actions", std::to_string(run.actions.size())});
  rep.figures.push_back(
      {"sms peak per day",
       run.sms_peak_day ? fmt::format("{} on {}", run.sms_peak_day, run.sms_peak_date) : "0"});

  ReportTable t;
  t.name = "rules";
  t.title = "Per rule: decisions and deliveries";
  t.columns = {"rule", "evaluated", "matched",      "fired",    "pos",
               "web",  "sms",       "sms peak/day", "held out", "holdout %"};
  t.numeric = {false, true, true, true, true, true, true, true, true, true};
  for (const auto& r : run.rules)
    t.rows.push_back({r.name, std::to_string(r.evaluated), std::to_string(r.matched),
                      std::to_string(r.fired), std::to_string(r.fires[0]),
                      std::to_string(r.fires[1]), std::to_string(r.fires[2]),
                      std::to_string(r.sms_peak_day), std::to_string(r.held_out),
                      fmt::format("{:.1f}", r.holdout_percent)});
  rep.tables.push_back(std::move(t));

  ReportTable s;
  s.name = "suppressed";
  s.title = "Per rule: suppressed, by reason";
  s.columns = {"rule"};
  s.numeric = {false};
  for (std::size_t i = 0; i < rules::kSuppressionCount; ++i) {
    s.columns.emplace_back(rules::suppression_name(static_cast<rules::Suppression>(i)));
    s.numeric.push_back(true);
  }
  for (const auto& r : run.rules) {
    std::vector<std::string> row{r.name};
    for (auto v : r.suppressed) row.push_back(std::to_string(v));
    s.rows.push_back(std::move(row));
  }
  rep.tables.push_back(std::move(s));

  ReportTable o;
  o.name = "outcomes";
  o.title = "Per rule: orders within the attribution window (treated vs holdout)";
  o.columns = {"rule",      "contacts", "converted", "rate",      "revenue",     "holdout contacts",
               "converted", "rate",     "revenue",   "conv lift", "revenue lift"};
  o.numeric = {false, true, true, true, true, true, true, true, true, true, true};
  for (const auto& r : run.rules) {
    const auto& x = r.outcome;
    o.rows.push_back(
        {r.name, std::to_string(x.contacts[kGroupTreated]),
         std::to_string(x.converted[kGroupTreated]), analytics::fmt_percent(x.rate(kGroupTreated)),
         analytics::fmt_money(x.revenue[kGroupTreated]), std::to_string(x.contacts[kGroupHoldout]),
         std::to_string(x.converted[kGroupHoldout]), analytics::fmt_percent(x.rate(kGroupHoldout)),
         analytics::fmt_money(x.revenue[kGroupHoldout]), pct(x.conversion_lift()),
         pct(x.revenue_lift())});
  }
  rep.tables.push_back(std::move(o));

  if (base) {
    ReportTable d;
    d.name = "diff";
    d.title = "Against the baseline " + baseline_dir + " (current - baseline)";
    d.columns = {"rule", "status"};
    d.numeric = {false, false};
    for (const auto& f : kDiffFields) {
      d.columns.push_back(f.name);
      d.numeric.push_back(true);
    }
    for (const auto& name : diff_rule_names(run, *base)) {
      const RuleResult* a = find_rule(run, name);
      const RuleResult* b = find_rule(*base, name);
      std::vector<std::string> row{name, a && b ? "both" : a ? "added" : "removed"};
      for (const auto& f : kDiffFields) {
        const double x = a ? f.get(*a) : 0, y = b ? f.get(*b) : 0;
        row.push_back(fmt::format("{:.{}f} ({:+.{}f})", x, f.decimals, x - y, f.decimals));
      }
      d.rows.push_back(std::move(row));
    }
    rep.tables.push_back(std::move(d));
  }
  return rep;
}

struct Args {
  std::string rules_dir;
  std::string events;
  std::string from, to;
  bool json = false;
  bool actions = false;
  std::string html;
  std::string baseline;
  std::string config;
  int shards = 0;
};

int run_backtest(const Args& a) {
  try {
    if (a.rules_dir.empty()) throw BadArgs{"--rules DIR is required"};
    if (a.events.empty()) throw BadArgs{"--events FILE is required"};
    std::optional<TimeUs> from, to;
    if (!a.from.empty() && !(from = parse_iso8601(a.from)))
      throw BadArgs{fmt::format(
          "--from '{}': expected an ISO-8601 time such as 2026-11-01T00:00:00Z", a.from)};
    if (!a.to.empty() && !(to = parse_iso8601(a.to)))
      throw BadArgs{
          fmt::format("--to '{}': expected an ISO-8601 time such as 2026-11-30T23:59:59Z", a.to)};
    if (from && to && *from > *to) throw BadArgs{"--from is after --to"};
    engine::EngineOptions eopts;
    eopts.shards = 1;  // one event-time watermark for the whole history, as a live wall clock gives
    if (!a.config.empty()) {
      try {
        eopts = load_config(a.config).engine;
      } catch (const std::exception& e) {
        throw BadArgs{e.what()};
      }
    }
    if (a.shards > 0) eopts.shards = a.shards;
    if (!a.html.empty()) {
      std::ofstream probe(a.html, std::ios::app);
      if (!probe) throw BadArgs{fmt::format("--html {}: cannot write there", a.html)};
    }
    auto book = load_book(a.rules_dir, "--rules");
    if (!book) return 1;
    std::shared_ptr<rules::RuleBook> base_book;
    if (!a.baseline.empty()) {
      base_book = load_book(a.baseline, "--baseline");
      if (!base_book) return 1;
    }
    const History h = read_history(a.events, from, to);
    spdlog::set_level(spdlog::level::warn);  // the engine's start/stop lines are noise here
    const RunResult run = run_rules(book, h, eopts, to, "replaying " + a.rules_dir);
    std::optional<RunResult> base;
    if (base_book) base = run_rules(base_book, h, eopts, to, "replaying " + a.baseline);

    if (a.json) {
      std::string o = "{\"rules\":";
      protocol::append_json_string(o, a.rules_dir);
      o += ",\"events\":";
      protocol::append_json_string(o, a.events);
      o += fmt::format(
          ",\"lines\":{},\"replayed\":{},\"outsideRange\":{},\"customers\":{},\"from\":{},\"to\":{}"
          ",\"run\":",
          h.lines, h.events.size(), h.skipped_range, h.customers.size(),
          h.events.empty() ? "null" : "\"" + format_iso8601(h.events.front().t) + "\"",
          h.events.empty() ? "null" : "\"" + format_iso8601(h.events.back().t) + "\"");
      append_run_json(o, run);
      if (base) {
        o += ",\"baseline\":";
        append_run_json(o, *base);
        o += ",\"diff\":" + diff_json(run, *base);
      }
      if (a.actions) {
        o += ",\"actions\":[";
        for (std::size_t i = 0; i < run.actions.size(); ++i) {
          if (i) o.push_back(',');
          append_action_json(o, run.actions[i]);
        }
        o += "]";
      }
      std::cout << o << "}\n";
    } else {
      const Report rep =
          build_report(run, h, a.rules_dir, a.events, base ? &*base : nullptr, a.baseline);
      analytics::render_report(rep, analytics::OutputFormat::kTable, std::cout);
      if (a.actions) {
        std::cout << "\nActions (" << run.actions.size() << ")\n";
        for (const auto& act : run.actions) {
          std::string line;
          append_action_json(line, act);
          std::cout << line << '\n';
        }
      }
    }
    for (const auto& e : run.first_errors) std::cerr << "rejected during replay: " << e << '\n';
    if (!a.html.empty()) {
      analytics::HtmlReportInput in;
      in.title = "StorePulse backtest";
      in.source = a.events;
      in.extra.push_back(
          build_report(run, h, a.rules_dir, a.events, base ? &*base : nullptr, a.baseline));
      std::ofstream f(a.html, std::ios::trunc);
      f << analytics::render_html_report(in);
      if (!f) throw BadArgs{fmt::format("--html {}: write failed", a.html)};
    }
    return 0;
  } catch (const BadArgs& e) {
    std::cerr << "backtest: " << e.message << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "backtest: " << e.what() << '\n';
    return 2;
  }
}

}  // namespace

void register_backtest(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("backtest",
                                 "Replay recorded events through a rule set and report per rule");
  cmd->add_option("--rules", args->rules_dir, "rules folder to test");
  cmd->add_option("--events", args->events,
                  "NDJSON event history (as simulate writes and send reads; .gz too)");
  cmd->add_option("--from", args->from, "replay events at or after this time (ISO-8601)");
  cmd->add_option("--to", args->to, "replay events up to this time; timers due by then fire");
  cmd->add_flag("--json", args->json, "machine-readable JSON instead of tables");
  cmd->add_flag("--actions", args->actions,
                "also list every action: rule, channel, customer, event time, text");
  cmd->add_option("--html", args->html, "also write a self-contained HTML report here");
  cmd->add_option("--baseline", args->baseline,
                  "a second rules folder to compare against, per rule");
  cmd->add_option("--config", args->config,
                  "take [engine] settings (shards, limits) from this config file");
  cmd->add_option("--shards", args->shards, "engine shards (default 1, or the config's)");
  cmd->callback([args, &exit_code] { exit_code = run_backtest(*args); });
}

}  // namespace storepulse::cli
