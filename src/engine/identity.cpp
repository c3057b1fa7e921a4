// Identity links on a shard: an event with both ids, alias, or a shared phone or
// e-mail links a visitor into a member; the visitor's profile is asked for and
// absorbed across shards (docs/architecture.md, "Identity").
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
// Contacts are compared in a canonical form: phone digits (with a leading +),
// lower-case e-mail. Too short to identify anyone -> empty.
std::string contact_key(std::string_view kind, std::string_view v) {
  std::string out(kind);
  out.push_back(':');
  if (kind == "phone") {
    for (char c : v)
      if ((c >= '0' && c <= '9') || (c == '+' && out.size() == 6)) out.push_back(c);
    if (out.size() < 6 + 6) return {};
  } else {
    for (char c : v) out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    if (v.find('@') == std::string_view::npos) return {};
  }
  return out;
}
}  // namespace

void Shard::apply_and_link(profile::CustomerProfile& p, const protocol::Event& ev) {
  // alias (previousId -> userId), or any event that carries both ids, links the
  // visitor's profile to the member's. The visitor's shard is asked for its data.
  std::string_view other;
  std::string_view via;
  if (ev.type == protocol::EventType::kAlias) {
    other = ev.previous_id;
    via = "alias";
  } else if (!ev.user_id.empty() && !ev.anonymous_id.empty() && ev.anonymous_id != ev.user_id) {
    other = ev.anonymous_id;
    via = "identify";
  }
  if (!other.empty()) add_link(p, other, ev.timestamp, via);
}

bool Shard::add_link(profile::CustomerProfile& p, std::string_view other, TimeUs when,
                     std::string_view via) {
  if (p.links.size() >= profile::CustomerProfile::kMaxLinks) return false;
  for (const auto& l : p.links)
    if (l.other_id == other) return false;
  p.links.push_back({std::string(other), when, std::string(via), false});
  return true;
}

void Shard::absorb(const std::string& target, const std::string& other,
                   std::string_view serialized) {
  profile::CustomerProfile o;
  o.names = &names_;
  if (!profile::deserialize_profile(serialized, o)) {
    spdlog::error("shard {}: merge payload for {} from {} is malformed; skipped", index_, target,
                  other);
    return;
  }
  auto& p = get_or_create(target);
  auto it = std::find_if(p.links.begin(), p.links.end(),
                         [&](const auto& l) { return l.other_id == other; });
  if (it != p.links.end() && it->absorbed) return;  // merging twice would double the sums
  // The member's own timers and last order before the merge: a visitor timer
  // armed before an order of the member (the order may have reached this shard
  // while the merge was on its way) is cancelled as if it had been here then.
  const TimeUs member_order = p.last_order;
  std::vector<profile::NameId> member_timers;
  for (const auto& t : p.timers) member_timers.push_back(t.rule);
  profile::merge_profile(p, o);
  if (rules_ && member_order > 0 && member_order >= o.last_seen && !o.timers.empty())
    erase_if(p.timers, [&](const profile::PendingTimer& t) {
      return std::find(member_timers.begin(), member_timers.end(), t.rule) == member_timers.end() &&
             rules_->order_cancels(names_.view(t.rule));
    });
  if (it == p.links.end())
    p.links.push_back({other, o.last_seen, "alias", true});
  else
    it->absorbed = true;
  if (!o.timers.empty()) index_timers(target, p);
}

void Shard::resend_pending_links() {
  // Called once after start (recovery done): ask for any visitor data whose merge
  // was cut short, and after each live link. Merges are idempotent.
  std::vector<std::unique_ptr<Work>> out;
  for (const auto& [key, p] : profiles_) {
    for (const auto& l : p->links) {
      if (l.absorbed) continue;
      auto w = take_work();
      w->kind = Work::Kind::kLinkRequest;
      w->target = key;
      w->other = l.other_id;
      out.push_back(std::move(w));
    }
  }
  for (auto& w : out) {
    const int s = engine_.shard_of(w->other);
    engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(w), false);
  }
  for (const auto& [key, p] : profiles_)
    if (p->merged_into.empty()) send_contact_claims(key, *p);
}

void Shard::request_resend_links() {
  if (!serving()) return;
  auto w = take_work();
  w->kind = Work::Kind::kResendLinks;
  push(std::move(w), false);
}

void Shard::send_link_request(const std::string& target, const std::string& other) {
  auto lw = take_work();
  lw->kind = Work::Kind::kLinkRequest;
  lw->target = target;
  lw->other = other;
  const int s = engine_.shard_of(other);
  engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(lw), false);
}

void Shard::send_contact_claims(const std::string& key, const profile::CustomerProfile& p) {
  for (const auto& ck :
       {contact_key("phone", p.traits.phone), contact_key("email", p.traits.email)}) {
    if (ck.empty()) continue;
    auto w = take_work();
    w->kind = Work::Kind::kContactClaim;
    w->target = key;
    w->other = ck;
    w->payload = p.member ? "m" : "v";
    const int s = engine_.shard_of(ck);
    engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(w), false);
  }
}

void Shard::handle_contact_claim(Work& w) {
  const bool member = w.payload == "m";
  auto it = contact_owners_.find(w.other);
  if (it == contact_owners_.end()) {
    if (contact_owners_.size() < kMaxContactsIndexed)
      contact_owners_.emplace(w.other, ContactOwner{w.target, member});
    return;
  }
  ContactOwner& owner = it->second;
  if (owner.key == w.target) {
    owner.member |= member;
    return;
  }
  if (owner.member == member) return;  // two members (a household) or two visitors: not merged
  const std::string member_key = member ? w.target : owner.key;
  const std::string visitor_key = member ? owner.key : w.target;
  if (member) owner = ContactOwner{w.target, true};
  auto lw = take_work();
  lw->kind = Work::Kind::kLinkCommand;
  lw->target = member_key;
  lw->other = visitor_key;
  lw->payload = w.other.substr(0, w.other.find(':'));  // "phone" | "email"
  const int s = engine_.shard_of(member_key);
  engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(lw), false);
}

}  // namespace storepulse::engine
