// Erasure (crypto-shredding): per-customer keys seal log records; erasing a
// customer drops their profiles on every shard, then destroys their keys.
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

// ---- erasure (crypto-shredding) ------------------------------------------------

const store::StoredKey& Shard::key_for(std::string_view subject) {
  auto it = keys_.find(subject);
  if (it != keys_.end()) return it->second;
  store::StoredKey k = store::Sealer::new_key(subject);
  while (kid_subject_.count(k.kid)) k = store::Sealer::new_key(subject);
  journal_->stage_key(k);
  kid_subject_.emplace(k.kid, k.subject);
  return keys_.emplace(k.subject, std::move(k)).first->second;
}

void Shard::append_record(store::RecordType type, TimeUs recv, std::string_view subject,
                          std::string_view payload) {
  if (!engine_.opts_.seal_records) {
    journal_->append(type, recv, payload);
    return;
  }
  const auto t = static_cast<std::uint8_t>(static_cast<std::uint8_t>(type) | store::kSealedBit);
  seal_buf_.clear();
  sealer_->seal(key_for(subject), t, payload, seal_buf_);
  journal_->append(static_cast<store::RecordType>(t), recv, seal_buf_);
}

void Engine::erase_profile(std::string id, ErasureCallback done) {
  auto w = take_work();
  w->kind = Work::Kind::kErase;
  w->target = std::move(id);
  w->erase_done = std::move(done);
  const int s = shard_of(w->target);
  shards_[static_cast<std::size_t>(s)]->push(std::move(w), false);
}

void Shard::handle_erase(Work& w) {
  auto* p = find(w.target);
  if (p && !p->merged_into.empty()) {
    // A visitor id merged into a member: erasing it erases the member.
    engine_.erase_profile(p->merged_into, std::move(w.erase_done));
    return;
  }
  auto state = std::make_shared<PurgeState>();
  state->engine = &engine_;
  ErasureResult& r = state->result;
  r.subjects.push_back(w.target);
  if (p) {
    for (const auto& l : p->links) r.subjects.push_back(l.other_id);
    if (!p->traits.phone.empty()) r.phones.push_back(p->traits.phone);
    if (!p->traits.email.empty()) r.emails.push_back(p->traits.email);
  }
  {
    // A retry after a failed erasure covers the same ids (the profile, with
    // its links, left memory the first time).
    // Bounded: erasures fail only while the store is down, and an operator
    // retrying thousands of them then is told in the log that a retry of the
    // newest may miss linked ids.
    constexpr std::size_t kMaxPendingErasures = 100'000;
    std::lock_guard lock(engine_.erase_mu_);
    auto it = engine_.pending_erasures_.find(w.target);
    if (it == engine_.pending_erasures_.end() &&
        engine_.pending_erasures_.size() < kMaxPendingErasures)
      it = engine_.pending_erasures_.emplace(w.target, Engine::PendingErasure{}).first;
    else if (it == engine_.pending_erasures_.end())
      spdlog::warn(
          "erasure: {} erasures already wait for a retry; this one's linked ids are not remembered",
          kMaxPendingErasures);
    if (it != engine_.pending_erasures_.end()) {
      auto& pending = it->second;
      for (auto* list : {&r.subjects, &r.phones, &r.emails}) {
        auto& keep = list == &r.subjects ? pending.subjects
                     : list == &r.phones ? pending.phones
                                         : pending.emails;
        for (const auto& x : keep)
          if (std::find(list->begin(), list->end(), x) == list->end()) list->push_back(x);
        keep = *list;
      }
    }
  }
  state->done = std::move(w.erase_done);
  state->remaining = engine_.shard_count();
  for (int s = 0; s < engine_.shard_count(); ++s) {
    auto pw = take_work();
    pw->kind = Work::Kind::kPurge;
    pw->purge = state;
    engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(pw), false);
  }
}

void Shard::handle_purge(Work& w) {
  PurgeState& st = *w.purge;
  std::vector<std::string> subjects;
  {
    std::lock_guard lock(st.mu);
    subjects = st.result.subjects;
  }
  auto is_subject = [&](std::string_view k) {
    return std::find(subjects.begin(), subjects.end(), k) != subjects.end();
  };
  std::uint64_t removed = 0;
  std::vector<std::uint64_t> kids;
  for (const auto& sub : subjects) {
    removed += profiles_.erase(sub);
    if (auto it = keys_.find(sub); it != keys_.end()) kids.push_back(it->second.kid);
  }
  recent_.forget(subjects);
  for (auto it = contact_owners_.begin(); it != contact_owners_.end();)
    it = is_subject(it->second.key) ? contact_owners_.erase(it) : std::next(it);
  profile_count_.store(profiles_.size(), std::memory_order_relaxed);
  // A new snapshot without them first (the previous one holds them in the
  // clear), then the keys: a crash in between leaves the keys, not the data.
  Status s = Status::ok();
  if (removed > 0 || !kids.empty()) s = snapshot_now();
  if (s) s = journal_->erase_keys(kids);
  if (s) {
    for (const auto& sub : subjects)
      if (auto it = keys_.find(sub); it != keys_.end()) {
        kid_subject_.erase(it->second.kid);
        sealer_->forget(it->second.kid);  // its expanded key too
        keys_.erase(it);
      }
  } else {
    // The keys stay known, so a retry of the DELETE writes the snapshot and
    // destroys them again (the profiles are already gone from memory).
    spdlog::error("shard {}: erasure incomplete: {}", index_, s.detail());
  }
  finish_purge(st, removed, kids.size(), s, index_, true);
}

void Shard::finish_purge(PurgeState& st, std::uint64_t removed, std::uint64_t keys, const Status& s,
                         int shard, bool served) {
  ErasureCallback done;
  ErasureResult result;
  {
    std::lock_guard lock(st.mu);
    st.result.profiles += removed;
    st.result.keys += keys;
    if (!served) st.result.shards_not_served.push_back(shard);
    if (!s && st.result.status == 200) {
      st.result.status = 503;
      st.result.error = fmt::format("shard {}: {}", shard, s.detail());
    }
    if (--st.remaining > 0) return;
    done = std::move(st.done);
    result = std::move(st.result);
  }
  if (result.status == 200 && result.profiles == 0 && result.keys == 0) {
    result.status = 404;
    result.error = "no profile for " + result.subjects.front();
  }
  if (result.status != 503 && st.engine) {
    std::lock_guard lock(st.engine->erase_mu_);
    st.engine->pending_erasures_.erase(result.subjects.front());
  }
  if (done) done(std::move(result));
}

}  // namespace storepulse::engine
