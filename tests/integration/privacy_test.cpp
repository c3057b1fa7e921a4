// Integration: personal data. DELETE /v1/profiles/{id} erases a customer
// everywhere the server keeps data (profiles, links, SMS outbox, snapshots,
// journal - by destroying the customer's key), and GET .../export returns
// everything held about one. Both stores: the embedded journal and Redis.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "support/redis_process.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::test;
namespace http = boost::beast::http;
namespace fs = std::filesystem;

namespace {

// What the erased customer is known by; none may be found on disk afterwards.
const std::vector<std::string> kErasedNeedles = {
    "ERASE-ME-7731", "anon-erase-88", "Zelda", "Quixote", "46701234599", "zelda.q@example.org"};

/// Files under `root` holding `needle` (as bytes), as "file: needle" lines.
std::vector<std::string> grep_tree(const fs::path& root, const std::vector<std::string>& needles) {
  std::vector<std::string> hits;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    std::ifstream f(e.path(), std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    for (const auto& n : needles)
      if (data.find(n) != std::string::npos) hits.push_back(e.path().string() + ": " + n);
  }
  return hits;
}

void write_setup(const fs::path& dir, const std::string& store_section) {
  fs::create_directories(dir / "rules");
  // An SMS on every order, so the outbox holds a message with the phone and name.
  std::ofstream(dir / "rules/thanks-sms.yaml") << R"(rule: thanks-sms
on: Order Completed
then:
  - sms: "Thanks {traits.firstName|there}!"
)";
  // Snapshots every 100 ms: the erased profile is in a snapshot before the erasure.
  std::ofstream(dir / "privacy.toml")
      << "[store]\nsnapshot_interval = \"100ms\"\nsnapshot_min_records = 1\n"
      << store_section;
}

/// The [store] / [redis] lines that put the server on `redis` (prefix gdpr).
std::string redis_store(const RedisProcess& redis) {
  return "kind = \"redis\"\n[redis]\nurl = \"" + redis.url() + "\"\nprefix = \"gdpr\"\n";
}

void seed(unsigned short port) {
  WsClient pos(port, "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  WsClient web(port, "/v1/web");
  REQUIRE(web.ok());
  // The visitor browses first, then logs in: the visitor id is linked to the member.
  CHECK_THAT(
      web.request(
          R"({"type":"track","event":"Product Viewed","messageId":"pv-1","anonymousId":"anon-erase-88","properties":{"productId":"SKU-9","category":"Shoes","price":49}})"),
      Catch::Contains("ack"));
  CHECK_THAT(
      pos.request(
          R"({"type":"identify","messageId":"id-1","userId":"ERASE-ME-7731","traits":{"firstName":"Zelda","lastName":"Quixote","phone":"+46 70 123 45 99","email":"zelda.q@example.org","birthday":"1984-03-02","smsOptIn":true}})"),
      Catch::Contains("ack"));
  CHECK_THAT(
      web.request(
          R"({"type":"identify","messageId":"id-2","anonymousId":"anon-erase-88","userId":"ERASE-ME-7731"})"),
      Catch::Contains("ack"));
  CHECK_THAT(
      pos.request(
          R"({"type":"track","event":"Order Completed","messageId":"o-1","userId":"ERASE-ME-7731","properties":{"orderId":"R-1","total":120,"products":[{"productId":"SKU-1","category":"Shoes","price":120,"quantity":1}]}})"),
      Catch::Contains("messageId"));
  // Someone else, who must keep everything.
  CHECK_THAT(
      pos.request(
          R"({"type":"identify","messageId":"id-3","userId":"KEEP-4410","traits":{"firstName":"Keeper","phone":"+46709999911","smsOptIn":true}})"),
      Catch::Contains("ack"));
  CHECK_THAT(
      pos.request(
          R"({"type":"track","event":"Order Completed","messageId":"o-2","userId":"KEEP-4410","properties":{"orderId":"R-2","total":80,"products":[{"productId":"SKU-2","category":"Bags","price":80,"quantity":1}]}})"),
      Catch::Contains("messageId"));
}

std::string get(unsigned short port, const std::string& target) {
  auto r = http_request(port, http::verb::get, target, kAdminToken);
  return std::to_string(r.status) + " " + r.body;
}

/// Export, erase, and check the answers; the caller checks the disk.
void export_and_erase(unsigned short port) {
  // Wait until the visitor's link and the SMS have landed (cross-shard steps).
  std::string ex;
  for (int i = 0; i < 100; ++i) {
    ex = get(port, "/v1/profiles/ERASE-ME-7731/export");
    if (ex.find("anon-erase-88") != std::string::npos &&
        ex.find("Thanks Zelda") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Subject access: everything held, unmasked.
  CHECK_THAT(ex, Catch::StartsWith("200 {\"exportedAt\":"));
  CHECK_THAT(ex, Catch::Contains("\"profile\":{"));
  CHECK_THAT(ex, Catch::Contains("Quixote"));
  CHECK_THAT(ex, Catch::Contains("anon-erase-88"));
  CHECK_THAT(ex, Catch::Contains("\"to\":\"+46701234599\""));
  CHECK_THAT(ex, Catch::Contains("Thanks Zelda!"));
  CHECK_THAT(ex, Catch::Contains("recentEvents"));
  CHECK(http_request(port, http::verb::get, "/v1/profiles/ERASE-ME-7731/export").status == 401);
  CHECK(http_request(port, http::verb::delete_, "/v1/profiles/ERASE-ME-7731").status == 401);
  CHECK(http_request(port, http::verb::delete_, "/v1/profiles/ERASE-ME-7731", "wrong").status ==
        401);
  std::this_thread::sleep_for(
      std::chrono::milliseconds(300));  // a periodic snapshot now holds the profile

  auto del = http_request(port, http::verb::delete_, "/v1/profiles/ERASE-ME-7731", kAdminToken);
  CHECK(del.status == 200);
  CHECK_THAT(del.body, Catch::Contains(
                           R"("erased":"ERASE-ME-7731","ids":["ERASE-ME-7731","anon-erase-88"])"));
  CHECK_THAT(del.body, Catch::Contains(R"("profiles":2,"keys":2,"smsMessages":1)"));

  CHECK_THAT(get(port, "/v1/profiles/ERASE-ME-7731"), Catch::StartsWith("404"));
  CHECK_THAT(get(port, "/v1/profiles/anon-erase-88"), Catch::StartsWith("404"));
  CHECK_THAT(get(port, "/v1/profiles/ERASE-ME-7731/export"), Catch::StartsWith("404"));
  // Erasing again: nothing left.
  CHECK(http_request(port, http::verb::delete_, "/v1/profiles/ERASE-ME-7731", kAdminToken).status ==
        404);
  auto admin = http_request(port, http::verb::get, "/v1/admin/sms", kAdminToken).body;
  CHECK_THAT(admin, !Catch::Contains("ERASE-ME-7731"));
  CHECK_THAT(admin, Catch::Contains("KEEP-4410"));
  CHECK_THAT(get(port, "/v1/profiles/KEEP-4410"), Catch::Contains("\"frequency\":1"));
}

void check_after_restart(unsigned short port) {
  CHECK_THAT(get(port, "/v1/profiles/ERASE-ME-7731"), Catch::StartsWith("404"));
  CHECK_THAT(get(port, "/v1/profiles/anon-erase-88"), Catch::StartsWith("404"));
  const std::string keep = get(port, "/v1/profiles/KEEP-4410");
  CHECK_THAT(keep, Catch::StartsWith("200"));
  CHECK_THAT(keep, Catch::Contains("\"frequency\":1"));
  CHECK_THAT(keep, Catch::Contains("Keeper"));
}

/// The same id after the erasure is a new customer: a fresh profile, a fresh key.
void check_id_reusable(unsigned short port) {
  WsClient pos(port, "/v1/pos", kPosKey);
  CHECK_THAT(
      pos.request(
          R"({"type":"track","event":"Card Swiped","messageId":"sw-9","userId":"ERASE-ME-7731"})"),
      Catch::Contains("messageId"));
  const std::string fresh = get(port, "/v1/profiles/ERASE-ME-7731");
  CHECK_THAT(fresh, Catch::StartsWith("200"));
  CHECK_THAT(fresh, !Catch::Contains("Zelda"));
  CHECK_THAT(fresh, Catch::Contains("\"frequency\":0"));
}

}  // namespace

TEST_CASE("privacy: erasure leaves nothing readable in the data folder - embedded store",
          "[privacy]") {
  TempDir dir;
  write_setup(dir.str(), "");
  const std::vector<std::string> args = {"--config", dir / "privacy.toml", "--rules",
                                         dir / "rules"};
  {
    ServerProcess srv(dir / "data", args);
    seed(srv.port());
    // Before erasure the data folder does hold the customer (the check can see it).
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(!grep_tree(dir / "data", {"Quixote", "46701234599"}).empty());
    export_and_erase(srv.port());
    // kill -9 right after: the erasure was durable when it was answered.
    srv.kill9();
  }
  {
    ServerProcess srv(dir / "data", args);
    check_after_restart(srv.port());
    srv.stop();
  }
  // The erased customer's name, phone, email and ids: 0 hits; the other customer is there.
  const auto hits = grep_tree(dir / "data", kErasedNeedles);
  INFO("hits: " << Catch::Detail::stringify(hits));
  CHECK(hits.empty());
  CHECK(!grep_tree(dir / "data", {"Keeper"}).empty());
  ServerProcess srv(dir / "data", args);
  check_id_reusable(srv.port());
}

TEST_CASE("privacy: erasure leaves nothing readable in redis or its files - redis store",
          "[privacy][redis]") {
  TempDir dir;
  fs::create_directories(dir / "redis");
  RedisProcess redis(dir / "redis");
  write_setup(dir.str(), redis_store(redis));
  const std::vector<std::string> args = {"--config", dir / "privacy.toml", "--rules",
                                         dir / "rules"};
  {
    ServerProcess srv(dir / "data", args);
    seed(srv.port());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(!grep_tree(dir / "redis", {"Quixote"}).empty());
    export_and_erase(srv.port());
    srv.kill9();
  }
  {
    ServerProcess srv(dir / "data", args);
    check_after_restart(srv.port());
    srv.stop();
  }
  // Every value in Redis, as Redis itself dumps it.
  std::string all;
  for (const auto& key : [&] {
         std::vector<std::string> keys;
         std::string list = redis.command({"KEYS", "*"});
         std::size_t at = 0;
         while (at <= list.size()) {
           const auto nl = list.find('\n', at);
           keys.push_back(list.substr(at, nl == std::string::npos ? std::string::npos : nl - at));
           if (nl == std::string::npos) break;
           at = nl + 1;
         }
         return keys;
       }()) {
    if (key.empty()) continue;
    all += key + "\n" + redis.command({"DUMP", key}) + "\n";
  }
  CHECK(all.find("Keeper") != std::string::npos);  // the dump shows plain values
  for (const auto& n : kErasedNeedles) {
    INFO(n);
    CHECK(all.find(n) == std::string::npos);
  }
  // And the append-only files on the Redis host, once the rewrite the erasure
  // asked for has finished.
  auto wait_for_rewrite = [&] {
    for (int i = 0; i < 100; ++i) {
      const std::string info = redis.command({"INFO", "persistence"});
      if (info.find("aof_rewrite_in_progress:0") != std::string::npos &&
          info.find("aof_rewrite_scheduled:0") != std::string::npos)
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  };
  wait_for_rewrite();
  redis.command({"BGREWRITEAOF"});  // also covers writes after the erasure's own rewrite
  wait_for_rewrite();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto hits = grep_tree(dir / "redis", kErasedNeedles);
  INFO("hits: " << Catch::Detail::stringify(hits));
  CHECK(hits.empty());
  const auto data_hits = grep_tree(dir / "data", kErasedNeedles);
  CHECK(data_hits.empty());
}

TEST_CASE("privacy: an erasure that fails while redis is down answers 503 and a retry completes it",
          "[privacy][redis]") {
  TempDir dir;
  fs::create_directories(dir / "redis");
  RedisProcess redis(dir / "redis");
  write_setup(dir.str(), redis_store(redis));
  const std::vector<std::string> args = {"--config", dir / "privacy.toml", "--rules",
                                         dir / "rules"};
  {
    ServerProcess srv(dir / "data", args);
    seed(srv.port());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a snapshot holds the customer
    redis.kill9();
    auto failed =
        http_request(srv.port(), http::verb::delete_, "/v1/profiles/ERASE-ME-7731", kAdminToken);
    CHECK(failed.status == 503);
    CHECK_THAT(failed.body, Catch::Contains("\"error\":\"unavailable\""));
    redis.start();
    std::string retried;
    for (int i = 0; i < 50; ++i) {  // the store reconnects by itself
      auto r =
          http_request(srv.port(), http::verb::delete_, "/v1/profiles/ERASE-ME-7731", kAdminToken);
      retried = std::to_string(r.status) + " " + r.body;
      if (r.status != 503) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK_THAT(retried, Catch::StartsWith("200"));
    CHECK_THAT(retried, Catch::Contains("\"keys\":2"));
    srv.kill9();
  }
  ServerProcess srv(dir / "data", args);
  CHECK_THAT(get(srv.port(), "/v1/profiles/ERASE-ME-7731"), Catch::StartsWith("404"));
  CHECK_THAT(get(srv.port(), "/v1/profiles/KEEP-4410"), Catch::Contains("\"frequency\":1"));
  std::string all;
  for (const auto& key : {std::string("gdpr:{s0}:snapshot"), std::string("gdpr:{s1}:snapshot"),
                          std::string("gdpr:{s0}:keys"), std::string("gdpr:{s1}:keys")})
    all += redis.command({"DUMP", key});
  CHECK(all.find("Quixote") == std::string::npos);
  CHECK(all.find("ERASE-ME-7731") == std::string::npos);
}
