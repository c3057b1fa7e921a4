// storepulse demo-feed: streams an NDJSON file into a running server at a
// steady rate and prints one live line per second (events/s, acks, actions,
// errors). `--loop` replays the file forever with fresh messageIds.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/ws_client.hpp"
#include "storepulse/cli/commands.hpp"
#include "storepulse/common/time.hpp"

namespace storepulse::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

struct FeedFlags {
  std::string url;
  std::string key;
  std::string ca;  // wss://: trust only this CA / certificate file (default: the system store)
  std::string file;
  std::string metrics;  // shown in the first line, for the operator
  double rate = 2000;
  bool loop = false;
  int window = 256;
};

int feed(const FeedFlags& f) {
  std::vector<std::string> lines;
  {
    std::ifstream in(f.file);
    if (!in) throw std::runtime_error(fmt::format("{}: cannot open", f.file));
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) lines.push_back(std::move(line));
  }
  if (lines.empty()) throw std::runtime_error(fmt::format("{}: no events", f.file));
  WsConn ws(f.url, f.key, f.ca);
  fmt::print("demo-feed: {} events from {} at {:.0f}/s{}; metrics at {}\n", lines.size(), f.file,
             f.rate, f.loop ? ", looping" : "", f.metrics.empty() ? "(n/a)" : f.metrics);
  std::uint64_t sent = 0, acks = 0, actions = 0, errors = 0, in_flight = 0;
  std::uint64_t last_sent = 0;
  beast::flat_buffer buf;
  auto read_one = [&] {
    buf.clear();
    ws.read(buf);
    const std::string r = beast::buffers_to_string(buf.data());
    if (r.find(R"("type":"ack")") != std::string::npos)
      ++acks;
    else if (r.find(R"("type":"actions")") != std::string::npos)
      ++acks, ++actions;
    else if (r.find(R"("type":"error")") != std::string::npos)
      ++errors;
    --in_flight;
  };
  const bool tty = ::isatty(1);
  auto t0 = std::chrono::steady_clock::now();
  auto next_report = t0 + std::chrono::seconds(1);
  const auto gap = std::chrono::duration<double>(1.0 / std::max(1.0, f.rate));
  auto next_send = t0;
  for (std::uint64_t pass = 0;; ++pass) {
    for (const auto& line : lines) {
      std::string msg = line;
      if (pass > 0) {
        // A new pass is new traffic: suffix messageIds so they are not duplicates.
        const auto at = msg.find("\"messageId\":\"");
        if (at != std::string::npos) msg.insert(msg.find('"', at + 13), fmt::format("~{}", pass));
      }
      std::this_thread::sleep_until(next_send);
      next_send += std::chrono::duration_cast<std::chrono::steady_clock::duration>(gap);
      ws.write(msg);
      ++sent;
      ++in_flight;
      while (in_flight > static_cast<std::uint64_t>(f.window)) read_one();
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_report) {
        const std::string l =
            fmt::format("events/s {:>7} | sent {:>9} | acks {:>9} | actions {:>7} | errors {:>5}",
                        sent - last_sent, sent, acks, actions, errors);
        if (tty)
          fmt::print("\r{}", l);
        else
          fmt::print("{}\n", l);
        std::fflush(stdout);
        last_sent = sent;
        next_report += std::chrono::seconds(1);
      }
    }
    if (!f.loop) break;
  }
  while (in_flight > 0) read_one();
  fmt::print("\ndemo-feed: sent {}, acks {}, actions {}, errors {}\n", sent, acks, actions, errors);
  return errors == 0 ? 0 : 1;
}

}  // namespace

void register_demo_feed(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<FeedFlags>();
  auto* cmd = app.add_subcommand(
      "demo-feed", "Stream an NDJSON file into a server at a steady rate, with a live status line");
  cmd->add_option("--url", flags->url, "ws://HOST:PORT/v1/pos (wss:// with TLS)")->required();
  cmd->add_option("--key", flags->key, "Terminal key")->envname("STOREPULSE_POS_KEY");
  cmd->add_option("--ca", flags->ca,
                  "wss:// only: trust this CA or certificate file instead of the system store")
      ->check(CLI::ExistingFile);
  cmd->add_option("--rate", flags->rate, "Events per second")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e7));
  cmd->add_option("--metrics", flags->metrics, "Metrics URL to show the operator");
  cmd->add_flag("--loop", flags->loop, "Replay the file forever (fresh messageIds each pass)");
  cmd->add_option("file", flags->file, "NDJSON events (e.g. from storepulse simulate)")->required();
  cmd->callback([flags, &exit_code] {
    try {
      exit_code = feed(*flags);
    } catch (const std::exception& e) {
      fmt::print(stderr, "storepulse demo-feed: {}\n", e.what());
      exit_code = 2;
    }
  });
}

}  // namespace storepulse::cli
