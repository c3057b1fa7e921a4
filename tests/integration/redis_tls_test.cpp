// TLS to Redis (issue 6): `rediss://` through the store's in-process tunnel to
// a real redis-server serving TLS, with a CA made at test time. Events are
// acked, land in Redis and come back after a restart; a Redis whose
// certificate is not trusted keeps the server from starting, with the reason.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "support/redis_process.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"

using namespace storepulse::test;
namespace http = boost::beast::http;

namespace {

struct TlsRedis {
  TempDir dir;
  CertFiles cert = make_cert(dir, "redis-under-test");
  unsigned short tls_port = free_loopback_port();
  // The plain port stays open for the test's own inspection; the server uses TLS.
  RedisProcess redis{
      dir.str(),
      {"--tls-port", std::to_string(tls_port), "--tls-cert-file", cert.cert, "--tls-key-file",
       cert.key, "--tls-ca-cert-file", cert.cert, "--tls-auth-clients", "no"}};
};

std::string write_config(const TempDir& dir, unsigned short tls_port, const std::string& ca) {
  const std::string path = dir / "redis-tls.toml";
  std::ofstream(path) << fmt::format(
      "[store]\nkind = \"redis\"\n[redis]\nurl = \"rediss://127.0.0.1:{}\"\ntls_ca = \"{}\"\n"
      "prefix = \"tls\"\nconnect_timeout = \"1s\"\n",
      tls_port, ca);
  return path;
}

}  // namespace

TEST_CASE("redis store over TLS: events are acked, kept in redis and back after a restart",
          "[redis]") {
  TlsRedis r;
  TempDir dir;
  const std::string config = write_config(dir, r.tls_port, r.cert.cert);
  {
    ServerProcess srv(dir / "data", {"--config", config});
    WsClient pos(srv.port(), "/v1/pos", kPosKey);
    REQUIRE(pos.ok());
    for (int i = 0; i < 20; ++i)
      CHECK_THAT(
          pos.request(fmt::format(
              R"({{"type":"track","event":"Order Completed","messageId":"tls-{}","userId":"TLS-1","properties":{{"total":10}}}})",
              i)),
          Catch::Contains(fmt::format(R"("messageId":"tls-{}")", i)));
    srv.kill9();
  }
  // The records went through TLS into this Redis (read here on its plain port).
  std::size_t entries = 0;
  for (int s = 0; s < 64; ++s) {
    const std::string n = r.redis.command({"XLEN", fmt::format("tls:{{s{}}}:log", s)});
    entries += n.empty() ? 0 : std::stoul(n);
  }
  CHECK(entries >= 20);
  ServerProcess again(dir / "data", {"--config", config});
  auto p = http_request(again.port(), http::verb::get, "/v1/profiles/TLS-1", kAdminToken);
  CHECK(p.status == 200);
  CHECK_THAT(p.body, Catch::Contains(R"("frequency":20)"));
}

TEST_CASE("redis store over TLS: an untrusted redis certificate stops the server with the reason",
          "[redis]") {
  TlsRedis r;
  TempDir dir;
  const CertFiles someone_else = make_cert(dir, "someone-else");
  const std::string config = write_config(dir, r.tls_port, someone_else.cert);
  const ServeExit run = serve_until_exit(config, dir / "data");
  INFO(run.output);
  CHECK(run.code != 0);
  CHECK_THAT(run.output, Catch::Contains("certificate"));
  CHECK_THAT(run.output, Catch::Contains("127.0.0.1:" + std::to_string(r.tls_port)));
}
