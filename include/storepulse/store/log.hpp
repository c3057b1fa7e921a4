#pragma once
// The durable log a shard writes before it applies or acks anything, and the
// snapshots that let it skip most of that log at restart. Two kinds:
//   - Journal (journal.hpp): segment files in the shard's data folder (default);
//   - RedisLog (redis_log.hpp): a Redis Stream per shard plus a snapshot key.
// Both keep the same promise: a record commit() reported as written is read
// back by replay() after a crash, in order, exactly once, and nothing of a
// batch whose commit() failed is ever replayed.
//
// Threads: a single writer (the shard worker) calls replay/append/commit/tick/
// sync/remove_through; write_snapshot() may run concurrently on a helper thread.
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/common/status.hpp"
#include "storepulse/common/time.hpp"
#include "storepulse/store/sealer.hpp"

namespace storepulse::store {

enum class RecordType : std::uint8_t {
  kEvent = 1,         // payload: the event's wire JSON
  kMergePayload = 2,  // payload: serialized profile absorbed from another shard
  kRedirect = 3,      // payload: from id, to id
  kTimerFired = 4,    // payload: profile key, rule, fire_at
  kLink = 5,          // payload: member key, other id, via (identity found by phone/email)
  // payload: profile key, u8 channel, the event's wire JSON. The channel is the
  // one the event was applied with (the endpoint's default when the JSON has
  // none), so replay rebuilds the same channel mix. kEvent records (older
  // journals) replay with the channel the JSON names.
  kEventOnChannel = 6,
  // payload: profile key, then the decoded event in the binary form of
  // protocol/event_binary.hpp (its channel is the one applied). Written since
  // the journal stopped keeping the wire JSON: replay copies the fields back
  // instead of running the validating JSON decoder again. Types 1 and 6 are
  // still read.
  kEventBinary = 7,
};
constexpr bool is_event_record(RecordType t) {
  return t == RecordType::kEvent || t == RecordType::kEventOnChannel ||
         t == RecordType::kEventBinary;
}

struct JournalRecord {
  std::uint64_t seq = 0;
  RecordType type = RecordType::kEvent;
  TimeUs recv_time = 0;
  std::string_view payload;
};

/// What recovery found; logged at start and exposed for tests.
struct RecoveryReport {
  std::uint64_t records = 0;
  std::uint64_t segments = 0;
  std::uint64_t bytes_dropped = 0;    // torn / corrupt bytes truncated at the tail
  std::vector<std::string> problems;  // one line per damage found
  std::uint64_t keys = 0;             // customer keys loaded
  std::uint64_t shredded = 0;         // sealed records whose key was erased (skipped)
};

/// What a store's local spool holds (RedisLog while Redis is unreachable).
/// Written by the shard worker only; any thread may read it (metrics, admin).
struct SpoolStats {
  std::atomic<bool> active{false};   // commits go to the spool (until it is drained)
  std::atomic<bool> refused{false};  // Redis refused the drain (lease, conflict): operator needed
  std::atomic<std::uint64_t> bytes{0};           // on disk now
  std::atomic<std::uint64_t> records{0};         // not yet in Redis
  std::atomic<std::uint64_t> spooled_total{0};   // records acked from the spool since start
  std::atomic<std::uint64_t> drained_total{0};   // records pushed to Redis by drains since start
  std::atomic<std::uint64_t> drains_total{0};    // spools drained to empty since start
  std::atomic<std::uint64_t> last_drain_ms{0};   // Redis back -> spool empty, last time
  std::atomic<std::uint64_t> last_outage_ms{0};  // first spooled commit -> spool empty, last time
};

class Log {
 public:
  virtual ~Log() = default;

  /// Calls `fn` for every intact record with seq > after_seq, in order; call
  /// once, before the first append().
  virtual Status replay(std::uint64_t after_seq,
                        const std::function<void(const JournalRecord&)>& fn,
                        RecoveryReport& report) = 0;
  /// Buffers a record; returns its sequence number. Not durable until commit().
  virtual std::uint64_t append(RecordType type, TimeUs recv_time, std::string_view payload) = 0;
  /// Makes the buffered batch durable (as the store's sync setting promises).
  /// On failure nothing of the batch is kept and its sequence numbers are reused.
  virtual Status commit() = 0;
  /// Periodic work between batches (interval fsync).
  virtual Status tick() = 0;
  /// Flushes everything written so far to stable storage.
  virtual Status sync() = 0;
  /// Drops records <= seq (a snapshot covers them).
  virtual void remove_through(std::uint64_t seq) = 0;
  virtual std::uint64_t last_seq() const = 0;

  /// The latest snapshot: false when there is none; an error when there is one
  /// that cannot be read (never silently ignored).
  virtual Result<bool> read_snapshot(std::uint64_t& seq, std::string& body) = 0;
  /// Stores a snapshot of the state after record `seq`, atomically (a crash
  /// leaves the previous one). Safe to call from another thread.
  virtual Status write_snapshot(std::uint64_t seq, const std::string& body) = 0;

  /// Customer keys (sealer.hpp). stage_key() buffers a new key; the next
  /// commit() makes it durable before (or with) the records sealed under it,
  /// and keeps it buffered when that commit fails.
  virtual void stage_key(const StoredKey& key) = 0;
  /// Destroys keys for good: when this returns ok, no file (or Redis value)
  /// the store keeps holds them or the subjects they belonged to.
  virtual Status erase_keys(const std::vector<std::uint64_t>& kids) = 0;
  /// Every stored key, before replay().
  virtual Status load_keys(const std::function<void(StoredKey&&)>& fn, RecoveryReport& report) = 0;

  /// The local spool, for stores that have one (nullptr: none).
  virtual const SpoolStats* spool_stats() const { return nullptr; }
  /// False while a snapshot would name a position the store does not hold yet
  /// (records acked from a spool that has not reached Redis). Shard thread.
  virtual bool snapshot_allowed() const { return true; }
  /// False for a log that keeps nothing (memory_log.hpp): the shard then takes
  /// no snapshots either, as there is nothing to restart from.
  virtual bool durable() const { return true; }

  /// "journal in DIR" / "redis stream KEY at HOST:PORT", for logs.
  virtual std::string describe() const = 0;
};

}  // namespace storepulse::store
