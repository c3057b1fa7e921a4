// RedisLog against a real redis-server on a free loopback port.
#include "storepulse/store/redis_log.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "support/redis_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::store;
using storepulse::test::RedisProcess;
using storepulse::test::TempDir;

namespace {

RedisOptions options_for(const RedisProcess& r, const std::string& prefix = "sptest") {
  RedisOptions o;
  REQUIRE(parse_redis_url(r.url(), o));
  o.prefix = prefix;
  o.connect_timeout_ms = 500;
  o.command_timeout_ms = 1000;
  o.reconnect_backoff_ms = 50;
  return o;
}

struct Seen {
  std::uint64_t seq;
  RecordType type;
  TimeUs recv;
  std::string payload;
};

std::vector<Seen> replay_all(RedisLog& log, std::uint64_t after = 0) {
  std::vector<Seen> out;
  RecoveryReport rep;
  REQUIRE(log.replay(
      after,
      [&](const JournalRecord& r) {
        out.push_back({r.seq, r.type, r.recv_time, std::string(r.payload)});
      },
      rep));
  CHECK(rep.problems.empty());
  return out;
}

}  // namespace

TEST_CASE("redis url parsing", "[store][redis]") {
  RedisOptions o;
  REQUIRE(parse_redis_url("redis://user:s3cret@10.0.0.5:6380/2", o));
  CHECK(o.host == "10.0.0.5");
  CHECK(o.port == 6380);
  CHECK(o.username == "user");
  CHECK(o.password == "s3cret");
  CHECK(o.db == 2);
  RedisOptions p;
  REQUIRE(parse_redis_url("localhost:7000", p));
  CHECK(p.host == "localhost");
  CHECK(p.port == 7000);
  CHECK(p.password.empty());
  RedisOptions bad;
  auto s = parse_redis_url("redis://host:99999", bad);
  CHECK_FALSE(s);
  CHECK_THAT(s.detail(), Catch::Contains("port '99999'"));
  CHECK_FALSE(o.tls.enabled);
  RedisOptions t;
  REQUIRE(parse_redis_url("rediss://:pw@redis.internal:6380", t));
  CHECK(t.tls.enabled);
  CHECK(t.host == "redis.internal");
  CHECK(t.port == 6380);
  CHECK(t.password == "pw");
  auto scheme = parse_redis_url("http://host", bad);
  CHECK_FALSE(scheme);
  CHECK_THAT(scheme.detail(), Catch::Contains("rediss://"));
  CHECK_FALSE(parse_redis_url("redis://host/x", bad));
  CHECK_FALSE(parse_redis_url("redis://:pw@", bad));
}

TEST_CASE("redis log appends in batches and replays them in order after a restart",
          "[store][redis]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  {
    auto log = RedisLog::open(options_for(redis), 3);
    REQUIRE(log);
    CHECK(replay_all(**log).empty());
    CHECK((*log)->last_seq() == 0);
    CHECK((*log)->append(RecordType::kEvent, 111, "first") == 1);
    CHECK((*log)->append(RecordType::kLink, 222, std::string("bin\0ary", 7)) == 2);
    REQUIRE((*log)->commit());
    CHECK((*log)->append(RecordType::kTimerFired, 333, "third") == 3);
    // The newest type, sealed (the engine's event records since 2026-11-27).
    CHECK((*log)->append(static_cast<RecordType>(
                             static_cast<std::uint8_t>(RecordType::kEventBinary) | kSealedBit),
                         444, "fourth") == 4);
    REQUIRE((*log)->commit());
    CHECK((*log)->stream_key() == "sptest:{s3}:log");
  }
  // Redis itself killed and restarted: the AOF (appendfsync always) has every batch it
  // acknowledged.
  redis.kill9();
  redis.start();
  auto log = RedisLog::open(options_for(redis), 3);
  REQUIRE(log);
  auto seen = replay_all(**log);
  REQUIRE(seen.size() == 4);
  CHECK(seen[3].type ==
        static_cast<RecordType>(static_cast<std::uint8_t>(RecordType::kEventBinary) | kSealedBit));
  CHECK(seen[3].payload == "fourth");
  CHECK(seen[0].seq == 1);
  CHECK(seen[0].type == RecordType::kEvent);
  CHECK(seen[0].recv == 111);
  CHECK(seen[0].payload == "first");
  CHECK(seen[1].payload == std::string("bin\0ary", 7));
  CHECK(seen[1].type == RecordType::kLink);
  CHECK(seen[2].seq == 3);
  CHECK((*log)->last_seq() == 4);
  CHECK((*log)->append(RecordType::kEvent, 555, "fifth") == 5);
  REQUIRE((*log)->commit());
  // Other shards have their own streams.
  auto other = RedisLog::open(options_for(redis), 4);
  REQUIRE(other);
  CHECK(replay_all(**other).empty());
}

TEST_CASE("redis log replays only records after the snapshot and trims what it covers",
          "[store][redis]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  auto log = RedisLog::open(options_for(redis), 0);
  REQUIRE(log);
  CHECK(replay_all(**log).empty());
  for (int i = 1; i <= 10; ++i) (*log)->append(RecordType::kEvent, i, "e" + std::to_string(i));
  REQUIRE((*log)->commit());
  REQUIRE((*log)->write_snapshot(6, "state at six"));
  (*log)->remove_through(6);
  CHECK(redis.command({"XLEN", (*log)->stream_key()}) == "4");

  auto again = RedisLog::open(options_for(redis), 0);
  REQUIRE(again);
  std::uint64_t seq = 0;
  std::string body;
  auto snap = (*again)->read_snapshot(seq, body);
  REQUIRE(snap);
  REQUIRE(*snap);
  CHECK(seq == 6);
  CHECK(body == "state at six");
  auto seen = replay_all(**again, seq);
  REQUIRE(seen.size() == 4);
  CHECK(seen.front().seq == 7);
  CHECK(seen.back().payload == "e10");
  // Everything trimmed: new ids still go above the highest ever written.
  (*again)->remove_through(10);
  CHECK(redis.command({"XLEN", (*again)->stream_key()}) == "0");
  auto third = RedisLog::open(options_for(redis), 0);
  REQUIRE(third);
  CHECK(replay_all(**third, 6).empty());
  CHECK((*third)->last_seq() == 10);
  CHECK((*third)->append(RecordType::kEvent, 1, "x") == 11);
  REQUIRE((*third)->commit());
}

TEST_CASE("redis snapshot damage is reported and never silently ignored", "[store][redis]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  auto log = RedisLog::open(options_for(redis), 1);
  REQUIRE(log);
  REQUIRE((*log)->write_snapshot(5, "good body"));
  std::string v = redis.command({"GET", (*log)->snapshot_key()});
  v.back() ^= 0x20;
  CHECK(redis.command({"SET", (*log)->snapshot_key(), v}) == "OK");
  std::uint64_t seq = 0;
  std::string body;
  auto r = (*log)->read_snapshot(seq, body);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.status().detail(), Catch::Contains("checksum"));
  CHECK(redis.command({"SET", (*log)->snapshot_key(), "garbage"}) == "OK");
  auto g = (*log)->read_snapshot(seq, body);
  REQUIRE_FALSE(g);
  CHECK_THAT(g.status().detail(), Catch::Contains("not a StorePulse snapshot"));
}

TEST_CASE("redis log commit fails cleanly while redis is down and works again after",
          "[store][redis]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  auto log = RedisLog::open(options_for(redis), 2);
  REQUIRE(log);
  CHECK(replay_all(**log).empty());
  (*log)->append(RecordType::kEvent, 1, "before");
  REQUIRE((*log)->commit());
  redis.kill9();
  (*log)->append(RecordType::kEvent, 2, "during");
  auto s = (*log)->commit();
  REQUIRE_FALSE(s);
  CHECK(s.code() == ErrorCode::kUnavailable);
  CHECK_THAT(s.detail(), Catch::Contains("redis at 127.0.0.1"));
  redis.start();
  // Within the reconnect back-off commits fail fast; then the log reconnects.
  bool ok = false;
  for (int i = 0; i < 100 && !ok; ++i) {
    (*log)->append(RecordType::kEvent, 3, "after");
    ok = (*log)->commit().is_ok();
    if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(ok);
  auto again = RedisLog::open(options_for(redis), 2);
  REQUIRE(again);
  auto seen = replay_all(**again);
  // The failed batch is absent; its sequence number was not reused.
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].payload == "before");
  CHECK(seen[1].payload == "after");
  CHECK(seen[1].seq > 2);
}

TEST_CASE("redis log refuses to open when redis is unreachable", "[store][redis]") {
  RedisOptions o;
  o.port = storepulse::test::free_loopback_port();
  o.connect_timeout_ms = 200;
  auto log = RedisLog::open(o, 0);
  REQUIRE_FALSE(log);
  CHECK(log.status().code() == ErrorCode::kUnavailable);
  CHECK_THAT(log.status().detail(), Catch::Contains("redis at 127.0.0.1:"));
}

TEST_CASE("redis log writes are fenced by the shard lease: a node that lost it cannot append",
          "[store][redis][lease]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  RedisOptions o = options_for(redis, "fence");
  o.lease_ttl_ms = 60'000;
  auto c = redis_connect(o);
  REQUIRE(c);
  std::unique_ptr<redisContext, void (*)(redisContext*)> conn(*c, redisFree);

  // Node A takes shard 1 and writes under its lease.
  auto a_held = acquire_lease(conn.get(), o, 1, "node-a/1111");
  REQUIRE(a_held);
  CHECK(a_held->empty());
  auto a = RedisLog::open(o, 1);
  REQUIRE(a);
  (*a)->set_lease("node-a/1111");
  CHECK(replay_all(**a).empty());
  (*a)->append(RecordType::kEvent, 1, "a1");
  (*a)->append(RecordType::kEvent, 2, "a2");
  REQUIRE((*a)->commit());
  REQUIRE((*a)->write_snapshot(2, "state after a2"));

  // Node B cannot take it while A holds it; the answer names A.
  auto b_held = acquire_lease(conn.get(), o, 1, "node-b/2222");
  REQUIRE(b_held);
  CHECK_THAT(*b_held, Catch::StartsWith("node-a for "));
  // A restart of node A (same node id, new token) takes it back at once.
  auto a2_held = acquire_lease(conn.get(), o, 1, "node-a/3333");
  REQUIRE(a2_held);
  CHECK(a2_held->empty());
  auto renewed = renew_lease(conn.get(), o, 1, "node-a/1111");
  REQUIRE(renewed);
  CHECK_FALSE(*renewed);  // the old process learns it lost the lease

  // The old process's writes are refused inside Redis, with kWrongNode.
  (*a)->append(RecordType::kEvent, 3, "stale");
  Status s = (*a)->commit();
  CHECK(s.code() == ErrorCode::kWrongNode);
  CHECK_THAT(s.detail(), Catch::Contains("no longer holds the lease"));
  Status snap = (*a)->write_snapshot(3, "stale state");
  CHECK(snap.code() == ErrorCode::kWrongNode);

  // The new holder sees A's two records and A's last good snapshot, nothing stale.
  auto a2 = RedisLog::open(o, 1);
  REQUIRE(a2);
  (*a2)->set_lease("node-a/3333");
  std::uint64_t seq = 0;
  std::string body;
  auto got = (*a2)->read_snapshot(seq, body);
  REQUIRE(got);
  CHECK(*got);
  CHECK(seq == 2);
  CHECK(body == "state after a2");
  auto recs = replay_all(**a2);
  REQUIRE(recs.size() == 2);
  CHECK(recs[1].payload == "a2");
  (*a2)->append(RecordType::kEvent, 4, "a3");
  REQUIRE((*a2)->commit());
  CHECK(replay_all(**a2, 2).size() == 1);
  auto renewed2 = renew_lease(conn.get(), o, 1, "node-a/3333");
  REQUIRE(renewed2);
  CHECK(*renewed2);
}
