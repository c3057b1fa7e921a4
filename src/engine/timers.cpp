// Rule evaluation on a shard and its event-time timers: armed by rules, indexed
// per shard, fired when the watermark passes them (live) or during replay.
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

void Shard::take_models() {
  models_ = engine_.models();
  models::set_active_models(models_.get());
}

void Shard::evaluate_rules(const std::string& key, profile::CustomerProfile& p,
                           const protocol::Event& ev, bool live) {
  actions_scratch_.clear();
  reply_actions_.clear();
  if (!rules_) return;
  // Only timers this event armed or re-armed go on the heap: the unchanged
  // ones have their entry there already (pushing every timer again on each
  // change left one stale 48-byte entry per timer and event until it was due).
  std::array<profile::PendingTimer, profile::CustomerProfile::kMaxTimers> before;
  const std::size_t n_before = std::min(p.timers.size(), before.size());
  std::copy_n(p.timers.begin(), n_before, before.begin());
  rules_->evaluate(ev, p, actions_scratch_);
  for (const auto& t : p.timers)
    if (std::none_of(before.begin(), before.begin() + static_cast<std::ptrdiff_t>(n_before),
                     [&](const auto& b) { return b.rule == t.rule && b.fire_at == t.fire_at; }))
      timers_.push(TimerEntry{t.fire_at, key, t.rule});
  if (!live) return;
  for (auto& a : actions_scratch_) {
    if (engine_.observer_) engine_.observer_(a);
    // The caller waiting on this event sees till and web actions in its reply;
    // SMS goes to the outbox.
    if (a.channel == "sms") {
      if (engine_.sink_) engine_.sink_(a);
    } else {
      reply_actions_.push_back(std::move(a));
    }
  }
}

void Shard::index_timers(const std::string& key, const profile::CustomerProfile& p) {
  for (const auto& t : p.timers) timers_.push(TimerEntry{t.fire_at, key, t.rule});
}

void Shard::remove_timer(profile::CustomerProfile& p, profile::NameId rule, TimeUs at) {
  auto it = std::find_if(p.timers.begin(), p.timers.end(),
                         [&](const auto& t) { return t.rule == rule && t.fire_at == at; });
  if (it != p.timers.end()) p.timers.erase(it);
}

bool Shard::fire_due_timers() {
  if (timers_.empty() || !rules_ || lease_lost()) return false;
  // Event time drives waiting; the wall clock only moves the watermark on when
  // no events arrive, so a replay of the same events fires the same timers.
  const TimeUs watermark =
      std::max(max_event_time_,
               engine_.opts_.watermark_clock ? engine_.opts_.watermark_clock() : wall_clock_us());
  struct Due {
    std::string key;
    profile::NameId rule;
    TimeUs at;
  };
  std::vector<Due> due;
  while (!timers_.empty() && timers_.top().at <= watermark && due.size() < 4096) {
    TimerEntry e = timers_.top();
    timers_.pop();
    auto* p = find(e.key);
    if (!p || std::none_of(p->timers.begin(), p->timers.end(),
                           [&](const auto& t) { return t.rule == e.rule && t.fire_at == e.at; }))
      continue;  // stale: re-armed or cancelled since
    // A visitor merged into a member: its timers went to the member with the
    // merge payload (and stay here only so a resent payload still carries
    // them); the member's copy fires, and a cancel_on by the member stops it.
    if (!p->merged_into.empty()) continue;
    if (std::any_of(due.begin(), due.end(), [&](const Due& d) {
          return d.key == e.key && d.rule == e.rule && d.at == e.at;
        }))
      continue;
    std::string payload;
    ByteWriter w(payload);
    w.str(e.key);
    w.str(names_.view(e.rule));
    w.i64(e.at);
    append_record(store::RecordType::kTimerFired, watermark, e.key, payload);
    due.push_back({std::move(e.key), e.rule, e.at});
  }
  if (due.empty()) return false;
  if (Status s = journal_->commit(); !s) {
    if (s.code() == ErrorCode::kWrongNode) lose_lease(s.detail());
    spdlog::error("shard {}: cannot journal fired timers, retrying: {}", index_, s.detail());
    for (auto& d : due) timers_.push(TimerEntry{d.at, std::move(d.key), d.rule});
    return false;
  }
  for (const auto& d : due) {
    auto* p = find(d.key);
    remove_timer(*p, d.rule, d.at);
    actions_scratch_.clear();
    rules_->fire_timer(std::string(names_.view(d.rule)), d.at, *p, actions_scratch_);
    index_timers(d.key, *p);  // a rule may re-arm (e.g. held until quiet hours end)
    for (const auto& a : actions_scratch_) {
      engine_.metrics_.actions.fetch_add(1, std::memory_order_relaxed);
      if (engine_.observer_) engine_.observer_(a);
      if (engine_.sink_) engine_.sink_(a);
    }
  }
  return true;
}

void Shard::fire_customer_timers(const std::string& key, profile::CustomerProfile& p, TimeUs t,
                                 bool live) {
  if (!rules_ || p.timers.empty()) return;
  bool fired = false;
  // Bounded: a rule may re-arm (quiet hours), never more often than it has timers.
  for (std::size_t round = 0; round < 4 * profile::CustomerProfile::kMaxTimers; ++round) {
    const profile::PendingTimer* next = nullptr;
    for (const auto& tm : p.timers)
      if (tm.fire_at <= t && (!next || tm.fire_at < next->fire_at)) next = &tm;
    if (!next) break;
    const profile::NameId rule = next->rule;
    const TimeUs at = next->fire_at;
    remove_timer(p, rule, at);
    actions_scratch_.clear();
    rules_->fire_timer(std::string(p.name(rule)), at, p, actions_scratch_);
    fired = true;
    if (!live) continue;
    for (const auto& a : actions_scratch_) {
      engine_.metrics_.actions.fetch_add(1, std::memory_order_relaxed);
      if (engine_.observer_) engine_.observer_(a);
      if (engine_.sink_) engine_.sink_(a);
    }
  }
  if (fired) index_timers(key, p);
}

}  // namespace storepulse::engine
