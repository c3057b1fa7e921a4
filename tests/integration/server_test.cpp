// Integration: the real server binary on a free loopback port.
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "storepulse/common/time.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::test;
namespace http = boost::beast::http;

namespace {
std::string today_birthday() {
  int y;
  unsigned m, d;
  civil_from_days(wall_clock_us() / kUsPerDay, y, m, d);
  return fmt::format("1990-{:02}-{:02}", m, d);
}
}  // namespace

TEST_CASE("healthz and metrics answer with the contract names") {
  TempDir dir;
  ServerProcess srv(dir.str());
  auto h = http_request(srv.port(), http::verb::get, "/healthz");
  CHECK(h.status == 200);
  auto m = http_request(srv.port(), http::verb::get, "/metrics");
  CHECK(m.status == 200);
  for (const char* name :
       {"storepulse_events_total{type=", "storepulse_errors_total{code=\"bad_json\"}",
        "storepulse_queue_depth{shard=\"0\"}", "storepulse_event_latency_seconds_bucket"})
    CHECK(has(m.body, name));
  // Every family is declared once, and no family's name is another's plus a
  // suffix Prometheus reserves (_total, _count, _sum, _bucket, _created): a
  // gauge `x` beside a counter `x_total` is refused by Python's
  // prometheus_client parser and flagged by promtool.
  std::set<std::string> families;
  std::istringstream lines(m.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    const std::string name = line.substr(7, line.find(' ', 7) - 7);
    INFO(line);
    CHECK(families.insert(name).second);
  }
  CHECK(families.size() > 10);
  for (const auto& f : families)
    for (const char* suffix : {"_total", "_count", "_sum", "_bucket", "_created"}) {
      INFO(f << " and " << f << suffix);
      CHECK(families.count(f + suffix) == 0);
    }
  CHECK(has(m.body, "storepulse_connections_accepted_total"));
}

TEST_CASE("POS upgrade needs a valid terminal key") {
  TempDir dir;
  ServerProcess srv(dir.str());
  WsClient none(srv.port(), "/v1/pos");
  CHECK_FALSE(none.ok());
  CHECK(none.status() == 401);
  WsClient wrong(srv.port(), "/v1/pos", "not-the-key-at-all");
  CHECK_FALSE(wrong.ok());
  CHECK(wrong.status() == 401);
  WsClient good(srv.port(), "/v1/pos", kPosKey);
  CHECK(good.ok());
  // Profiles need the admin token.
  CHECK(http_request(srv.port(), http::verb::get, "/v1/profiles/C1").status == 401);
  CHECK(http_request(srv.port(), http::verb::get, "/v1/profiles/C1", "wrong").status == 401);
  CHECK(http_request(srv.port(), http::verb::get, "/v1/profiles/C1", kAdminToken).status == 404);
}

TEST_CASE("a scripted session: identify - birthday swipe - order - profile read back") {
  TempDir dir;
  ServerProcess srv(dir.str());
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  CHECK(
      pos.request(
          R"({"type":"identify","messageId":"s-1","userId":"C42","traits":{"firstName":"Ana","birthday":")" +
          today_birthday() + R"(","phone":"+46700000042","smsOptIn":true}})") ==
      R"({"type":"ack","messageId":"s-1"})");
  auto swipe = pos.request(
      R"({"type":"track","event":"Card Swiped","messageId":"s-2","userId":"C42","context":{"storeId":"S1"}})");
  CHECK(has(swipe, R"("type":"actions")"));
  CHECK(has(swipe, R"("rule":"birthday-greeting")"));
  CHECK(has(swipe, "Happy birthday, Ana!"));
  // A second swipe the same day: greeted once a year only.
  CHECK(
      has(pos.request(R"({"type":"track","event":"Card Swiped","messageId":"s-3","userId":"C42"})"),
          R"("type":"ack")"));
  CHECK(
      has(pos.request(R"({"type":"track","event":"Order Completed","messageId":"s-4","userId":"C42",
      "properties":{"orderId":"o-1","total":45.5,"discount":4.5,"products":[
        {"productId":"kid-1","category":"Kidswear","brand":"Tiny","price":25,"quantity":1,"size":"110"},
        {"productId":"soap","category":"Cosmetics","brand":"Glow","price":25,"quantity":1}]}})"),
          R"("type":"ack")"));
  auto p = http_request(srv.port(), http::verb::get, "/v1/profiles/C42", kAdminToken);
  REQUIRE(p.status == 200);
  for (const char* f :
       {R"("userId":"C42")", R"("firstName":"Ana")", R"("recencyDays":0)", R"("frequency":1)",
        R"("monetary":45.50)", R"("channels":{"pos":1,"web":0})", R"("Kidswear":25.00)",
        R"("discountShare":0.0900)", R"("cart":{"items":[],"value":0.00})", R"("size":"110")",
        R"("points":45)"})
    CHECK(has(p.body, f));
  // The dashboard's "recent events": newest first, with event names and totals.
  const auto recent = p.body.find(R"("recentEvents":[)");
  REQUIRE(recent != std::string::npos);
  const std::string tail = p.body.substr(recent);
  CHECK(has(tail, R"({"type":"track","event":"Order Completed","channel":"pos")"));
  CHECK(has(tail, R"("total":45.50,"messageId":"s-4")"));
  CHECK(tail.find(R"("messageId":"s-4")") < tail.find(R"("messageId":"s-2")"));
  CHECK(tail.find(R"("messageId":"s-2")") < tail.find(R"("messageId":"s-1")"));
}

TEST_CASE("bad input gets a specific error - changes nothing - and the connection stays open") {
  TempDir dir;
  ServerProcess srv(dir.str());
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  struct Case {
    std::string msg, code, detail;
  };
  std::vector<Case> cases = {
      {"{not json", "bad_json", ""},
      {R"({"type":"track","messageId":"e1","userId":"C7","event":"Levitated"})", "unknown_event",
       "Levitated"},
      {R"({"type":"track","messageId":"e2","userId":"C7","event":"Order Completed","properties":{"total":"lots"}})",
       "bad_field", "properties.total"},
      {R"({"type":"track","messageId":"e3","event":"Card Swiped"})", "bad_field", "userId"},
      {R"({"type":"track","messageId":"e4","userId":"C7","event":"Order Completed","properties":{"products":[{"productId":"x","price":-3}]}})",
       "bad_field", "products[0].price"},
      {std::string(
           R"({"type":"track","messageId":"e5","userId":"C7","event":"Card Swiped","pad":")") +
           std::string(70 * 1024, 'x') + "\"}",
       "too_large", "limit"},
  };
  for (const auto& c : cases) {
    INFO(c.msg.substr(0, 120));
    auto r = pos.request(c.msg);
    CHECK(has(r, R"("code":")" + c.code + "\""));
    CHECK(has(r, c.detail));
  }
  CHECK(http_request(srv.port(), http::verb::get, "/v1/profiles/C7", kAdminToken).status == 404);
  CHECK(pos.request(R"({"type":"track","event":"Card Swiped","messageId":"ok-1","userId":"C7"})") ==
        R"({"type":"ack","messageId":"ok-1"})");
  auto m = http_request(srv.port(), http::verb::get, "/metrics");
  CHECK(has(m.body, R"(storepulse_errors_total{code="bad_field"} 3)"));
}

TEST_CASE("web visitor aliased to a member: one profile with the cart and linked ids") {
  TempDir dir;
  ServerProcess srv(dir.str());
  WsClient web(srv.port(), "/v1/web");
  REQUIRE(web.ok());
  CHECK(has(
      web.request(
          R"({"type":"track","event":"Product Added","messageId":"w-1","anonymousId":"visitor-9",
      "properties":{"productId":"boots-1","name":"Rain boots","category":"Shoes","price":59}})"),
      "ack"));
  // POS events on /v1/web are refused: a visitor cannot pose as a till.
  CHECK(has(
      web.request(
          R"({"type":"track","event":"Card Swiped","messageId":"w-2","anonymousId":"visitor-9","context":{"channel":"pos"}})"),
      "bad_field"));
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  CHECK(has(
      pos.request(R"({"type":"alias","messageId":"al-1","userId":"C9","previousId":"visitor-9"})"),
      "ack"));
  std::string body;
  for (int i = 0; i < 100; ++i) {
    body = http_request(srv.port(), http::verb::get, "/v1/profiles/C9", kAdminToken).body;
    if (has(body, R"("absorbed":true)")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(has(body, R"("linkedIds":["visitor-9"])"));
  CHECK(has(body, R"("productId":"boots-1")"));
  CHECK(has(body, R"("value":59.00)"));
  // The visitor's later clicks land on the member.
  CHECK(has(
      web.request(
          R"({"type":"track","event":"Product Viewed","messageId":"w-3","anonymousId":"visitor-9","properties":{"productId":"hat"}})"),
      "ack"));
  body = http_request(srv.port(), http::verb::get, "/v1/profiles/C9", kAdminToken).body;
  CHECK(has(body, R"("webViews":1)"));
}

TEST_CASE("re-sent messageIds are acked again and applied once") {
  TempDir dir;
  ServerProcess srv(dir.str());
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  const std::string order =
      R"({"type":"track","event":"Order Completed","messageId":"dup-1","userId":"C5","properties":{"total":10}})";
  CHECK(pos.request(order) == R"({"type":"ack","messageId":"dup-1"})");
  CHECK(pos.request(order) == R"({"type":"ack","messageId":"dup-1"})");
  auto p = http_request(srv.port(), http::verb::get, "/v1/profiles/C5", kAdminToken);
  CHECK(has(p.body, R"("frequency":1)"));
}

TEST_CASE("one connection's events are applied in the order they were sent") {
  // Two io threads serve the connection in turns; the shard must still see its
  // events in the order they came off the socket (cart, timers and attribution
  // depend on it). Replies for one customer leave the shard in applied order.
  TempDir dir;
  ServerProcess srv(dir.str());
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  constexpr int kEvents = 20000, kWindow = 256;
  int sent = 0, received = 0, out_of_order = 0;
  std::string first_bad;
  auto read_one = [&] {
    auto r = pos.read();
    REQUIRE(r);
    const std::string want = fmt::format(R"("messageId":"seq-{}")", received++);
    if (r->find(want) == std::string::npos && out_of_order++ == 0)
      first_bad = want + " but got " + *r;
  };
  while (sent < kEvents) {
    pos.send(fmt::format(
        R"({{"type":"track","event":"Product Viewed","messageId":"seq-{}","userId":"SEQ1","properties":{{"productId":"p{}"}}}})",
        sent, sent % 7));
    ++sent;
    while (sent - received >= kWindow) read_one();
  }
  while (received < sent) read_one();
  INFO(first_bad);
  CHECK(out_of_order == 0);
}

TEST_CASE("POST /v1/events takes a JSON array or NDJSON and answers per event") {
  TempDir dir;
  ServerProcess srv(dir.str());
  const std::string batch =
      R"([{"type":"track","event":"Card Swiped","messageId":"b-1","userId":"C1"},
     {"type":"track","event":"Nope","messageId":"b-2","userId":"C1"},
     {"type":"identify","messageId":"b-3","userId":"C2","traits":{"firstName":"Bo"}}])";
  CHECK(http_request(srv.port(), http::verb::post, "/v1/events", "", batch).status == 401);
  auto r = http_request(srv.port(), http::verb::post, "/v1/events", kPosKey, batch);
  CHECK(r.status == 200);
  CHECK(has(r.body, R"({"type":"ack","messageId":"b-1"})"));
  CHECK(has(r.body, R"("messageId":"b-2","code":"unknown_event")"));
  CHECK(has(r.body, R"("accepted":2,"rejected":1)"));
  auto nd = http_request(
      srv.port(), http::verb::post, "/v1/events", kPosKey,
      "{\"type\":\"track\",\"event\":\"Card Swiped\",\"messageId\":\"n-1\",\"userId\":\"C3\"}\n"
      "{\"type\":\"track\",\"event\":\"Card Swiped\",\"messageId\":\"n-2\",\"userId\":\"C3\"}\n");
  CHECK(has(nd.body, R"("accepted":2,"rejected":0)"));
  CHECK(http_request(srv.port(), http::verb::post, "/v1/events", kPosKey, "[{\"a\":1},").status ==
        400);
}

TEST_CASE("web connections are rate limited per connection") {
  TempDir dir;
  ServerProcess srv(dir.str());
  WsClient web(srv.port(), "/v1/web");
  // 60 in a burst: over the 40-message bucket, under the 64 replies a web
  // connection may have queued before it counts as a slow reader.
  for (int i = 0; i < 60; ++i)
    web.send(fmt::format(R"({{"type":"page","messageId":"r-{}","anonymousId":"v-r"}})", i));
  int limited = 0, acked = 0;
  for (int i = 0; i < 60; ++i) {
    auto r = web.read();
    REQUIRE(r);
    limited += has(*r, "rate_limited");
    acked += has(*r, "\"ack\"");
  }
  CHECK(limited > 0);
  CHECK(acked >= 40);
  CHECK(acked + limited == 60);
}

// The durability contract: fsync always, orders streaming over several
// connections, kill -9 while acks arrive, restart on the same folder. Every
// acked order is in the profiles; after re-sending everything, each order
// is applied exactly once.
TEST_CASE("crash: kill -9 under load loses no acked event and applies none twice") {
  TempDir dir;
  constexpr int kClients = 4, kPerClient = 400, kCustomers = 25;
  std::map<std::string, std::set<std::string>> sent_by_customer, acked_by_customer;
  auto order = [](int c, int i) {
    const std::string cust = fmt::format("K{}", (c * kPerClient + i) % kCustomers);
    const std::string mid = fmt::format("crash-{}-{}", c, i);
    return std::make_tuple(
        cust, mid,
        fmt::format(
            R"({{"type":"track","event":"Order Completed","messageId":"{}","userId":"{}","properties":{{"total":1}}}})",
            mid, cust));
  };
  for (int round = 0; round < 2; ++round) {
    ServerProcess srv(dir.str(), {"--fsync", "always"});
    std::vector<std::thread> clients;
    std::mutex mu;
    std::atomic<int> total_acks{0};
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        WsClient pos(srv.port(), "/v1/pos", kPosKey);
        if (!pos.ok()) return;
        for (int i = 0; i < kPerClient; ++i) {
          auto [cust, mid, json] = order(c, i);
          {
            std::lock_guard<std::mutex> lk(mu);
            sent_by_customer[cust].insert(mid);
          }
          beast::error_code ec;
          pos.stream().write(asio::buffer(json), ec);
          if (ec) return;
          auto r = pos.read();
          if (!r) return;
          if (has(*r, "\"ack\"")) {
            std::lock_guard<std::mutex> lk(mu);
            acked_by_customer[cust].insert(mid);
            ++total_acks;
          }
        }
      });
    }
    if (round == 0) {
      while (total_acks.load() < 300) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      srv.kill9();
    }
    for (auto& t : clients) t.join();
  }
  ServerProcess srv(dir.str(), {"--fsync", "always"});
  std::size_t acked_total = 0;
  for (const auto& [cust, mids] : acked_by_customer) {
    acked_total += mids.size();
    auto p = http_request(srv.port(), http::verb::get, "/v1/profiles/" + cust, kAdminToken);
    REQUIRE(p.status == 200);
    const auto at = p.body.find("\"frequency\":");
    const int freq = std::stoi(p.body.substr(at + 12));
    INFO(cust);
    CHECK(freq >= static_cast<int>(mids.size()));                    // nothing acked was lost
    CHECK(freq <= static_cast<int>(sent_by_customer[cust].size()));  // nothing applied twice
  }
  CHECK(acked_total >= 300);
  // Re-send every order ever sent: each one must end up applied exactly once.
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  for (int c = 0; c < kClients; ++c)
    for (int i = 0; i < kPerClient; ++i) {
      auto [cust, mid, json] = order(c, i);
      REQUIRE(has(pos.request(json), "\"ack\""));
    }
  for (const auto& [cust, mids] : sent_by_customer) {
    auto p = http_request(srv.port(), http::verb::get, "/v1/profiles/" + cust, kAdminToken);
    INFO(cust);
    CHECK(has(p.body, fmt::format("\"frequency\":{},", mids.size())));
  }
}

TEST_CASE("admin JSON endpoints need the token and describe rules and live stats") {
  TempDir dir;
  ServerProcess srv(dir.str());
  CHECK(http_request(srv.port(), http::verb::get, "/v1/rules").status == 401);
  auto rules = http_request(srv.port(), http::verb::get, "/v1/rules", kAdminToken);
  CHECK(rules.status == 200);
  CHECK(has(rules.body, "birthday-greeting"));
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  CHECK(
      has(pos.request(R"({"type":"track","event":"Card Swiped","messageId":"st-1","userId":"C1"})"),
          "ack"));
  auto stats = http_request(srv.port(), http::verb::get, "/v1/admin/stats", kAdminToken);
  CHECK(stats.status == 200);
  CHECK(has(stats.body, R"("pos":1)"));
  CHECK(has(stats.body, R"("profiles":1)"));
  // Static files are only served from the web root, never outside it.
  CHECK(http_request(srv.port(), http::verb::get, "/static/../config/storepulse.toml").status ==
        404);
  CHECK(http_request(srv.port(), http::verb::get, "/static/%2e%2e/README.md").status == 404);
}

TEST_CASE("analyze --journal reads the events a server journaled") {
  TempDir dir;
  {
    ServerProcess srv(dir.str());
    WsClient pos(srv.port(), "/v1/pos", kPosKey);
    for (int i = 0; i < 3; ++i)
      CHECK(has(
          pos.request(fmt::format(
              R"({{"type":"track","event":"Order Completed","messageId":"j-{}","userId":"J1","properties":{{"total":10}}}})",
              i)),
          "ack"));
    srv.kill9();  // the events are only in the journal, not in a snapshot
  }
  const std::string cmd =
      fmt::format("{} analyze rfm --journal {} --format csv 2>&1", STOREPULSE_BINARY, dir.str());
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  CHECK(::pclose(p) == 0);
  INFO(out);
  CHECK(has(out, "J1"));
}
