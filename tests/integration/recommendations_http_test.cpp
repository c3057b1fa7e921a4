// GET /v1/recommendations against the real server: the same items/reason as
// the WebSocket `recommend`, best sellers of every shard for a new visitor,
// still there after a restart (popularity is in the snapshot), and clear
// errors for bad requests.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <thread>

#include "storepulse/common/time.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::test;

namespace {

std::string order(int n, const std::string& user, const std::string& product, int qty) {
  return fmt::format(
      R"({{"type":"track","event":"Order Completed","messageId":"o-{}","userId":"{}","timestamp":"{}",
    "properties":{{"total":{},"products":[{{"productId":"{}","name":"Fine {}","category":"Food","price":1,"quantity":{}}}]}}}})",
      n, user, format_iso8601(wall_clock_us()), qty, product, product, qty);
}

HttpReply get(unsigned short port, const std::string& target, const std::string& token = "") {
  return http_request(port, http::verb::get, target, token);
}

}  // namespace

TEST_CASE("recommendations over HTTP: every shard's best sellers, kept over a restart") {
  TempDir data;
  ServerProcess srv(data.str());
  {
    WsClient pos(srv.port(), "/v1/pos", kPosKey);
    REQUIRE(pos.ok());
    // Ten buyers of olives (3 each) and five of parmesan (3 each), spread over
    // the shards by their ids.
    int n = 0;
    for (int i = 0; i < 10; ++i)
      REQUIRE(has(pos.request(order(++n, fmt::format("X{}", i), "olives", 3)), "ack"));
    for (int i = 0; i < 5; ++i)
      REQUIRE(has(pos.request(order(++n, fmt::format("Y{}", i), "parmesan", 3)), "ack"));
  }
  // Shards publish their best sellers to each other about once a second.
  HttpReply r;
  for (int tries = 0; tries < 40; ++tries) {
    r = get(srv.port(), "/v1/recommendations?anonymousId=new-visitor&limit=2");
    if (has(r.body, R"("score":30.000)")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO(r.body);
  CHECK(r.status == 200);
  CHECK(has(r.body, R"("reason":"popular now")"));
  // 30 units of olives in all: the visitor's shard alone holds only its share.
  CHECK(has(r.body,
            R"({"productId":"olives","name":"Fine olives","category":"Food","score":30.000})"));
  CHECK(has(r.body,
            R"({"productId":"parmesan","name":"Fine parmesan","category":"Food","score":15.000})"));

  // The same answer as the WebSocket recommend.
  {
    WsClient web(srv.port(), "/v1/web");
    REQUIRE(web.ok());
    const std::string ws =
        web.request(R"({"type":"recommend","anonymousId":"new-visitor","limit":2})");
    CHECK(ws == r.body);
  }
  // A buyer is not offered what they bought; a server-side caller may use a key.
  auto mine = get(srv.port(), "/v1/recommendations?userId=X0&limit=5", kPosKey);
  INFO(mine.body);
  CHECK(mine.status == 200);
  CHECK_FALSE(has(mine.body, R"("productId":"olives")"));
  CHECK(has(mine.body, R"("productId":"parmesan")"));

  // Bad requests: a clear error, nothing else.
  auto bad = get(srv.port(), "/v1/recommendations?limit=3");
  CHECK(bad.status == 400);
  CHECK(has(bad.body, R"("error":"bad_field")"));
  CHECK(has(bad.body, "anonymousId"));
  for (const char* l : {"0", "51", "x", "3x", ""}) {
    auto b = get(srv.port(), fmt::format("/v1/recommendations?userId=X0&limit={}", l));
    INFO(l << ": " << b.body);
    if (*l == 0) {
      CHECK(b.status == 200);  // an empty limit is no limit given
    } else {
      CHECK(b.status == 400);
      CHECK(has(b.body, "limit: expected a whole number from 1 to 50"));
    }
  }
  CHECK(get(srv.port(), "/v1/recommendations?userId=" + std::string(129, 'a')).status == 400);
  CHECK(get(srv.port(), "/v1/recommendations?userId=X0", "not-a-key").status == 401);
  CHECK(http_request(srv.port(), http::verb::post, "/v1/recommendations?userId=X0").status == 405);

  // After a restart (snapshot on the way down, nothing left to replay) the
  // best sellers are still known, at once.
  srv.stop();
  srv.start();
  auto again = get(srv.port(), "/v1/recommendations?anonymousId=someone-else&limit=2");
  INFO(again.body);
  CHECK(again.status == 200);
  CHECK(has(again.body,
            R"({"productId":"olives","name":"Fine olives","category":"Food","score":30.000})"));
}
