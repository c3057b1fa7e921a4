// TLS (issue 9): wss:// and https:// on the server's port with a certificate
// generated at test time (openssl CLI), clients that verify it, the protocol
// and cipher floor, and certificate reload on SIGHUP. docs/security.md and
// docs/operations.md describe the same behaviour.
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/stat.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "../cli/cli_run.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"

using namespace storepulse::test;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using Ms = std::chrono::milliseconds;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  ::chmod(path.c_str(), 0600);
}

// A client context that trusts `ca_file` only and checks the name 127.0.0.1.
std::unique_ptr<ssl::context> client_context(const std::string& ca_file) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  ctx->load_verify_file(ca_file);
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}

std::string peer_common_name(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return {};
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  X509_free(cert);
  return cn;
}

/// WebSocket over TLS, verified; `ok()` false when TCP, TLS or the upgrade failed.
class WssClient {
 public:
  WssClient(unsigned short port, const std::string& path, ssl::context& ctx,
            const std::string& key = "")
      : ws_(ioc_, ctx) {
    beast::error_code ec;
    auto& tcp = beast::get_lowest_layer(ws_);
    tcp.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (ec) return;
    tcp.expires_after(std::chrono::seconds(10));
    ws_.next_layer().set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    ws_.next_layer().handshake(ssl::stream_base::client, ec);
    if (ec) return;
    tls_ok_ = true;
    common_name_ = peer_common_name(ws_.next_layer().native_handle());
    version_ = SSL_get_version(ws_.next_layer().native_handle());
    tcp.expires_never();
    ws_.set_option(websocket::stream_base::decorator([key](websocket::request_type& req) {
      if (!key.empty()) req.set(http::field::authorization, "Bearer " + key);
    }));
    websocket::response_type res;
    ws_.handshake(res, "127.0.0.1", path, ec);
    ok_ = !ec;
  }
  bool tls_ok() const { return tls_ok_; }
  bool ok() const { return ok_; }
  const std::string& common_name() const { return common_name_; }
  const std::string& version() const { return version_; }
  std::string request(const std::string& msg) {
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(10));
    ws_.write(asio::buffer(msg));
    beast::flat_buffer b;
    ws_.read(b);
    return beast::buffers_to_string(b.data());
  }

 private:
  asio::io_context ioc_;
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws_;
  bool tls_ok_ = false, ok_ = false;
  std::string common_name_, version_;
};

struct HttpsReply {
  bool tls_ok = false;
  int status = 0;
  std::string body, common_name;
};

HttpsReply https_get(unsigned short port, const std::string& target, ssl::context& ctx) {
  HttpsReply r;
  asio::io_context ioc;
  beast::ssl_stream<beast::tcp_stream> s(ioc, ctx);
  beast::error_code ec;
  beast::get_lowest_layer(s).connect(
      asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return r;
  beast::get_lowest_layer(s).expires_after(std::chrono::seconds(10));
  s.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
  s.handshake(ssl::stream_base::client, ec);
  if (ec) return r;
  r.tls_ok = true;
  r.common_name = peer_common_name(s.native_handle());
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1");
  http::write(s, req, ec);
  if (ec) return r;
  beast::flat_buffer b;
  http::response<http::string_body> res;
  http::read(s, b, res, ec);
  if (ec) return r;
  r.status = res.result_int();
  r.body = res.body();
  return r;
}

class TlsServer : public ConfiguredServer {
 public:
  explicit TlsServer(const CertFiles& files, const std::string& extra = "")
      : ConfiguredServer(
            fmt::format("[tls]\ncert = \"{}\"\nkey = \"{}\"\n{}", files.cert, files.key, extra)) {}
};

std::string swipe(const std::string& mid) {
  return R"({"type":"track","event":"Card Swiped","messageId":")" + mid + R"(","userId":"C-tls"})";
}
std::string ack(const std::string& mid) {
  return R"({"type":"ack","messageId":")" + mid + "\"}";
}

}  // namespace

TEST_CASE("tls: wss swipe and https healthz verified against a certificate made at test time",
          "[tls]") {
  TempDir certs;
  const CertFiles a = make_cert(certs, "storepulse-test-a");
  TlsServer s(a);
  CHECK(has(s.process().startup_output(), "listening on https://127.0.0.1:"));
  CHECK(has(s.process().startup_output(), "TLS only"));
  auto ctx = client_context(a.cert);

  const auto health = https_get(s.port(), "/healthz", *ctx);
  REQUIRE(health.tls_ok);
  CHECK(health.status == 200);
  CHECK(health.body == R"({"status":"ok"})");
  CHECK(health.common_name == "storepulse-test-a");

  WssClient pos(s.port(), "/v1/pos", *ctx, kPosKey);
  REQUIRE(pos.ok());
  CHECK(pos.request(swipe("tls-1")) == ack("tls-1"));
  CHECK(pos.version() == "TLSv1.3");
  WssClient web(s.port(), "/v1/web", *ctx);
  REQUIRE(web.ok());
  CHECK(web.request(R"({"type":"page","messageId":"tls-2","anonymousId":"v-tls"})") ==
        ack("tls-2"));
  // Terminal keys are checked over TLS as before.
  WssClient no_key(s.port(), "/v1/pos", *ctx);
  CHECK(no_key.tls_ok());
  CHECK_FALSE(no_key.ok());

  // A client that does not trust this certificate gets no connection.
  TempDir other_dir;
  auto other_ctx = client_context(make_cert(other_dir, "someone-else").cert);
  CHECK_FALSE(https_get(s.port(), "/healthz", *other_ctx).tls_ok);

  // Plain HTTP on a TLS-only port: a 400 that says so, nothing served.
  const auto plain = http_request(s.port(), http::verb::get, "/healthz");
  CHECK(plain.status == 400);
  CHECK(has(plain.body, "tls_required"));
  WsClient plain_ws(s.port(), "/v1/pos", kPosKey);
  CHECK_FALSE(plain_ws.ok());
}

TEST_CASE("tls: send speaks wss and verifies the certificate against --ca", "[tls]") {
  TempDir certs;
  const CertFiles a = make_cert(certs, "storepulse-test-send");
  const CertFiles other = make_cert(certs, "someone-else");
  TlsServer s(a);
  const std::string events = certs / "events.ndjson";
  std::ofstream(events) << swipe("wss-1") << "\n" << swipe("wss-2") << "\n";
  const std::string url = fmt::format("wss://127.0.0.1:{}/v1/pos", s.port());
  auto ok = storepulse::testing::run_cli(
      fmt::format("send --url {} --key {} --ca {} {}", url, kPosKey, a.cert, events), "wss_ok");
  CHECK(ok.code == 0);
  CHECK(ok.out == ack("wss-1") + "\n" + ack("wss-2") + "\n");
  CHECK_THAT(ok.err, Catch::Contains("2 events, 0 rejected"));
  // A certificate the client does not trust: refused before anything is sent.
  auto untrusted = storepulse::testing::run_cli(
      fmt::format("send --url {} --key {} --ca {} {}", url, kPosKey, other.cert, events),
      "wss_bad");
  CHECK(untrusted.code == 2);
  CHECK_THAT(untrusted.err, Catch::Contains("TLS handshake failed") &&
                                Catch::Contains("certificate verify failed"));
  // The system store does not know a self-signed certificate either.
  auto system_store = storepulse::testing::run_cli(
      fmt::format("send --url {} --key {} {}", url, kPosKey, events), "wss_system");
  CHECK(system_store.code == 2);
  // Plain ws:// to a TLS-only port gets no upgrade.
  auto plain = storepulse::testing::run_cli(
      fmt::format("send --url ws://127.0.0.1:{}/v1/pos --key {} {}", s.port(), kPosKey, events),
      "wss_plain");
  CHECK(plain.code == 2);
  auto lg = storepulse::testing::run_cli(
      fmt::format("loadgen --url {} --key {} --rate 10 --duration 1", url, kPosKey), "wss_loadgen");
  CHECK(lg.code != 0);
  CHECK_THAT(lg.err + lg.out, Catch::Contains("loadgen speaks ws:// only"));
}

TEST_CASE("tls: only TLS 1.2+ with ECDHE and AEAD suites is accepted", "[tls]") {
  TempDir certs;
  const CertFiles a = make_cert(certs, "storepulse-test-a");
  TlsServer s(a);
  // A TLS 1.2 client restricted to one suite: accepted with AES-GCM (the
  // control: the client setup itself works), refused with CBC or without ECDHE.
  auto tls12_with = [&](const char* suite) {
    auto ctx = client_context(a.cert);
    SSL_CTX_set_max_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_security_level(ctx->native_handle(), 0);
    REQUIRE(SSL_CTX_set_cipher_list(ctx->native_handle(), suite) == 1);
    return https_get(s.port(), "/healthz", *ctx).status == 200;
  };
  CHECK(tls12_with("ECDHE-ECDSA-AES128-GCM-SHA256"));
  CHECK(tls12_with("ECDHE-ECDSA-CHACHA20-POLY1305"));
  CHECK_FALSE(tls12_with("ECDHE-ECDSA-AES128-SHA256"));  // CBC
  CHECK_FALSE(tls12_with("ECDHE-ECDSA-AES256-SHA"));     // CBC, SHA-1
  CHECK_FALSE(tls12_with("AES128-GCM-SHA256"));          // no forward secrecy (and no ECDSA)
  // TLS 1.1 and 1.0 are refused whatever the suite.
  for (int version : {TLS1_1_VERSION, TLS1_VERSION}) {
    auto ctx = client_context(a.cert);
    SSL_CTX_set_security_level(ctx->native_handle(), 0);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), version);
    SSL_CTX_set_max_proto_version(ctx->native_handle(), version);
    CHECK_FALSE(https_get(s.port(), "/healthz", *ctx).tls_ok);
  }
}

TEST_CASE("tls: with allow_plain the same port serves both", "[tls]") {
  TempDir certs;
  const CertFiles a = make_cert(certs, "storepulse-test-a");
  TlsServer s(a, "allow_plain = true\n");
  auto ctx = client_context(a.cert);
  CHECK(https_get(s.port(), "/healthz", *ctx).status == 200);
  CHECK(http_request(s.port(), http::verb::get, "/healthz").status == 200);
  WsClient plain(s.port(), "/v1/pos", kPosKey);
  REQUIRE(plain.ok());
  CHECK(plain.request(swipe("plain-1")) == ack("plain-1"));
  WssClient tls(s.port(), "/v1/pos", *ctx, kPosKey);
  REQUIRE(tls.ok());
  CHECK(tls.request(swipe("tls-3")) == ack("tls-3"));
}

TEST_CASE(
    "tls: SIGHUP reloads the certificate for new connections - a bad one is refused and the old "
    "one stays",
    "[tls]") {
  TempDir certs;
  const CertFiles a = make_cert(certs, "storepulse-test-a");
  const CertFiles b = make_cert(certs, "storepulse-test-b");
  // The server reads these two paths; the test swaps what is in them.
  const CertFiles live{certs / "live.crt", certs / "live.key"};
  write_file(live.cert, slurp(a.cert));
  write_file(live.key, slurp(a.key));
  const std::string both = certs / "both.crt";
  write_file(both, slurp(a.cert) + slurp(b.cert));
  auto ctx = client_context(both);

  TlsServer s(live);
  REQUIRE(https_get(s.port(), "/healthz", *ctx).common_name == "storepulse-test-a");
  WssClient before(s.port(), "/v1/pos", *ctx, kPosKey);
  REQUIRE(before.ok());
  REQUIRE(before.common_name() == "storepulse-test-a");

  auto served_name_becomes = [&](const std::string& want) {
    for (int i = 0; i < 40; ++i) {
      if (https_get(s.port(), "/healthz", *ctx).common_name == want) return true;
      std::this_thread::sleep_for(Ms(100));
    }
    return false;
  };
  auto still_serves = [&](const std::string& want) {
    // The main loop looks at the reload flag every 250 ms: watch for a second.
    for (int i = 0; i < 10; ++i) {
      const auto r = https_get(s.port(), "/healthz", *ctx);
      if (r.status != 200 || r.common_name != want) return false;
      std::this_thread::sleep_for(Ms(100));
    }
    return true;
  };

  write_file(live.cert, slurp(b.cert));
  write_file(live.key, slurp(b.key));
  REQUIRE(::kill(s.process().pid(), SIGHUP) == 0);
  CHECK(served_name_becomes("storepulse-test-b"));
  // A connection opened before the reload keeps its session.
  CHECK(before.request(swipe("before-reload")) == ack("before-reload"));
  WssClient after(s.port(), "/v1/pos", *ctx, kPosKey);
  REQUIRE(after.ok());
  CHECK(after.common_name() == "storepulse-test-b");
  CHECK(after.request(swipe("after-reload")) == ack("after-reload"));

  // A broken certificate file: logged, and b stays in use.
  write_file(live.cert,
             "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
  REQUIRE(::kill(s.process().pid(), SIGHUP) == 0);
  CHECK(still_serves("storepulse-test-b"));
  // A certificate with someone else's key: refused too.
  write_file(live.cert, slurp(a.cert));
  write_file(live.key, slurp(b.key));
  REQUIRE(::kill(s.process().pid(), SIGHUP) == 0);
  CHECK(still_serves("storepulse-test-b"));
  // Fixed files: the next SIGHUP takes them.
  write_file(live.key, slurp(a.key));
  REQUIRE(::kill(s.process().pid(), SIGHUP) == 0);
  CHECK(served_name_becomes("storepulse-test-a"));
}

TEST_CASE("tls: a config naming a missing certificate stops serve with the file in the message",
          "[tls]") {
  TempDir dir;
  const std::string path = dir / "bad.toml";
  std::ofstream(path) << fmt::format("[tls]\ncert = \"{}\"\nkey = \"{}\"\n", dir / "nope.crt",
                                     dir / "nope.key");
  const ServeExit run = serve_until_exit(path, dir / "data");
  INFO(run.output);
  CHECK(run.code == 1);
  CHECK(has(run.output, "tls.cert " + (dir / "nope.crt")));
}
