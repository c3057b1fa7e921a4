#pragma once
// Shared by `send` and `demo-feed`: ws:// URL parsing and a connected client.
#include <fmt/format.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <stdexcept>
#include <string>

namespace storepulse::cli {

struct WsUrl {
  std::string host, port, path;
};

inline WsUrl parse_ws_url(const std::string& url) {
  constexpr std::string_view kPrefix = "ws://";
  if (url.rfind(kPrefix, 0) != 0)
    throw std::runtime_error(fmt::format("--url: expected ws://HOST:PORT/PATH, got '{}'", url));
  const std::string rest = url.substr(kPrefix.size());
  const auto slash = rest.find('/');
  const std::string hostport = rest.substr(0, slash);
  WsUrl u;
  u.path = slash == std::string::npos ? "/v1/pos" : rest.substr(slash);
  const auto colon = hostport.rfind(':');
  u.host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  u.port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  if (u.host.empty()) throw std::runtime_error("--url: missing host");
  return u;
}

/// Connects and upgrades; throws with the server's answer when refused.
inline void ws_connect(boost::beast::websocket::stream<boost::asio::ip::tcp::socket>& ws,
                       const std::string& url, const std::string& key) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  const WsUrl u = parse_ws_url(url);
  asio::ip::tcp::resolver resolver(ws.get_executor());
  auto results = resolver.resolve(u.host, u.port);
  asio::connect(ws.next_layer(), results.begin(), results.end());
  ws.set_option(beast::websocket::stream_base::decorator([key](beast::websocket::request_type& req) {
    if (!key.empty()) req.set(beast::http::field::authorization, "Bearer " + key);
  }));
  beast::websocket::response_type res;
  beast::error_code ec;
  ws.handshake(res, u.host + ":" + u.port, u.path, ec);
  if (ec) {
    if (res.result_int() != 0 && res.result_int() != 101)
      throw std::runtime_error(
          fmt::format("{} refused the connection: HTTP {} {}", url, res.result_int(), res.body()));
    throw std::runtime_error(fmt::format("{}: {}", url, ec.message()));
  }
  ws.text(true);
}

}  // namespace storepulse::cli
