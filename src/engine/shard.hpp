#pragma once
// One shard: a hash range of profiles, their dedupe window and a journal,
// owned by one core (engine/core.hpp). Everything below `// worker-owned` is
// touched only by that core's thread (and by recovery before the shard runs,
// and by Engine::stop after every core has stopped).
#include <concurrentqueue.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/core.hpp"
#include "engine/dedupe_window.hpp"
#include "storepulse/common/flat_map.hpp"
#include "storepulse/engine/engine.hpp"
#include "storepulse/profile/profile.hpp"
#include "storepulse/store/journal.hpp"
#include "storepulse/store/sealer.hpp"

namespace storepulse::engine {

struct PurgeState;

/// The shard's maps keyed by customer id (profiles, journal keys): a flat
/// open-addressing map looked up by string_view, so a lookup by an event's
/// customer key builds no std::string and allocates nothing
/// (common/flat_map.hpp; an insert may move entries, so values that must stay
/// put are held by pointer).
template <class V>
using StringKeyMap = FlatStringMap<V>;

/// A shard's best sellers as the other shards read them: per category, the
/// top products by units sold (at most kTopPerCategory), and their names.
struct PopularityView {
  static constexpr std::size_t kTopPerCategory = 50;
  std::unordered_map<std::string, std::vector<std::pair<std::string, std::uint32_t>>> top;
  std::unordered_map<std::string, std::string> names;
};

struct Work {
  enum class Kind : std::uint8_t {
    kEvent,         // from an io thread: journal, apply, reply
    kForward,       // an event for an id that was merged into a profile on this shard
    kProfileQuery,  // GET /v1/profiles/{id}
    kRecommend,     // web recommend request
    kLinkRequest,   // "give me profile `other` and route it to `target` from now on"
    kMergePayload,  // serialized profile of `other`, to fold into `target`
    kContactClaim,  // "profile `target` has contact `other` (phone:/email:)"; to the contact's
                    // shard
    kLinkCommand,   // "link `other` into member `target`" (found by a shared contact)
    kErase,         // DELETE /v1/profiles/{target}: collect what to erase, then kPurge to all
    kPurge,         // erase `purge->result.subjects` held on this shard
    kResendLinks,   // after start or a claim: resend_pending_links() on the shard's own core
  };
  Kind kind = Kind::kEvent;
  protocol::Event event;
  TimeUs recv = 0;
  std::int64_t enq_ns = 0;
  std::string target;   // profile key this work applies to
  std::string other;    // linked id (link / merge)
  std::string payload;  // merge: serialized profile
  std::shared_ptr<ReplyTarget> reply;
  ProfileCallback profile_done;
  ErasureCallback erase_done;
  std::shared_ptr<PurgeState> purge;
  protocol::RecommendRequest rec;

  /// As a new Work, keeping the capacity of its strings (up to kKeepBytes each)
  /// so that a pooled Work carries the next event without allocating.
  void reset();
  static constexpr std::size_t kKeepBytes = 1024;
};

/// Work objects of the calling thread, reused (engine hot path: one per event).
/// A thread-local free list, bounded (kMaxPooled): a Work made on one core and
/// applied on another ends in the second core's list; past the bound it is
/// freed. Not shared between threads, so no locking.
std::unique_ptr<Work> take_work();
void recycle_work(std::unique_ptr<Work> w);

/// The last events a shard applied, for the dashboard's profile lookup
/// (`recentEvents` in GET /v1/profiles/{id}): a fixed ring of kSize slots whose
/// strings keep their capacity, so steady state allocates nothing. Owned by the
/// shard worker like the profiles.
class RecentEvents {
 public:
  static constexpr std::size_t kSize = 8192;
  static constexpr std::size_t kMaxPerProfile = 20;
  void add(std::string_view key, const protocol::Event& ev) {
    Slot& s = ring_[next_];
    s.key.assign(key);
    s.message_id.assign(ev.message_id);
    s.at = ev.timestamp;
    s.type = ev.type;
    s.name = ev.name;
    s.channel = ev.channel;
    s.total = ev.has_total ? ev.total : -1;
    next_ = (next_ + 1) % kSize;
    if (count_ < kSize) ++count_;
  }
  /// Blanks the slots of these profile keys (erasure).
  std::size_t forget(const std::vector<std::string>& keys) {
    std::size_t n = 0;
    for (auto& s : ring_)
      if (!s.key.empty() && std::find(keys.begin(), keys.end(), s.key) != keys.end()) {
        s = Slot{};
        ++n;
      }
    return n;
  }
  /// `,"recentEvents":[...]` for `key` (and ids merged into it), newest first.
  void append_json(std::string& out, std::string_view key,
                   const std::vector<std::string_view>& also) const;

 private:
  struct Slot {
    std::string key, message_id;
    TimeUs at = 0;
    protocol::EventType type = protocol::EventType::kTrack;
    protocol::EventName name = protocol::EventName::kNone;
    protocol::Channel channel = protocol::Channel::kUnknown;
    protocol::Money total = -1;  // -1: the event had no total
  };
  std::vector<Slot> ring_ = std::vector<Slot>(kSize);
  std::size_t next_ = 0, count_ = 0;
};

/// One erasure in flight across every shard; the last shard done answers.
struct PurgeState {
  Engine* engine = nullptr;
  std::mutex mu;
  ErasureResult result;
  int remaining = 0;
  ErasureCallback done;
};

class Shard {
 public:
  Shard(Engine& engine, int index);
  ~Shard();

  void recover();  // before start(); throws on unrecoverable damage
  /// From now on the owning core runs this shard's turns (any thread).
  void start();
  /// Engine::stop, after every core stopped: final commit, sync and snapshot.
  void stop();
  bool running() const { return running_.load(std::memory_order_acquire); }
  void set_core(Core* c) { core_ = c; }

  /// Any thread. On the owning core's thread the work joins this turn's batch
  /// (no atomics but the depth count); from elsewhere it goes through the
  /// lock-free inbox and wakes the core once per batch.
  bool push(std::unique_ptr<Work> w, bool bounded);
  /// Owning core's thread: applies what is queued (several group commits of at
  /// most batch_max), then fires due timers. True if anything was done.
  bool turn();
  /// Owning core's thread, about every millisecond: fsync interval, lease
  /// errors, snapshots, warnings.
  void tick();
  /// Owning core's thread: fires the timers the watermark made due; true if any.
  bool fire_due_timers();
  /// Owned, recovered and (Redis) under this node's lease: work is accepted.
  bool serving() const { return serving_.load(std::memory_order_acquire); }
  void set_serving(bool on) { serving_.store(on, std::memory_order_release); }
  /// The lease was lost (taken over or expired): never served again by this process.
  bool lease_lost() const { return lease_lost_.load(std::memory_order_acquire); }
  void lose_lease(const std::string& why);
  /// This node took the shard's lease (renewed from then on, recovery included).
  bool leased() const { return leased_.load(std::memory_order_acquire); }
  void set_leased() { leased_.store(true, std::memory_order_release); }
  /// Recovered (or being recovered) in this process: a claim cannot redo it.
  bool recovered() const { return recovered_; }
  std::size_t depth() const { return depth_.load(std::memory_order_relaxed); }
  std::size_t profile_count() const { return profile_count_.load(std::memory_order_relaxed); }
  const std::vector<std::string>& recovery_lines() const { return recovery_lines_; }
  /// The Redis spool's counters (nullptr: embedded journal, or not recovered). Any thread.
  const store::SpoolStats* spool_stats() const {
    return spool_stats_.load(std::memory_order_acquire);
  }
  /// After recovery: links whose other side's data never arrived (crash in between).
  void resend_pending_links();
  /// Queues resend_pending_links() to run on this shard's core (it reads the
  /// profiles, which only that core may touch); a no-op while not serving.
  void request_resend_links();

 private:
  void process_batch(std::unique_ptr<Work>* items, std::size_t n);
  /// Returns this turn's Work to the thread's pool (take_work / recycle_work).
  void recycle_batch();
  void handle_query(Work& w);
  void handle_recommend(Work& w);
  void handle_contact_claim(Work& w);
  void send_contact_claims(const std::string& key, const profile::CustomerProfile& p);
  void send_link_request(const std::string& target, const std::string& other);
  void apply_recovered(const store::JournalRecord& rec, protocol::EventDecoder& dec);
  /// Applies one replayed event record's event to profile `key` (recovery).
  void apply_replayed_event(const std::string& key, const protocol::Event& ev);
  profile::CustomerProfile* find(std::string_view key);
  profile::CustomerProfile& get_or_create(std::string_view key);
  void apply_and_link(profile::CustomerProfile& p, const protocol::Event& ev);
  /// Records a link from `p` to `other` unless already there or full; true if added.
  bool add_link(profile::CustomerProfile& p, std::string_view other, TimeUs when,
                std::string_view via);
  /// Folds the serialized profile of `other` into `target`, once per link.
  void absorb(const std::string& target, const std::string& other, std::string_view serialized);
  void record_popularity(const protocol::Event& ev);
  void publish_popularity(bool force);
  /// Takes the engine's current models for this thread (per batch, recovery).
  void take_models();
  void maybe_snapshot(bool force);
  /// Logs (rate-limited) when names_ refused new names since the last line.
  void warn_names_refused();
  /// Writes the snapshot now, synchronously, even when no record came since the
  /// last one (erasure: the previous snapshot still holds the erased profile).
  Status snapshot_now();
  /// Journals a record about `subject`, sealed with its key when sealing is on.
  void append_record(store::RecordType type, TimeUs recv, std::string_view subject,
                     std::string_view payload);
  const store::StoredKey& key_for(std::string_view subject);
  void handle_erase(Work& w);
  void handle_purge(Work& w);

 public:
  /// One shard's part of an erasure is done (or skipped: a shard this node does
  /// not serve); the last one answers.
  static void finish_purge(PurgeState& st, std::uint64_t removed, std::uint64_t keys,
                           const Status& s, int shard, bool served);

 private:
  std::string encode_snapshot() const;
  void decode_snapshot(const std::string& body);
  /// The kEventBinary payload of `ev` for profile `key`, in event_buf_.
  std::string_view event_payload(std::string_view key, const protocol::Event& ev);
  /// Runs the rules for an applied event; pos/web actions go to `reply_actions`,
  /// the rest to the engine's sink (live only).
  void evaluate_rules(const std::string& key, profile::CustomerProfile& p,
                      const protocol::Event& ev, bool live);
  void index_timers(const std::string& key, const profile::CustomerProfile& p);
  /// Before a customer's event at `t`: fires that customer's timers due at or
  /// before `t` first, earliest first, so the event sees what a real-time
  /// watermark would have done (live and replay alike; not journaled, because
  /// the event record itself implies it).
  void fire_customer_timers(const std::string& key, profile::CustomerProfile& p, TimeUs t,
                            bool live);
  void remove_timer(profile::CustomerProfile& p, profile::NameId rule, TimeUs at);

  struct TimerEntry {
    TimeUs at;
    std::string key;
    profile::NameId rule;  // in names_
    bool operator>(const TimerEntry& o) const { return at > o.at; }
  };

  Engine& engine_;
  int index_;
  std::string dir_;
  Core* core_ = nullptr;
  moodycamel::ConcurrentQueue<std::unique_ptr<Work>> queue_;  // from other threads
  std::vector<std::unique_ptr<Work>> local_;  // from the owning core's thread, in order
  std::vector<std::unique_ptr<Work>> batch_;  // turn(): what this turn applies
  std::atomic<std::size_t> depth_{0};
  std::atomic<bool> running_{false};
  std::atomic<std::size_t> profile_count_{0};
  std::atomic<bool> serving_{false};
  std::atomic<bool> lease_lost_{false};
  std::atomic<bool> leased_{false};
  std::atomic<const store::SpoolStats*> spool_stats_{nullptr};
  bool recovered_ = false;  // set by recover(); claims and start() only
  std::vector<std::string> recovery_lines_;

  // worker-owned
  std::int64_t last_commit_log_ns_ = 0;  // commit failures are logged at most once a second
  std::uint64_t commit_failures_ = 0;
  std::unique_ptr<store::Log> journal_;  // file journal or Redis stream (store.kind)
  // Customer keys (crypto-shredding): subject -> key, and kid -> subject for
  // opening sealed records on replay.
  std::unique_ptr<store::Sealer> sealer_;
  StringKeyMap<store::StoredKey> keys_;
  std::unordered_map<std::uint64_t, std::string> kid_subject_;
  std::string seal_buf_, open_buf_, event_buf_;
  protocol::Event replay_event_;        // recovery: one Event reused, strings keep their capacity
  std::string replay_fatal_;            // recovery: a record this build cannot read (newer format)
  std::uint64_t shredded_records_ = 0;  // replay: sealed records whose key was erased
  // Category, brand, product and store names of this shard's profiles (the
  // profiles hold ids into it). Declared before profiles_: destroyed after them.
  profile::NameTable names_;
  std::uint64_t names_refused_logged_ = 0;  // names_.refused() at the last warning
  std::int64_t last_names_log_ns_ = 0;
  StringKeyMap<std::unique_ptr<profile::CustomerProfile>> profiles_;
  DedupeWindow dedupe_;
  RecentEvents recent_;
  // Units sold per product per category on this shard (bounded: kMaxCategories
  // x kMaxProducts), and product names; kept in snapshots.
  std::unordered_map<std::string, std::unordered_map<std::string, std::uint32_t>> popularity_;
  std::unordered_map<std::string, std::string> product_names_;
  bool popularity_dirty_ = false;       // changed since the last publish
  std::int64_t popularity_pub_ns_ = 0;  // when it was last published
 public:
  /// This shard's best sellers, published about once a second for the other
  /// shards' recommendations (cold start sees every shard's purchases, not only
  /// its own). Written by this shard, read by any.
  std::atomic<std::shared_ptr<const PopularityView>> published_popularity_;

 private:
  std::shared_ptr<rules::RuleSet> rules_;
  std::shared_ptr<const models::ModelSet> models_;  // this batch's snapshot (also active_models())
  std::uint64_t snapshot_seq_ = 0;
  std::int64_t last_snapshot_ns_ = 0;
  std::thread snapshot_thread_;
  std::atomic<bool> snapshot_busy_{false};
  std::atomic<std::uint64_t> snapshot_done_seq_{0};
  std::vector<profile::CustomerProfile*> batch_profiles_;  // process_batch: phase 1 -> 3
  std::vector<protocol::Action> actions_scratch_;
  std::vector<protocol::Action> reply_actions_;
  // Contact index for identity by phone/email: the contacts that hash to this
  // shard and the profile that claimed each first (members win over visitors).
  // Derived state: rebuilt after recovery from every profile's traits.
  struct ContactOwner {
    std::string key;
    bool member = false;
  };
  std::unordered_map<std::string, ContactOwner> contact_owners_;
  static constexpr std::size_t kMaxContactsIndexed = 4'000'000;
  // Armed timers by due time. Entries are lazy: a popped entry fires only if the
  // profile still holds that timer (re-arming or cancelling leaves stale ones).
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<TimerEntry>> timers_;
  TimeUs max_event_time_ = 0;
};

}  // namespace storepulse::engine
