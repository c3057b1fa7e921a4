// A shard's recovery at start (snapshot + log tail, sealed records opened with
// their customer keys), its snapshots, and how replayed records are applied.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>

#include "engine/core.hpp"
#include "engine/shard.hpp"
#include "storepulse/common/bytes.hpp"
#include "storepulse/engine/engine.hpp"
#include "storepulse/protocol/event_binary.hpp"
#include "storepulse/store/memory_log.hpp"
#include "storepulse/store/snapshot.hpp"

namespace storepulse::engine {

namespace {
// Marks the snapshot section after the dedupe ids: product popularity ("POP1").
constexpr std::uint32_t kPopularityTag = 0x31504F50;
}  // namespace

void Shard::recover() {
  const auto t0 = mono_ns();
  recovered_ = true;
  if (engine_.opts_.store_kind == "memory") {
    journal_ = std::make_unique<store::MemoryLog>();
  } else if (engine_.opts_.store_kind == "redis") {
    store::RedisOptions ro = engine_.opts_.redis;
    ro.trim = !engine_.opts_.archive_segments;  // keep the stream's history like archived segments
    ro.spool_dir = fmt::format("{}/shard-{:03}", engine_.opts_.redis.spool_dir, index_);
    if (!engine_.serves_all_) ro.spool_max_bytes = 0;  // a spool left from earlier is still drained
    ro.spool_fsync = engine_.opts_.fsync;
    ro.spool_fsync_interval_us = engine_.opts_.fsync_interval_us;
    auto j = store::RedisLog::open(ro, index_);
    if (!j.is_ok())
      throw std::runtime_error(fmt::format("shard {}: {}", index_, j.status().detail()));
    j.value()->set_lease(engine_.lease_value_);
    spool_stats_.store(j.value()->spool_stats(), std::memory_order_release);
    journal_ = std::move(j.value());
  } else {
    store::JournalOptions jo;
    jo.dir = dir_;
    jo.fsync = engine_.opts_.fsync;
    jo.fsync_interval_us = engine_.opts_.fsync_interval_us;
    jo.archive_segments = engine_.opts_.archive_segments;
    jo.segment_bytes = engine_.opts_.segment_bytes;
    auto j = store::Journal::open(jo);
    if (!j.is_ok()) throw std::runtime_error(j.status().detail());
    journal_ = std::move(j.value());
  }
  std::uint64_t seq = 0;
  std::string body;
  auto snap = journal_->read_snapshot(seq, body);
  if (!snap.is_ok())
    throw std::runtime_error(
        fmt::format("shard {}: {} (move it aside to recover from the journal alone, if the journal "
                    "is complete)",
                    index_, snap.status().detail()));
  if (*snap) decode_snapshot(body);
  snapshot_seq_ = seq;
  rules_ = engine_.rules();
  take_models();  // replay scores profiles with the models loaded at start
  protocol::DecodeLimits replay_limits = engine_.opts_.limits;
  protocol::EventDecoder dec(replay_limits);
  store::RecoveryReport rep;
  sealer_ = std::make_unique<store::Sealer>();
  if (Status ks = journal_->load_keys(
          [&](store::StoredKey&& k) {
            kid_subject_[k.kid] = k.subject;
            std::string subject = k.subject;
            keys_.insert_or_assign(std::move(subject), std::move(k));
          },
          rep);
      !ks)
    throw std::runtime_error(fmt::format("shard {}: customer keys: {}", index_, ks.detail()));
  // kid -> key bytes for opening records: one integer lookup per record
  // instead of kid -> subject -> key (keys_ is not changed during replay).
  std::unordered_map<std::uint64_t, const store::KeyBytes*> kid_key;
  kid_key.reserve(kid_subject_.size());
  for (const auto& [kid, subject] : kid_subject_) kid_key.emplace(kid, &keys_.at(subject).key);
  Status s = journal_->replay(
      seq,
      [&](const store::JournalRecord& r) {
        const auto t = static_cast<std::uint8_t>(r.type);
        if (!(t & store::kSealedBit)) {
          apply_recovered(r, dec);
          return;
        }
        // A sealed record: its key is gone when the customer was erased.
        const std::uint64_t kid = store::Sealer::kid_of(r.payload);
        auto kk = kid_key.find(kid);
        if (kk == kid_key.end()) {
          ++shredded_records_;
          return;
        }
        if (!sealer_->open(*kk->second, t, r.payload, open_buf_)) {
          rep.problems.push_back(fmt::format("record {} fails authentication; skipped", r.seq));
          return;
        }
        store::JournalRecord plain = r;
        plain.type = static_cast<store::RecordType>(t & ~store::kSealedBit);
        plain.payload = open_buf_;
        apply_recovered(plain, dec);
      },
      rep);
  if (!s) throw std::runtime_error(fmt::format("shard {}: {}", index_, s.detail()));
  if (!replay_fatal_.empty())
    throw std::runtime_error(
        fmt::format("shard {}: {}; recovery stopped there", index_, replay_fatal_));
  replay_event_ = protocol::Event{};  // give the recovery scratch's memory back
  if (shredded_records_ > 0) {
    auto line =
        fmt::format("shard {}: {} records of erased customers skipped (their keys are destroyed)",
                    index_, shredded_records_);
    spdlog::info("{}", line);
    recovery_lines_.push_back(line);
  }
  for (const auto& p : rep.problems) {
    spdlog::warn("shard {}: journal damage: {}", index_, p);
    recovery_lines_.push_back(fmt::format("shard {}: {}", index_, p));
  }
  const double ms = static_cast<double>(mono_ns() - t0) / 1e6;
  auto line = fmt::format(
      "shard {}: recovered {} profiles ({} customer keys) from snapshot@{} + {} journal records in "
      "{:.1f} ms",
      index_, profiles_.size(), keys_.size(), seq, journal_->last_seq() - seq, ms);
  spdlog::info("{}", line);
  recovery_lines_.push_back(line);
  last_snapshot_ns_ = mono_ns();
  profile_count_.store(profiles_.size());
  for (const auto& [key, p] : profiles_) index_timers(key, *p);
  publish_popularity(true);
  models::set_active_models(nullptr);  // this recovery thread ends; the worker sets its own
}

void Shard::apply_replayed_event(const std::string& key, const protocol::Event& ev) {
  // A message id already applied is not applied again: a batch whose
  // commit reply was lost (Redis) may be in the log twice with the retry.
  if (!dedupe_.insert(ev.message_id)) return;
  auto& p = get_or_create(key);
  fire_customer_timers(key, p, ev.timestamp, false);
  profile::apply_event(p, ev);
  if (models_) models::update_profile(*models_, p, ev);
  apply_and_link(p, ev);
  max_event_time_ = std::max(max_event_time_, ev.timestamp);
  evaluate_rules(key, p, ev, false);
  record_popularity(ev);
  recent_.add(key, ev);
}

void Shard::apply_recovered(const store::JournalRecord& rec, protocol::EventDecoder& dec) {
  if (!replay_fatal_.empty()) return;  // recover() refuses to start after the replay
  ByteReader r(rec.payload);
  switch (rec.type) {
    case store::RecordType::kEventBinary: {
      const std::string key = r.str();
      // Validated when it was received; this is a bounds-checked copy, not a parse.
      Status d = r.ok() ? protocol::decode_event_binary(rec.payload.substr(r.pos()), replay_event_)
                        : Status(ErrorCode::kBadField, "no profile key");
      if (d.code() == ErrorCode::kInternal) {
        replay_fatal_ = fmt::format("journal record {}: {}", rec.seq, d.detail());
        return;
      }
      if (!d) {
        spdlog::warn("shard {}: journal record {} does not decode ({}); skipped", index_, rec.seq,
                     d.detail());
        recovery_lines_.push_back(
            fmt::format("shard {}: journal record {} does not decode ({}); skipped", index_,
                        rec.seq, d.detail()));
        return;
      }
      apply_replayed_event(key, replay_event_);
      break;
    }
    case store::RecordType::kEvent:
    case store::RecordType::kEventOnChannel: {
      const std::string key = r.str();
      const bool has_channel = rec.type == store::RecordType::kEventOnChannel;
      const auto channel = static_cast<protocol::Channel>(has_channel ? r.u8() : 0);
      std::string raw(rec.payload.substr(r.pos()));
      raw.reserve(raw.size() + protocol::decode_padding());
      protocol::Event ev;
      // Journal records passed validation when received; the receive time makes
      // the event-time guard and default timestamp come out the same again.
      if (!dec.decode(raw, rec.recv_time, ev).is_ok()) {
        spdlog::warn("shard {}: journal record {} no longer decodes; skipped", index_, rec.seq);
        return;
      }
      if (has_channel) ev.channel = channel;  // as applied live (endpoint default included)
      apply_replayed_event(key, ev);
      break;
    }
    case store::RecordType::kLink: {
      const std::string target = r.str();
      const std::string other = r.str();
      const std::string via = r.str();
      add_link(get_or_create(target), other, rec.recv_time, via);
      break;
    }
    case store::RecordType::kTimerFired: {
      const std::string key = r.str();
      const std::string rule = r.str();
      const TimeUs at = r.i64();
      auto* p = find(key);
      if (!p) return;
      remove_timer(*p, p->names->find(rule), at);
      actions_scratch_.clear();
      if (rules_) rules_->fire_timer(rule, at, *p, actions_scratch_);
      break;
    }
    case store::RecordType::kMergePayload: {
      const std::string target = r.str();
      const std::string other = r.str();
      absorb(target, other, r.str_view());
      break;
    }
    case store::RecordType::kRedirect: {
      const std::string from = r.str();
      const std::string to = r.str();
      get_or_create(from).merged_into = to;
      break;
    }
    default:
      // Skipping a record this build does not know would silently lose what it
      // changed: refuse to start instead (recover() throws with this).
      replay_fatal_ = fmt::format(
          "journal record {} has type {}, which this build does not know "
          "(written by a newer build?)",
          rec.seq, static_cast<int>(rec.type));
      break;
  }
}

Status Shard::snapshot_now() {
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  if (!journal_->snapshot_allowed())
    return Status(
        ErrorCode::kUnavailable,
        fmt::format("shard {}: the redis spool is not drained yet; try again once it is", index_));
  const std::uint64_t done = snapshot_done_seq_.load();
  if (done > snapshot_seq_) snapshot_seq_ = done;
  const std::uint64_t seq = journal_->last_seq();
  std::string body = encode_snapshot();
  if (Status s = journal_->write_snapshot(seq, body); !s) return s;
  snapshot_seq_ = seq;
  snapshot_done_seq_.store(seq);
  last_snapshot_ns_ = mono_ns();
  journal_->remove_through(seq);
  engine_.metrics_.snapshots.fetch_add(1, std::memory_order_relaxed);
  return Status::ok();
}

std::string Shard::encode_snapshot() const {
  std::string body;
  ByteWriter w(body);
  w.u64(profiles_.size());
  std::string buf;
  for (const auto& [key, p] : profiles_) {
    buf.clear();
    profile::serialize_profile(*p, buf);
    w.str(buf);
  }
  w.u64(dedupe_.size());
  dedupe_.for_each([&](std::string_view id) { w.str(id); });
  // Best sellers (recommendations), after the part older builds read: a
  // snapshot without it (older build) restores none, as before.
  w.u32(kPopularityTag);
  w.u64(popularity_.size());
  for (const auto& [cat, products] : popularity_) {
    w.str(cat);
    w.u64(products.size());
    for (const auto& [pid, units] : products) {
      w.str(pid);
      w.u32(units);
      auto it = product_names_.find(pid);
      w.str(it == product_names_.end() ? std::string_view() : std::string_view(it->second));
    }
  }
  return body;
}

void Shard::decode_snapshot(const std::string& body) {
  ByteReader r(body);
  const std::uint64_t n = r.u64();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    auto p = std::make_unique<profile::CustomerProfile>();
    p->names = &names_;
    if (!profile::deserialize_profile(r.str_view(), *p))
      throw std::runtime_error(
          fmt::format("shard {}: profile {} in snapshot is malformed", index_, i));
    std::string key = p->user_id;
    profiles_[key] = std::move(p);
  }
  const std::uint64_t d = r.u64();
  for (std::uint64_t i = 0; i < d && r.ok(); ++i) dedupe_.insert(r.str_view());
  if (r.ok() && !r.at_end()) {
    if (r.u32() != kPopularityTag)
      throw std::runtime_error(fmt::format(
          "shard {}: snapshot has a section this build does not know (newer build?)", index_));
    const std::uint64_t nc = r.u64();
    for (std::uint64_t i = 0; i < nc && r.ok(); ++i) {
      auto& products = popularity_[r.str()];
      const std::uint64_t np = r.u64();
      for (std::uint64_t j = 0; j < np && r.ok(); ++j) {
        std::string pid = r.str();
        const std::uint32_t units = r.u32();
        std::string name = r.str();
        if (!name.empty()) product_names_[pid] = std::move(name);
        products[std::move(pid)] = units;
      }
    }
    popularity_dirty_ = true;  // published once recovery is done
  }
  if (!r.ok())
    throw std::runtime_error(fmt::format("shard {}: snapshot body is truncated", index_));
}

void Shard::warn_names_refused() {
  // A full name table drops new catalogue names from profiles (the events still
  // count): say so, at most once a minute, with the number since the last line.
  const std::uint64_t refused = names_.refused();
  if (refused == names_refused_logged_) return;
  const std::int64_t now = mono_ns();
  if (names_refused_logged_ != 0 && now - last_names_log_ns_ < 60'000'000'000) return;
  spdlog::warn(
      "shard {}: name table full ({} names): {} new category/brand/product/store names not "
      "recorded in "
      "profiles since the last report",
      index_, names_.size(), refused - names_refused_logged_);
  names_refused_logged_ = refused;
  last_names_log_ns_ = now;
}

void Shard::maybe_snapshot(bool force) {
  const std::uint64_t done = snapshot_done_seq_.load();
  if (done > snapshot_seq_) {
    journal_->remove_through(done);
    snapshot_seq_ = done;
    engine_.metrics_.snapshots.fetch_add(1, std::memory_order_relaxed);
  }
  if (snapshot_busy_.load()) {
    if (!force) return;
    if (snapshot_thread_.joinable()) snapshot_thread_.join();
  }
  // Never a snapshot naming records the store does not hold yet (spooled),
  // and none of a log that keeps nothing.
  if (!journal_->snapshot_allowed() || !journal_->durable()) return;
  const std::uint64_t seq = journal_->last_seq();
  if (seq <= snapshot_seq_) return;
  if (!force) {
    if (mono_ns() - last_snapshot_ns_ < engine_.opts_.snapshot_interval_us * 1000) return;
    if (seq - snapshot_seq_ < engine_.opts_.snapshot_min_records) return;
  }
  last_snapshot_ns_ = mono_ns();
  // Serialising here, between batches, makes the snapshot exactly the state at
  // `seq`; the slow part (write + fsync) runs on a helper thread.
  std::string body = encode_snapshot();
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  if (force) {
    if (Status s = journal_->write_snapshot(seq, body); !s)
      spdlog::error("shard {}: snapshot failed: {}", index_, s.detail());
    else
      snapshot_seq_ = seq;
    return;
  }
  snapshot_busy_.store(true);
  snapshot_thread_ = std::thread([this, seq, body = std::move(body)] {
    if (Status s = journal_->write_snapshot(seq, body); !s)
      spdlog::error("shard {}: snapshot failed: {}", index_, s.detail());
    else
      snapshot_done_seq_.store(seq);
    snapshot_busy_.store(false);
  });
}

}  // namespace storepulse::engine
