#pragma once
// The engine: N shards, each the single writer of a hash range of customer
// profiles and of its own journal, spread over a few *cores* (threads), shared
// nothing. Shard s belongs to core s % cores. A core is either one of the
// caller's threads (the server's io threads, the backtest's thread: see
// use_external_cores) or, by default, a thread of the engine's own. An event
// submitted on the thread that owns its shard is applied in that thread's loop
// turn, inline; from any other thread it crosses over in a lock-free queue with
// one wake-up per batch.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storepulse/common/metrics.hpp"
#include "storepulse/common/status.hpp"
#include "storepulse/models/live_models.hpp"
#include "storepulse/protocol/codec.hpp"
#include "storepulse/rules/rule_set.hpp"
#include "storepulse/store/journal.hpp"
#include "storepulse/store/redis_log.hpp"

namespace storepulse::engine {

/// Where a shard sends the reply for one message. deliver() is called on the
/// thread of the core that owns the shard (often the caller's own thread) and
/// must be thread-safe and non-blocking (sessions post to their own executor
/// when called from another thread).
class ReplyTarget {
 public:
  virtual ~ReplyTarget() = default;
  virtual void deliver(std::string message) = 0;
  /// The ack of `message_id` (protocol::encode_ack). The default delivers the
  /// encoded string; a target on the engine core's own thread may override it
  /// to write the ack straight into its output, with no string per reply.
  virtual void deliver_ack(std::string_view message_id);
};

struct EngineOptions {
  int shards = 2;
  std::size_t queue_capacity = 65536;  // per shard; over it -> rate_limited
  std::size_t batch_max = 512;         // events per group commit
  /// Threads the engine runs its shards on when no caller lends it its own
  /// (use_external_cores): 0 = one per shard, capped at the hardware threads.
  int cores = 0;
  std::string data_dir = "data";
  /// Where shard logs and snapshots live: "embedded" (journal files under
  /// data_dir) or "redis" (a stream + snapshot key per shard; `redis`). For
  /// scratch runs only (backtest): "memory", a log that keeps nothing and no
  /// snapshots (store/memory_log.hpp); a config cannot name it.
  std::string store_kind = "embedded";
  store::RedisOptions redis;
  /// Several nodes against one Redis (store_kind "redis" only): the shards this
  /// node recovers and serves, e.g. "0-3" or "0,2,4-5"; empty or "all": every
  /// shard. All nodes keep the same `shards` total (checked in `<prefix>:meta`).
  std::string owned_shards;
  /// This node's name in shard leases (`<prefix>:{sN}:owner`); unique among
  /// the nodes sharing a Redis. Empty: the host name.
  std::string node_id;
  store::FsyncPolicy fsync = store::FsyncPolicy::kInterval;
  TimeUs fsync_interval_us = 10'000;
  bool archive_segments = false;  // keep retired journal segments (store.archive_segments)
  std::uint64_t segment_bytes = 64ull << 20;
  std::size_t dedupe_window = 200'000;   // messageIds remembered per shard
  std::size_t max_profiles = 5'000'000;  // per shard
  TimeUs snapshot_interval_us = 60 * kUsPerSecond;
  std::uint64_t snapshot_min_records = 10'000;  // skip a snapshot when fewer new records
  /// Seal every log record that names a customer with that customer's own key
  /// (privacy.encrypt_journal), so erasure can destroy the key (crypto-shredding).
  bool seal_records = true;
  protocol::DecodeLimits limits;
  /// What moves the timer watermark when no events come: the wall clock by
  /// default. `storepulse backtest` replays history with a clock it controls,
  /// so only event time fires timers there.
  std::function<TimeUs()> watermark_clock;
};

class Shard;
struct Work;
struct Core;

/// The node's Redis spool, summed over its shards (metrics, admin API).
struct SpoolSummary {
  bool enabled = false;
  std::uint64_t max_bytes = 0, bytes = 0, records = 0;
  std::uint64_t spooled_total = 0, drained_total = 0, drains_total = 0;
  std::uint64_t last_drain_ms = 0, last_outage_ms = 0;
  std::vector<int> spooling;  // shards acking from the spool now
  std::vector<int> refused;   // shards whose drain Redis refused (operator needed)
};

/// "0-3,6" / "all" -> shard numbers below `shards`, sorted, unique; errors name the bad part.
Status parse_shard_set(std::string_view spec, int shards, std::vector<int>& out);

/// Receives actions that are not a reply to the event in hand: sms actions,
/// and everything a timer fires (abandoned cart, quiet-hours releases). Called
/// on shard worker threads; must not block.
using ActionSink = std::function<void(const protocol::Action&)>;

/// Answer to a profile lookup: HTTP status and JSON body.
using ProfileCallback = std::function<void(int status, std::string body)>;

/// What an erasure (DELETE /v1/profiles/{id}) removed.
struct ErasureResult {
  int status = 200;                   // 200, 404 (nothing held), 503 (a store write failed)
  std::string error;                  // when status != 200
  std::vector<std::string> subjects;  // the id, and the visitor ids linked to it
  std::vector<std::string> phones;    // contacts the profile held, for the SMS outbox
  std::vector<std::string> emails;
  std::uint64_t profiles = 0;  // profiles and redirect entries removed, all shards
  std::uint64_t keys = 0;      // customer keys destroyed
  /// Shards this node does not serve (several nodes, one Redis): what they hold
  /// about the customer is erased by sending the same DELETE to their node.
  std::vector<int> shards_not_served;
};
using ErasureCallback = std::function<void(ErasureResult)>;

class Engine {
 public:
  Engine(EngineOptions opts, std::shared_ptr<rules::RuleSet> rules, Metrics& metrics);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Before start(): the engine runs no threads of its own; the caller's
  /// threads are its cores, one per entry of `wakers`. wakers[c] is called from
  /// any thread when core c has work from elsewhere; it must make core c's
  /// thread call run_turn(c) soon, and must not block. No-op wakers are fine for
  /// a caller that drives the one core itself (backtest: run_until_idle).
  void use_external_cores(std::vector<std::function<void()>> wakers);
  /// Core c's thread, once, before its first run_turn(c): from then on work this
  /// thread submits for core c's shards is applied in its own loop turn.
  void enter_core(int c);
  /// Core c's thread, at the end of each loop turn: applies what its shards
  /// have (from this thread and from others), one group commit per shard,
  /// replies, fires due timers; every ~1 ms also fsync interval, snapshots.
  /// Returns whether any work was done. Cheap when there is none.
  bool run_turn(int c);
  /// External cores, from a thread that runs them all (backtest; nothing else
  /// may run a core meanwhile): turns on every core until no work is left,
  /// due timers included.
  void run_until_idle();
  int core_count() const { return static_cast<int>(cores_.size()); }
  bool started() const { return started_; }
  /// Started on threads of its own (no external cores): run_turn is not the caller's.
  bool started_with_own_threads() const { return started_ && !external_cores_; }
  /// Core c's thread: this thread queued work for its shards that no turn took yet.
  bool core_has_local_work(int c) const;
  int core_of_shard(int shard) const;

  /// Recovers every shard (snapshot + journal tail, in parallel) and starts the
  /// core threads (unless external). Throws with a message naming the file on
  /// unrecoverable damage.
  void start();
  /// Stops the core threads (external cores must have stopped running turns),
  /// drains every queue on this thread, commits, writes final snapshots.
  void stop();

  /// io thread: hands a decoded event to its shard. The reply (ack / actions /
  /// error) arrives later on `reply`. Fails fast with rate_limited when the
  /// shard's queue is full, or wrong_node when another node serves the shard:
  /// that error is delivered to `reply` and counted in the metrics here, so
  /// the caller does neither. `raw` (the wire JSON) is not taken: the journal
  /// keeps the decoded event, so the caller frees its buffer on its own thread.
  Status submit(protocol::Event&& ev, std::string&& raw, TimeUs recv,
                std::shared_ptr<ReplyTarget> reply);
  void query_profile(std::string id, ProfileCallback done);
  /// Erases a customer: the profile, every visitor id linked to it and their
  /// redirect entries, recent events, timers and contact index entries, on every
  /// shard; then writes each shard's snapshot again and destroys the customers'
  /// keys, so what the log still holds about them can no longer be read.
  /// `done` runs once, on a shard worker thread.
  void erase_profile(std::string id, ErasureCallback done);
  void recommend(protocol::RecommendRequest req, std::shared_ptr<ReplyTarget> reply);

  int shard_count() const { return static_cast<int>(shards_.size()); }
  /// fnv1a-64 of the customer key (userId, else anonymousId) mod shard_count():
  /// documented (docs/protocol.md) so clients of several nodes can route.
  int shard_of(std::string_view key) const;
  /// Whether this node serves `shard` now (owned, recovered, lease held).
  bool serving(int shard) const;
  /// "0-3,6": the shards this node serves, for errors and the admin API.
  std::string serving_description() const;
  const std::string& node_id() const { return node_id_; }
  std::uint64_t cross_node_steps_skipped() const {
    return unserved_dropped_.load(std::memory_order_relaxed);
  }
  /// Any thread.
  SpoolSummary spool_summary() const;
  /// GET /v1/admin/shards: node, shard count, hash, serving and lost shards, spool.
  std::string shards_json() const;
  /// POST /v1/admin/shards/claim: takes the leases on `spec` ("4-7"), recovers
  /// those shards from Redis and starts serving them. Runs on a helper thread
  /// (one claim at a time); `done` gets an HTTP status and a JSON body.
  void claim_async(std::string spec, std::function<void(int, std::string)> done);
  std::size_t queue_depth(int shard) const;
  std::size_t profile_count() const;
  const EngineOptions& options() const { return opts_; }
  /// Replaces the rule set; workers pick it up before their next batch.
  void set_rules(std::shared_ptr<rules::RuleSet> rules);
  std::shared_ptr<rules::RuleSet> rules() const { return std::atomic_load(&rules_); }
  /// Replaces the live models (an immutable snapshot); workers pick it up
  /// before their next batch. Any thread.
  void set_models(std::shared_ptr<const models::ModelSet> m) {
    std::atomic_store(&models_, std::move(m));
  }
  std::shared_ptr<const models::ModelSet> models() const { return std::atomic_load(&models_); }
  Metrics& metrics() { return metrics_; }
  /// Set before start().
  void set_action_sink(ActionSink sink) { sink_ = std::move(sink); }
  /// Set before start(): sees every action the engine emits live (replies,
  /// sms, timers), with its customer and event time; shard worker threads.
  void set_action_observer(ActionSink observer) { observer_ = std::move(observer); }
  std::vector<std::string> recovery_lines() const;

 private:
  friend class Shard;
  void check_redis_shard_count();
  /// Takes the leases on `shards` (throws naming the holder when one is held).
  void acquire_leases(const std::vector<int>& shards);
  void lease_loop();
  /// A shard's reply when this node does not serve it (wrong_node).
  std::string wrong_node_detail(int shard, std::string_view key) const;
  /// Work that reached a shard this node does not serve: answered or dropped.
  void reject_unserved(Work& w, int shard);
  bool leases_enabled() const { return opts_.store_kind == "redis"; }
  EngineOptions opts_;
  std::string node_id_;
  std::string lease_value_;  // "<node-id>/<token>", new for every process
  std::vector<bool> owned_;  // from owned_shards, fixed at construction
  bool serves_all_ = true;   // owns every shard: the Redis spool may be used
  /// Erasures that did not complete (a store write failed): the ids and phones
  /// they covered, so a retry erases the same set although the profile is gone
  /// from memory. Rare path: a mutex, not on any event's way.
  struct PendingErasure {
    std::vector<std::string> subjects, phones, emails;
  };
  std::mutex erase_mu_;
  std::map<std::string, PendingErasure> pending_erasures_;
  std::mutex claim_mu_;  // one claim (or stop) at a time
  std::thread claim_thread_;
  std::atomic<bool> claim_busy_{false};
  std::thread lease_thread_;
  std::mutex lease_mu_;
  std::condition_variable lease_cv_;
  bool lease_stop_ = false;
  std::atomic<std::uint64_t> unserved_dropped_{0};  // internal work for shards served elsewhere
  std::atomic<std::int64_t> last_unserved_log_ns_{0};
  std::shared_ptr<rules::RuleSet> rules_;
  std::shared_ptr<const models::ModelSet> models_;
  Metrics& metrics_;
  ActionSink sink_;
  ActionSink observer_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::unique_ptr<Core>> cores_;
  bool external_cores_ = false;
  bool started_ = false, stopped_ = false;
  void make_cores(int n);
  void run_core_thread(Core& c);
};

}  // namespace storepulse::engine
