// The server on a real Redis Cluster (store.kind = "redis-cluster"): each
// shard's stream on the master of its slot, acked events back after a
// restart, no event applied twice, and a bad node list refused
// at start.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>

#include "storepulse/common/time.hpp"
#include "storepulse/store/redis_cluster.hpp"
#include "support/redis_cluster_process.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::test;

namespace {

std::string cluster_config(const TempDir& dir, RedisClusterProcess& c, const std::string& nodes) {
  const std::string path = dir / "cluster.toml";
  std::ofstream(path) << "[engine]\nshards = 4\n"
                      << "[store]\nkind = \"redis-cluster\"\n"
                      << "[redis]\nnodes = [" << nodes << "]\nprefix = \"cl\"\n";
  (void)c;
  return path;
}

std::string order(int n, const std::string& user) {
  return fmt::format(
      R"({{"type":"track","event":"Order Completed","messageId":"co-{}","userId":"{}","timestamp":"{}",
    "properties":{{"total":10,"products":[{{"productId":"p1","category":"Food","price":10,"quantity":1}}]}}}})",
      n, user, format_iso8601(wall_clock_us()));
}

// The node of the cluster that holds `key`, -1 if none.
int holder(RedisClusterProcess& c, const std::string& key) {
  for (int i = 0; i < c.size(); ++i) {
    const std::string e = c.node(i).command({"EXISTS", key});
    if (e == "1") return i;
  }
  return -1;
}

// C0..C9 each have exactly the 3 orders sent (none lost, none applied twice).
void check_three_orders_each(unsigned short port) {
  for (int c = 0; c < 10; ++c) {
    const auto p =
        http_request(port, http::verb::get, fmt::format("/v1/profiles/C{}", c), kAdminToken);
    INFO(p.body);
    CHECK(p.status == 200);
    CHECK(has(p.body, R"("frequency":3)"));
  }
}

}  // namespace

TEST_CASE("redis cluster store: shards spread over the masters - acked events survive a restart") {
  RedisClusterProcess cluster(3);
  TempDir dir;
  // One node given: the slot map names the others.
  const std::string config =
      cluster_config(dir, cluster, fmt::format("\"127.0.0.1:{}\"", cluster.node(0).port()));
  auto srv =
      std::make_unique<ServerProcess>(dir / "data", std::vector<std::string>{"--config", config});
  {
    WsClient pos(srv->port(), "/v1/pos", kPosKey);
    REQUIRE(pos.ok());
    int n = 0;
    for (int round = 0; round < 3; ++round)
      for (int c = 0; c < 10; ++c)
        REQUIRE(has(pos.request(order(++n, fmt::format("C{}", c))), R"("type":"ack")"));
  }
  const std::string shards =
      http_request(srv->port(), http::verb::get, "/v1/admin/shards", kAdminToken).body;
  CHECK(has(shards, R"("store":"redis-cluster")"));
  // Each shard's stream lives on the master of its slot; the four slots fall
  // on all three masters.
  std::set<int> holders;
  for (int s = 0; s < 4; ++s) {
    const std::string key = fmt::format("cl:{{s{}}}:log", s);
    const int h = holder(cluster, key);
    INFO(key);
    REQUIRE(h >= 0);
    CHECK(std::to_string(store::key_slot(key)) ==
          cluster.node(h).command({"CLUSTER", "KEYSLOT", key}));
    holders.insert(h);
  }
  CHECK(holders.size() == 3);

  srv->stop();
  srv = std::make_unique<ServerProcess>(dir / "data", std::vector<std::string>{"--config", config});
  check_three_orders_each(srv->port());
  // Sent again after the restart: recognised as duplicates, not applied twice.
  {
    WsClient pos(srv->port(), "/v1/pos", kPosKey);
    REQUIRE(pos.ok());
    CHECK(has(pos.request(order(1, "C0")), R"("type":"ack")"));
  }
  const auto p0 = http_request(srv->port(), http::verb::get, "/v1/profiles/C0", kAdminToken);
  CHECK(has(p0.body, R"("frequency":3)"));
}

TEST_CASE("redis cluster store: a bad node list or a database number is refused at start") {
  TempDir dir;
  const std::string path = dir / "bad.toml";
  std::ofstream(path) << "[store]\nkind = \"redis-cluster\"\n[redis]\nnodes = [\"redis-a\"]\n";
  auto r = serve_until_exit(path, dir / "data");
  CHECK(r.code != 0);
  CHECK_THAT(r.output, Catch::Contains("redis.nodes"));
  CHECK_THAT(r.output, Catch::Contains("expected host:port"));
  std::ofstream(path)
      << "[store]\nkind = \"redis-cluster\"\n[redis]\nurl = \"redis://127.0.0.1:7000/3\"\n";
  r = serve_until_exit(path, dir / "data");
  CHECK(r.code != 0);
  CHECK_THAT(r.output, Catch::Contains("database 0 only"));
  std::ofstream(path) << "[store]\nkind = \"redis\"\n[redis]\nnodes = [\"127.0.0.1:7000\"]\n";
  r = serve_until_exit(path, dir / "data");
  CHECK(r.code != 0);
  CHECK_THAT(r.output, Catch::Contains("redis-cluster"));
}

TEST_CASE(
    "redis cluster store: a master fails over - the shard follows the slot to the new master") {
  RedisClusterProcess cluster(3, 3);
  TempDir dir;
  const std::string config =
      cluster_config(dir, cluster,
                     fmt::format("\"127.0.0.1:{}\",\"127.0.0.1:{}\"", cluster.node(0).port(),
                                 cluster.node(1).port()));
  auto srv =
      std::make_unique<ServerProcess>(dir / "data", std::vector<std::string>{"--config", config});
  WsClient pos(srv->port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  int n = 0;
  for (int c = 0; c < 10; ++c)
    REQUIRE(has(pos.request(order(++n, fmt::format("C{}", c))), R"("type":"ack")"));
  const std::string key = "cl:{s0}:log";
  const int old_master = holder(cluster, key);
  REQUIRE(old_master >= 0);
  const int replica = cluster.replica_of(old_master);
  REQUIRE(replica >= 0);
  // A manual failover: the replica takes the slots over once it has every write.
  REQUIRE(cluster.node(replica).command({"CLUSTER", "FAILOVER"}) == "OK");
  for (int t = 0; t < 200 && holder(cluster, key) != replica; ++t)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(holder(cluster, key) == replica);
  // Every customer's events keep being acked: a refused one (the commit that
  // met MOVED) is sent again, as a client does, with the same messageId.
  int acked = 0, retried = 0;
  for (int round = 0; round < 2; ++round)
    for (int c = 0; c < 10; ++c) {
      const std::string ev = order(++n, fmt::format("C{}", c));
      for (int tries = 0; tries < 20; ++tries) {
        const std::string r = pos.request(ev);
        if (has(r, R"("type":"ack")")) {
          ++acked;
          break;
        }
        ++retried;
        INFO(r);
        CHECK(has(r, "unavailable"));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  CHECK(acked == 20);
  // What was acked is on the new master: a restart recovers it all, once.
  srv->stop();
  srv = std::make_unique<ServerProcess>(dir / "data", std::vector<std::string>{"--config", config});
  check_three_orders_each(srv->port());
}
