// GET /metrics of a server that has seen events, errors and rule actions,
// checked by Prometheus' own linter (`promtool check metrics`, Debian package
// prometheus, installed by scripts/deps): nothing to report.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "storepulse/common/time.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::test;

TEST_CASE("metrics: promtool check metrics finds nothing to report") {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    WARN("promtool not installed (Debian package prometheus; scripts/deps installs it): skipped");
    return;
  }
  TempDir dir;
  ServerProcess srv(dir / "data");
  {
    WsClient pos(srv.port(), "/v1/pos", kPosKey);
    REQUIRE(pos.ok());
    const std::string now = format_iso8601(wall_clock_us());
    CHECK(has(
        pos.request(fmt::format(
            R"({{"type":"identify","messageId":"m1","userId":"C1","timestamp":"{}","traits":{{"firstName":"Ana","birthday":"1990-01-01"}}}})",
            now)),
        "ack"));
    pos.request(fmt::format(
        R"({{"type":"track","event":"Card Swiped","messageId":"m2","userId":"C1","timestamp":"{}"}})",
        now));
    pos.request(fmt::format(
        R"({{"type":"track","event":"Order Completed","messageId":"m3","userId":"C1","timestamp":"{}","properties":{{"total":12,"products":[{{"productId":"p1","category":"Food","price":12,"quantity":1}}]}}}})",
        now));
    CHECK(has(pos.request(R"({"type":"track","event":"Nope","messageId":"m4","userId":"C1"})"),
              "unknown_event"));
    CHECK(has(pos.request("{not json"), "bad_json"));
  }
  const auto m = http_request(srv.port(), http::verb::get, "/metrics");
  REQUIRE(m.status == 200);
  const std::string file = dir / "metrics.txt";
  std::ofstream(file) << m.body;
  const std::string cmd = "promtool check metrics < " + file + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int rc = ::pclose(p);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.empty());
}
