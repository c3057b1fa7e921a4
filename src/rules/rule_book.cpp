#include "storepulse/rules/rule_book.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace storepulse::rules {

using profile::ContactRecord;
using profile::CustomerProfile;
using profile::PendingTimer;

std::string_view suppression_name(Suppression s) {
  switch (s) {
    case Suppression::kCooldown: return "cooldown";
    case Suppression::kCap: return "cap";
    case Suppression::kConsent: return "consent";
    case Suppression::kQuietHours: return "quiet_hours";
    case Suppression::kPriority: return "priority";
    case Suppression::kHoldout: return "holdout";
  }
  return "?";
}

std::string_view channel_str(ActionChannel c) {
  switch (c) {
    case ActionChannel::kPos: return "pos";
    case ActionChannel::kWeb: return "web";
    case ActionChannel::kSms: return "sms";
  }
  return "?";
}

std::uint32_t event_bit(const protocol::Event& ev) {
  switch (ev.type) {
    case protocol::EventType::kTrack: return 1u << static_cast<unsigned>(ev.name);
    case protocol::EventType::kIdentify: return 1u << (protocol::kEventNameCount + 0);
    case protocol::EventType::kPage: return 1u << (protocol::kEventNameCount + 1);
    case protocol::EventType::kAlias: return 1u << (protocol::kEventNameCount + 2);
  }
  return 0;
}

namespace {

constexpr char kTimerChannelSep = '#';
// A holdout contact keeps the rule's cooldown running for the control group
// too, so both groups are exposed to the rule at the same rhythm.
constexpr std::string_view kHoldoutChannel = "holdout";

void bump(std::atomic<std::uint64_t>& c) {
  c.fetch_add(1, std::memory_order_relaxed);
}

// Bounded log: when full, drop the oldest record of a rule that has a newer
// one, so each rule's latest contact (its cooldown) survives as long as possible.
void record_contact(CustomerProfile& p, std::string_view rule_text, std::string_view channel_text,
                    TimeUs when) {
  const profile::NameId rule = p.names->intern_guardrail(rule_text);
  const profile::NameId channel = p.names->intern_guardrail(channel_text);
  if (p.contacts.size() >= CustomerProfile::kMaxContacts) {
    std::size_t victim = 0;
    bool found = false;
    for (std::size_t i = 0; i < p.contacts.size() && !found; ++i)
      for (std::size_t j = 0; j < p.contacts.size(); ++j)
        if (j != i && p.contacts[j].rule == p.contacts[i].rule &&
            p.contacts[j].when >= p.contacts[i].when) {
          victim = i;
          found = true;
          break;
        }
    if (!found)
      victim = static_cast<std::size_t>(
          std::min_element(p.contacts.begin(), p.contacts.end(),
                           [](const auto& a, const auto& b) { return a.when < b.when; }) -
          p.contacts.begin());
    p.contacts.erase(p.contacts.begin() + static_cast<std::ptrdiff_t>(victim));
  }
  p.contacts.push_back(ContactRecord{rule, channel, when});
}

bool timer_belongs(std::string_view key, std::string_view rule) {
  return key.size() >= rule.size() && key.substr(0, rule.size()) == rule &&
         (key.size() == rule.size() || key[rule.size()] == kTimerChannelSep);
}

// `wait:` as an expression: days for this customer now, clamped to
// [kMinComputedWait, kMaxComputedWait]; 0 (no timer) when it gives no number.
TimeUs computed_wait(const Rule& r, const EvalContext& ctx) {
  const Value v = r.wait_expr.run(ctx);
  if (v.kind != ValueKind::kNumber || !std::isfinite(v.number)) return 0;
  const double us = v.number * static_cast<double>(kUsPerDay);
  if (us <= static_cast<double>(kMinComputedWait)) return kMinComputedWait;
  if (us >= static_cast<double>(kMaxComputedWait)) return kMaxComputedWait;
  return static_cast<TimeUs>(us);
}

// Arms or re-arms (replaces) a timer; false when the profile has no room.
bool arm_timer(CustomerProfile& p, std::string_view key_text, TimeUs at) {
  const profile::NameId key = p.names->intern_guardrail(key_text);
  if (key == profile::kNoName) return false;  // no room even for rule names: counted as dropped
  for (auto& t : p.timers)
    if (t.rule == key) {
      t.fire_at = at;
      return true;
    }
  if (p.timers.size() >= CustomerProfile::kMaxTimers) return false;
  p.timers.push_back(PendingTimer{key, at});
  return true;
}

std::uint64_t fnv1a(std::string_view a, std::string_view b) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  mix(a);
  mix(std::string_view("\0", 1));
  mix(b);
  // Final avalanche so nearby ids spread over the buckets.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

// Opens (or re-opens) the rule's attribution window for this customer.
void open_exposure(CustomerProfile& p, const Rule& r, TimeUs now, bool holdout) {
  const profile::NameId rule = p.names->intern_guardrail(r.name);
  for (auto& e : p.exposures)
    if (e.rule == rule) {
      e = profile::RuleExposure{e.rule, now, now + r.attribution, holdout, false};
      return;
    }
  if (p.exposures.size() >= CustomerProfile::kMaxExposures) {
    // Full: the window that closes first gives way.
    auto victim = std::min_element(p.exposures.begin(), p.exposures.end(),
                                   [](const auto& a, const auto& b) { return a.until < b.until; });
    p.exposures.erase(victim);
  }
  p.exposures.push_back(profile::RuleExposure{rule, now, now + r.attribution, holdout, false});
}

const protocol::Event& no_event() {
  static const protocol::Event kNone{};
  return kNone;
}

}  // namespace

RuleBook::RuleBook(std::vector<std::unique_ptr<Rule>> rules) : rules_(std::move(rules)) {
  std::stable_sort(rules_.begin(), rules_.end(), [](const auto& a, const auto& b) {
    return a->priority != b->priority ? a->priority > b->priority : a->name < b->name;
  });
  for (const auto& r : rules_) by_name_.emplace(r->name, r.get());
}

const Rule* RuleBook::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

bool RuleBook::in_holdout(const Rule& rule, std::string_view customer) {
  if (rule.holdout_basis_points == 0) return false;
  return fnv1a(rule.name, customer) % 10000 < rule.holdout_basis_points;
}

std::vector<std::string> RuleBook::rule_names() const {
  std::vector<std::string> v;
  for (const auto& r : rules_) v.push_back(r->name);
  return v;
}

void RuleBook::credit_order(const protocol::Event& ev, CustomerProfile& p) const {
  // Windows that closed before this order can no longer earn anything.
  erase_if(p.exposures, [&](const profile::RuleExposure& e) { return e.until < ev.timestamp; });
  for (auto& e : p.exposures) {
    if (ev.timestamp < e.since) continue;  // a late order from before the contact
    const Rule* r = find(p.name(e.rule));
    if (!r) continue;  // rule removed by a reload: its window just runs out
    const std::size_t g = e.holdout ? kGroupHoldout : kGroupTreated;
    if (!e.converted) {
      e.converted = true;
      bump(r->counters.converted[g]);
    }
    r->counters.revenue[g].fetch_add(ev.total, std::memory_order_relaxed);
  }
}

void RuleBook::evaluate(const protocol::Event& ev, CustomerProfile& p,
                        std::vector<protocol::Action>& out) {
  const std::uint32_t bit = event_bit(ev);
  // Outcomes first: an order credits the contacts made before it, never a
  // rule this very order fires (its window opens below).
  if (ev.type == protocol::EventType::kTrack && ev.name == protocol::EventName::kOrderCompleted &&
      !p.exposures.empty())
    credit_order(ev, p);
  // Cancels first: the purchase that settles a cart also stops its nudge,
  // including an SMS already queued behind quiet hours.
  for (const auto& r : rules_) {
    if (!(r->cancel_mask & bit) || p.timers.empty()) continue;
    const auto before = p.timers.size();
    erase_if(p.timers,
             [&](const PendingTimer& t) { return timer_belongs(p.name(t.rule), r->name); });
    if (p.timers.size() != before) bump(r->counters.timers_cancelled);
  }
  const EvalContext ctx{&ev, &p, ev.timestamp};
  unsigned taken = 0;
  for (const auto& rp : rules_) {
    const Rule& r = *rp;
    if (!r.enabled || !(r.on_mask & bit)) continue;
    if (r.wait > 0 || !r.wait_expr.empty()) {
      // The condition describes the customer when the wait is over (cart still
      // full, still no order), so it is checked when the timer fires, not now.
      // A computed wait reads the profile as this event left it (the order
      // that re-arms win-back has updated the purchase interval).
      const TimeUs wait = r.wait > 0 ? r.wait : computed_wait(r, ctx);
      if (wait > 0 && arm_timer(p, r.name, ev.timestamp + wait))
        bump(r.counters.timers_armed);
      else
        bump(r.counters.timers_dropped);
      continue;
    }
    bump(r.counters.evaluated);
    if (!r.condition.empty() && !r.condition.test(ctx)) continue;
    bump(r.counters.matched);
    decide(r, ctx, p, ev.timezone, -1, false, taken, out);
  }
}

bool RuleBook::order_cancels(std::string_view timer_key) const {
  const Rule* r = find(timer_key.substr(0, timer_key.find(kTimerChannelSep)));
  if (!r) return false;
  protocol::Event order;
  order.type = protocol::EventType::kTrack;
  order.name = protocol::EventName::kOrderCompleted;
  return (r->cancel_mask & event_bit(order)) != 0;
}

void RuleBook::fire_timer(const std::string& key, TimeUs fire_at, CustomerProfile& p,
                          std::vector<protocol::Action>& out) {
  const auto sep = key.find(kTimerChannelSep);
  const std::string_view name = std::string_view(key).substr(0, sep);
  const Rule* r = find(name);
  if (!r || !r->enabled) return;  // rule removed or disabled by a reload since the timer was armed
  int only = -1;
  if (sep != std::string::npos) {
    const std::string_view ch = std::string_view(key).substr(sep + 1);
    for (std::size_t c = 0; c < kChannelCount; ++c)
      if (channel_str(static_cast<ActionChannel>(c)) == ch) only = static_cast<int>(c);
    if (only < 0) return;
  }
  const EvalContext ctx{&no_event(), &p, fire_at};
  bump(r->counters.evaluated);
  if (!r->condition.empty() && !r->condition.test(ctx)) return;
  bump(r->counters.matched);
  unsigned taken = 0;
  decide(*r, ctx, p, {}, only, only >= 0, taken, out);
}

void RuleBook::decide(const Rule& r, const EvalContext& ctx, CustomerProfile& p,
                      std::string_view tz, int only_channel, bool deferred, unsigned& taken,
                      std::vector<protocol::Action>& out) const {
  auto& cnt = r.counters;
  const TimeUs now = ctx.now;
  // A delivery deferred by quiet hours was already decided (cooldown, holdout):
  // only the per-channel guardrails apply again.
  if (!deferred) {
    if (r.cooldown > 0) {
      const profile::NameId rule = p.names->find(r.name);  // never contacted yet: not interned
      for (const auto& c : p.contacts)
        if (rule != profile::kNoName && c.rule == rule && now - c.when < r.cooldown &&
            now >= c.when) {
          bump(cnt.suppressed[static_cast<std::size_t>(Suppression::kCooldown)]);
          return;
        }
    }
    if (in_holdout(r, p.user_id)) {
      bump(cnt.held_out);
      bump(cnt.suppressed[static_cast<std::size_t>(Suppression::kHoldout)]);
      record_contact(p, r.name, kHoldoutChannel, now);
      open_exposure(p, r, now, true);
      return;
    }
  }
  bool delivered = false;
  for (const auto& a : r.actions) {
    const auto ch = static_cast<unsigned>(a.channel);
    if (only_channel >= 0 && static_cast<int>(ch) != only_channel) continue;
    auto suppress = [&](Suppression s) { bump(cnt.suppressed[static_cast<std::size_t>(s)]); };
    if (taken & (1u << ch)) {
      suppress(Suppression::kPriority);
      continue;
    }
    const std::string_view chname = channel_str(a.channel);
    if (a.channel == ActionChannel::kSms && (!p.sms_consent || p.traits.phone.empty())) {
      suppress(Suppression::kConsent);
      continue;
    }
    bool capped = false;
    for (const auto& cap : r.caps) {
      if (cap.channel != a.channel) continue;
      std::uint32_t n = 0;
      const profile::NameId channel = p.names->find(chname);
      for (const auto& c : p.contacts)
        if (channel != profile::kNoName && c.channel == channel && now - c.when < cap.window &&
            now >= c.when)
          ++n;
      if (n >= cap.max) capped = true;
    }
    if (capped) {
      suppress(Suppression::kCap);
      continue;
    }
    if (a.channel == ActionChannel::kSms && r.quiet_hours) {
      const TimeZone* zone = tz.empty() ? nullptr : find_time_zone(tz);
      if (!zone) zone = r.zone;
      const TimeUs until = zone ? r.quiet_hours->ends_at(now, *zone) : 0;
      if (until > now) {
        // Queued, not dropped: a timer delivers this channel when the window opens.
        suppress(Suppression::kQuietHours);
        taken |= 1u << ch;
        char key[160];
        const auto res =
            fmt::format_to_n(key, sizeof key, "{}{}{}", r.name, kTimerChannelSep, chname);
        if (arm_timer(p, std::string_view(key, res.size), until))
          bump(cnt.timers_armed);
        else
          bump(cnt.timers_dropped);
        continue;
      }
    }
    protocol::Action act;
    act.rule = r.name;
    act.channel = std::string(chname);
    act.text = a.text.render(ctx);
    if (!a.offer.empty()) {
      for (const auto& part : a.offer) {
        act.offer_json += part.json;
        if (part.value) protocol::append_json_string(act.offer_json, part.value->render(ctx));
      }
    }
    act.customer = p.user_id;
    act.at = now;
    if (a.channel == ActionChannel::kSms) act.phone = p.traits.phone;
    out.push_back(std::move(act));
    record_contact(p, r.name, chname, now);
    taken |= 1u << ch;
    delivered = true;
  }
  if (delivered) {
    bump(cnt.fired);
    open_exposure(p, r, now, false);
  }
}

std::optional<double> RuleOutcome::conversion_lift() const {
  if (!contacts[kGroupHoldout] || !contacts[kGroupTreated] || rate(kGroupHoldout) <= 0)
    return std::nullopt;
  return rate(kGroupTreated) / rate(kGroupHoldout) - 1.0;
}

std::optional<double> RuleOutcome::revenue_lift() const {
  if (!contacts[kGroupHoldout] || !contacts[kGroupTreated] ||
      revenue_per_contact(kGroupHoldout) <= 0)
    return std::nullopt;
  return revenue_per_contact(kGroupTreated) / revenue_per_contact(kGroupHoldout) - 1.0;
}

RuleOutcome rule_outcome(const RuleCounters& c) {
  RuleOutcome o;
  o.contacts[kGroupTreated] = c.fired.load(std::memory_order_relaxed);
  o.contacts[kGroupHoldout] = c.held_out.load(std::memory_order_relaxed);
  for (std::size_t g = 0; g < 2; ++g) {
    o.converted[g] = c.converted[g].load(std::memory_order_relaxed);
    o.revenue[g] = c.revenue[g].load(std::memory_order_relaxed);
  }
  return o;
}

std::string RuleBook::describe_json() const {
  std::string o = "[";
  for (const auto& rp : rules_) {
    const Rule& r = *rp;
    if (o.size() > 1) o.push_back(',');
    o += "{\"rule\":";
    protocol::append_json_string(o, r.name);
    o += ",\"file\":";
    protocol::append_json_string(o, r.file);
    o += ",\"description\":";
    protocol::append_json_string(o, r.description);
    o += ",\"on\":[";
    for (std::size_t i = 0; i < r.on.size(); ++i) {
      if (i) o.push_back(',');
      protocol::append_json_string(o, r.on[i]);
    }
    o += "],\"channels\":[";
    for (std::size_t i = 0; i < r.actions.size(); ++i) {
      if (i) o.push_back(',');
      protocol::append_json_string(o, channel_str(r.actions[i].channel));
    }
    const auto ld = [](const std::atomic<std::uint64_t>& a) {
      return a.load(std::memory_order_relaxed);
    };
    const auto& c = r.counters;
    // A computed wait has no one figure: null, and the expression beside it.
    std::string wait = r.wait_expr.empty() ? std::to_string(r.wait / kUsPerSecond) : "null";
    if (!r.wait_expr.empty()) {
      wait += ",\"waitExpression\":";
      protocol::append_json_string(wait, r.wait_source);
    }
    o += fmt::format(
        "],\"priority\":{},\"enabled\":{},\"waitSeconds\":{},\"holdoutPercent\":{:.2f},"
        "\"counters\":{{"
        "\"evaluated\":{},\"matched\":{},\"fired\":{},\"held_out\":{},\"timers_armed\":{},"
        "\"timers_cancelled\":{},\"timers_dropped\":{},\"suppressed\":{{",
        r.priority, r.enabled ? "true" : "false", wait, r.holdout_basis_points / 100.0,
        ld(c.evaluated), ld(c.matched), ld(c.fired), ld(c.held_out), ld(c.timers_armed),
        ld(c.timers_cancelled), ld(c.timers_dropped));
    for (std::size_t s = 0; s < kSuppressionCount; ++s)
      o += fmt::format("{}\"{}\":{}", s ? "," : "", suppression_name(static_cast<Suppression>(s)),
                       ld(c.suppressed[s]));
    const RuleOutcome out = rule_outcome(c);
    const auto opt = [](std::optional<double> v) {
      return v ? fmt::format("{:.4f}", *v) : std::string("null");
    };
    o += fmt::format(
        "}},\"converted\":{{\"treated\":{},\"holdout\":{}}},\"revenue\":{{\"treated\":{:.2f},"
        "\"holdout\":{:.2f}}},"
        "\"conversionRate\":{{\"treated\":{:.4f},\"holdout\":{:.4f}}},"
        "\"revenuePerContact\":{{\"treated\":{:.2f},\"holdout\":{:.2f}}},"
        "\"lift\":{{\"conversion\":{},\"revenue\":{}}}}},\"attributionDays\":{:.2f}}}",
        out.converted[kGroupTreated], out.converted[kGroupHoldout],
        out.revenue[kGroupTreated] / 100.0, out.revenue[kGroupHoldout] / 100.0,
        out.rate(kGroupTreated), out.rate(kGroupHoldout), out.revenue_per_contact(kGroupTreated),
        out.revenue_per_contact(kGroupHoldout), opt(out.conversion_lift()), opt(out.revenue_lift()),
        static_cast<double>(r.attribution) / static_cast<double>(kUsPerDay));
  }
  // A rejected change: entries without "rule", after the rules that still run,
  // so a client that looks rules up by name reads the same array as before.
  for (const Diagnostic& d : rejected_change()) {
    if (o.size() > 1) o.push_back(',');
    o += "{\"error\":";
    protocol::append_json_string(o, d.str());
    o += ",\"file\":";
    protocol::append_json_string(o, d.file);
    o += fmt::format(",\"line\":{},\"col\":{},\"message\":", d.pos.line, d.pos.col);
    protocol::append_json_string(o, d.message);
    o += "}";
  }
  return o + "]";
}

void RuleBook::set_rejected_change(std::vector<Diagnostic> errors) {
  std::lock_guard lock(rejected_mu_);
  rejected_ = std::move(errors);
}

std::vector<Diagnostic> RuleBook::rejected_change() const {
  std::lock_guard lock(rejected_mu_);
  return rejected_;
}

void RuleBook::append_prometheus(std::string& o) const {
  const auto ld = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  o += fmt::format(
      "# HELP storepulse_rules_rejected_errors Problems in the rules folder's current content "
      "(0: it loaded; otherwise the previous rules keep running).\n"
      "# TYPE storepulse_rules_rejected_errors gauge\nstorepulse_rules_rejected_errors {}\n",
      rejected_change().size());
  const auto family = [&](std::string_view name, std::string_view type, std::string_view help,
                          auto per_rule) {
    o += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    for (const auto& rp : rules_) per_rule(*rp);
  };
  const auto simple = [&](std::string_view name, std::string_view help, auto field) {
    family(name, "counter", help, [&](const Rule& r) {
      o += fmt::format("{}{{rule=\"{}\"}} {}\n", name, r.name, ld(field(r.counters)));
    });
  };
  simple(
      "storepulse_rule_evaluated_total", "Trigger events (or timers) a rule looked at.",
      [](const RuleCounters& c) -> const auto& { return c.evaluated; });
  simple(
      "storepulse_rule_matched_total", "Evaluations whose condition held.",
      [](const RuleCounters& c) -> const auto& { return c.matched; });
  simple(
      "storepulse_rule_fired_total",
      "Decisions that delivered at least one action (treated contacts).",
      [](const RuleCounters& c) -> const auto& { return c.fired; });
  simple(
      "storepulse_rule_held_out_total",
      "Would-have-fired decisions for the holdout group (holdout contacts).",
      [](const RuleCounters& c) -> const auto& { return c.held_out; });
  simple(
      "storepulse_rule_timers_armed_total", "Event-time timers armed or re-armed.",
      [](const RuleCounters& c) -> const auto& { return c.timers_armed; });
  simple(
      "storepulse_rule_timers_cancelled_total", "Timers cancelled by a cancel_on event.",
      [](const RuleCounters& c) -> const auto& { return c.timers_cancelled; });
  family("storepulse_rule_suppressed_total", "counter", "Actions not delivered, by reason.",
         [&](const Rule& r) {
           for (std::size_t s = 0; s < kSuppressionCount; ++s)
             o += fmt::format("storepulse_rule_suppressed_total{{rule=\"{}\",reason=\"{}\"}} {}\n",
                              r.name, suppression_name(static_cast<Suppression>(s)),
                              ld(r.counters.suppressed[s]));
         });
  static constexpr std::string_view kGroups[] = {"treated", "holdout"};
  family("storepulse_rule_converted_total", "counter",
         "Contacts followed by an order within the rule's attribution window, by group.",
         [&](const Rule& r) {
           for (std::size_t g = 0; g < 2; ++g)
             o += fmt::format("storepulse_rule_converted_total{{rule=\"{}\",group=\"{}\"}} {}\n",
                              r.name, kGroups[g], ld(r.counters.converted[g]));
         });
  family("storepulse_rule_revenue_cents_total", "counter",
         "Order totals in cents (hundredths of the shop's currency) within the attribution "
         "window after a contact, by group.",
         [&](const Rule& r) {
           for (std::size_t g = 0; g < 2; ++g)
             o +=
                 fmt::format("storepulse_rule_revenue_cents_total{{rule=\"{}\",group=\"{}\"}} {}\n",
                             r.name, kGroups[g], ld(r.counters.revenue[g]));
         });
  family("storepulse_rule_revenue_total", "counter",
         "Deprecated: storepulse_rule_revenue_cents_total has the unit in its name. Order totals "
         "(currency units) within the attribution window after a contact, by group.",
         [&](const Rule& r) {
           for (std::size_t g = 0; g < 2; ++g)
             o += fmt::format("storepulse_rule_revenue_total{{rule=\"{}\",group=\"{}\"}} {:.2f}\n",
                              r.name, kGroups[g],
                              static_cast<double>(ld(r.counters.revenue[g])) / 100.0);
         });
  family(
      "storepulse_rule_conversion_lift", "gauge",
      "Treated over holdout conversion rate minus 1 (absent while the holdout has no conversions).",
      [&](const Rule& r) {
        if (auto l = rule_outcome(r.counters).conversion_lift())
          o += fmt::format("storepulse_rule_conversion_lift{{rule=\"{}\"}} {:.4f}\n", r.name, *l);
      });
  family(
      "storepulse_rule_revenue_lift", "gauge",
      "Treated over holdout revenue per contact minus 1 (absent while the holdout has no revenue).",
      [&](const Rule& r) {
        if (auto l = rule_outcome(r.counters).revenue_lift())
          o += fmt::format("storepulse_rule_revenue_lift{{rule=\"{}\"}} {:.4f}\n", r.name, *l);
      });
}

}  // namespace storepulse::rules
