// Swipe round trip, closed loop, one connection: the full pipeline (decode,
// hand-off to the shard, journal group commit, profile update, rules, reply)
// against a peer measured in the same run: a Beast WebSocket echo on the same
// io stack with no decode and no hand-off. The difference is what the
// engine adds to a swipe; the engine's own histogram splits it further.
//
//   build/bench/swipe_rtt [--n 20000] [--fsync never|interval|always]
#include <fmt/format.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <filesystem>
#include <thread>

#include "storepulse/engine/engine.hpp"
#include "storepulse/net/server.hpp"

using namespace storepulse;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

struct Stats {
  double p50, p99, p999, mean;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  auto q = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
  };
  return {q(0.5), q(0.99), q(0.999), sum / static_cast<double>(v.size())};
}

std::vector<double> run_client(unsigned short port, const std::string& path, const std::string& key,
                               int n) {
  asio::io_context ioc;
  websocket::stream<tcp::socket> ws(ioc);
  ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  ws.next_layer().set_option(tcp::no_delay(true));
  ws.set_option(websocket::stream_base::decorator([key](websocket::request_type& r) {
    if (!key.empty()) r.set(beast::http::field::authorization, "Bearer " + key);
  }));
  ws.handshake("127.0.0.1", path);
  ws.text(true);
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n));
  beast::flat_buffer buf;
  for (int i = 0; i < n; ++i) {
    const std::string msg = fmt::format(
        R"({{"type":"track","event":"Card Swiped","messageId":"b-{}","userId":"C{}","context":{{"storeId":"S1"}}}})",
        i, i % 5000);
    const auto t0 = mono_ns();
    ws.write(asio::buffer(msg));
    buf.clear();
    ws.read(buf);
    us.push_back(static_cast<double>(mono_ns() - t0) / 1000.0);
  }
  ws.close(websocket::close_code::normal);
  return us;
}

// Peer: echo on the same Beast stack.
void echo_server(tcp::acceptor& acc) {
  for (;;) {
    tcp::socket s(acc.get_executor());
    beast::error_code ec;
    acc.accept(s, ec);
    if (ec) return;
    std::thread([s = std::move(s)]() mutable {
      websocket::stream<tcp::socket> ws(std::move(s));
      beast::error_code e;
      ws.accept(e);
      beast::flat_buffer b;
      while (!e) {
        b.clear();
        ws.read(b, e);
        if (e) break;
        ws.text(true);
        ws.write(b.data(), e);
      }
    }).detach();
  }
}

}  // namespace

int main(int argc, char** argv) {
  int n = 20000;
  std::string fsync = "interval";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--n") n = std::stoi(argv[i + 1]);
    if (std::string(argv[i]) == "--fsync") fsync = argv[i + 1];
  }
  const std::string dir = fmt::format("/tmp/storepulse-bench-{}", ::getpid());
  engine::EngineOptions eo;
  eo.data_dir = dir;
  store::parse_fsync_policy(fsync, eo.fsync);
  Metrics metrics;
  engine::Engine engine(eo, std::make_shared<rules::BirthdayGreeting>(), metrics);
  engine.start();
  net::ServerOptions so;
  so.port = 0;
  so.pos_keys = {"bench-terminal-key-000"};
  net::Server server(so, engine);
  server.start();

  asio::io_context eioc;
  tcp::acceptor acc(eioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::thread echo([&] { echo_server(acc); });

  // Warm up both, then alternate rounds so drift on a noisy machine hits both alike.
  run_client(server.port(), "/v1/pos", "bench-terminal-key-000", 2000);
  run_client(acc.local_endpoint().port(), "/", "", 2000);
  std::vector<double> full, peer;
  for (int round = 0; round < 4; ++round) {
    auto f = run_client(server.port(), "/v1/pos", "bench-terminal-key-000", n / 4);
    auto p = run_client(acc.local_endpoint().port(), "/", "", n / 4);
    full.insert(full.end(), f.begin(), f.end());
    peer.insert(peer.end(), p.begin(), p.end());
  }
  const Stats a = stats(full), b = stats(peer);
  auto& h = metrics.event_latency;
  fmt::print("swipe round trip, closed loop, 1 connection, {} swipes, fsync {}\n", full.size(),
             fsync);
  fmt::print("{:<34} {:>9} {:>9} {:>9} {:>9}\n", "", "p50 µs", "p99 µs", "p99.9 µs", "mean µs");
  fmt::print("{:<34} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f}\n", "storepulse (full pipeline)", a.p50,
             a.p99, a.p999, a.mean);
  fmt::print("{:<34} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f}\n", "peer: Beast echo (same stack)", b.p50,
             b.p99, b.p999, b.mean);
  fmt::print("{:<34} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.2f}\n", "ratio storepulse / echo",
             a.p50 / b.p50, a.p99 / b.p99, a.p999 / b.p999, a.mean / b.mean);
  fmt::print(
      "engine part (hand-off to reply, server histogram): p50 <= {} µs, p99 <= {} µs, mean {:.1f} "
      "µs\n",
      h.quantile_us(0.5), h.quantile_us(0.99),
      static_cast<double>(h.sum_ns()) / 1000.0 / static_cast<double>(h.count()));
  acc.close();
  server.stop();
  engine.stop();
  std::filesystem::remove_all(dir);
  echo.detach();
  return 0;
}
