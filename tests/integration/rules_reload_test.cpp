// Hot reload on a running server: a rule file edited, added, broken and
// deleted in its rules folder is reflected by GET /v1/rules within 2 s (the
// contract), and by what a swipe at the till fires. A broken file is reported
// as file:line:col in the log and in GET /v1/rules while the previous rules
// keep running.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse::test;
namespace http = boost::beast::http;

namespace {

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// Seconds until `pred` holds for GET /v1/rules, or -1 after `limit`.
double seconds_until(unsigned short port, const std::function<bool(const std::string&)>& pred,
                     std::chrono::milliseconds limit = std::chrono::milliseconds(2000)) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const auto reply = http_request(port, http::verb::get, "/v1/rules", kAdminToken);
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (reply.status == 200 && pred(reply.body)) return waited;
    if (std::chrono::steady_clock::now() - start >= limit) {
      UNSCOPED_INFO("GET /v1/rules after " << waited << " s: " << reply.body);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
}

const char* kGreetV1 = R"(rule: greet
description: first version
on: Card Swiped
then:
  - pos: "Hello v1"
)";

const char* kGreetV2 = R"(rule: greet
description: second version
on: Card Swiped
then:
  - pos: "Hello v2"
)";

const char* kBonus = R"(rule: bonus
on: Card Swiped
then:
  - pos: "Bonus stamp"
priority: 10
)";

// Line 4, column 5: the misspelt field.
const char* kBonusBroken = R"(rule: bonus
on: Card Swiped
priority: 10
if: profile.ordrs >= 1
then:
  - pos: "Bonus stamp, broken"
)";

}  // namespace

TEST_CASE("hot reload: edits, additions, a broken file and deletions are live within 2 s") {
  TempDir dir;
  const std::string rules = dir / "rules";
  std::filesystem::create_directories(rules);
  write(rules + "/greet.yaml", kGreetV1);
  ServerProcess srv(dir / "data", {"--rules", rules});
  const auto port = srv.port();
  WsClient pos(port, "/v1/pos", kPosKey);
  int swipes = 0;
  const auto swipe = [&] {
    return pos.request(fmt::format(
        R"({{"type":"track","event":"Card Swiped","messageId":"reload-{}","userId":"C1"}})",
        ++swipes));
  };
  CHECK(seconds_until(port, [](const std::string& j) {
          return has(j, R"("rule":"greet")") && has(j, "first version");
        }) >= 0);
  CHECK(has(swipe(), "Hello v1"));

  SECTION("edit, add, break, delete") {
    write(rules + "/greet.yaml", kGreetV2);
    double t = seconds_until(port, [](const std::string& j) { return has(j, "second version"); });
    CHECK(t >= 0);
    INFO("edit live after " << t << " s");
    CHECK(has(swipe(), "Hello v2"));

    write(rules + "/bonus.yaml", kBonus);
    t = seconds_until(port, [](const std::string& j) { return has(j, R"("rule":"bonus")"); });
    CHECK(t >= 0);
    CHECK(has(swipe(), "Bonus stamp"));  // priority 10 wins the till over greet

    // Broken: the previous set (greet v2 and bonus) keeps running, and the
    // problem is reported with its file, line and column.
    write(rules + "/bonus.yaml", kBonusBroken);
    const std::string where = rules + "/bonus.yaml:4:5: unknown field 'profile.ordrs'";
    t = seconds_until(
        port, [&](const std::string& j) { return has(j, fmt::format(R"({{"error":"{})", where)); });
    CHECK(t >= 0);
    const std::string listed = http_request(port, http::verb::get, "/v1/rules", kAdminToken).body;
    CHECK(has(listed, R"("rule":"greet")"));
    CHECK(has(listed, R"("rule":"bonus")"));
    CHECK(has(listed, R"("line":4,"col":5)"));
    const std::string reply = swipe();
    CHECK(has(reply, "Bonus stamp"));
    CHECK_FALSE(has(reply, "broken"));
    CHECK(has(http_request(port, http::verb::get, "/metrics").body,
              "storepulse_rules_rejected_errors 1\n"));
    // The log says it too, as file:line:col (the line may trail the reply a little).
    for (int i = 0; i < 100 && !has(srv.log(), where); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(has(srv.log(), "rejected"));
    CHECK(has(srv.log(), where));

    // Deleting the broken file repairs the folder: bonus is gone, so is the error.
    std::filesystem::remove(rules + "/bonus.yaml");
    t = seconds_until(port, [](const std::string& j) {
      return !has(j, R"("rule":"bonus")") && !has(j, R"("error")") && has(j, R"("rule":"greet")");
    });
    CHECK(t >= 0);
    const std::string after = swipe();
    CHECK(has(after, "Hello v2"));
    CHECK_FALSE(has(after, "Bonus"));
    CHECK(has(http_request(port, http::verb::get, "/metrics").body,
              "storepulse_rules_rejected_errors 0\n"));
  }

  SECTION("a file that is not YAML is reported at its position, and fixing it clears the report") {
    write(rules + "/bad.yaml", "rule: bad\non: [Card Swiped\nthen:\n  - pos: x\n");
    const double t = seconds_until(
        port, [&](const std::string& j) { return has(j, R"("error":")" + rules + "/bad.yaml:"); });
    CHECK(t >= 0);
    CHECK(has(swipe(), "Hello v1"));
    write(rules + "/bad.yaml",
          "rule: bad\non: [Card Swiped]\nthen:\n  - pos: fixed\npriority: 5\n");
    CHECK(seconds_until(port, [](const std::string& j) {
            return has(j, R"("rule":"bad")") && !has(j, R"("error")");
          }) >= 0);
    CHECK(has(swipe(), "fixed"));
  }
}
