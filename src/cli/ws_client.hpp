#pragma once
// Shared by `send` and `demo-feed`: ws:// and wss:// URL parsing and a
// connected client. wss:// verifies the server's certificate against the
// system's CA store, or only against `--ca FILE` when given (a private CA or a
// self-signed certificate), and checks that it names the host of the URL.
#include <fmt/format.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>
#include <stdexcept>
#include <string>

namespace storepulse::cli {

struct WsUrl {
  bool tls = false;
  std::string host, port, path;
};

inline WsUrl parse_ws_url(const std::string& url) {
  WsUrl u;
  std::string rest;
  if (url.rfind("ws://", 0) == 0) {
    rest = url.substr(5);
  } else if (url.rfind("wss://", 0) == 0) {
    rest = url.substr(6);
    u.tls = true;
  } else {
    throw std::runtime_error(
        fmt::format("--url: expected ws://HOST:PORT/PATH or wss://…, got '{}'", url));
  }
  const auto slash = rest.find('/');
  const std::string hostport = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "/v1/pos" : rest.substr(slash);
  const auto colon = hostport.rfind(':');
  u.host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  u.port = colon == std::string::npos ? (u.tls ? "443" : "80") : hostport.substr(colon + 1);
  if (u.host.empty()) throw std::runtime_error("--url: missing host");
  return u;
}

/// Connects and upgrades a plain ws:// stream (loadgen's own sockets); throws
/// with the server's answer when refused.
inline void ws_connect(boost::beast::websocket::stream<boost::asio::ip::tcp::socket>& ws,
                       const std::string& url, const std::string& key) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  const WsUrl u = parse_ws_url(url);
  if (u.tls) throw std::runtime_error(fmt::format("{}: this client speaks ws:// only", url));
  asio::ip::tcp::resolver resolver(ws.get_executor());
  auto results = resolver.resolve(u.host, u.port);
  asio::connect(ws.next_layer(), results.begin(), results.end());
  ws.set_option(
      beast::websocket::stream_base::decorator([key](beast::websocket::request_type& req) {
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

/// A connected, upgraded WebSocket, plain or over TLS. Throws with the
/// server's answer (or the TLS error) when the connection is refused.
class WsConn {
 public:
  WsConn(const std::string& url, const std::string& key, const std::string& ca_file = "")
      : url_(parse_ws_url(url)), ssl_ctx_(boost::asio::ssl::context::tls_client) {
    namespace asio = boost::asio;
    namespace beast = boost::beast;
    namespace ssl = asio::ssl;
    asio::ip::tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(url_.host, url_.port);
    auto decorate = [&key] {
      return beast::websocket::stream_base::decorator([key](beast::websocket::request_type& req) {
        if (!key.empty()) req.set(beast::http::field::authorization, "Bearer " + key);
      });
    };
    beast::websocket::response_type res;
    beast::error_code ec;
    const std::string host = url_.host + ":" + url_.port;
    if (url_.tls) {
      ssl_ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1);
      if (ca_file.empty())
        ssl_ctx_.set_default_verify_paths();
      else
        ssl_ctx_.load_verify_file(ca_file);
      ssl_ctx_.set_verify_mode(ssl::verify_peer);
      tls_ = std::make_unique<TlsWs>(ioc_, ssl_ctx_);
      asio::connect(beast::get_lowest_layer(*tls_), results.begin(), results.end());
      SSL_set_tlsext_host_name(tls_->next_layer().native_handle(), url_.host.c_str());
      tls_->next_layer().set_verify_callback(ssl::host_name_verification(url_.host));
      tls_->next_layer().handshake(ssl::stream_base::client, ec);
      if (ec)
        throw std::runtime_error(fmt::format("{}: TLS handshake failed: {}", url, ec.message()));
      tls_->set_option(decorate());
      tls_->handshake(res, host, url_.path, ec);
      if (!ec) tls_->text(true);
    } else {
      plain_ = std::make_unique<PlainWs>(ioc_);
      asio::connect(plain_->next_layer(), results.begin(), results.end());
      plain_->set_option(decorate());
      plain_->handshake(res, host, url_.path, ec);
      if (!ec) plain_->text(true);
    }
    if (ec) {
      if (res.result_int() != 0 && res.result_int() != 101)
        throw std::runtime_error(fmt::format("{} refused the connection: HTTP {} {}", url,
                                             res.result_int(), res.body()));
      throw std::runtime_error(fmt::format("{}: {}", url, ec.message()));
    }
  }

  void write(std::string_view msg) {
    if (tls_)
      tls_->write(boost::asio::buffer(msg.data(), msg.size()));
    else
      plain_->write(boost::asio::buffer(msg.data(), msg.size()));
  }
  void read(boost::beast::flat_buffer& buf) {
    if (tls_)
      tls_->read(buf);
    else
      plain_->read(buf);
  }
  void close() {
    boost::beast::error_code ec;
    if (tls_)
      tls_->close(boost::beast::websocket::close_code::normal, ec);
    else
      plain_->close(boost::beast::websocket::close_code::normal, ec);
  }

 private:
  using PlainWs = boost::beast::websocket::stream<boost::asio::ip::tcp::socket>;
  using TlsWs =
      boost::beast::websocket::stream<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>>;
  WsUrl url_;
  boost::asio::io_context ioc_;
  boost::asio::ssl::context ssl_ctx_;
  std::unique_ptr<PlainWs> plain_;
  std::unique_ptr<TlsWs> tls_;
};

}  // namespace storepulse::cli
