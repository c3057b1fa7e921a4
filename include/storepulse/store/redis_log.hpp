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

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/store/journal.hpp"
#include "storepulse/store/log.hpp"
#include "storepulse/store/redis_tls.hpp"

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
  /// Shard lease (`<prefix>:{sN}:owner`): how long a node's claim on a shard
  /// lasts without renewal; renewed every third of it. A dead node's shards can
  /// be claimed by another node once it has run out.
  int lease_ttl_ms = 10'000;
  /// XTRIM a shard's stream up to its snapshot (false: keep the whole history,
  /// as `store.archive_segments` keeps journal segments).
  bool trim = true;
  /// `rediss://`: TLS through the in-process tunnel (redis_tls.hpp).
  RedisTlsOptions tls;
  /// Redis Cluster (`store.kind = "redis-cluster"`, `[redis] nodes`): "host:port"
  /// of nodes to read the slot map from. Empty: one Redis at host:port. Each
  /// shard's keys share the `{sN}` hash tag, so a shard talks to the master
  /// of its slot only (redis_connect_for), and after a redirection or a lost
  /// connection asks the cluster again where that is.
  std::vector<std::string> cluster_nodes;
  bool cluster() const { return !cluster_nodes.empty(); }

  // ---- Local spool (`[redis] spool_dir`, `spool_max_bytes`) -------------------
  /// This shard's spool folder; empty or spool_max_bytes == 0: no spool (a commit
  /// Redis does not confirm answers `unavailable`, as before the spool existed).
  std::string spool_dir;
  /// Bound on all spools of the node together (the counter below is shared);
  /// the engine sets 0 on a node that does not serve every shard.
  std::uint64_t spool_max_bytes = 256ull << 20;
  std::shared_ptr<std::atomic<std::uint64_t>> spool_node_bytes =
      std::make_shared<std::atomic<std::uint64_t>>(0);
  FsyncPolicy spool_fsync = FsyncPolicy::kInterval;
  TimeUs spool_fsync_interval_us = 10'000;
  std::uint64_t spool_segment_bytes = 4ull << 20;  // drained segments are deleted whole
  /// One drain step (one EVAL, from the shard's tick): at most this many bytes
  /// of records and this many records or keys, so the shard never waits long.
  std::size_t drain_batch_bytes = 256u << 10;
  std::size_t drain_batch_records = 1000;
};

/// `redis://[[user]:password@]host[:port][/db]` (or `host:port`; `rediss://`
/// for TLS) into `opts`
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
  /// Spool: interval fsync, then one bounded drain step when Redis is reachable.
  Status tick() override;
  Status sync() override;
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

  const SpoolStats* spool_stats() const override { return &stats_; }
  bool snapshot_allowed() const override { return !spool_; }
  /// Records in the spool not yet in Redis (shard thread, tests).
  bool spooling() const { return spool_ != nullptr; }

  const std::string& stream_key() const { return stream_key_; }
  const std::string& snapshot_key() const { return snapshot_key_; }

  /// Fences every write of this log (commit, snapshot, trim) with the shard's
  /// lease: each write is one Lua script that first checks `<prefix>:{sN}:owner`
  /// still holds `lease_value`, inside Redis, atomically with the write. A node
  /// whose lease ran out or was taken over can therefore never append to a
  /// stream another node now owns, even before its renewer notices: commit()
  /// fails with kWrongNode instead. Call before the first write.
  void set_lease(std::string lease_value) { lease_value_ = std::move(lease_value); }

 private:
  RedisLog(RedisOptions opts, int shard);
  Status ensure_connected();
  void drop_connection();
  Status commit_redis();
  /// After the stream: the spool's records Redis does not hold yet.
  Status replay_spool(std::uint64_t after_seq, const std::function<void(const JournalRecord&)>& fn,
                      RecoveryReport& report);
  Status commit_fenced();
  /// The pending batch (and staged keys) into the local spool, same seqs.
  Status commit_to_spool(const Status& cause);
  /// One bounded drain step; kWrongNode when the lease is gone.
  Status drain_step();
  void finish_drain();
  void update_spool_bytes();
  void log_spool_progress(bool force);
  /// `cmd[0] key cmd[1..]`, through the lease check when the log is fenced.
  Result<std::unique_ptr<redisReply, void (*)(void*)>> fenced(
      redisContext* c, const std::vector<std::string_view>& cmd, const std::string& key);

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
  std::string owner_key_;
  std::string lease_value_;  // empty: writes are not fenced
  redisContext* ctx_ = nullptr;
  std::uint64_t redirects_at_connect_ = 0;  // redis_cluster_redirects_seen() when ctx_ was made
  std::int64_t last_connect_fail_ns_ = 0;
  std::uint64_t last_seq_ = 0;
  std::vector<Pending> pending_;
  std::string arena_;

  // Spool (worker-owned; stats_ readable by any thread). Non-null while it
  // holds records Redis may not have: every commit goes there until drained.
  int shard_ = 0;
  std::unique_ptr<Journal> spool_;
  std::uint64_t spool_first_seq_ = 0;      // first record in the spool
  std::uint64_t drained_seq_ = 0;          // records <= it are in Redis (confirmed by a drain)
  std::uint64_t spool_bytes_counted_ = 0;  // this shard's share of spool_node_bytes
  struct SpoolKey {
    std::string field, value;  // HSET pair, as pending_keys_
    bool pushed = false;
  };
  std::vector<SpoolKey> spool_keys_;
  std::int64_t spool_started_ns_ = 0;  // first spooled commit
  std::int64_t drain_started_ns_ = 0;  // first drain step Redis answered
  std::int64_t last_progress_ns_ = 0;
  std::int64_t last_refusal_log_ns_ = 0;
  std::string spool_cause_;
  SpoolStats stats_;
};

/// A new connection with `opts` (AUTH, SELECT done), or an error naming the
/// server. For tools and tests; RedisLog keeps its own.
Result<redisContext*> redis_connect(const RedisOptions& opts);

/// A new connection to the node that serves `key`: with one Redis that one
/// (redis_connect); on a Redis Cluster (opts.cluster()) the master of the
/// key's hash slot, from CLUSTER SLOTS of the first listed node that answers
/// (store/redis_cluster.cpp). Every key a caller then sends on it must be in
/// the same slot.
Result<redisContext*> redis_connect_for(const RedisOptions& opts, std::string_view key);

/// Redirections and cluster-state errors (MOVED, ASK, CLUSTERDOWN, TRYAGAIN)
/// seen in replies on this thread so far: a connection opened with
/// redis_connect_for is re-opened when this moved since it was made.
std::uint64_t redis_cluster_redirects_seen();
/// Counts one when `error` (a reply's error text) is such an error.
void note_cluster_error(std::string_view error);

// ---- Shard leases (several nodes against one Redis) ---------------------------
// `<prefix>:{sN}:owner` holds "<node-id>/<token>" with a TTL; the token is new
// for every process, so a second process started with the same node id (or a
// restarted one) fences the first off instead of sharing the shard with it.

/// `<prefix>:{sN}:owner` (hash-tagged like the shard's other keys).
std::string lease_key(const std::string& prefix, int shard);

/// Takes the lease on `shard` for `lease_value` ("<node-id>/<token>") when it
/// is free or held by the same node id (a restart of this node). Returns ""
/// when taken, else who holds it and for how long ("node-b for 3.2 s more").
Result<std::string> acquire_lease(redisContext* c, const RedisOptions& opts, int shard,
                                  const std::string& lease_value);

/// Extends the lease; false when it is no longer ours (expired or taken over).
Result<bool> renew_lease(redisContext* c, const RedisOptions& opts, int shard,
                         const std::string& lease_value);

}  // namespace storepulse::store
