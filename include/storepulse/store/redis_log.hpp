#pragma once
// The shard log on Redis (`[store] kind = "redis"`): one Stream per shard,
// records appended in one MULTI/EXEC per group commit, acked to clients only
// after Redis replied, and a snapshot key per shard. Keys are hash-tagged per
// shard (`storepulse:{s3}:log`, `storepulse:{s3}:snapshot`), so on Redis
// Cluster a shard's keys live on one node.
//
// Durability is what the Redis server promises for a write it acknowledged:
// `appendonly yes` + `appendfsync always` survives a Redis crash or power loss;
// `everysec` can lose up to a second of acked events if Redis itself dies
// (docs/operations.md, "Redis store").
//
// Sequence numbers are stream ids (`<seq>-0`). Unlike the file journal, a
// failed commit does not reuse its numbers: a batch whose reply was lost may
// still have landed, so the next batch always gets higher ids. Replay skips a
// message id it has already applied (engine), so such a batch followed by the
// client's retry is applied once.
#include <hiredis/hiredis.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "storepulse/store/log.hpp"

namespace storepulse::store {

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string username;  // ACL user (Redis 6+); empty: AUTH with the password only
  std::string password;  // from config or STOREPULSE_REDIS_PASSWORD, never from code
  int db = 0;
  int connect_timeout_ms = 2000;
  int command_timeout_ms = 5000;
  /// After a failed connect, commits fail fast for this long before trying again.
  int reconnect_backoff_ms = 250;
  std::string prefix = "storepulse";
  std::size_t replay_batch = 10'000;  // stream entries read per XRANGE
};

/// `redis://[[user]:password@]host[:port][/db]` (or `host:port`) into `opts`
/// (fields not in the URL keep their values). Errors name the bad part.
Status parse_redis_url(std::string_view url, RedisOptions& opts);

class RedisLog final : public Log {
 public:
  /// Connects (a failure here is an error: a node does not start blind).
  static Result<std::unique_ptr<RedisLog>> open(const RedisOptions& opts, int shard);
  ~RedisLog() override;
  RedisLog(const RedisLog&) = delete;
  RedisLog& operator=(const RedisLog&) = delete;

  Status replay(std::uint64_t after_seq, const std::function<void(const JournalRecord&)>& fn,
                RecoveryReport& report) override;
  std::uint64_t append(RecordType type, TimeUs recv_time, std::string_view payload) override;
  Status commit() override;
  Status tick() override { return Status::ok(); }
  Status sync() override { return Status::ok(); }
  void remove_through(std::uint64_t seq) override;
  std::uint64_t last_seq() const override { return last_seq_; }
  Result<bool> read_snapshot(std::uint64_t& seq, std::string& body) override;
  Status write_snapshot(std::uint64_t seq, const std::string& body) override;
  std::string describe() const override;
  /// Keys live in the hash `<prefix>:{sN}:keys` (field: the 8-byte kid; value:
  /// 32-byte key + subject), written by HSET inside the commit's MULTI/EXEC.
  /// erase_keys() is HDEL followed by BGREWRITEAOF, so the append-only file on
  /// the Redis host stops holding them too.
  void stage_key(const StoredKey& key) override;
  Status erase_keys(const std::vector<std::uint64_t>& kids) override;
  Status load_keys(const std::function<void(StoredKey&&)>& fn, RecoveryReport& report) override;

  const std::string& stream_key() const { return stream_key_; }
  const std::string& snapshot_key() const { return snapshot_key_; }

 private:
  RedisLog(RedisOptions opts, int shard);
  Status ensure_connected();
  void drop_connection();

  struct Pending {
    std::uint64_t seq;
    RecordType type;
    TimeUs recv;
    std::size_t offset, size;  // payload in arena_
  };

  RedisOptions opts_;
  std::string stream_key_;
  std::string snapshot_key_;
  std::string keys_key_;
  std::vector<std::string> pending_keys_;  // HSET field, value pairs; kept until a commit succeeds
  redisContext* ctx_ = nullptr;
  std::int64_t last_connect_fail_ns_ = 0;
  std::uint64_t last_seq_ = 0;
  std::vector<Pending> pending_;
  std::string arena_;
};

/// A new connection with `opts` (AUTH, SELECT done), or an error naming the
/// server. For tools and tests; RedisLog keeps its own.
Result<redisContext*> redis_connect(const RedisOptions& opts);

}  // namespace storepulse::store
