// The Segment HTTP Tracking API over real HTTP, without an SDK: the body's
// writeKey, the sentAt clock-skew correction, partial batches. The real SDK
// drives the same endpoints in segment_sdk_test.cpp.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "storepulse/common/time.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::test;

namespace {

constexpr const char* kWriteKey = "segment-api-test-write-key";

// The profile's lastSeen, as epoch µs (0 when absent).
TimeUs last_seen(unsigned short port, const std::string& id) {
  const auto p = http_request(port, http::verb::get, "/v1/profiles/" + id, kAdminToken);
  REQUIRE(p.status == 200);
  const auto at = p.body.find(R"("lastSeen":")");
  REQUIRE(at != std::string::npos);
  const auto start = at + 12;
  const auto t = parse_iso8601(p.body.substr(start, p.body.find('"', start) - start));
  REQUIRE(t);
  return *t;
}

}  // namespace

TEST_CASE("segment API: body writeKey, sentAt clock skew, partial batches", "[segment]") {
  TempDir dir;
  const std::string config = dir / "segment.toml";
  std::ofstream(config) << "[ingest]\nwrite_keys = [\"" << kWriteKey << "\"]\n";
  ServerProcess server(dir / "data", {"--config", config});
  const unsigned short port = server.port();

  // No key, a wrong key: 401, nothing kept.
  auto r = http_request(port, http::verb::post, "/v1/track", "",
                        R"({"userId":"NOKEY","event":"Card Swiped","messageId":"n1"})");
  CHECK(r.status == 401);
  r = http_request(
      port, http::verb::post, "/v1/track", "",
      R"({"userId":"NOKEY","event":"Card Swiped","messageId":"n2","writeKey":"wrong-key-x"})");
  CHECK(r.status == 401);
  CHECK(http_request(port, http::verb::get, "/v1/profiles/NOKEY", kAdminToken).status == 404);

  // The SDK's clock is an hour behind: its call 10 s before it sent is stored
  // 10 s before the server received it.
  const TimeUs now = wall_clock_us();
  const TimeUs hour = 3600LL * 1'000'000;
  const TimeUs ten = 10LL * 1'000'000;
  r = http_request(
      port, http::verb::post, "/v1/batch", "",
      fmt::format(
          R"({{"writeKey":"{}","sentAt":"{}","batch":[{{"type":"track","event":"Card Swiped","messageId":"k1","userId":"SKEW1","timestamp":"{}"}}]}})",
          kWriteKey, format_iso8601(now - hour), format_iso8601(now - hour - ten)));
  REQUIRE(r.status == 200);
  CHECK(r.body == R"({"success":true})");
  const TimeUs seen = last_seen(port, "SKEW1");
  CHECK(seen <= wall_clock_us() - ten + 1'000'000);
  CHECK(seen >= now - ten - 60LL * 1'000'000);

  // Without sentAt the call's own timestamp stands.
  r = http_request(
      port, http::verb::post, "/v1/batch", "",
      fmt::format(
          R"({{"writeKey":"{}","batch":[{{"type":"track","event":"Card Swiped","messageId":"k2","userId":"SKEW2","timestamp":"{}"}}]}})",
          kWriteKey, format_iso8601(now - hour)));
  REQUIRE(r.status == 200);
  CHECK(std::llabs(last_seen(port, "SKEW2") - (now - hour)) < 1'000'000);

  // A partly bad batch: 400 naming the bad call; the good one is kept, and a
  // retry of the whole batch applies nothing twice.
  const std::string batch = fmt::format(
      R"({{"writeKey":"{}","batch":[{{"type":"track","event":"Card Swiped","messageId":"p1","userId":"PART1"}},{{"type":"track","event":"Not A Real Event","messageId":"p2","userId":"PART1"}}]}})",
      kWriteKey);
  for (int attempt = 0; attempt < 2; ++attempt) {
    r = http_request(port, http::verb::post, "/v1/batch", "", batch);
    CHECK(r.status == 400);
    CHECK(has(r.body, R"("index":1,"messageId":"p2","code":"unknown_event")"));
    CHECK(has(r.body, R"("accepted":1)"));
  }
  const auto p = http_request(port, http::verb::get, "/v1/profiles/PART1", kAdminToken);
  REQUIRE(p.status == 200);
  CHECK(has(p.body, R"("swipes":1)"));
  // Not JSON: 400 with a reason.
  r = http_request(port, http::verb::post, "/v1/batch", "", "{not json");
  CHECK(r.status == 400);
  CHECK(has(r.body, "not valid JSON"));
}
