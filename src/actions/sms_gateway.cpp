#include "storepulse/actions/sms_gateway.hpp"

#include <fmt/format.h>
#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <memory>

namespace storepulse::actions {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

Result<GatewayUrl> parse_gateway_url(std::string_view url) {
  GatewayUrl u;
  std::string_view rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = url.substr(8);
  } else {
    return Status(ErrorCode::kBadField,
                  fmt::format("expected http://host[:port]/path or https://…, got '{}'", url));
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.find('@') != std::string_view::npos)
    return Status(
        ErrorCode::kBadField,
        "credentials in the URL are not supported; use sms.account_sid and sms.auth_token");
  std::string_view host = authority, port;
  if (!authority.empty() && authority.front() == '[') {  // [::1]:8080
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      return Status(ErrorCode::kBadField, "unterminated [ in host");
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return Status(ErrorCode::kBadField, fmt::format("no host in '{}'", url));
  for (char c : port)
    if (c < '0' || c > '9')
      return Status(ErrorCode::kBadField, fmt::format("port '{}' is not a number", port));
  u.host = std::string(host);
  u.port = port.empty() ? (u.tls ? "443" : "80") : std::string(port);
  return u;
}

namespace {

template <typename Stream>
GatewayReply exchange(Stream& stream, const GatewayUrl& url, const GatewayRequest& r) {
  http::request<http::string_body> req(http::verb::post, url.target, 11);
  req.set(http::field::host, url.host);
  req.set(http::field::user_agent, "storepulse-sms");
  req.set(http::field::content_type, r.content_type);
  req.set(http::field::accept, "application/json");
  for (const auto& [k, v] : r.headers) req.set(k, v);
  req.keep_alive(false);
  req.body() = r.body;
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);  // a gateway's answer is short; never buffer a huge one
  http::read(stream, buf, parser);
  return GatewayReply{
      static_cast<int>(parser.get().result_int()), {}, std::move(parser.get().body())};
}

GatewayReply post_once(const GatewayUrl& url, TimeUs timeout_us, const GatewayRequest& request,
                       asio::ssl::context* tls) {
  try {
    asio::io_context ioc;
    tcp::resolver resolver(ioc);
    const auto endpoints = resolver.resolve(url.host, url.port);
    const auto timeout = std::chrono::microseconds(timeout_us);
    if (!tls) {
      beast::tcp_stream stream(ioc);
      stream.expires_after(timeout);
      stream.connect(endpoints);
      auto r = exchange(stream, url, request);
      beast::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      return r;
    }
    beast::ssl_stream<beast::tcp_stream> stream(ioc, *tls);
    if (!SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str()))
      return GatewayReply{0, "cannot set TLS server name", {}};
    stream.set_verify_callback(asio::ssl::host_name_verification(url.host));
    beast::get_lowest_layer(stream).expires_after(timeout);
    beast::get_lowest_layer(stream).connect(endpoints);
    stream.handshake(asio::ssl::stream_base::client);
    auto r = exchange(stream, url, request);
    beast::error_code ignored;
    stream.shutdown(ignored);
    return r;
  } catch (const std::exception& e) {
    // The sender thread is not a shard thread: Beast's sync API reports by
    // exception here, and it becomes a retryable transport error.
    return GatewayReply{0, e.what(), {}};
  }
}

}  // namespace

SmsTransport make_http_transport(GatewayUrl url, TimeUs timeout_us) {
  std::shared_ptr<asio::ssl::context> tls;
  if (url.tls) {
    tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    tls->set_default_verify_paths();
    tls->set_verify_mode(asio::ssl::verify_peer);
  }
  return [url = std::move(url), timeout_us, tls](const GatewayRequest& request) {
    return post_once(url, timeout_us, request, tls.get());
  };
}

}  // namespace storepulse::actions
