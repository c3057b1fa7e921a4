// `storepulse backtest`: runs the binary on small histories and checks the JSON.
// The hand-made history has outcomes worked out by hand below; the simulated
// one checks determinism, the action list against the counters, the baseline
// diff and the HTML page.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "cli_run.hpp"
#include "support/temp_dir.hpp"

using storepulse::testing::run_cli;
using storepulse::testing::slurp;

namespace {

// One folder per test process: ctest runs these cases in parallel, and each one
// rewrites the folder (a shared fixed path made one case read another's half-written files).
const storepulse::test::TempDir kTmp;
const std::string kDir = kTmp.str();

std::size_t count(const std::string& s, const std::string& part) {
  std::size_t n = 0;
  for (auto at = s.find(part); at != std::string::npos; at = s.find(part, at + 1)) ++n;
  return n;
}

// The JSON object of one rule inside "run".
std::string rule_json(const std::string& out, const std::string& rule) {
  const auto run = out.find("\"run\":");
  const auto at = out.find("{\"rule\":\"" + rule + "\"", run);
  if (at == std::string::npos) return {};
  return out.substr(at, out.find("}}", out.find("\"lift\":", at)) + 2 - at);
}

void write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

void hand_made() {
  std::filesystem::remove_all(kDir);
  write(kDir + "/rules/greet.yaml", R"(rule: greet
on: Card Swiped
then:
  - pos: "Hello {traits.firstName|there}"
cooldown: 1d
attribution: 3d
)");
  write(kDir + "/rules/nudge.yaml", R"(rule: nudge
on: Product Added
wait: 1h
cancel_on: [Order Completed]
then:
  - sms: "Your cart is waiting"
)");
  // C1: identify, swipe (greet), swipe again (cooldown), order 30 the next day
  // (greet converts). C2: adds to the cart at 10:00, nothing for an hour: the
  // nudge goes out at 11:00 (C1's 12:00 swipe is later than that), then C2 buys
  // 15.50 (the nudge converts). C3: adds and buys within the hour (cancelled).
  write(
      kDir + "/events.ndjson",
      R"({"type":"identify","messageId":"e1","userId":"C1","timestamp":"2026-03-01T09:00:00Z","traits":{"firstName":"Ana"}}
{"type":"identify","messageId":"e2","userId":"C2","timestamp":"2026-03-01T09:00:00Z","traits":{"phone":"+46700000002","smsOptIn":true}}
{"type":"track","event":"Card Swiped","messageId":"e3","userId":"C1","timestamp":"2026-03-01T10:00:00Z","context":{"channel":"pos"}}
{"type":"track","event":"Product Added","messageId":"e4","userId":"C2","timestamp":"2026-03-01T10:00:00Z","context":{"channel":"web"},"properties":{"productId":"p1","price":15.5}}
{"type":"track","event":"Product Added","messageId":"e5","userId":"C3","timestamp":"2026-03-01T10:05:00Z","context":{"channel":"web"},"properties":{"productId":"p1","price":15.5}}
{"type":"track","event":"Order Completed","messageId":"e6","userId":"C3","timestamp":"2026-03-01T10:20:00Z","context":{"channel":"web"},"properties":{"total":15.5,"products":[{"productId":"p1","price":15.5,"quantity":1}]}}
{"type":"track","event":"Card Swiped","messageId":"e7","userId":"C1","timestamp":"2026-03-01T12:00:00Z","context":{"channel":"pos"}}
{"type":"track","event":"Order Completed","messageId":"e8","userId":"C2","timestamp":"2026-03-01T13:00:00Z","context":{"channel":"web"},"properties":{"total":15.5,"products":[{"productId":"p1","price":15.5,"quantity":1}]}}
{"type":"track","event":"Order Completed","messageId":"e9","userId":"C1","timestamp":"2026-03-02T10:00:00Z","context":{"channel":"pos"},"properties":{"total":30,"products":[{"productId":"p2","price":30,"quantity":1}]}}
)");
}

}  // namespace

TEST_CASE("backtest: a hand-made history gives the decisions and outcomes worked out by hand") {
  hand_made();
  auto r = run_cli(
      fmt::format("backtest --rules {0}/rules --events {0}/events.ndjson --json --actions", kDir),
      "bt1");
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains(R"("lines":9,"replayed":9,"outsideRange":0,"customers":3)"));
  CHECK_THAT(r.out, Catch::Contains(R"("applied":9,"rejected":0,"actions":2)"));
  const std::string greet = rule_json(r.out, "greet");
  INFO(greet);
  CHECK_THAT(
      greet,
      Catch::Contains(R"("evaluated":2,"matched":2,"fired":1,"fires":{"pos":1,"web":0,"sms":0})"));
  CHECK_THAT(greet, Catch::Contains(R"("cooldown":1)"));
  CHECK_THAT(
      greet,
      Catch::Contains(
          R"("converted":{"treated":1,"holdout":0},"revenue":{"treated":30.00,"holdout":0.00})"));
  const std::string nudge = rule_json(r.out, "nudge");
  INFO(nudge);
  CHECK_THAT(nudge, Catch::Contains(R"("fired":1,"fires":{"pos":0,"web":0,"sms":1})"));
  CHECK_THAT(nudge, Catch::Contains(R"("smsPeakPerDay":1,"smsPeakDate":"2026-03-01")"));
  CHECK_THAT(
      nudge,
      Catch::Contains(
          R"("converted":{"treated":1,"holdout":0},"revenue":{"treated":15.50,"holdout":0.00})"));
  // Every action with its rule, channel, customer and event time.
  CHECK_THAT(
      r.out,
      Catch::Contains(
          R"("actions":[{"rule":"greet","channel":"pos","customer":"C1","at":"2026-03-01T10:00:00Z","text":"Hello Ana"},)"
          R"({"rule":"nudge","channel":"sms","customer":"C2","at":"2026-03-01T11:00:00Z","text":"Your cart is waiting"}])"));
}

TEST_CASE("backtest: --from and --to replay a window - the table names every rule") {
  hand_made();
  auto r = run_cli(fmt::format("backtest --rules {0}/rules --events {0}/events.ndjson --json "
                               "--from 2026-03-01T10:00:00Z "
                               "--to 2026-03-01T12:30:00Z",
                               kDir),
                   "bt2");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains(R"("lines":9,"replayed":5,"outsideRange":4)"));
  auto t =
      run_cli(fmt::format("backtest --rules {0}/rules --events {0}/events.ndjson", kDir), "bt3");
  REQUIRE(t.code == 0);
  CHECK_THAT(t.out, Catch::Contains("Per rule: decisions and deliveries"));
  CHECK_THAT(t.out, Catch::Contains("Per rule: orders within the attribution window"));
  CHECK(count(t.out, "greet") >= 3);
  CHECK(count(t.out, "nudge") >= 3);
}

TEST_CASE("backtest: bad arguments exit 2 - rule errors print file:line:col and exit 1") {
  hand_made();
  auto r = run_cli(fmt::format("backtest --rules {}/rules", kDir), "bt4");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("--events FILE is required"));
  r = run_cli(fmt::format("backtest --rules {0}/rules --events {0}/missing.ndjson", kDir), "bt5");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("missing.ndjson"));
  r = run_cli(
      fmt::format("backtest --rules {0}/rules --events {0}/events.ndjson --from yesterday", kDir),
      "bt6");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("--from 'yesterday'"));
  write(kDir + "/bad.ndjson",
        "{\"type\":\"track\",\"event\":\"Card Swiped\",\"messageId\":\"x\",\"userId\":\"C1\"}\n");
  r = run_cli(fmt::format("backtest --rules {0}/rules --events {0}/bad.ndjson", kDir), "bt7");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("bad.ndjson:1: timestamp: missing"));
  write(kDir + "/badrules/oops.yaml",
        "rule: oops\non: Card Swiped\nthen:\n  - pos: \"x\"\ncooldwn: 1d\n");
  r = run_cli(fmt::format("backtest --rules {0}/badrules --events {0}/events.ndjson", kDir), "bt8");
  CHECK(r.code == 1);
  CHECK_THAT(r.err,
             Catch::Contains("oops.yaml:5:1: unknown field 'cooldwn' — did you mean 'cooldown'?"));
}

TEST_CASE(
    "backtest: a simulated month is deterministic - actions match the counters - baseline diff and "
    "HTML") {
  std::filesystem::create_directories(kDir);
  const std::string events = kDir + "/sim.ndjson";
  REQUIRE(
      run_cli(fmt::format("simulate --customers 150 --days 30 --seed 11 --out {}", events), "bt9")
          .code == 0);
  const std::string rules = std::string(STOREPULSE_SOURCE_DIR) + "/rules";
  const std::string cmd =
      fmt::format("backtest --rules {} --events {} --json --actions", rules, events);
  auto a = run_cli(cmd, "bt10");
  INFO(a.err);
  REQUIRE(a.code == 0);
  auto b = run_cli(cmd, "bt11");
  REQUIRE(b.code == 0);
  CHECK(a.out == b.out);
  CHECK_THAT(a.out, Catch::Contains(R"("rejected":0)"));
  // The action list and the per-channel fire counts are two views of one run.
  std::size_t listed = count(a.out.substr(a.out.find("\"actions\":[")), "{\"rule\":");
  std::size_t fires = 0;
  for (const char* rule :
       {"abandoned-cart", "birthday-banner", "birthday-greeting", "brand-loyal-new-arrivals",
        "cross-sell", "points-milestone", "price-sensitive-discount", "size-up",
        "viewed-online-then-store", "win-back"}) {
    const std::string j = rule_json(a.out, rule);
    INFO(rule);
    REQUIRE_FALSE(j.empty());
    for (const char* ch : {"pos", "web", "sms"}) {
      const auto at = j.find(fmt::format("\"{}\":", ch), j.find("\"fires\":"));
      fires += std::stoul(j.substr(at + std::strlen(ch) + 3));
    }
  }
  CHECK(listed == fires);
  CHECK(listed > 0);

  // Baseline without one rule: that rule shows as added, the others unchanged.
  std::filesystem::remove_all(kDir + "/baseline");
  std::filesystem::create_directories(kDir + "/baseline");
  for (const auto& f : std::filesystem::directory_iterator(rules))
    if (f.path().filename() != "points-milestone.yaml")
      std::filesystem::copy_file(f.path(), kDir + "/baseline/" + f.path().filename().string());
  auto d = run_cli(
      fmt::format(
          "backtest --rules {} --events {} --json --baseline {}/baseline --html {}/report.html",
          rules, events, kDir, kDir),
      "bt12");
  REQUIRE(d.code == 0);
  const std::string diff = d.out.substr(d.out.find("\"diff\":"));
  CHECK_THAT(diff, Catch::Contains(R"({"rule":"points-milestone","status":"added")"));
  CHECK_THAT(diff, Catch::Contains(R"({"rule":"win-back","status":"both")"));
  const std::string html = slurp(kDir + "/report.html");
  CHECK_THAT(html, Catch::StartsWith("<!DOCTYPE html>"));
  CHECK_THAT(html, Catch::Contains("<style>"));
  CHECK_THAT(html, Catch::Contains("Against the baseline"));
  CHECK_THAT(html, !Catch::Contains("<script"));
  CHECK_THAT(html, !Catch::Contains("http://"));
  CHECK_THAT(html, !Catch::Contains("https://"));
}

TEST_CASE("backtest: the shipped birthday greeting covers the birthday week - once a year") {
  // All three born 10 June and buying at the till: M1 three days after the
  // birthday, M2 eight days after, M3 on the 11th and again on the 15th.
  const std::string dir = kDir + "-birthday";
  std::filesystem::remove_all(dir);
  std::string events;
  int id = 0;
  for (const char* m : {"M1", "M2", "M3"})
    events += fmt::format(
        R"({{"type":"identify","messageId":"i{}","userId":"{}","timestamp":"2026-06-01T09:00:00Z","traits":{{"firstName":"N{}","birthday":"1990-06-10"}}}})"
        "\n",
        ++id, m, m);
  const auto order = [&](const char* who, const char* date) {
    ++id;
    events += fmt::format(
        R"({{"type":"track","event":"Order Completed","messageId":"o{}","userId":"{}","timestamp":"{}T11:00:00Z","context":{{"channel":"pos"}},"properties":{{"orderId":"o{}","total":12,"products":[{{"productId":"p1","price":12,"quantity":1}}]}}}})"
        "\n",
        id, who, date, id);
  };
  order("M3", "2026-06-11");
  order("M1", "2026-06-13");
  order("M3", "2026-06-15");
  order("M2", "2026-06-18");
  write(dir + "/events.ndjson", events);
  auto r =
      run_cli(fmt::format("backtest --rules {}/rules --events {}/events.ndjson --json --actions",
                          STOREPULSE_SOURCE_DIR, dir),
              "bt-birthday");
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(rule_json(r.out, "birthday-greeting"),
             Catch::Contains(R"("fired":2,"fires":{"pos":2,"web":0,"sms":0})"));
  const std::string actions = r.out.substr(r.out.find("\"actions\":["));
  const std::string greeting = R"({"rule":"birthday-greeting","channel":"pos","customer":")";
  CHECK(count(actions, greeting + R"(M1","at":"2026-06-13T11:00:00Z")") == 1);
  CHECK(count(actions, greeting + R"(M3","at":"2026-06-11T11:00:00Z")") == 1);
  CHECK(count(actions, greeting + "M3") == 1);  // not again on the 15th
  CHECK(count(actions, greeting + "M2") == 0);  // eight days after: too late
}

TEST_CASE(
    "backtest: a cart nudge follows the visitor into the member - once, and stopped by the "
    "member") {
  // V1 fills a cart on the web, then logs in as M1: one nudge, to M1 (the
  // visitor's copy of the timer moved with the merge). V2 does the same as M2,
  // then M2 buys at the till: no nudge for either id. V3/M3 logs in and only
  // swipes a card in store: stopped too, since this rule lists Card Swiped.
  const std::string dir = kDir + "-cart-merge";
  std::filesystem::remove_all(dir);
  write(dir + "/rules/nudge.yaml", R"(rule: nudge
on: Product Added
wait: 1h
cancel_on: [Order Completed, Card Swiped]
then:
  - web: "Still thinking about it?"
  - sms: "Your cart is waiting"
)");
  std::string events;
  int id = 0;
  const auto line = [&](const std::string& body) {
    events += fmt::format(R"({{"messageId":"m{}",{}}})", ++id, body) + "\n";
  };
  for (int k = 1; k <= 3; ++k) {
    line(fmt::format(
        R"("type":"track","event":"Product Added","anonymousId":"V{}","timestamp":"2026-03-01T10:00:00Z","context":{{"channel":"web"}},"properties":{{"productId":"p1","price":25}})",
        k));
    line(fmt::format(
        R"("type":"identify","userId":"M{}","anonymousId":"V{}","timestamp":"2026-03-01T10:10:00Z","context":{{"channel":"web"}},"traits":{{"phone":"+4670000000{}","smsOptIn":true}})",
        k, k, k));
  }
  // V4 fills a cart, then buys at the till as M4 before logging in on the web:
  // the order came after the cart, so the timer the login brings is cancelled.
  line(
      R"("type":"track","event":"Product Added","anonymousId":"V4","timestamp":"2026-03-01T10:00:00Z","context":{"channel":"web"},"properties":{"productId":"p1","price":25})");
  line(
      R"("type":"track","event":"Order Completed","userId":"M4","timestamp":"2026-03-01T10:05:00Z","context":{"channel":"pos"},"properties":{"total":25,"products":[{"productId":"p1","price":25,"quantity":1}]})");
  line(
      R"("type":"identify","userId":"M4","anonymousId":"V4","timestamp":"2026-03-01T10:10:00Z","context":{"channel":"web"},"traits":{"phone":"+46700000004","smsOptIn":true})");
  line(
      R"("type":"track","event":"Order Completed","userId":"M2","timestamp":"2026-03-01T10:30:00Z","context":{"channel":"pos"},"properties":{"total":25,"products":[{"productId":"p1","price":25,"quantity":1}]})");
  line(
      R"("type":"track","event":"Card Swiped","userId":"M3","timestamp":"2026-03-01T10:40:00Z","context":{"channel":"pos"})");
  // Someone else, later: moves event time past every timer.
  line(
      R"("type":"track","event":"Card Swiped","userId":"X","timestamp":"2026-03-01T15:00:00Z","context":{"channel":"pos"})");
  write(dir + "/events.ndjson", events);
  auto r = run_cli(
      fmt::format("backtest --rules {0}/rules --events {0}/events.ndjson --json --actions", dir),
      "bt-cart-merge");
  INFO(r.err);
  INFO(r.out);
  REQUIRE(r.code == 0);
  const std::string actions = r.out.substr(r.out.find("\"actions\":["));
  CHECK(count(actions, R"("rule":"nudge")") == 2);  // web + sms, once
  CHECK(count(actions, R"("rule":"nudge","channel":"web","customer":"M1")") == 1);
  CHECK(count(actions, R"("rule":"nudge","channel":"sms","customer":"M1")") == 1);
  CHECK(count(actions, R"("customer":"V)") == 0);
  CHECK(count(actions, R"("customer":"M2")") == 0);
  CHECK(count(actions, R"("customer":"M3")") == 0);
  CHECK(count(actions, R"("customer":"M4")") == 0);
}
