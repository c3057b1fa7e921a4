#include "storepulse/rules/rule_set.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <stdexcept>

#include "storepulse/common/calendar.hpp"
#include "storepulse/rules/rule_book.hpp"

namespace storepulse::rules {

std::string render_template(std::string_view tmpl, const profile::CustomerProfile& p) {
  std::string out;
  out.reserve(tmpl.size() + 16);
  std::size_t i = 0;
  while (i < tmpl.size()) {
    const char c = tmpl[i];
    if (c != '{') {
      out.push_back(c);
      ++i;
      continue;
    }
    const std::size_t close = tmpl.find('}', i);
    if (close == std::string_view::npos) {
      out.append(tmpl.substr(i));
      break;
    }
    std::string_view inner = tmpl.substr(i + 1, close - i - 1);
    std::string_view fallback;
    if (auto bar = inner.find('|'); bar != std::string_view::npos) {
      fallback = inner.substr(bar + 1);
      inner = inner.substr(0, bar);
    }
    std::string value;
    if (inner == "traits.firstName")
      value = p.traits.first_name;
    else if (inner == "traits.lastName")
      value = p.traits.last_name;
    else if (inner == "profile.homeStore")
      value = p.traits.home_store;
    else if (inner == "profile.points")
      value = std::to_string(p.points);
    out.append(value.empty() ? std::string(fallback) : value);
    i = close + 1;
  }
  return out;
}

void BirthdayGreeting::evaluate(const protocol::Event& ev, profile::CustomerProfile& p,
                                std::vector<protocol::Action>& out) {
  if (!opts_.enabled || p.birthday_mmdd == 0 || ev.channel != protocol::Channel::kPos) return;
  if (ev.name != protocol::EventName::kCardSwiped &&
      ev.name != protocol::EventName::kOrderCompleted)
    return;
  const std::int64_t day = ev.timestamp / kUsPerDay;
  int y;
  unsigned m, d;
  civil_from_days(day, y, m, d);
  // On the day itself (29 February: 28 February in common years, calendar.hpp).
  if (days_since_birthday(p.birthday_mmdd, day) != 0 || p.last_birthday_greeting_year == y) return;
  p.last_birthday_greeting_year = y;
  protocol::Action a;
  a.rule = "birthday-greeting";
  a.channel = "pos";
  a.text = render_template(opts_.text, p);
  a.offer_json = opts_.offer_json;
  a.customer = p.user_id;
  out.push_back(std::move(a));
  if (p.contacts.size() >= profile::CustomerProfile::kMaxContacts)
    p.contacts.erase(p.contacts.begin());
  p.contacts.push_back(profile::ContactRecord{p.names->intern_guardrail("birthday-greeting"),
                                              p.names->intern_guardrail("pos"), ev.timestamp});
}

std::shared_ptr<RuleSet> load_rule_set(const std::string& dir, std::vector<std::string>& notes) {
  RuleLoadResult res = load_rules(dir);
  if (!res.errors.empty()) {
    std::string msg;
    for (const auto& e : res.errors) {
      if (!msg.empty()) msg.push_back('\n');
      msg += e.str();
    }
    throw std::runtime_error(msg);
  }
  std::size_t enabled = 0;
  for (const auto& r : res.rules->rules()) {
    enabled += r->enabled;
    notes.push_back(
        fmt::format("{}: rule '{}' loaded{}", r->file, r->name, r->enabled ? "" : " (disabled)"));
  }
  notes.push_back(
      fmt::format("{} rules from {} ({} enabled)", res.rules->rules().size(), dir, enabled));
  return res.rules;
}

}  // namespace storepulse::rules
