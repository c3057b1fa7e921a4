// The per-core shard loop: how work reaches a shard (its core's own batch or
// the lock-free inbox), a shard's turn (group commit, apply, reply), and the
// cores themselves (the engine's threads, or the caller's: the server's io
// threads, the backtest). docs/architecture.md follows a swipe through it.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "engine/core.hpp"
#include "engine/shard.hpp"
#include "storepulse/common/bytes.hpp"
#include "storepulse/protocol/event_binary.hpp"

namespace storepulse::engine {

Core*& current_core() {
  thread_local Core* core = nullptr;
  return core;
}

// ---- the cores -------------------------------------------------------------------

void Engine::make_cores(int n) {
  n = std::clamp(n, 1, shard_count());
  cores_.clear();
  for (int c = 0; c < n; ++c) {
    auto core = std::make_unique<Core>();
    core->index = c;
    cores_.push_back(std::move(core));
  }
  for (int s = 0; s < shard_count(); ++s) {
    Core& c = *cores_[static_cast<std::size_t>(s % n)];
    c.shards.push_back(shards_[static_cast<std::size_t>(s)].get());
    shards_[static_cast<std::size_t>(s)]->set_core(&c);
  }
  if (shard_count() % n != 0)
    spdlog::warn(
        "engine.shards = {} is not a multiple of the {} cores (server.io_threads): some cores "
        "carry one shard more than others",
        shard_count(), n);
}

void Engine::use_external_cores(std::vector<std::function<void()>> wakers) {
  if (started_) throw std::logic_error("Engine::use_external_cores after start()");
  if (wakers.empty()) throw std::invalid_argument("Engine::use_external_cores: no cores");
  make_cores(static_cast<int>(wakers.size()));
  // More cores than shards: the extra threads run connections but no shard.
  for (std::size_t c = 0; c < cores_.size(); ++c) cores_[c]->waker = std::move(wakers[c]);
  external_cores_ = true;
}

int Engine::core_of_shard(int shard) const {
  return cores_.empty() ? 0 : shard % static_cast<int>(cores_.size());
}

bool Engine::core_has_local_work(int c) const {
  return c >= 0 && c < core_count() && cores_[static_cast<std::size_t>(c)]->local_pending;
}

void Engine::enter_core(int c) {
  // More io threads than shards: a thread past the last core owns no shard and
  // submits everything through the inboxes.
  current_core() = c >= 0 && c < core_count() && external_cores_
                       ? cores_[static_cast<std::size_t>(c)].get()
                       : nullptr;
}

bool Engine::run_turn(int ci) {
  if (ci >= core_count()) return false;
  Core& c = *cores_[static_cast<std::size_t>(ci)];
  // An RMW, so it reads the flag the last producer set and its enqueue is
  // visible to the drain below; a producer after this wakes the core again.
  c.wake_posted.exchange(false, std::memory_order_acq_rel);
  c.local_pending = false;
  bool did = false;
  for (Shard* s : c.shards) did |= s->turn();
  const std::int64_t now = mono_ns();
  if (now - c.last_tick_ns >= 1'000'000) {
    c.last_tick_ns = now;
    for (Shard* s : c.shards)
      if (s->running()) s->tick();
  }
  return did;
}

void Engine::run_until_idle() {
  Core* const mine = current_core();
  // Bounded: a chain of cross-shard steps ends in a few rounds; a rule that
  // kept re-arming timers already due would otherwise spin here.
  for (int round = 0; round < 1'000'000; ++round) {
    bool any = false;
    for (auto& c : cores_) {
      current_core() = c.get();
      any |= run_turn(c->index);
      any |= c->local_pending;
    }
    if (!any) break;
  }
  current_core() = mine;
}

void Engine::run_core_thread(Core& c) {
  current_core() = &c;
  while (!c.stop.load(std::memory_order_acquire)) {
    const bool did = run_turn(c.index);
    // Spins briefly before parking; the 2 ms bound keeps timers and fsync
    // interval going when no work comes.
    if (!did && !c.local_pending) c.sem.wait(2000);
  }
  current_core() = nullptr;
}

// ---- pooled Work ------------------------------------------------------------------------

namespace {

constexpr std::size_t kMaxPooled = 1024;  // per thread; two batches of the default batch_max

std::vector<std::unique_ptr<Work>>& work_pool() {
  thread_local std::vector<std::unique_ptr<Work>> pool;
  return pool;
}

// Clears `s`, and gives its memory back when it grew past what a pooled Work keeps.
void clear_keeping(std::string& s) {
  if (s.capacity() > Work::kKeepBytes)
    std::string().swap(s);
  else
    s.clear();
}

}  // namespace

void Work::reset() {
  kind = Kind::kEvent;
  for (std::string* f : {&target, &other, &payload}) clear_keeping(*f);
  if (event.products.capacity() > 64) std::vector<protocol::Product>().swap(event.products);
  event.clear(kKeepBytes);
  recv = 0;
  enq_ns = 0;
  reply.reset();
  profile_done = nullptr;
  erase_done = nullptr;
  purge.reset();
  rec = protocol::RecommendRequest{};
}

std::unique_ptr<Work> take_work() {
  auto& pool = work_pool();
  if (pool.empty()) return std::make_unique<Work>();
  std::unique_ptr<Work> w = std::move(pool.back());
  pool.pop_back();
  return w;
}

void recycle_work(std::unique_ptr<Work> w) {
  if (!w) return;
  auto& pool = work_pool();
  if (pool.size() >= kMaxPooled) return;  // freed here
  w->reset();
  if (pool.capacity() == 0) pool.reserve(kMaxPooled);
  pool.push_back(std::move(w));
}

// ---- how work reaches a shard --------------------------------------------------------

bool Shard::push(std::unique_ptr<Work> w, bool bounded) {
  if (!serving()) {
    engine_.reject_unserved(*w, index_);
    return false;
  }
  // Client work is bounded by queue_capacity; internal work (links, merges,
  // forwards, lookups) is always accepted so cross-shard steps are never lost.
  if (bounded && depth_.load(std::memory_order_relaxed) >= engine_.opts_.queue_capacity) {
    if (w->reply) {
      engine_.metrics_.count_error(ErrorCode::kRateLimited);
      w->reply->deliver(protocol::encode_error(w->event.message_id, ErrorCode::kRateLimited,
                                               "server busy: shard queue is full; retry later"));
    }
    return false;
  }
  depth_.fetch_add(1, std::memory_order_relaxed);
  if (current_core() == core_) {
    // The owning core's own thread: this loop turn applies it, in order.
    local_.push_back(std::move(w));
    core_->local_pending = true;
    return true;
  }
  queue_.enqueue(std::move(w));
  if (core_) core_->wake();
  return true;
}

void Shard::start() {
  running_.store(true, std::memory_order_release);
  if (core_) core_->wake();
}

void Shard::stop() {
  if (running_.exchange(false)) {
    if (Status s = journal_->sync(); !s) spdlog::error("shard {}: {}", index_, s.detail());
    maybe_snapshot(true);
  }
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
}

bool Shard::turn() {
  if (!running_.load(std::memory_order_acquire)) return false;
  const std::size_t batch_max = std::max<std::size_t>(1, engine_.opts_.batch_max);
  bool did = false;
  // A few rounds at most (work this turn made for this shard, e.g. a link step
  // to itself, is taken in the next round); the core's sockets wait meanwhile.
  for (int round = 0; round < 4; ++round) {
    recycle_batch();
    batch_.swap(local_);
    const std::size_t have = batch_.size();
    if (have < batch_max) {
      batch_.resize(batch_max);
      const std::size_t got = queue_.try_dequeue_bulk(
          batch_.begin() + static_cast<std::ptrdiff_t>(have), batch_max - have);
      batch_.resize(have + got);
    }
    if (batch_.empty()) break;
    depth_.fetch_sub(batch_.size(), std::memory_order_relaxed);
    if (!did) {
      rules_ = engine_.rules();
      take_models();
    }
    for (std::size_t off = 0; off < batch_.size(); off += batch_max)
      process_batch(batch_.data() + off, std::min(batch_max, batch_.size() - off));
    did = true;
  }
  recycle_batch();
  if (fire_due_timers()) did = true;
  return did;
}

void Shard::recycle_batch() {
  for (auto& w : batch_) recycle_work(std::move(w));
  batch_.clear();
}

void Shard::tick() {
  if (!rules_) rules_ = engine_.rules();
  if (Status s = journal_->tick(); !s) {
    if (s.code() == ErrorCode::kWrongNode)
      lose_lease(s.detail());
    else
      spdlog::error("shard {}: {}", index_, s.detail());
  }
  maybe_snapshot(false);
  publish_popularity(false);
  warn_names_refused();
}

// ---- a batch: dedupe + journal, group commit, apply + rules + replies ------------------

void Shard::process_batch(std::unique_ptr<Work>* items, std::size_t n) {
  enum class Step : std::uint8_t {
    kSkip,
    kApply,
    kDuplicate,
    kMerge,
    kRedirect,
    kRead,
    kLink,
    kClaim,
    kErase,
    kPurge,
    kResend
  };
  Step steps[4096];
  Step* step = n <= 4096 ? steps : new Step[n];
  // The profile each event found in phase 1, so phase 3 does not look it up
  // again (one hash lookup per event instead of three). Null: not there yet.
  batch_profiles_.assign(n, nullptr);
  Metrics& m = engine_.metrics_;

  // Phase 1: decide, dedupe and journal (buffered).
  for (std::size_t i = 0; i < n; ++i) {
    Work& w = *items[i];
    step[i] = Step::kSkip;
    switch (w.kind) {
      case Work::Kind::kEvent:
      case Work::Kind::kForward: {
        if (w.kind == Work::Kind::kEvent) w.target.assign(w.event.customer_key());
        auto* p = find(w.target);
        if (p && !p->merged_into.empty()) {
          // This id was merged into a member who lives elsewhere: the member's
          // shard journals and applies it, and replies.
          w.kind = Work::Kind::kForward;
          w.target = p->merged_into;
          const int s = engine_.shard_of(w.target);
          engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(items[i]), false);
          items[i] = take_work();
          break;
        }
        if (!dedupe_.insert(w.event.message_id)) {
          step[i] = Step::kDuplicate;
          break;
        }
        if (!p && profiles_.size() >= engine_.opts_.max_profiles) {
          dedupe_.clear_one(w.event.message_id);  // refused: a retry must not count as a duplicate
          m.count_error(ErrorCode::kUnavailable);
          if (w.reply)
            w.reply->deliver(protocol::encode_error(w.event.message_id, ErrorCode::kUnavailable,
                                                    "profile capacity of this node reached"));
          break;
        }
        append_record(store::RecordType::kEventBinary, w.recv, w.target,
                      event_payload(w.target, w.event));
        batch_profiles_[i] = p;
        step[i] = Step::kApply;
        break;
      }
      case Work::Kind::kMergePayload: {
        std::string payload;
        ByteWriter bw(payload);
        bw.str(w.target);
        bw.str(w.other);
        bw.str(w.payload);
        append_record(store::RecordType::kMergePayload, 0, w.target, payload);
        step[i] = Step::kMerge;
        break;
      }
      case Work::Kind::kLinkRequest: {
        auto* p = find(w.other);
        if (p && !p->merged_into.empty()) {
          step[i] = Step::kRedirect;  // already redirected: just resend the data
          break;
        }
        std::string payload;
        ByteWriter bw(payload);
        bw.str(w.other);
        bw.str(w.target);
        append_record(store::RecordType::kRedirect, 0, w.other, payload);
        step[i] = Step::kRedirect;
        break;
      }
      case Work::Kind::kProfileQuery:
      case Work::Kind::kRecommend: step[i] = Step::kRead; break;
      case Work::Kind::kContactClaim: step[i] = Step::kClaim; break;
      case Work::Kind::kErase: step[i] = Step::kErase; break;
      case Work::Kind::kPurge: step[i] = Step::kPurge; break;
      case Work::Kind::kResendLinks: step[i] = Step::kResend; break;
      case Work::Kind::kLinkCommand: {
        std::string payload;
        ByteWriter bw(payload);
        bw.str(w.target);
        bw.str(w.other);
        bw.str(w.payload);
        w.recv = wall_clock_us();  // the link's time, the same on replay
        append_record(store::RecordType::kLink, w.recv, w.target, payload);
        step[i] = Step::kLink;
        break;
      }
    }
  }

  // Phase 2: group commit. Nothing is applied or acked unless it is durable.
  Status committed = journal_->commit();
  if (committed)
    m.journal_commits.fetch_add(1, std::memory_order_relaxed);
  else if (committed.code() == ErrorCode::kWrongNode) {
    lose_lease(committed.detail());
  } else {
    // During an outage every batch fails: log the first failure, then at most
    // one line a second with the number of failures in between.
    ++commit_failures_;
    const std::int64_t now = mono_ns();
    if (now - last_commit_log_ns_ >= 1'000'000'000) {
      if (commit_failures_ > 1)
        spdlog::error(
            "shard {}: journal commit failed ({} failed commits since the last report): {}", index_,
            commit_failures_, committed.detail());
      else
        spdlog::error("shard {}: journal commit failed: {}", index_, committed.detail());
      last_commit_log_ns_ = now;
      commit_failures_ = 0;
    }
  }

  // Internal work whose journal write failed is retried in a later batch.
  auto requeue = [&](std::size_t i) {
    push(std::move(items[i]), false);
    items[i] = take_work();
  };

  // Phase 3: apply in arrival order, evaluate rules, reply.
  bool purged = false;
  for (std::size_t i = 0; i < n; ++i) {
    Work& w = *items[i];
    switch (step[i]) {
      case Step::kSkip: break;
      case Step::kDuplicate:
        m.duplicates.fetch_add(1, std::memory_order_relaxed);
        if (w.reply) w.reply->deliver_ack(w.event.message_id);
        break;
      case Step::kApply: {
        if (!committed) {
          dedupe_.clear_one(w.event.message_id);
          // kWrongNode: another node took this shard over; the client re-routes.
          const ErrorCode code = committed.code() == ErrorCode::kWrongNode
                                     ? ErrorCode::kWrongNode
                                     : ErrorCode::kUnavailable;
          m.count_error(code);
          if (w.reply)
            w.reply->deliver(protocol::encode_error(w.event.message_id, code,
                                                    "journal write failed: " + committed.detail()));
          break;
        }
        // An erasure earlier in this phase may have removed the profile found in phase 1.
        profile::CustomerProfile* found = purged ? nullptr : batch_profiles_[i];
        auto& p = found ? *found : get_or_create(w.target);
        fire_customer_timers(w.target, p, w.event.timestamp, true);
        profile::apply_event(p, w.event);
        if (models_) models::update_profile(*models_, p, w.event);
        const std::size_t links_before = p.links.size();
        apply_and_link(p, w.event);
        if (p.links.size() > links_before) send_link_request(w.target, p.links.back().other_id);
        if (!w.event.traits.phone.empty() || !w.event.traits.email.empty())
          send_contact_claims(w.target, p);
        max_event_time_ = std::max(max_event_time_, w.event.timestamp);
        evaluate_rules(w.target, p, w.event, true);
        record_popularity(w.event);
        recent_.add(w.target, w.event);
        m.count_event(static_cast<int>(w.event.type), static_cast<int>(w.event.channel));
        if (w.reply) {
          if (reply_actions_.empty()) {
            w.reply->deliver_ack(w.event.message_id);
          } else {
            m.actions.fetch_add(reply_actions_.size(), std::memory_order_relaxed);
            w.reply->deliver(protocol::encode_actions(w.event.message_id, reply_actions_));
          }
        }
        if (w.enq_ns) m.event_latency.record_ns(mono_ns() - w.enq_ns);
        break;
      }
      case Step::kMerge:
        if (!committed) {
          requeue(i);
          break;
        }
        absorb(w.target, w.other, w.payload);
        break;
      case Step::kRedirect: {
        if (!committed) {
          requeue(i);
          break;
        }
        auto& o = get_or_create(w.other);
        if (!o.merged_into.empty() && o.merged_into != w.target) {
          spdlog::warn("shard {}: {} is already merged into {}; link to {} ignored", index_,
                       w.other, o.merged_into, w.target);
          break;
        }
        o.merged_into = w.target;
        auto mw = take_work();
        mw->kind = Work::Kind::kMergePayload;
        mw->target = w.target;
        mw->other = w.other;
        profile::serialize_profile(o, mw->payload);
        const int s = engine_.shard_of(w.target);
        engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(mw), false);
        break;
      }
      case Step::kRead:
        if (w.kind == Work::Kind::kProfileQuery)
          handle_query(w);
        else
          handle_recommend(w);
        break;
      case Step::kClaim: handle_contact_claim(w); break;
      case Step::kResend: resend_pending_links(); break;
      // After the commit, so events of this batch are durable before their
      // subjects are erased (and their keys destroyed with the rest).
      case Step::kErase: handle_erase(w); break;
      case Step::kPurge:
        handle_purge(w);
        purged = true;
        break;
      case Step::kLink:
        if (!committed) {
          requeue(i);
          break;
        }
        if (add_link(get_or_create(w.target), w.other, w.recv, w.payload))
          send_link_request(w.target, w.other);
        break;
    }
  }
  if (step != steps) delete[] step;
}

}  // namespace storepulse::engine
