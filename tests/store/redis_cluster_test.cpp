// Redis Cluster client (store/redis_cluster.hpp): hash slots against the
// spec's examples and a real cluster's CLUSTER KEYSLOT, the slot map from a
// real 3-master cluster, MOVED and ASK followed, and clear errors.
#include "storepulse/store/redis_cluster.hpp"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <random>

#include "support/redis_cluster_process.hpp"

using namespace storepulse;
using namespace storepulse::store;
using storepulse::test::RedisClusterProcess;

namespace {

std::string text(const ClusterReply& r) {
  if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
  if (r->type == REDIS_REPLY_NIL) return "(nil)";
  return std::string(r->str, r->len);
}

ClusterOptions options(RedisClusterProcess& c) {
  ClusterOptions o;
  o.seeds.push_back({"127.0.0.1", c.node(0).port()});
  o.node.command_timeout_ms = 3000;
  return o;
}

}  // namespace

TEST_CASE("redis cluster: key_slot follows the spec - hash tags included") {
  CHECK(key_slot("123456789") == (0x31C3 & 16383));  // the spec's CRC16 check value
  CHECK(key_slot("foo") == 12182);
  CHECK(key_slot("bar") == 5061);
  CHECK(key_slot("{user1000}.following") == key_slot("{user1000}.followers"));
  CHECK(key_slot("{user1000}.following") == key_slot("user1000"));
  CHECK(key_slot("foo{}{bar}") != key_slot("bar"));      // empty first tag: whole key
  CHECK(key_slot("foo{{bar}}zap") == key_slot("{bar"));  // tag up to the first '}'
  CHECK(key_slot("foo{bar}{zap}") == key_slot("bar"));   // the first tag only
  CHECK(key_slot("storepulse:{s3}:log") == key_slot("storepulse:{s3}:owner"));
  CHECK(key_slot("") == 0);
}

TEST_CASE("redis cluster: redirections and node addresses parse - anything else is refused") {
  auto m = parse_redirect("MOVED 3999 127.0.0.1:6381");
  REQUIRE(m);
  CHECK_FALSE(m->ask);
  CHECK(m->slot == 3999);
  CHECK(m->to == ClusterAddress{"127.0.0.1", 6381});
  auto a = parse_redirect("ASK 12182 [::1]:7000");
  REQUIRE(a);
  CHECK(a->ask);
  CHECK(a->to == ClusterAddress{"::1", 7000});
  for (const char* bad : {"ERR unknown command", "MOVED", "MOVED x 1.2.3.4:5", "MOVED 16384 h:1",
                          "ASK 1 nohost", "MOVED 1 h:0", "MOVED 1 h:70000"})
    CHECK_FALSE(parse_redirect(bad));
  auto bad_port = parse_cluster_address("redis-a:port");
  REQUIRE_FALSE(bad_port);
  CHECK(bad_port.status().detail() == "redis node 'redis-a:port': port 'port' is not 1-65535");
  CHECK_FALSE(parse_cluster_address("redis-a"));
}

TEST_CASE(
    "redis cluster: a real 3-master cluster - slot map, every key on its master, MOVED and ASK") {
  RedisClusterProcess cluster(3);
  ClusterConnection conn(options(cluster));
  REQUIRE(conn.refresh());
  CHECK(conn.slots().covered() == 16384);
  CHECK(conn.slots().masters().size() == 3);

  // Our slot of a key is the cluster's (CLUSTER KEYSLOT), for keys of every shape.
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string k = fmt::format("k{}-{}", i, rng());
    if (i % 3 == 0) k = fmt::format("storepulse:{{s{}}}:log", i);
    if (i % 7 == 0) k = fmt::format("x{{}}{{{}}}", i);
    CHECK(std::to_string(key_slot(k)) == cluster.node(0).command({"CLUSTER", "KEYSLOT", k}));
  }
  // Writes land on the slot's master and read back through the connection.
  for (int s = 0; s < 64; ++s) {
    const std::string key = fmt::format("storepulse:{{s{}}}:snapshot", s);
    const std::string val = fmt::format("v{}", s);
    auto w = conn.command(key_slot(key), {"SET", key, val});
    REQUIRE(w);
    CHECK(text(*w) == "OK");
    auto r = conn.command(key_slot(key), {"GET", key});
    REQUIRE(r);
    CHECK(text(*r) == val);
  }
  CHECK(conn.redirects() == 0);

  // A stale map: the node asked answers MOVED, the connection goes to the
  // right one and remembers it.
  const std::string key = "storepulse:{s1}:log";
  const std::uint16_t slot = key_slot(key);
  const ClusterAddress right = *conn.slots().master(slot);
  ClusterAddress wrong;
  for (const auto& m : conn.slots().masters())
    if (!(m == right)) wrong = m;
  conn.assign_for_test(slot, wrong);
  auto moved = conn.command(slot, {"SET", key, "after-moved"});
  REQUIRE(moved);
  CHECK(text(*moved) == "OK");
  CHECK(conn.redirects() == 1);
  CHECK(*conn.slots().master(slot) == right);

  // Resharding under way: the slot migrates from its master to another node.
  // A key the old master does not hold is asked of the importing node (ASK),
  // and the map keeps the old owner until the migration ends.
  int from = -1, to = -1;
  for (int i = 0; i < cluster.size(); ++i) {
    if (cluster.node(i).port() == right.port)
      from = i;
    else if (to < 0)
      to = i;
  }
  REQUIRE(from >= 0);
  REQUIRE(to >= 0);
  const std::string s = std::to_string(slot);
  REQUIRE(cluster.node(to).command({"CLUSTER", "SETSLOT", s, "IMPORTING", cluster.id(from)}) ==
          "OK");
  REQUIRE(cluster.node(from).command({"CLUSTER", "SETSLOT", s, "MIGRATING", cluster.id(to)}) ==
          "OK");
  const std::string fresh = "storepulse:{s1}:keys";  // same slot, not on the old master
  auto asked = conn.command(slot, {"HSET", fresh, "f", "1"});
  REQUIRE(asked);
  CHECK(text(*asked) == "1");
  CHECK(conn.redirects() == 2);
  CHECK(*conn.slots().master(slot) == right);  // ASK does not move the slot
  // The old master does not hold it: it would redirect a plain client too.
  CHECK(cluster.node(from).command({"EXISTS", fresh}).rfind("ASK ", 0) == 0);

  // An unknown command's error is the caller's to read, not a failure of the connection.
  auto err = conn.command(slot, {"NOSUCHCOMMAND", key});
  REQUIRE(err);
  CHECK((*err)->type == REDIS_REPLY_ERROR);
}

TEST_CASE("redis cluster: no node answering is unavailable - naming the nodes tried") {
  ClusterOptions o;
  o.seeds.push_back({"127.0.0.1", storepulse::test::free_loopback_port()});
  o.node.connect_timeout_ms = 200;
  o.node.command_timeout_ms = 400;
  ClusterConnection conn(o);
  Status s = conn.refresh();
  REQUIRE_FALSE(s);
  CHECK(s.code() == ErrorCode::kUnavailable);
  CHECK_THAT(s.detail(), Catch::Contains("no node gave its slot map"));
  CHECK_THAT(s.detail(), Catch::Contains(fmt::format("127.0.0.1:{}", o.seeds[0].port)));
  auto r = conn.command(0, {"GET", "x"});
  REQUIRE_FALSE(r);
  CHECK(r.status().code() == ErrorCode::kUnavailable);
}
