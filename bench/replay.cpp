// bench/replay: the in-process figures of issue 8, without sockets.
//
//   replay --events FILE [--rules DIR] [--shards N] [--plain-journal] [--json]
//
// 1. peer 4, a bare loop: decode each NDJSON line with simdjson (on demand,
//    three fields) and update a hash map of per-customer counters. The lower
//    bound for "read the events and keep a running figure per customer".
// 2. storepulse: the same lines through the real pipeline minus the socket:
//    EventDecoder (full validation), Engine::submit on one engine core that is
//    this thread, as `storepulse backtest` runs it (dedupe, profile update,
//    rules, journal with fsync never), one reply per event. Measured as wall time and process CPU
//    time (events per CPU-second).
// 3. restart: a new Engine on the same data directory, twice: from the final
//    snapshot (a normal restart) and from the journal alone (snapshot removed),
//    as events replayed per second.
// 4. memory: resident set growth while the profiles were built, per profile
//    (from after start to after the queues drained, malloc_trim before each).
//
// Prints a table (or one JSON object with --json) with the ratios. Not a test:
// scripts/bench runs it; results go to docs/benchmarks.md.
#include <malloc.h>
#include <simdjson.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "storepulse/common/metrics.hpp"
#include "storepulse/common/time.hpp"
#include "storepulse/engine/engine.hpp"
#include "storepulse/protocol/codec.hpp"
#include "storepulse/rules/rule_set.hpp"

namespace fs = std::filesystem;
using namespace storepulse;

namespace {

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long pages_total = 0, pages_rss = 0;
  f >> pages_total >> pages_rss;
  return static_cast<double>(pages_rss) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class CountingReply final : public engine::ReplyTarget {
 public:
  void deliver(std::string message) override {
    if (message.find("\"type\":\"error\"") != std::string::npos)
      errors.fetch_add(1, std::memory_order_relaxed);
    replies.fetch_add(1, std::memory_order_release);
  }
  // As the WebSocket session on its own io thread: the ack is encoded into a
  // buffer that keeps its capacity (the session frames it into its outbox).
  void deliver_ack(std::string_view message_id) override {
    out_.clear();
    protocol::append_ack(out_, message_id);
    replies.fetch_add(1, std::memory_order_release);
  }
  std::atomic<std::uint64_t> replies{0};
  std::atomic<std::uint64_t> errors{0};

 private:
  std::string out_;
};

struct Lines {
  simdjson::padded_string buf;  // the whole file, padded for simdjson
  std::vector<std::string_view> lines;
};

Lines read_lines(const std::string& path) {
  Lines out;
  auto loaded = simdjson::padded_string::load(path);
  if (loaded.error()) {
    std::cerr << "replay: cannot read " << path << ": " << simdjson::error_message(loaded.error())
              << "\n";
    std::exit(2);
  }
  out.buf = std::move(loaded).value();
  std::string_view all(out.buf.data(), out.buf.size());
  while (!all.empty()) {
    auto nl = all.find('\n');
    auto line = all.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) out.lines.push_back(line);
    if (nl == std::string_view::npos) break;
    all.remove_prefix(nl + 1);
  }
  return out;
}

// --customers N: the events of N members made up here (no file: 10M events
// would be ~5 GB of NDJSON): an identify with traits, `per - 1` events mixing
// store and web (swipe, product views, add to cart, orders with three
// products from a 20-category, 2000-product catalogue), one day apart.
struct Synthetic {
  std::size_t customers = 0;
  int per = 10;
  // Returns event k (0-based) of customer c, in `out`.
  void make(std::size_t c, int k, std::string& out) const {
    const TimeUs day = kUsPerDay;
    const TimeUs base = wall_clock_us() - static_cast<TimeUs>(per + 2) * day;
    const TimeUs t =
        base + static_cast<TimeUs>(k) * day + static_cast<TimeUs>(c % 86'000) * kUsPerSecond;
    char ts[40];
    const std::string iso = format_iso8601(t);
    std::snprintf(ts, sizeof ts, "%s", iso.c_str());
    out.clear();
    const unsigned long cu = static_cast<unsigned long>(c);
    char buf[1024];
    if (k == 0) {
      std::snprintf(buf, sizeof buf,
                    "{\"type\":\"identify\",\"messageId\":\"s-%lu-0\",\"timestamp\":\"%s\","
                    "\"userId\":\"M%07lu\","
                    "\"context\":{\"channel\":\"pos\"},\"traits\":{\"firstName\":\"Name%lu\","
                    "\"lastName\":\"Family%lu\","
                    "\"birthday\":\"19%02lu-%02lu-%02lu\",\"phone\":\"+4477%08lu\",\"email\":\"m%"
                    "lu@example.com\","
                    "\"homeStore\":\"S%02lu\",\"smsOptIn\":%s}}",
                    cu, ts, cu, cu % 997, cu % 991, 50 + cu % 50, 1 + cu % 12, 1 + cu % 28, cu, cu,
                    cu % 6, cu % 3 ? "true" : "false");
      out = buf;
      return;
    }
    const unsigned long p1 = (cu * 7 + static_cast<unsigned long>(k) * 13) % 2000;
    const unsigned long p2 = (p1 + 101) % 2000, p3 = (p1 + 577) % 2000;
    switch (k % 5) {
      case 1:
        std::snprintf(
            buf, sizeof buf,
            "{\"type\":\"track\",\"messageId\":\"s-%lu-%d\",\"timestamp\":\"%s\",\"userId\":\"M%"
            "07lu\","
            "\"event\":\"Card Swiped\",\"context\":{\"channel\":\"pos\",\"storeId\":\"S%02lu\"},"
            "\"properties\":{}}",
            cu, k, ts, cu, cu % 6);
        break;
      case 2:
      case 3:
        std::snprintf(
            buf, sizeof buf,
            "{\"type\":\"track\",\"messageId\":\"s-%lu-%d\",\"timestamp\":\"%s\",\"userId\":\"M%"
            "07lu\","
            "\"event\":\"%s\",\"context\":{\"channel\":\"web\"},\"properties\":{\"productId\":\"P%"
            "04lu\","
            "\"name\":\"Product %lu\",\"category\":\"Cat%02lu\",\"price\":%lu.99,\"quantity\":1}}",
            cu, k, ts, cu, k % 5 == 2 ? "Product Viewed" : "Product Added", p1, p1, p1 % 20,
            5 + p1 % 40);
        break;
      default: {
        const unsigned long a = 5 + p1 % 40, b = 5 + p2 % 40, d = 5 + p3 % 40;
        std::snprintf(
            buf, sizeof buf,
            "{\"type\":\"track\",\"messageId\":\"s-%lu-%d\",\"timestamp\":\"%s\",\"userId\":\"M%"
            "07lu\","
            "\"event\":\"Order Completed\",\"context\":{\"channel\":\"%s\",\"storeId\":\"S%02lu\"},"
            "\"properties\":{\"orderId\":\"O%lu-%d\",\"currency\":\"EUR\",\"total\":%lu.00,"
            "\"products\":["
            "{\"productId\":\"P%04lu\",\"name\":\"Product "
            "%lu\",\"category\":\"Cat%02lu\",\"brand\":\"B%02lu\",\"quantity\":1,\"price\":%lu.00},"
            "{\"productId\":\"P%04lu\",\"name\":\"Product "
            "%lu\",\"category\":\"Cat%02lu\",\"brand\":\"B%02lu\",\"quantity\":1,\"price\":%lu.00},"
            "{\"productId\":\"P%04lu\",\"name\":\"Product "
            "%lu\",\"category\":\"Cat%02lu\",\"brand\":\"B%02lu\",\"quantity\":1,\"price\":%lu.00}]"
            "}}",
            cu, k, ts, cu, k % 2 ? "pos" : "web", cu % 6, cu, k, a + b + d, p1, p1, p1 % 20,
            p1 % 30, a, p2, p2, p2 % 20, p2 % 30, b, p3, p3, p3 % 20, p3 % 30, d);
        break;
      }
    }
    out = buf;
  }
};

struct PeerResult {
  double seconds = 0;
  std::size_t customers = 0;
  double checksum = 0;
};

// Peer 4. Each line is copied into a padded scratch buffer, as a socket
// reader would have it, then three fields are read and a map updated.
PeerResult run_peer(const Lines& in) {
  struct Agg {
    std::uint64_t events = 0;
    std::uint64_t orders = 0;
    double spend = 0;
  };
  std::unordered_map<std::string, Agg> map;
  simdjson::ondemand::parser parser;
  std::string scratch;
  PeerResult r;
  const double t0 = now_s();
  for (auto line : in.lines) {
    scratch.assign(line);
    scratch.append(simdjson::SIMDJSON_PADDING, '\0');
    auto doc = parser.iterate(scratch.data(), line.size(), scratch.size());
    if (doc.error()) continue;
    std::string_view user, event;
    double total = 0;
    for (auto field : doc.get_object()) {
      std::string_view key = field.unescaped_key().value_unsafe();
      if (key == "userId" || (user.empty() && key == "anonymousId")) {
        if (field.value().get_string().get(user)) user = {};
      } else if (key == "event") {
        if (field.value().get_string().get(event)) event = {};
      } else if (key == "properties") {
        auto props = field.value().get_object();
        for (auto pf : props) {
          if (pf.unescaped_key().value_unsafe() == "total" && pf.value().get_double().get(total))
            total = 0;
        }
      }
    }
    auto& a = map[std::string(user)];
    ++a.events;
    if (event == "Order Completed") {
      ++a.orders;
      a.spend += total;
    }
  }
  r.seconds = now_s() - t0;
  r.customers = map.size();
  for (const auto& [k, v] : map) r.checksum += v.spend;
  return r;
}

struct PipelineResult {
  double seconds = 0;
  double cpu = 0;
  std::uint64_t errors = 0;
  std::uint64_t decode_errors = 0;
  std::uint64_t refused = 0;
  std::size_t profiles = 0;
  double rss_growth = 0;
};

// `next(line)` fills `line` with the next NDJSON event and returns false at the end.
template <class Next>
PipelineResult run_pipeline(Next&& next, const engine::EngineOptions& opts,
                            std::shared_ptr<rules::RuleSet> rules) {
  PipelineResult r;
  Metrics metrics;
  engine::Engine eng(opts, rules, metrics);
  // Thread-per-core, as `storepulse backtest` runs: this thread is the engine's
  // only core, so every event is decoded, applied, committed and answered here,
  // in windows of kWindow, with no thread hand-off.
  eng.use_external_cores({[] {}});
  eng.start();
  eng.enter_core(0);
  constexpr std::size_t kWindow = 1024;
  std::size_t in_window = 0;
  // Baseline after start: the shards' fixed structures (queues, journal
  // buffers) are not per profile. Both readings return freed heap to the
  // system first, so what malloc merely kept does not count.
  ::malloc_trim(0);
  const double rss0 = rss_bytes();
  auto reply = std::make_shared<CountingReply>();
  protocol::EventDecoder decoder(opts.limits);
  protocol::Event ev;  // reused: submit swaps the pooled Work's strings back in
  std::string scratch;
  std::uint64_t submitted = 0;
  const double t0 = now_s();
  const double c0 = cpu_seconds();
  const TimeUs recv = wall_clock_us();
  {
    while (next(scratch)) {
      const std::size_t len = scratch.size();
      scratch.append(protocol::decode_padding(), '\0');
      if (!decoder.decode(std::string_view(scratch.data(), len), recv, ev).ok()) {
        ++r.decode_errors;
        continue;
      }
      // As the server's reader: the wire JSON stays in the reader's scratch (the
      // journal keeps the decoded event).
      if (!eng.submit(std::move(ev), std::string(), recv, reply).ok()) {
        ++r.refused;
        continue;
      }
      ++submitted;
      if (++in_window == kWindow) {
        eng.run_until_idle();
        in_window = 0;
      }
    }
  }
  eng.run_until_idle();
  if (reply->replies.load(std::memory_order_acquire) != submitted)
    std::cerr << "replay: " << submitted - reply->replies.load() << " events without a reply\n";
  r.seconds = now_s() - t0;
  r.cpu = cpu_seconds() - c0;
  r.errors = reply->errors.load();
  r.profiles = eng.profile_count();
  ::malloc_trim(0);  // the drained queue's Work items and the decode buffers are gone
  r.rss_growth = rss_bytes() - rss0;
  eng.enter_core(-1);
  eng.stop();
  return r;
}

// The decoder alone over the same lines (full validation, the reused Event), as
// the share of the pipeline that parsing takes: best of three passes.
double run_decode(const Lines& in, const protocol::DecodeLimits& limits) {
  protocol::EventDecoder decoder(limits);
  protocol::Event ev;
  std::string scratch;
  const TimeUs recv = wall_clock_us();
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    std::size_t ok = 0;
    const double t0 = now_s();
    for (const auto& line : in.lines) {
      scratch.assign(line);
      scratch.append(protocol::decode_padding(), '\0');
      if (decoder.decode(std::string_view(scratch.data(), line.size()), recv, ev).ok()) ++ok;
    }
    const double secs = now_s() - t0;
    if (ok == 0 || secs <= 0) return 0;
    best = std::max(best, static_cast<double>(in.lines.size()) / secs);
  }
  return best;
}

struct RestartResult {
  double seconds = 0;
  std::size_t profiles = 0;
};

RestartResult run_restart(const engine::EngineOptions& opts, std::shared_ptr<rules::RuleSet> rules,
                          bool drop_snapshots) {
  if (drop_snapshots) {
    for (auto& e : fs::recursive_directory_iterator(opts.data_dir)) {
      const auto name = e.path().filename().string();
      if (e.is_regular_file() && name.find("snapshot") != std::string::npos) fs::remove(e.path());
    }
  }
  Metrics metrics;
  engine::Engine eng(opts, rules, metrics);
  const double t0 = now_s();
  eng.start();
  RestartResult r;
  r.seconds = now_s() - t0;
  r.profiles = eng.profile_count();
  eng.stop();
  return r;
}

}  // namespace

constexpr const char* kUsage =
    "usage: replay (--events FILE | --customers N [--per-customer K]) [--rules DIR] [--shards N] "
    "[--plain-journal] [--json]\n";

int main(int argc, char** argv) {
  std::string events, rules_dir = "rules";
  int shards = 1;
  Synthetic synth;
  bool json = false;
  bool plain_journal = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "replay: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--events")
      events = next();
    else if (a == "--customers")
      synth.customers = std::stoul(next());
    else if (a == "--per-customer")
      synth.per = std::stoi(next());
    else if (a == "--rules")
      rules_dir = next();
    else if (a == "--shards")
      shards = std::stoi(next());
    else if (a == "--plain-journal")
      plain_journal = true;
    else if (a == "--json")
      json = true;
    else {
      std::cerr << kUsage;
      return 2;
    }
  }
  if (events.empty() == (synth.customers == 0) || shards < 1 || synth.per < 1 || synth.per > 1000) {
    std::cerr << kUsage;
    return 2;
  }

  std::vector<std::string> notes;
  std::shared_ptr<rules::RuleSet> rules;
  try {
    rules = rules::load_rule_set(rules_dir, notes);
  } catch (const std::exception& e) {
    std::cerr << "replay: rules: " << e.what() << "\n";
    return 1;
  }

  const fs::path dir =
      fs::temp_directory_path() / ("storepulse-replay-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  engine::EngineOptions opts;
  opts.shards = shards;
  opts.data_dir = dir.string();
  opts.fsync = store::FsyncPolicy::kNever;
  opts.seal_records = !plain_journal;               // privacy.encrypt_journal (on by default)
  opts.snapshot_interval_us = 3600 * kUsPerSecond;  // only the final one, at stop()
  opts.limits.max_past_us = 36500LL * kUsPerDay;    // history files may be old
  opts.limits.max_future_us = 36500LL * kUsPerDay;

  Lines in;
  PeerResult peer;
  PipelineResult pipe;
  double decode_rate = 0;  // events/s, the decoder alone (file input only)
  std::size_t n_events = 0;
  if (!events.empty()) {
    in = read_lines(events);
    if (in.lines.empty()) {
      std::cerr << "replay: " << events << " has no events\n";
      return 2;
    }
    n_events = in.lines.size();
    peer = run_peer(in);
    decode_rate = run_decode(in, opts.limits);
    std::size_t at = 0;
    pipe = run_pipeline(
        [&](std::string& line) {
          if (at == in.lines.size()) return false;
          line.assign(in.lines[at++]);
          return true;
        },
        opts, rules);
  } else {
    // Time-major: day k of every customer, then day k + 1, so event time only
    // moves forward (within a day, customers are spread over the seconds).
    std::size_t c = 0;
    int k = 0;
    n_events = synth.customers * static_cast<std::size_t>(synth.per);
    pipe = run_pipeline(
        [&](std::string& line) {
          if (k == synth.per) return false;
          synth.make(c, k, line);
          if (++c == synth.customers) c = 0, ++k;
          return true;
        },
        opts, rules);
  }
  const RestartResult snap = run_restart(opts, rules, false);
  const RestartResult journal = run_restart(opts, rules, true);
  fs::remove_all(dir);

  const double n = static_cast<double>(n_events);
  const double peer_rate = peer.seconds > 0 ? n / peer.seconds : 0;
  const double pipe_rate = n / pipe.seconds;
  const double pipe_cpu_rate = n / pipe.cpu;
  const double per_profile =
      pipe.profiles ? pipe.rss_growth / static_cast<double>(pipe.profiles) : 0;
  const double journal_rate = n / journal.seconds;
  const double time_ratio = peer.seconds > 0 ? pipe.seconds / peer.seconds : 0;
  if (json) {
    std::printf(
        "{\"events\":%zu,\"source\":\"%s\",\"shards\":%d,\"peer4\":{\"seconds\":%.4f,"
        "\"eventsPerSecond\":%.0f,"
        "\"customers\":%zu},\"decoderEventsPerSecond\":%.0f,\"storepulse\":{\"seconds\":%.4f,"
        "\"cpuSeconds\":%.4f,"
        "\"eventsPerSecond\":%.0f,"
        "\"eventsPerCpuSecond\":%.0f,\"errors\":%llu,\"decodeErrors\":%llu,\"refused\":%llu,"
        "\"profiles\":%zu,"
        "\"rssGrowthBytes\":%.0f,\"bytesPerProfile\":%.0f},\"timeRatio\":%.3f,"
        "\"restartFromSnapshot\":{\"seconds\":%.4f,\"profiles\":%zu},"
        "\"restartFromJournal\":{\"seconds\":%.4f,\"profiles\":%zu,\"eventsPerSecond\":%.0f}}\n",
        n_events, events.empty() ? "synthetic" : "file", shards, peer.seconds, peer_rate,
        peer.customers, decode_rate, pipe.seconds, pipe.cpu, pipe_rate, pipe_cpu_rate,
        static_cast<unsigned long long>(pipe.errors),
        static_cast<unsigned long long>(pipe.decode_errors),
        static_cast<unsigned long long>(pipe.refused), pipe.profiles, pipe.rss_growth, per_profile,
        time_ratio, snap.seconds, snap.profiles, journal.seconds, journal.profiles, journal_rate);
    return 0;
  }
  std::printf("events %zu (%s), shards %d\n", n_events,
              events.empty() ? "synthetic" : events.c_str(), shards);
  std::printf("%-44s %12s %14s\n", "", "events/s", "vs peer 4");
  if (peer.seconds > 0)
    std::printf("%-44s %12.0f %14s\n", "peer 4: simdjson + hash map (1 thread)", peer_rate,
                "1.00x");
  std::printf("%-44s %12.0f %13.2fx\n", "storepulse in-process pipeline (wall)", pipe_rate,
              peer_rate > 0 ? pipe_rate / peer_rate : 0);
  std::printf("%-44s %12.0f %13.2fx\n", "storepulse per CPU-second (all threads)", pipe_cpu_rate,
              peer_rate > 0 ? pipe_cpu_rate / peer_rate : 0);
  if (peer.seconds > 0)
    std::printf("%-44s %12s %13.2fx\n", "storepulse time / peer 4 time", "", time_ratio);
  if (decode_rate > 0)
    std::printf("%-44s %12.0f %13.2fx\n", "storepulse decoder alone (best of 3)", decode_rate,
                peer_rate > 0 ? decode_rate / peer_rate : 0);
  std::printf("errors %llu, decode errors %llu, refused %llu\n",
              static_cast<unsigned long long>(pipe.errors),
              static_cast<unsigned long long>(pipe.decode_errors),
              static_cast<unsigned long long>(pipe.refused));
  std::printf(
      "memory: %zu profiles, RSS growth %.1f MiB, %.0f bytes per profile (incl. recent events, "
      "dedupe window)\n",
      pipe.profiles, pipe.rss_growth / 1048576.0, per_profile);
  std::printf("restart from snapshot: %.3f s (%zu profiles)\n", snap.seconds, snap.profiles);
  std::printf("restart from journal only: %.3f s, %.0f events/s replayed\n", journal.seconds,
              journal_rate);
  return 0;
}
