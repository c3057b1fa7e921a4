// The layer under the server's WebSocket sessions that writes a turn's replies
// in one socket write: a real Beast client on a loopback socket reads what it
// produced, frame by frame.
#include "net/coalescing_stream.hpp"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using storepulse::net::CoalescingStream;
using storepulse::net::FlushList;

namespace {

using ServerWs = websocket::stream<CoalescingStream<beast::tcp_stream>>;

/// A server socket accepted on loopback and a Beast client connected to it,
/// both handshaken, on one io_context run by this thread.
struct Pair {
  asio::io_context ioc;
  // As the server's: the loop never runs out of work (a stopped io_context
  // would ignore later polls).
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  FlushList flush;  // this thread plays the server's io thread
  std::optional<ServerWs> server;
  websocket::stream<beast::tcp_stream> client{ioc};

  Pair() {
    tcp::acceptor acc(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket s(ioc);
    client.next_layer().connect(acc.local_endpoint());
    acc.accept(s);
    server.emplace(beast::tcp_stream(std::move(s)));
    bool accepted = false, handshaken = false;
    server->async_accept([&](beast::error_code ec) {
      REQUIRE(!ec);
      server->next_layer().handshake_done();
      accepted = true;
    });
    client.async_handshake("127.0.0.1", "/", [&](beast::error_code ec) {
      REQUIRE(!ec);
      handshaken = true;
    });
    run_until([&] { return accepted && handshaken; });
  }
  /// Runs handlers, flushing once per round as the server's io loop does.
  template <class Pred>
  void run_until(Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      ioc.poll();
      flush.flush_pending();
      ioc.run_one_for(std::chrono::milliseconds(1));
    }
  }
  std::string read_one() {
    beast::flat_buffer buf;
    bool got = false;
    client.async_read(buf, [&](beast::error_code ec, std::size_t) {
      REQUIRE(!ec);
      got = true;
    });
    run_until([&] { return got; });
    CHECK(client.got_text());
    return beast::buffers_to_string(buf.data());
  }
};

}  // namespace

TEST_CASE("coalescing stream: a turn's frames go out in one socket write, in order, whole") {
  Pair p;
  auto& out = p.server->next_layer();
  const auto writes_before = out.socket_writes();
  // Lengths on each side of the 7-bit / 16-bit / 64-bit header forms.
  const std::vector<std::size_t> sizes = {0, 1, 125, 126, 127, 65535, 65536, 70000};
  std::vector<std::string> sent;
  for (int round = 0; round < 3; ++round)
    for (std::size_t n : sizes) {
      std::string m(n, static_cast<char>('a' + sent.size() % 26));
      if (n >= 8) m.replace(0, 8, fmt::format("{:08}", sent.size()));
      REQUIRE(out.write_text(m));
      sent.push_back(std::move(m));
    }
  CHECK(out.queued_messages() == sent.size());
  p.flush.flush_pending();
  CHECK(out.socket_writes() == writes_before + 1);
  for (const auto& m : sent) CHECK(p.read_one() == m);
  CHECK(out.queued_messages() == 0);
  CHECK(out.socket_writes() == writes_before + 1);  // all of it in that one write
}

TEST_CASE("coalescing stream: Beast's control frames keep their place between our frames") {
  Pair p;
  auto& out = p.server->next_layer();
  // The server reads (so it answers the client's ping with a pong, written by
  // Beast through the stream) while our frames are queued around it.
  beast::flat_buffer sbuf;
  beast::error_code read_ec;
  bool server_read_done = false;
  p.server->async_read(sbuf, [&](beast::error_code ec, std::size_t) {
    read_ec = ec;
    server_read_done = true;
  });
  bool pong = false;
  p.client.control_callback([&](websocket::frame_type kind, beast::string_view) {
    if (kind == websocket::frame_type::pong) pong = true;
  });
  REQUIRE(out.write_text("before the ping"));
  bool pinged = false;
  p.client.async_ping({}, [&](beast::error_code ec) {
    REQUIRE(!ec);
    pinged = true;
  });
  p.run_until([&] { return pinged; });
  REQUIRE(out.write_text("after the ping"));
  CHECK(p.read_one() == "before the ping");
  CHECK(p.read_one() == "after the ping");
  CHECK(pong);
  // The client closes: Beast answers with a close frame, then tears down once
  // the outbox is empty; nothing may be written after the close frame.
  bool closed = false;
  p.client.async_close(websocket::close_code::normal, [&](beast::error_code) { closed = true; });
  p.run_until([&] { return closed && server_read_done; });
  CHECK(read_ec == websocket::error::closed);
  CHECK_FALSE(out.write_text("too late"));
}

TEST_CASE("coalescing stream: bytes appended while a write is in flight go in the next one") {
  Pair p;
  auto& out = p.server->next_layer();
  const std::string big(1 << 20, 'x');  // more than a socket buffer takes at once
  const auto writes_before = out.socket_writes();
  REQUIRE(out.write_text(big));
  p.flush.flush_pending();
  for (int i = 0; i < 100; ++i) REQUIRE(out.write_text("small " + std::to_string(i)));
  p.flush.flush_pending();  // a write is in flight: nothing new starts
  CHECK(out.queued_messages() == 101);
  CHECK(p.read_one() == big);
  for (int i = 0; i < 100; ++i) CHECK(p.read_one() == "small " + std::to_string(i));
  CHECK(out.queued_messages() == 0);
  CHECK(out.socket_writes() == writes_before + 2);  // the big one, then the hundred together
}

TEST_CASE("coalescing stream: a write in flight keeps the stream's owner alive") {
  Pair p;
  auto& out = p.server->next_layer();
  auto owner = std::make_shared<int>(1);  // stands for the session
  std::weak_ptr<int> seen = owner;
  out.set_owner(owner);
  const std::string big(1 << 20, 'y');
  REQUIRE(out.write_text(big));
  p.flush.flush_pending();
  owner.reset();  // the last other reference goes while the write runs
  CHECK_FALSE(seen.expired());
  CHECK(p.read_one() == big);
  p.run_until([&] { return out.queued_messages() == 0; });
  CHECK(seen.expired());  // released once the write completed
}
