#include "storepulse/rules/rule_set.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <stdexcept>

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
    if (inner == "traits.firstName") value = p.traits.first_name;
    else if (inner == "traits.lastName") value = p.traits.last_name;
    else if (inner == "profile.homeStore") value = p.traits.home_store;
    else if (inner == "profile.points") value = std::to_string(p.points);
    out.append(value.empty() ? std::string(fallback) : value);
    i = close + 1;
  }
  return out;
}

void BirthdayGreeting::evaluate(const protocol::Event& ev, profile::CustomerProfile& p,
                                std::vector<protocol::Action>& out) {
  if (!opts_.enabled || p.birthday_mmdd == 0 || ev.channel != protocol::Channel::kPos) return;
  if (ev.name != protocol::EventName::kCardSwiped && ev.name != protocol::EventName::kOrderCompleted)
    return;
  int y;
  unsigned m, d;
  civil_from_days(ev.timestamp / kUsPerDay, y, m, d);
  const int mmdd = static_cast<int>(m * 100 + d);
  // Members born on 29 February are greeted on 28 February in common years.
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  const bool today = p.birthday_mmdd == mmdd || (!leap && p.birthday_mmdd == 229 && mmdd == 228);
  if (!today || p.last_birthday_greeting_year == y) return;
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
  p.contacts.push_back(profile::ContactRecord{"birthday-greeting", "pos", ev.timestamp});
}

namespace {
std::string yaml_where(const std::string& file, const YAML::Mark& m) {
  return fmt::format("{}:{}:{}", file, m.line + 1, m.column + 1);
}

std::string to_json(const YAML::Node& n) {
  std::string out;
  if (n.IsMap()) {
    out = "{";
    bool first = true;
    for (const auto& kv : n) {
      if (!first) out.push_back(',');
      first = false;
      protocol::append_json_string(out, kv.first.as<std::string>());
      out.push_back(':');
      out += to_json(kv.second);
    }
    return out + "}";
  }
  if (n.IsSequence()) {
    out = "[";
    for (std::size_t i = 0; i < n.size(); ++i) {
      if (i) out.push_back(',');
      out += to_json(n[i]);
    }
    return out + "]";
  }
  const std::string s = n.as<std::string>();
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  if (!s.empty() && end && *end == '\0') return s;
  if (s == "true" || s == "false") return s;
  protocol::append_json_string(out, s);
  return out;
}
}  // namespace

std::shared_ptr<RuleSet> load_rule_set(const std::string& dir, std::vector<std::string>& notes) {
  namespace fs = std::filesystem;
  BirthdayGreetingOptions opts;
  opts.enabled = false;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(fmt::format("{}: no such rules folder", dir));
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string path = e.path().string();
    if (e.path().extension() != ".yaml" && e.path().extension() != ".yml") continue;
    YAML::Node doc;
    try {
      doc = YAML::LoadFile(path);
    } catch (const YAML::Exception& ex) {
      throw std::runtime_error(fmt::format("{}:{}:{}: {}", path, ex.mark.line + 1,
                                           ex.mark.column + 1, ex.msg));
    }
    if (!doc["rule"]) throw std::runtime_error(fmt::format("{}:1:1: missing 'rule'", path));
    const std::string name = doc["rule"].as<std::string>();
    if (name != "birthday-greeting") {
      notes.push_back(fmt::format("{}: rule '{}' needs the rule language (not loaded)", path, name));
      continue;
    }
    opts.enabled = !doc["enabled"] || doc["enabled"].as<bool>();
    if (const auto then = doc["then"]) {
      if (!then.IsSequence())
        throw std::runtime_error(yaml_where(path, then.Mark()) + ": 'then' must be a list of actions");
      for (const auto& act : then) {
        if (act["pos"]) opts.text = act["pos"].as<std::string>();
        if (act["offer"]) opts.offer_json = to_json(act["offer"]);
      }
    }
    notes.push_back(fmt::format("{}: rule '{}' loaded", path, name));
  }
  return std::make_shared<BirthdayGreeting>(opts);
}

}  // namespace storepulse::rules
