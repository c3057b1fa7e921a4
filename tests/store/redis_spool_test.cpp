// The Redis log's local spool (`[redis] spool_dir`, `spool_max_bytes`) against
// a real redis-server that is killed and started again on the same port.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "storepulse/store/redis_log.hpp"
#include "support/redis_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::store;
using storepulse::test::RedisProcess;
using storepulse::test::TempDir;

namespace {

RedisOptions spool_options(const RedisProcess& r, const std::string& spool_dir,
                           std::uint64_t max_bytes = 1 << 20) {
  RedisOptions o;
  REQUIRE(parse_redis_url(r.url(), o));
  o.prefix = "spooltest";
  o.connect_timeout_ms = 500;
  o.command_timeout_ms = 1000;
  o.reconnect_backoff_ms = 20;
  o.spool_dir = spool_dir;
  o.spool_max_bytes = max_bytes;
  o.spool_fsync = FsyncPolicy::kAlways;
  return o;
}

struct Seen {
  std::uint64_t seq;
  std::string payload;
};

std::vector<Seen> replay_all(RedisLog& log, RecoveryReport* report = nullptr) {
  std::vector<Seen> out;
  RecoveryReport rep;
  REQUIRE(log.replay(
      0,
      [&](const JournalRecord& r) {
        out.push_back({r.seq, std::string(r.payload)});
      },
      rep));
  if (report) *report = rep;
  return out;
}

/// What a fresh process would read from Redis alone (no spool).
std::vector<Seen> redis_records(const RedisProcess& r) {
  RedisOptions o = spool_options(r, "");
  auto log = RedisLog::open(o, 0);
  REQUIRE(log);
  return replay_all(**log);
}

void commit_one(RedisLog& log, const std::string& payload) {
  log.append(RecordType::kEvent, 1, payload);
  REQUIRE(log.commit());
}

/// Ticks (as the shard thread does) until the spool is drained; false on timeout.
bool drain(RedisLog& log, int ms = 5000) {
  for (int i = 0; i < ms / 10 && log.spooling(); ++i) {
    REQUIRE(log.tick());
    if (log.spooling()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return !log.spooling();
}

std::vector<std::string> payloads(const std::vector<Seen>& v) {
  std::vector<std::string> out;
  for (const auto& s : v) out.push_back(s.payload);
  return out;
}

}  // namespace

TEST_CASE(
    "spool: commits are acked from the spool while redis is down and drain in order when it "
    "returns",
    "[store][redis][spool]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  auto log = RedisLog::open(spool_options(redis, dir / "spool"), 0);
  REQUIRE(log);
  CHECK(replay_all(**log).empty());
  commit_one(**log, "r1");
  CHECK_FALSE((*log)->spooling());
  redis.kill9();
  commit_one(**log, "r2");  // Redis gone: acked from the spool
  CHECK((*log)->spooling());
  for (const char* p : {"r3", "r4"}) (*log)->append(RecordType::kEvent, 1, p);
  REQUIRE((*log)->commit());
  CHECK((*log)->spool_stats()->records.load() == 3);
  CHECK((*log)->spool_stats()->bytes.load() > 0);
  CHECK_FALSE((*log)->snapshot_allowed());  // a snapshot must not name records Redis lacks
  redis.start();
  // Redis is back but the spool is not drained: later commits still go behind it.
  commit_one(**log, "r5");
  REQUIRE(drain(**log));
  CHECK((*log)->snapshot_allowed());
  CHECK((*log)->spool_stats()->drained_total.load() == 4);
  CHECK((*log)->spool_stats()->bytes.load() == 0);
  CHECK((*log)->spool_stats()->drains_total.load() == 1);
  CHECK_FALSE(std::filesystem::exists(dir / "spool/00000000000000000002.log"));
  commit_one(**log, "r6");  // straight to Redis again
  CHECK_FALSE((*log)->spooling());
  const auto seen = redis_records(redis);
  CHECK(payloads(seen) == std::vector<std::string>{"r1", "r2", "r3", "r4", "r5", "r6"});
  for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i].seq == i + 1);
}

TEST_CASE(
    "spool: a restart replays spooled records redis lacks, and a re-drain after a crash writes "
    "none twice",
    "[store][redis][spool]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  RedisOptions o = spool_options(redis, dir / "spool");
  o.drain_batch_records = 2;
  {
    auto log = RedisLog::open(o, 0);
    REQUIRE(log);
    replay_all(**log);
    commit_one(**log, "a");
    redis.kill9();
    for (const char* p : {"b", "c", "d", "e", "f"}) commit_one(**log, p);
    redis.start();
    // One drain step (2 records) lands; then the process "crashes": the spool
    // still holds every record, its cursor is lost.
    for (int i = 0; i < 200 && (*log)->spool_stats()->drained_total.load() == 0; ++i) {
      REQUIRE((*log)->tick());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE((*log)->spool_stats()->drained_total.load() == 2);
  }
  CHECK(payloads(redis_records(redis)) == std::vector<std::string>{"a", "b", "c"});
  auto log = RedisLog::open(o, 0);
  REQUIRE(log);
  RecoveryReport rep;
  // Recovery: the stream (a, b, c), then the spooled records Redis lacks (d, e, f), once each.
  CHECK(payloads(replay_all(**log, &rep)) ==
        std::vector<std::string>{"a", "b", "c", "d", "e", "f"});
  CHECK(rep.problems.empty());
  CHECK((*log)->spooling());
  commit_one(**log, "g");  // behind the spool
  REQUIRE(drain(**log));
  const auto seen = redis_records(redis);
  CHECK(payloads(seen) == std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g"});
  for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i].seq == i + 1);
  CHECK_FALSE((*log)->spool_stats()->refused.load());
}

TEST_CASE("spool: past spool_max_bytes a commit fails with unavailable and nothing of it is kept",
          "[store][redis][spool]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  auto log = RedisLog::open(spool_options(redis, dir / "spool", 400), 0);
  REQUIRE(log);
  replay_all(**log);
  redis.kill9();
  const std::string payload(100, 'x');
  int acked = 0;
  Status refused;
  for (int i = 0; i < 10; ++i) {
    (*log)->append(RecordType::kEvent, 1, payload + std::to_string(i));
    Status s = (*log)->commit();
    if (s)
      ++acked;
    else
      refused = s;
  }
  CHECK(acked == 3);  // 3 x (25 + 101) bytes fit under 400
  REQUIRE_FALSE(refused);
  CHECK(refused.code() == ErrorCode::kUnavailable);
  CHECK_THAT(refused.detail(), Catch::Contains("spool full"));
  CHECK((*log)->spool_stats()->bytes.load() <= 400);
  redis.start();
  REQUIRE(drain(**log));
  commit_one(**log, "after");
  const auto seen = redis_records(redis);
  REQUIRE(seen.size() == 4);
  CHECK(seen[2].payload == payload + "2");
  CHECK(seen[3].payload == "after");
  for (std::size_t i = 0; i < seen.size(); ++i)
    CHECK(seen[i].seq == i + 1);  // refused seqs were given back
}

TEST_CASE("spool: a torn tail is cut at start and the intact records still drain",
          "[store][redis][spool]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  RedisOptions o = spool_options(redis, dir / "spool");
  {
    auto log = RedisLog::open(o, 0);
    REQUIRE(log);
    replay_all(**log);
    redis.kill9();
    commit_one(**log, "one");
    commit_one(**log, "two");
  }
  // A crash in the middle of the next spooled write.
  {
    std::ofstream f(dir / "spool/00000000000000000001.log", std::ios::app | std::ios::binary);
    f << std::string("\x40\x00\x00\x00half a rec", 14);
  }
  redis.start();
  auto log = RedisLog::open(o, 0);
  REQUIRE(log);
  RecoveryReport rep;
  CHECK(payloads(replay_all(**log, &rep)) == std::vector<std::string>{"one", "two"});
  REQUIRE(rep.problems.size() == 1);
  CHECK_THAT(rep.problems[0], Catch::Contains("spool: torn record"));
  REQUIRE(drain(**log));
  CHECK(payloads(redis_records(redis)) == std::vector<std::string>{"one", "two"});
}

TEST_CASE(
    "spool: customer keys reach redis with the records sealed under them, also after a restart",
    "[store][redis][spool]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  RedisOptions o = spool_options(redis, dir / "spool");
  StoredKey k;
  k.kid = 0x1122334455667788ull;
  k.key.fill(7);
  k.subject = "C42";
  {
    auto log = RedisLog::open(o, 0);
    REQUIRE(log);
    replay_all(**log);
    redis.kill9();
    (*log)->stage_key(k);
    commit_one(**log, "sealed under C42's key");
  }
  redis.start();
  auto log = RedisLog::open(o, 0);
  REQUIRE(log);
  std::vector<StoredKey> keys;
  RecoveryReport krep;
  REQUIRE((*log)->load_keys([&](StoredKey&& x) { keys.push_back(std::move(x)); }, krep));
  REQUIRE(keys.size() == 1);  // from the spool: Redis does not have it yet
  CHECK(keys[0].subject == "C42");
  replay_all(**log);
  REQUIRE(drain(**log));
  CHECK(redis.command({"HLEN", "spooltest:{s0}:keys"}) == "1");
  auto fresh = RedisLog::open(spool_options(redis, ""), 0);
  REQUIRE(fresh);
  keys.clear();
  REQUIRE((*fresh)->load_keys([&](StoredKey&& x) { keys.push_back(std::move(x)); }, krep));
  REQUIRE(keys.size() == 1);
  CHECK(keys[0].kid == k.kid);
  CHECK(keys[0].key == k.key);
}

TEST_CASE(
    "spool: redis holding another record under a spooled id stops the drain and keeps the spool",
    "[store][redis][spool]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  auto log = RedisLog::open(spool_options(redis, dir / "spool"), 0);
  REQUIRE(log);
  replay_all(**log);
  redis.kill9();
  commit_one(**log, "ours");
  redis.start();
  // Another writer used the id meanwhile (a second node that should not have).
  CHECK(redis.command({"XADD", "spooltest:{s0}:log", "1-0", "t", "1", "r", "1", "d", "theirs"}) ==
        "1-0");
  for (int i = 0; i < 100 && !(*log)->spool_stats()->refused.load(); ++i) {
    (void)(*log)->tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK((*log)->spool_stats()->refused.load());
  CHECK((*log)->spooling());
  CHECK((*log)->spool_stats()->records.load() == 1);
  CHECK(std::filesystem::exists(dir / "spool/00000000000000000001.log"));
  CHECK(payloads(redis_records(redis)) == std::vector<std::string>{"theirs"});
  // Nothing more is acked from a spool Redis refused.
  (*log)->append(RecordType::kEvent, 1, "later");
  Status s = (*log)->commit();
  REQUIRE_FALSE(s);
  CHECK(s.code() == ErrorCode::kUnavailable);
  CHECK_THAT(s.detail(), Catch::Contains("refused the drain"));
}

TEST_CASE("spool: spool_max_bytes 0 keeps the old behaviour (unavailable, nothing spooled)",
          "[store][redis][spool]") {
  TempDir dir;
  RedisProcess redis(dir.str());
  auto log = RedisLog::open(spool_options(redis, dir / "spool", 0), 0);
  REQUIRE(log);
  replay_all(**log);
  redis.kill9();
  (*log)->append(RecordType::kEvent, 1, "x");
  Status s = (*log)->commit();
  REQUIRE_FALSE(s);
  CHECK(s.code() == ErrorCode::kUnavailable);
  CHECK_FALSE((*log)->spooling());
  CHECK_FALSE(std::filesystem::exists(dir / "spool"));
}
