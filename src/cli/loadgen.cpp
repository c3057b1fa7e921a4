// storepulse loadgen: an open-loop WebSocket load generator for the server and
// for the benchmark peers (which echo or answer with the same messageId).
//
// Open loop: each connection sends on a fixed schedule whether or not replies
// came back, and an event's latency is measured from the time it was *meant*
// to be sent. A closed-loop client (send, wait, send) slows down when the
// server stalls and so never records the stall's effect on the events that
// should have been sent meanwhile (coordinated omission); this one does.
// The closed-loop mode (--closed-loop --in-flight N) exists to find the maximum
// rate, not to report latency.
#include "cli/loadgen.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <bit>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <deque>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "cli/ws_client.hpp"
#include "storepulse/analytics/simulator.hpp"
#include "storepulse/cli/commands.hpp"
#include "storepulse/common/time.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::cli {

// ---------------------------------------------------------------- histogram

LatencyHistogram::LatencyHistogram() : counts_(index_of(UINT64_MAX) + 1, 0) {}

std::size_t LatencyHistogram::index_of(std::uint64_t value) {
  if (value < kSubCount) return static_cast<std::size_t>(value);
  const int msb = std::bit_width(value) - 1;  // >= kSubBits
  const int shift = msb - kSubBits;
  const std::uint64_t sub = (value >> shift) - kSubCount;  // the kSubBits bits below the leading 1
  return static_cast<std::size_t>(kSubCount + static_cast<std::uint64_t>(shift) * kSubCount + sub);
}

std::uint64_t LatencyHistogram::lowest_equivalent(std::size_t index) {
  if (index < kSubCount) return index;
  const std::uint64_t shift = (index - kSubCount) / kSubCount;
  const std::uint64_t sub = (index - kSubCount) % kSubCount;
  return (kSubCount + sub) << shift;
}

std::uint64_t LatencyHistogram::highest_equivalent(std::size_t index) {
  if (index < kSubCount) return index;
  const std::uint64_t shift = (index - kSubCount) / kSubCount;
  return lowest_equivalent(index) + ((std::uint64_t{1} << shift) - 1);
}

void LatencyHistogram::record(std::uint64_t value, std::uint64_t count) {
  if (count == 0) return;
  counts_[index_of(value)] += count;
  total_ += count;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<double>(value) * static_cast<double>(count);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

std::uint64_t LatencyHistogram::quantile(double q) const {
  if (total_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(highest_equivalent(i), max_);
  }
  return max_;
}

// ---------------------------------------------------------------- report

std::uint64_t LoadgenReport::error_count() const {
  std::uint64_t n = 0;
  for (const auto& [code, c] : errors) n += c;
  return n;
}

namespace {
double us(std::uint64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}
}  // namespace

std::string LoadgenReport::to_json() const {
  std::string errs;
  for (const auto& [code, n] : errors)
    errs += fmt::format("{}\"{}\":{}", errs.empty() ? "" : ",", code, n);
  std::string cpu = "null", per_cpu = "null";
  if (server_cpu_s >= 0) {
    cpu = fmt::format("{:.3f}", server_cpu_s);
    if (server_cpu_s > 0)
      per_cpu = fmt::format("{:.0f}", static_cast<double>(replies) / server_cpu_s);
  }
  const auto& h = latency_ns;
  return fmt::format(
      R"({{"mode":"{}","targetRate":{:.0f},"connections":{},"elapsedS":{:.3f},"sent":{},"replies":{},"ok":{},)"
      R"("actions":{},"errors":{{{}}},"errorCount":{},"timeouts":{},"unmatched":{},"throughput":{:.1f},)"
      R"("latencyUs":{{"p50":{:.1f},"p90":{:.1f},"p99":{:.1f},"p999":{:.1f},"max":{:.1f},"mean":{:.1f}}},)"
      R"("serverCpuS":{},"eventsPerServerCpuS":{}}})",
      mode, target_rate, connections, elapsed_s, sent, replies, ok, actions, errs, error_count(),
      timeouts, unmatched, throughput(), us(h.quantile(0.5)), us(h.quantile(0.9)),
      us(h.quantile(0.99)), us(h.quantile(0.999)), us(h.max()), h.mean() / 1000.0, cpu, per_cpu);
}

std::string LoadgenReport::to_text() const {
  std::string out = fmt::format(
      "loadgen: {} loop, {} connections{}\n"
      "sent {}  replies {}  ok {} (actions {})  errors {}  timeouts {}  unmatched {}\n"
      "throughput {:.1f} events/s over {:.2f} s\n",
      mode, connections, mode == "open" ? fmt::format(", target {:.0f} events/s", target_rate) : "",
      sent, replies, ok, actions, error_count(), timeouts, unmatched, throughput(), elapsed_s);
  const auto& h = latency_ns;
  out += fmt::format(
      "latency µs{}: p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  p99.9 {:.1f}  max {:.1f}  mean {:.1f}\n",
      mode == "open" ? " (from intended send time)" : "", us(h.quantile(0.5)), us(h.quantile(0.9)),
      us(h.quantile(0.99)), us(h.quantile(0.999)), us(h.max()), h.mean() / 1000.0);
  if (!errors.empty()) {
    out += "errors:";
    for (const auto& [code, n] : errors) out += fmt::format(" {} {}", code, n);
    out += "\n";
  }
  if (server_cpu_s >= 0)
    out += fmt::format("server cpu {:.2f} s ({:.0f} events per server cpu-second)\n", server_cpu_s,
                       server_cpu_s > 0 ? static_cast<double>(replies) / server_cpu_s : 0.0);
  return out;
}

double process_cpu_seconds(int pid) {
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  if (!f || !std::getline(f, stat)) return -1;
  // The command name (field 2) may contain spaces: fields are counted after its ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::vector<std::pair<std::string, double>> parse_mix(const std::string& mix) {
  std::vector<std::pair<std::string, double>> out;
  double sum = 0;
  std::stringstream ss(mix);
  std::string part;
  while (std::getline(ss, part, ',')) {
    const auto eq = part.find('=');
    if (eq == std::string::npos)
      throw std::runtime_error(fmt::format("--mix: expected NAME=SHARE, got '{}'", part));
    const std::string name = part.substr(0, eq);
    if (name != "pos" && name != "web")
      throw std::runtime_error(fmt::format("--mix: unknown endpoint '{}' (pos, web)", name));
    double share = 0;
    try {
      share = std::stod(part.substr(eq + 1));
    } catch (const std::exception&) {
      throw std::runtime_error(fmt::format("--mix: '{}' is not a number", part.substr(eq + 1)));
    }
    if (share < 0) throw std::runtime_error(fmt::format("--mix: negative share for {}", name));
    out.emplace_back("/v1/" + name, share);
    sum += share;
  }
  if (out.empty() || sum <= 0) throw std::runtime_error("--mix: no positive share");
  for (auto& [path, share] : out) share /= sum;
  return out;
}

// ---------------------------------------------------------------- the run

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using Clock = std::chrono::steady_clock;

/// An event split around its messageId value, so each send can put a fresh
/// id in without re-encoding: the server de-duplicates by messageId, and a
/// repeated id would be acked without being applied (not the work we measure).
struct MessageTemplate {
  std::string head;  // up to and including `"messageId":"`
  std::string tail;  // from the closing quote on
};

MessageTemplate split_message(const std::string& json) {
  static constexpr std::string_view kKey = R"("messageId":")";
  const auto at = json.find(kKey);
  if (at != std::string::npos) {
    const auto value = at + kKey.size();
    const auto end = json.find('"', value);
    if (end != std::string::npos) return {json.substr(0, value), json.substr(end)};
  }
  const auto brace = json.find('{');
  if (brace == std::string::npos)
    throw std::runtime_error(fmt::format("not a JSON object: {}", json.substr(0, 80)));
  std::string rest = json.substr(brace + 1);
  const bool empty_object = rest.find_first_not_of(" \t}") == std::string::npos;
  return {json.substr(0, brace + 1) + std::string(kKey), empty_object ? "\"}" : "\"," + rest};
}

std::vector<std::string> load_events(const LoadgenOptions& o) {
  std::vector<std::string> lines;
  if (!o.events_file.empty()) {
    std::ifstream in(o.events_file);
    if (!in) throw std::runtime_error(fmt::format("{}: cannot open", o.events_file));
    std::string line;
    while (std::getline(in, line))
      if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(std::move(line));
    if (lines.empty()) throw std::runtime_error(fmt::format("{}: no events", o.events_file));
  } else if (o.simulate_customers > 0) {
    analytics::SimulatorConfig cfg;
    cfg.customers = o.simulate_customers;
    analytics::ShopperSimulator sim(cfg);
    protocol::Event ev;
    // Bounded: the templates cycle, so a long run does not need a long file.
    constexpr std::size_t kMaxSimulated = 1'000'000;
    while (lines.size() < kMaxSimulated && sim.next(ev))
      lines.push_back(protocol::encode_event(ev));
  } else {
    // The POS hot path: a card swipe for one of N members.
    for (int i = 0; i < std::max(1, o.swipe_customers); ++i)
      lines.push_back(fmt::format(
          R"({{"type":"track","event":"Card Swiped","messageId":"x","userId":"C{}","context":{{"storeId":"S{}","terminalId":"T{}"}}}})",
          i, i % 6, i % 40));
  }
  return lines;
}

struct GroupStats {
  std::uint64_t sent = 0, replies = 0, ok = 0, actions = 0, unmatched = 0, timeouts = 0;
  std::map<std::string, std::uint64_t> errors;
  LatencyHistogram latency_ns;
  std::int64_t last_reply_ns = 0;
};

class Group;

/// One WebSocket connection. Owned by its Group; all calls on the group's
/// io thread.
class Connection {
 public:
  Connection(asio::io_context& ioc, Group& group, std::string id_prefix,
             const std::vector<MessageTemplate>& templates, std::size_t first_template)
      : ws_(ioc),
        timer_(ioc),
        group_(group),
        id_prefix_(std::move(id_prefix)),
        templates_(templates),
        next_template_(first_template % templates.size()) {}

  void connect(const std::string& url, const std::string& key) {
    ws_connect(ws_, url, key);
    ws_.next_layer().set_option(asio::ip::tcp::no_delay(true));
    ws_.read_message_max(64 << 20);
  }

  /// Open loop: event k is due at first_ns + k * interval_ns, until end_ns.
  void start_open(std::int64_t first_ns, double interval_ns, std::int64_t end_ns);
  /// Closed loop: keep `in_flight` events outstanding until end_ns.
  void start_closed(int in_flight, std::int64_t end_ns);

  bool done() const { return failed_ || (sending_done_ && outstanding_ == 0); }
  /// Abandons outstanding events (counted as timeouts) and closes the socket.
  void abort();

 private:
  void on_tick();
  void send_one(std::int64_t intended_ns);
  void write_next();
  void read_next();
  void on_reply(std::string_view reply);
  void fail();

  websocket::stream<asio::ip::tcp::socket> ws_;
  asio::steady_timer timer_;
  Group& group_;
  std::string id_prefix_;
  const std::vector<MessageTemplate>& templates_;
  std::size_t next_template_;
  beast::flat_buffer read_buf_;
  std::deque<std::string> out_;
  bool writing_ = false;
  bool failed_ = false;
  bool closed_ = false;
  bool sending_done_ = false;
  bool closed_loop_ = false;
  // Intended send time of each event by sequence number; -1 once answered.
  // Ids are "<run>-<conn>-<seq>", so a reply finds its slot without a map.
  std::vector<std::int64_t> intended_ns_;
  std::uint64_t outstanding_ = 0;
  std::int64_t first_ns_ = 0, end_ns_ = 0;
  double interval_ns_ = 0;
  std::uint64_t scheduled_ = 0;  // open loop: events already due and sent
};

/// The connections served by one io thread, and their figures.
class Group {
 public:
  asio::io_context ioc;
  std::vector<std::unique_ptr<Connection>> connections;
  GroupStats stats;

  void check_done() {
    for (const auto& c : connections)
      if (!c->done()) return;
    ioc.stop();
  }
};

void Connection::start_open(std::int64_t first_ns, double interval_ns, std::int64_t end_ns) {
  first_ns_ = first_ns;
  interval_ns_ = interval_ns;
  end_ns_ = end_ns;
  read_next();
  timer_.expires_at(Clock::time_point(std::chrono::nanoseconds(first_ns_)));
  timer_.async_wait([this](beast::error_code ec) {
    if (!ec) on_tick();
  });
}

void Connection::start_closed(int in_flight, std::int64_t end_ns) {
  closed_loop_ = true;
  end_ns_ = end_ns;
  read_next();
  const std::int64_t now = mono_ns();
  for (int i = 0; i < in_flight; ++i) send_one(now);
}

void Connection::on_tick() {
  if (failed_) return;
  const std::int64_t now = mono_ns();
  // Everything due by now goes out now, late ones included: their latency
  // still counts from when they were due.
  for (;;) {
    const auto due =
        first_ns_ + static_cast<std::int64_t>(static_cast<double>(scheduled_) * interval_ns_);
    if (due >= end_ns_) {
      sending_done_ = true;
      group_.check_done();
      return;
    }
    if (due > now) {
      timer_.expires_at(Clock::time_point(std::chrono::nanoseconds(due)));
      timer_.async_wait([this](beast::error_code ec) {
        if (!ec) on_tick();
      });
      return;
    }
    ++scheduled_;
    send_one(due);
  }
}

void Connection::send_one(std::int64_t intended_ns) {
  const auto& t = templates_[next_template_];
  next_template_ = next_template_ + 1 == templates_.size() ? 0 : next_template_ + 1;
  std::string msg;
  msg.reserve(t.head.size() + id_prefix_.size() + 20 + t.tail.size());
  msg += t.head;
  msg += id_prefix_;
  char digits[24];
  const auto r = std::to_chars(digits, digits + sizeof digits, intended_ns_.size());
  msg.append(digits, r.ptr);
  msg += t.tail;
  intended_ns_.push_back(intended_ns);
  ++outstanding_;
  ++group_.stats.sent;
  out_.push_back(std::move(msg));
  if (!writing_) write_next();
}

void Connection::write_next() {
  writing_ = true;
  ws_.async_write(asio::buffer(out_.front()), [this](beast::error_code ec, std::size_t) {
    if (closed_) return;
    out_.pop_front();
    if (ec) return fail();
    if (out_.empty())
      writing_ = false;
    else
      write_next();
  });
}

void Connection::read_next() {
  ws_.async_read(read_buf_, [this](beast::error_code ec, std::size_t) {
    if (closed_) return;
    if (ec) return fail();
    const auto data = read_buf_.cdata();
    on_reply(std::string_view(static_cast<const char*>(data.data()), data.size()));
    read_buf_.consume(read_buf_.size());
    if (!done())
      read_next();
    else
      group_.check_done();
  });
}

std::string_view string_field(std::string_view json, std::string_view quoted_key) {
  const auto at = json.find(quoted_key);
  if (at == std::string_view::npos) return {};
  const auto value = at + quoted_key.size();
  const auto end = json.find('"', value);
  return end == std::string_view::npos ? std::string_view{} : json.substr(value, end - value);
}

void Connection::on_reply(std::string_view reply) {
  const std::int64_t now = mono_ns();
  auto& st = group_.stats;
  // Replies start with their type (docs/protocol.md); an echo peer sends the
  // event back, whose type is the event's and counts as a success.
  const std::string_view type = string_field(reply.substr(0, 32), R"("type":")");
  if (type == "push") return;  // unsolicited (timer nudges on /v1/web): not an answer to a send
  const bool is_error = type == "error";
  if (is_error) ++st.errors[std::string(string_field(reply, R"("code":")"))];
  const std::string_view id = string_field(reply, R"("messageId":")");
  std::uint64_t seq = 0;
  if (id.size() <= id_prefix_.size() || id.substr(0, id_prefix_.size()) != id_prefix_ ||
      std::from_chars(id.data() + id_prefix_.size(), id.data() + id.size(), seq).ec !=
          std::errc{} ||
      seq >= intended_ns_.size() || intended_ns_[seq] < 0) {
    ++st.unmatched;
    // An error sent before the server could read the id (rate_limited on
    // /v1/web, bad_json) answers one of our events, we cannot tell which: it
    // is not a timeout, so it is not counted twice.
    if (is_error && outstanding_ > 0) {
      --outstanding_;
      if (closed_loop_ && now < end_ns_) send_one(now);
    }
    return;
  }
  st.latency_ns.record(
      static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - intended_ns_[seq])));
  intended_ns_[seq] = -1;
  --outstanding_;
  ++st.replies;
  st.last_reply_ns = std::max(st.last_reply_ns, now);
  if (!is_error) {
    ++st.ok;
    if (type == "actions") ++st.actions;
  }
  if (closed_loop_) {
    if (now < end_ns_)
      send_one(now);
    else
      sending_done_ = true;
  }
}

void Connection::fail() {
  if (failed_) return;
  failed_ = true;
  group_.check_done();
}

void Connection::abort() {
  if (closed_) return;
  closed_ = true;
  group_.stats.timeouts += outstanding_;
  outstanding_ = 0;
  beast::error_code ec;
  timer_.cancel();
  ws_.next_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  ws_.next_layer().close(ec);
}

}  // namespace

LoadgenReport run_loadgen(const LoadgenOptions& o) {
  if (o.connections < 1) throw std::runtime_error("--connections must be at least 1");
  if (!o.closed_loop && o.rate <= 0) throw std::runtime_error("--rate must be positive");
  const std::vector<std::string> lines = load_events(o);

  // Endpoints: the URL's own path, or one per --mix share.
  std::vector<std::pair<std::string, double>> endpoints;
  const WsUrl base = parse_ws_url(o.url);
  // A load generator measures the server; TLS would measure OpenSSL on the
  // same two cores. Terminate TLS in front of a benchmark target instead.
  if (base.tls)
    throw std::runtime_error("--url: loadgen speaks ws:// only (wss:// is for send and demo-feed)");
  if (o.mix.empty())
    endpoints.emplace_back(base.path, 1.0);
  else
    endpoints = parse_mix(o.mix);
  // Web connections get the web events (the web endpoint refuses channel pos).
  auto templates_for = [&](const std::string& path) {
    std::vector<MessageTemplate> t;
    const bool web = path == "/v1/web";
    for (const auto& l : lines) {
      const bool is_web = l.find(R"("channel":"web")") != std::string::npos;
      if (o.mix.empty() || is_web == web) t.push_back(split_message(l));
    }
    if (t.empty())
      for (const auto& l : lines)
        if (!web || l.find(R"("channel":"pos")") == std::string::npos)
          t.push_back(split_message(l));
    if (t.empty()) throw std::runtime_error(fmt::format("no events fit {}", path));
    return t;
  };
  std::vector<std::vector<MessageTemplate>> templates;
  std::vector<std::size_t> endpoint_of(static_cast<std::size_t>(o.connections), 0);
  {
    std::size_t c = 0;
    double cumulative = 0;
    for (std::size_t e = 0; e < endpoints.size(); ++e) {
      templates.push_back(templates_for(endpoints[e].first));
      cumulative += endpoints[e].second;
      const auto upto = e + 1 == endpoints.size()
                            ? endpoint_of.size()
                            : static_cast<std::size_t>(std::lround(cumulative * o.connections));
      for (; c < upto && c < endpoint_of.size(); ++c) endpoint_of[c] = e;
    }
  }

  // A run id keeps messageIds unique across runs against the same data dir.
  std::random_device rd;
  const std::string run_id = fmt::format("lg{:x}{:04x}", wall_clock_us() / 1000000, rd() & 0xffff);

  const int threads = std::clamp(o.threads, 1, o.connections);
  std::vector<std::unique_ptr<Group>> groups;
  for (int g = 0; g < threads; ++g) groups.push_back(std::make_unique<Group>());
  for (int c = 0; c < o.connections; ++c) {
    auto& g = *groups[static_cast<std::size_t>(c % threads)];
    const auto e = endpoint_of[static_cast<std::size_t>(c)];
    const auto& t = templates[e];
    auto conn = std::make_unique<Connection>(
        g.ioc, g, fmt::format("{}-{}-", run_id, c), t,
        t.size() * static_cast<std::size_t>(c) / static_cast<std::size_t>(o.connections));
    const std::string url = fmt::format("ws://{}:{}{}", base.host, base.port, endpoints[e].first);
    conn->connect(url, o.key);
    g.connections.push_back(std::move(conn));
  }

  const double cpu0 = o.server_pid > 0 ? process_cpu_seconds(o.server_pid) : -1;
  // Start a little ahead so every connection's first send is on schedule.
  const std::int64_t t0 = mono_ns() + 2'000'000;
  const std::int64_t end = t0 + static_cast<std::int64_t>(o.duration_s * 1e9);
  const double interval_ns = 1e9 * o.connections / std::max(o.rate, 1e-9);
  {
    int c = 0;
    for (int i = 0; i < o.connections; ++i) {
      auto& conn = *groups[static_cast<std::size_t>(i % threads)]
                        ->connections[static_cast<std::size_t>(i / threads)];
      if (o.closed_loop)
        conn.start_closed(std::max(1, o.in_flight), end);
      else
        conn.start_open(t0 + static_cast<std::int64_t>(1e9 * c / o.rate), interval_ns, end);
      ++c;
    }
  }
  std::vector<std::thread> workers;
  for (auto& g : groups)
    workers.emplace_back([&g, end, drain = o.drain_s] {
      // The drain deadline: replies that have not come back by then are timeouts.
      asio::steady_timer deadline(
          g->ioc, Clock::time_point(std::chrono::nanoseconds(end)) +
                      std::chrono::nanoseconds(static_cast<std::int64_t>(drain * 1e9)));
      deadline.async_wait([&g](beast::error_code ec) {
        if (!ec) g->ioc.stop();
      });
      g->ioc.run();
      deadline.cancel();
    });
  for (auto& w : workers) w.join();
  const double cpu1 = o.server_pid > 0 ? process_cpu_seconds(o.server_pid) : -1;

  LoadgenReport report;
  report.mode = o.closed_loop ? "closed" : "open";
  report.target_rate = o.closed_loop ? 0 : o.rate;
  report.connections = o.connections;
  std::int64_t last_reply = t0;
  for (auto& g : groups) {
    for (auto& c : g->connections) c->abort();
    // Let the aborted operations finish (they see closed_ and do nothing).
    g->ioc.restart();
    g->ioc.poll();
    auto& s = g->stats;
    report.sent += s.sent;
    report.replies += s.replies;
    report.ok += s.ok;
    report.actions += s.actions;
    report.unmatched += s.unmatched;
    report.timeouts += s.timeouts;
    for (const auto& [code, n] : s.errors) report.errors[code] += n;
    report.latency_ns.merge(s.latency_ns);
    last_reply = std::max(last_reply, s.last_reply_ns);
  }
  report.elapsed_s = static_cast<double>(last_reply - t0) / 1e9;
  if (cpu0 >= 0 && cpu1 >= 0) report.server_cpu_s = cpu1 - cpu0;
  return report;
}

void register_loadgen(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<LoadgenOptions>();
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand(
      "loadgen", "Open-loop WebSocket load generator (coordinated-omission corrected latency)");
  cmd->add_option("--url", o->url, "ws://HOST:PORT/v1/pos (or a peer's URL)")->required();
  cmd->add_option("--key", o->key, "Terminal key (Bearer) for /v1/pos")
      ->envname("STOREPULSE_POS_KEY");
  cmd->add_option("--rate", o->rate, "Events per second over all connections (open loop)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e8));
  cmd->add_option("--duration", o->duration_s, "Seconds of sending")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 86400.0));
  cmd->add_option("--connections", o->connections, "WebSocket connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--threads", o->threads, "Client io threads (connection i on thread i % T)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  auto* events = cmd->add_option("--events", o->events_file,
                                 "NDJSON events to send (cycled; messageIds rewritten)");
  auto* sim =
      cmd->add_option("--simulate", o->simulate_customers, "Send simulated shoppers (N members)")
          ->check(CLI::Range(1, 10'000'000));
  events->excludes(sim);
  cmd->add_option("--swipe-customers", o->swipe_customers,
                  "Default source: Card Swiped for N members")
      ->capture_default_str();
  cmd->add_option("--mix", o->mix, "Share of connections per endpoint, e.g. pos=0.8,web=0.2");
  cmd->add_flag("--closed-loop", o->closed_loop,
                "Keep --in-flight events outstanding per connection (finds the maximum)");
  cmd->add_option("--in-flight", o->in_flight, "Closed loop: events outstanding per connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--drain", o->drain_s, "Seconds to wait for the last replies")
      ->capture_default_str();
  cmd->add_option("--server-pid", o->server_pid,
                  "Report this process's CPU time (utime+stime) over the run");
  cmd->add_flag("--json", *json, "One JSON object instead of text");
  cmd->callback([o, json, &exit_code] {
    try {
      const LoadgenReport r = run_loadgen(*o);
      fmt::print("{}\n", *json ? r.to_json() : r.to_text());
      exit_code = r.error_count() + r.timeouts == 0 && r.replies > 0 ? 0 : 1;
    } catch (const std::exception& e) {
      fmt::print(stderr, "storepulse loadgen: {}\n", e.what());
      exit_code = 2;
    }
  });
}

}  // namespace storepulse::cli
