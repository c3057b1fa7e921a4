// The backtest and the live server produce the same actions for the same
// events: one generated history goes to a real server (`storepulse send`) and
// through `storepulse backtest --json --actions`; the till actions the server
// replied with plus the SMS its outbox queued must equal the backtest's list.
// Also: the per-rule counters reach /metrics and GET /v1/rules.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "../cli/cli_run.hpp"
#include "storepulse/common/time.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::test;
namespace http = boost::beast::http;

namespace {

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// Rules whose every action is observable from outside: pos in the reply, sms
// in the outbox. Between them: cooldown, holdout, a shared SMS cap, a condition
// on the event, and an event-time timer with a cancel.
void write_rules(const std::string& dir) {
  std::filesystem::create_directories(dir);
  write(dir + "/greet.yaml", R"(rule: greet
on: Card Swiped
then:
  - pos: "Hello {traits.firstName|there}"
cooldown: 3h
holdout: 30%
)");
  write(dir + "/big-order.yaml", R"(rule: big-order
on: Order Completed
if: event.total >= 20
then:
  - sms: "Thanks for your order, {traits.firstName|friend}"
  - pos: "Big basket: stamp the card"
caps:
  sms: 1/day
priority: 10
)");
  write(dir + "/nudge.yaml", R"(rule: nudge
on: Product Added
wait: 30m
cancel_on: [Order Completed]
if: cart.value >= 10
then:
  - sms: "Your cart is waiting"
caps:
  sms: 1/day
holdout: 20%
)");
}

// A deterministic mixed history, in event-time order, starting at `base`.
std::string history(TimeUs base, int customers, int steps) {
  std::string out;
  std::uint64_t x = 88172645463325252ull;
  auto rnd = [&](std::uint64_t n) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return x % n;
  };
  int id = 0;
  for (int c = 0; c < customers; ++c)
    out += fmt::format(
        R"({{"type":"identify","messageId":"i-{}","userId":"C{}","timestamp":"{}","traits":{{"firstName":"N{}","phone":"+4670000{:04}","smsOptIn":{}}}}})"
        "\n",
        id++, c, format_iso8601(base), c, c, c % 4 != 0 ? "true" : "false");
  TimeUs t = base;
  for (int i = 0; i < steps; ++i) {
    t += static_cast<TimeUs>(1 + rnd(12)) * 60 * kUsPerSecond;  // 1-12 minutes apart
    const int c = static_cast<int>(rnd(static_cast<std::uint64_t>(customers)));
    const auto ts = format_iso8601(t);
    switch (rnd(4)) {
      case 0:
        out += fmt::format(
            R"({{"type":"track","event":"Card Swiped","messageId":"s-{}","userId":"C{}","timestamp":"{}"}})"
            "\n",
            id++, c, ts);
        break;
      case 1:
        out += fmt::format(
            R"({{"type":"track","event":"Product Added","messageId":"a-{}","userId":"C{}","timestamp":"{}","properties":{{"productId":"p{}","name":"Item","price":{},"quantity":1}}}})"
            "\n",
            id++, c, ts, rnd(5), 5 + rnd(20));
        break;
      default: {
        const auto price = 5 + rnd(40);
        const int order_no = id;
        out += fmt::format(
            R"({{"type":"track","event":"Order Completed","messageId":"o-{}","userId":"C{}","timestamp":"{}","properties":{{"orderId":"o{}","total":{},"products":[{{"productId":"p1","price":{},"quantity":1}}]}}}})"
            "\n",
            id++, c, ts, order_no, price, price);
      }
    }
  }
  return out;
}

std::string field(const std::string& obj, const std::string& key) {
  std::smatch m;
  const std::regex re("\"" + key + "\":\"((?:[^\"\\\\]|\\\\.)*)\"");
  return std::regex_search(obj, m, re) ? m[1].str() : std::string();
}

// Splits a JSON array of flat objects (no nested arrays) into the objects' text.
std::vector<std::string> objects(const std::string& s, const std::string& array_key) {
  std::vector<std::string> out;
  auto at = s.find("\"" + array_key + "\":[");
  if (at == std::string::npos) return out;
  at = s.find('[', at) + 1;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = at; i < s.size(); ++i) {
    if (s[i] == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i)
        if (s[i] == '\\') ++i;
      continue;
    }
    if (s[i] == '{' && depth++ == 0) start = i;
    if (s[i] == '}' && --depth == 0) out.push_back(s.substr(start, i + 1 - start));
    if (s[i] == ']' && depth == 0) break;
  }
  return out;
}

}  // namespace

TEST_CASE("backtest and the live server produce the same actions for the same events") {
  TempDir dir;
  write_rules(dir / "rules");
  write(dir / "serve.toml", "[engine]\nshards = 1\n[sms]\nmax_outbox = 5000\n");
  // Future event times (the live decoder allows up to 24 h ahead), so the wall
  // clock never moves the server's watermark: event time alone fires timers,
  // as in the backtest.
  const TimeUs base = (wall_clock_us() / kUsPerSecond + 3600) * kUsPerSecond;
  const std::string events = dir / "events.ndjson";
  write(events, history(base, 12, 160));

  auto bt =
      testing::run_cli(fmt::format("backtest --rules {} --events {} --config {} --json --actions",
                                   dir / "rules", events, dir / "serve.toml"),
                       "rules_eq_bt");
  INFO(bt.err);
  REQUIRE(bt.code == 0);
  std::vector<std::string> expected;
  std::size_t expected_sms = 0, timer_sms = 0;
  for (const auto& a : objects(bt.out, "actions")) {
    const std::string ch = field(a, "channel");
    if (ch == "sms") {
      ++expected_sms;
      if (field(a, "rule") == "nudge") ++timer_sms;
      expected.push_back(
          fmt::format("{}|sms|{}|{}", field(a, "rule"), field(a, "customer"), field(a, "text")));
    } else {
      expected.push_back(fmt::format("{}|{}|{}|{}|{}", field(a, "rule"), ch, field(a, "customer"),
                                     field(a, "at"), field(a, "text")));
    }
  }
  // The history exercises what it should: till and SMS actions, a timer, and
  // suppressions by cooldown, holdout and cap.
  CHECK(expected.size() - expected_sms >= 5);
  CHECK(expected_sms >= 3);
  CHECK(timer_sms >= 1);
  CHECK(std::regex_search(bt.out, std::regex(R"("cooldown":[1-9])")));
  CHECK(std::regex_search(bt.out, std::regex(R"("holdout":[1-9])")));
  CHECK(std::regex_search(bt.out, std::regex(R"("cap":[1-9])")));

  ServerProcess srv(dir / "data", {"--config", dir / "serve.toml", "--rules", dir / "rules"});
  auto sent = testing::run_cli(
      fmt::format("send --url ws://127.0.0.1:{}/v1/pos --key {} {}", srv.port(), kPosKey, events),
      "rules_eq_send");
  INFO(sent.err);
  REQUIRE(sent.code == 0);
  // Event time and customer of each message, to place the till actions.
  std::map<std::string, std::pair<std::string, std::string>> by_id;
  {
    std::ifstream in(events);
    for (std::string line; std::getline(in, line);)
      by_id[field(line, "messageId")] = {field(line, "userId"), field(line, "timestamp")};
  }
  std::vector<std::string> live;
  std::istringstream replies(sent.out);
  for (std::string line; std::getline(replies, line);) {
    if (field(line, "type") != "actions") continue;
    const auto& [customer, ts] = by_id[field(line, "messageId")];
    for (const auto& a : objects(line, "actions"))
      live.push_back(fmt::format("{}|{}|{}|{}|{}", field(a, "rule"), field(a, "channel"), customer,
                                 format_iso8601(*parse_iso8601(ts)), field(a, "text")));
  }
  // SMS, including the timers' after the last reply, land in the outbox.
  std::string sms;
  for (int i = 0; i < 200; ++i) {
    sms = http_request(srv.port(), http::verb::get, "/v1/admin/sms?limit=500", kAdminToken).body;
    if (objects(sms, "messages").size() >= expected_sms) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (const auto& m : objects(sms, "messages"))
    live.push_back(
        fmt::format("{}|sms|{}|{}", field(m, "rule"), field(m, "customer"), field(m, "text")));
  std::sort(expected.begin(), expected.end());
  std::sort(live.begin(), live.end());
  CHECK(live == expected);

  // The live counters equal the backtest's, in GET /v1/rules and /metrics.
  const std::string rules_json =
      http_request(srv.port(), http::verb::get, "/v1/rules", kAdminToken).body;
  const std::string metrics = http_request(srv.port(), http::verb::get, "/metrics").body;
  for (const char* rule : {"greet", "big-order", "nudge"}) {
    INFO(rule);
    std::smatch m;
    const std::string bt_rule =
        bt.out.substr(bt.out.find(fmt::format("{{\"rule\":\"{}\",\"evaluated\"", rule)));
    REQUIRE(std::regex_search(bt_rule, m, std::regex(R"("fired":(\d+))")));
    const std::string fired = m[1];
    REQUIRE(std::regex_search(bt_rule, m,
                              std::regex(R"("converted":\{"treated":(\d+),"holdout":(\d+)\})")));
    const std::string conv_t = m[1], conv_h = m[2];
    CHECK_THAT(metrics, Catch::Contains(fmt::format(
                            "storepulse_rule_fired_total{{rule=\"{}\"}} {}\n", rule, fired)));
    CHECK_THAT(metrics, Catch::Contains(fmt::format(
                            "storepulse_rule_converted_total{{rule=\"{}\",group=\"treated\"}} {}\n",
                            rule, conv_t)));
    CHECK_THAT(metrics, Catch::Contains(fmt::format(
                            "storepulse_rule_converted_total{{rule=\"{}\",group=\"holdout\"}} {}\n",
                            rule, conv_h)));
    const std::string live_rule =
        rules_json.substr(rules_json.find(fmt::format("{{\"rule\":\"{}\"", rule)));
    REQUIRE(std::regex_search(live_rule, m, std::regex(R"("fired":(\d+))")));
    CHECK(m[1] == fired);
    REQUIRE(std::regex_search(live_rule, m,
                              std::regex(R"("converted":\{"treated":(\d+),"holdout":(\d+)\})")));
    CHECK(m[1] == conv_t);
    CHECK(m[2] == conv_h);
  }
  CHECK_THAT(metrics, Catch::Contains(
                          "storepulse_rule_suppressed_total{rule=\"greet\",reason=\"cooldown\"}"));
  CHECK_THAT(metrics, Catch::Contains(
                          "storepulse_rule_revenue_total{rule=\"big-order\",group=\"treated\"}"));
}

TEST_CASE(
    "live: a visitor's cart nudge after login fires once - for the member - and a till order stops "
    "it") {
  TempDir dir;
  const std::string rules_dir = dir / "rules";
  std::filesystem::create_directories(rules_dir);
  write(rules_dir + "/nudge.yaml", R"(rule: nudge
on: Product Added
wait: 4s
cancel_on: [Order Completed]
then:
  - web: "Still thinking about it?"
  - sms: "Your cart is waiting"
holdout: 0%
)");
  ServerProcess srv(dir / "data", {"--rules", rules_dir});
  const std::string now = format_iso8601(wall_clock_us());
  auto add = [&](const std::string& mid, const std::string& visitor) {
    return fmt::format(
        R"({{"type":"track","event":"Product Added","messageId":"{}","anonymousId":"{}","timestamp":"{}","properties":{{"productId":"p1","price":25}}}})",
        mid, visitor, now);
  };
  auto login = [&](const std::string& mid, const std::string& member, const std::string& visitor,
                   const std::string& phone) {
    return fmt::format(
        R"({{"type":"identify","messageId":"{}","userId":"{}","anonymousId":"{}","timestamp":"{}","traits":{{"phone":"{}","smsOptIn":true}}}})",
        mid, member, visitor, now, phone);
  };
  // V1 fills a cart, logs in as M1, and leaves. V2 does the same as M2, then
  // M2 buys at the till before the wait is over.
  WsClient web1(srv.port(), "/v1/web?anonymousId=V1");
  WsClient web2(srv.port(), "/v1/web?anonymousId=V2");
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE((web1.ok() && web2.ok() && pos.ok()));
  CHECK(has(web1.request(add("a1", "V1")), R"("type":"ack")"));
  CHECK(has(web1.request(login("l1", "M1", "V1", "+46700000101")), R"("type":"ack")"));
  CHECK(has(web2.request(add("a2", "V2")), R"("type":"ack")"));
  CHECK(has(web2.request(login("l2", "M2", "V2", "+46700000102")), R"("type":"ack")"));
  // The till order may reach M2's shard before the merge with V2 does (it
  // crosses shards): it still cancels the timer the merge brings.
  CHECK(has(
      pos.request(fmt::format(
          R"({{"type":"track","event":"Order Completed","messageId":"o2","userId":"M2","timestamp":"{}","properties":{{"total":25,"products":[{{"productId":"p1","price":25,"quantity":1}}]}}}})",
          now)),
      R"("type":"ack")"));
  // The one nudge reaches V1's page (it is M1's session too), and nothing
  // else: after the wait is well over, the next thing on each socket is the
  // answer to a probe sent then.
  auto first = web1.read();
  REQUIRE(first);
  CHECK(has(*first, R"("type":"push")"));
  CHECK(has(*first, "Still thinking about it?"));
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const std::string probe =
      R"({"type":"page","messageId":"%s","anonymousId":"%s","properties":{"url":"https://shop.example/"}})";
  auto probe_for = [&](const std::string& mid, const std::string& visitor) {
    std::string p = probe;
    p.replace(p.find("%s"), 2, mid);
    p.replace(p.find("%s"), 2, visitor);
    return p;
  };
  const std::string after1 = web1.request(probe_for("p1", "V1"));
  CHECK(has(after1, R"("messageId":"p1")"));  // no second nudge for the visitor id
  const std::string after2 = web2.request(probe_for("p2", "V2"));
  CHECK(has(after2, R"("messageId":"p2")"));  // M2 bought: no nudge for M2 nor V2
  // One SMS, to M1.
  const std::string sms =
      http_request(srv.port(), http::verb::get, "/v1/admin/sms?limit=50", kAdminToken).body;
  INFO(sms);
  CHECK(objects(sms, "messages").size() == 1);
  CHECK(has(sms, R"("customer":"M1")"));
}
