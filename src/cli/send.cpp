// storepulse send: streams NDJSON events over WebSocket and prints every reply.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <fstream>
#include <iostream>

#include "cli/ws_client.hpp"
#include "storepulse/cli/commands.hpp"

namespace storepulse::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

struct SendFlags {
  std::string url;
  std::string key;
  std::string ca;  // wss://: trust only this CA / certificate file (default: the system store)
  std::string file = "-";
  int window = 64;
};

int send(const SendFlags& f) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (f.file != "-") {
    file.open(f.file);
    if (!file) throw std::runtime_error(fmt::format("{}: cannot open", f.file));
    in = &file;
  }
  WsConn ws(f.url, f.key, f.ca);
  std::size_t sent = 0, received = 0, rejected = 0;
  beast::flat_buffer buf;
  auto read_one = [&] {
    buf.clear();
    ws.read(buf);
    std::string reply = beast::buffers_to_string(buf.data());
    if (reply.find(R"("type":"error")") != std::string::npos) ++rejected;
    // Pushed nudges / recommendations are printed too but are not replies to a line.
    if (reply.find(R"("type":"ack")") != std::string::npos ||
        reply.find(R"("type":"actions")") != std::string::npos ||
        reply.find(R"("type":"error")") != std::string::npos)
      ++received;
    std::cout << reply << '\n';
  };
  std::string line;
  std::size_t lineno = 0;
  while (std::getline(*in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    ws.write(line);
    ++sent;
    // Keep a window of events in flight: fast, and bounded on both sides.
    while (sent - received > static_cast<std::size_t>(f.window)) read_one();
  }
  while (received < sent) read_one();
  std::cout.flush();
  ws.close();
  std::cerr << fmt::format("storepulse send: {} events, {} rejected\n", sent, rejected);
  return rejected == 0 ? 0 : 1;
}

}  // namespace

void register_send(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<SendFlags>();
  auto* cmd = app.add_subcommand("send", "Send NDJSON events over WebSocket and print each reply");
  cmd->add_option("--url", flags->url, "ws://HOST:PORT/v1/pos or /v1/web (wss:// with TLS)")
      ->required();
  cmd->add_option("--key", flags->key, "Terminal key (Bearer) for /v1/pos")
      ->envname("STOREPULSE_POS_KEY");
  cmd->add_option("--ca", flags->ca,
                  "wss:// only: trust this CA or certificate file instead of the system store")
      ->check(CLI::ExistingFile);
  cmd->add_option("--window", flags->window, "Events in flight")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("file", flags->file, "NDJSON file, or - for stdin")->capture_default_str();
  cmd->callback([flags, &exit_code] {
    try {
      exit_code = send(*flags);
    } catch (const std::exception& e) {
      fmt::print(stderr, "storepulse send: {}\n", e.what());
      exit_code = 2;
    }
  });
}

}  // namespace storepulse::cli
