// Loads rule files: YAML -> Rule, with every problem reported as
// `file:line:col: message` and suggestions for misspelt names. Load path only.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "storepulse/rules/parser.hpp"
#include "storepulse/rules/rule_book.hpp"

namespace storepulse::rules {

namespace {

constexpr std::string_view kRuleKeys[] = {"rule",      "description", "on",          "wait",
                                          "cancel_on", "if",          "then",        "priority",
                                          "cooldown",  "caps",        "quiet_hours", "timezone",
                                          "holdout",   "attribution", "enabled"};
constexpr std::string_view kActionKeys[] = {"pos", "web", "sms", "offer"};
constexpr std::string_view kChannelNames[] = {"pos", "web", "sms"};

struct FileError {
  SourcePos pos;
  std::string message;
};

class RuleFileReader {
 public:
  RuleFileReader(std::string file, std::string text)
      : file_(std::move(file)), text_(std::move(text)) {
    std::istringstream in(text_);
    for (std::string l; std::getline(in, l);) lines_.push_back(l);
  }

  std::unique_ptr<Rule> read(std::vector<Diagnostic>& errors) {
    YAML::Node doc;
    try {
      doc = YAML::Load(text_);
    } catch (const YAML::Exception& ex) {
      errors.push_back({file_, {ex.mark.line + 1, ex.mark.column + 1}, ex.msg});
      return nullptr;
    }
    if (!doc.IsMap()) {
      errors.push_back(
          {file_, {1, 1}, "a rule file is a map of fields (rule:, on:, if:, then: …)"});
      return nullptr;
    }
    auto rule = std::make_unique<Rule>();
    rule->file = file_;
    std::set<std::string> seen;
    for (const auto& kv : doc) {
      std::string key;
      try {
        key = kv.first.as<std::string>();
        read_field(*rule, key, kv.first, kv.second);
      } catch (const FileError& e) {
        errors.push_back({file_, e.pos, e.message});
      } catch (const YAML::Exception& ex) {
        errors.push_back({file_, where(kv.second), fmt::format("'{}': {}", key, ex.msg)});
      }
      seen.insert(key);
    }
    for (const char* req : {"rule", "on", "then"})
      if (!seen.count(req)) errors.push_back({file_, {1, 1}, fmt::format("missing '{}'", req)});
    if (seen.count("cancel_on") && !seen.count("wait"))
      errors.push_back({file_, where(doc["cancel_on"]),
                        "'cancel_on' cancels a 'wait' timer, but this rule has no 'wait'"});
    return rule;
  }

 private:
  SourcePos where(const YAML::Node& n) const {
    const auto m = n.Mark();
    if (m.line < 0) return {1, 1};
    return {m.line + 1, m.column + 1};
  }
  [[noreturn]] void fail(const YAML::Node& n, std::string msg) const {
    throw FileError{where(n), std::move(msg)};
  }

  // Maps a position inside a scalar's value to the file: quoted scalars start
  // one column later, block scalars (| >) on the next line at its indentation.
  SourcePos map_pos(const YAML::Node& n, SourcePos rel) const {
    SourcePos at = where(n);
    const std::size_t li = static_cast<std::size_t>(at.line - 1);
    const char first =
        li < lines_.size() && static_cast<std::size_t>(at.col - 1) < lines_[li].size()
            ? lines_[li][at.col - 1]
            : ' ';
    if (first == '"' || first == '\'') {
      at.col += 1;
    } else if (first == '|' || first == '>') {
      // Block scalar: every source line break is one character of the value
      // ('\n' for |, ' ' for >), so walk the value offset over the content lines.
      const std::string value = n.as<std::string>();
      std::size_t off = 0;
      for (int l = 1, c = 1; off < value.size() && (l < rel.line || (l == rel.line && c < rel.col));
           ++off) {
        if (value[off] == '\n')
          ++l, c = 1;
        else
          ++c;
      }
      std::size_t l = li + 1;
      while (l < lines_.size()) {
        const std::size_t indent = lines_[l].find_first_not_of(' ');
        const std::size_t len = indent == std::string::npos ? 0 : lines_[l].size() - indent;
        if (indent != std::string::npos && off <= len)
          return {static_cast<int>(l + 1), static_cast<int>(indent + off + 1)};
        if (indent != std::string::npos) off -= len + 1;
        ++l;
      }
      return {static_cast<int>(li + 2), 1};
    }
    if (rel.line == 1) return {at.line, at.col + rel.col - 1};
    return {at.line + rel.line - 1, rel.col};
  }

  std::string scalar(const YAML::Node& n, std::string_view field) const {
    if (!n.IsScalar()) fail(n, fmt::format("'{}' must be a single value", field));
    return n.as<std::string>();
  }

  TimeUs duration(const YAML::Node& n, std::string_view field) const {
    const std::string s = scalar(n, field);
    auto d = parse_duration(s);
    if (!d || *d <= 0)
      fail(n, fmt::format("'{}': '{}' is not a duration (e.g. 30m, 2h, 7d, 1w)", field, s));
    return *d;
  }

  std::uint32_t event_mask(const YAML::Node& n, std::string_view field,
                           std::vector<std::string>* names) const {
    std::vector<YAML::Node> items;
    if (n.IsSequence()) {
      for (const auto& i : n) items.push_back(i);
    } else if (n.IsScalar()) {
      items.push_back(n);
    } else {
      fail(n, fmt::format("'{}' is an event name or a list of them", field));
    }
    if (items.empty()) fail(n, fmt::format("'{}' names no event", field));
    std::uint32_t mask = 0;
    const auto known = known_event_names();
    for (const auto& i : items) {
      const std::string name = scalar(i, field);
      protocol::Event probe;
      if (auto en = protocol::event_name_from(name)) {
        probe.type = protocol::EventType::kTrack;
        probe.name = *en;
      } else if (name == "identify") {
        probe.type = protocol::EventType::kIdentify;
      } else if (name == "page") {
        probe.type = protocol::EventType::kPage;
      } else if (name == "alias") {
        probe.type = protocol::EventType::kAlias;
      } else {
        fail(i, fmt::format("unknown event '{}'{}", name, did_you_mean(name, known)));
      }
      mask |= event_bit(probe);
      if (names) names->push_back(name);
    }
    return mask;
  }

  Template template_at(const YAML::Node& n, std::string_view field) const {
    const std::string s = scalar(n, field);
    try {
      return compile_template(s);
    } catch (const ExpressionError& e) {
      throw FileError{map_pos(n, e.pos), e.message};
    }
  }

  static bool json_number(std::string_view s) {
    std::size_t i = 0;
    if (i < s.size() && s[i] == '-') ++i;
    const std::size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == start || (s[start] == '0' && i - start > 1)) return false;
    if (i < s.size() && s[i] == '.') {
      const std::size_t f = ++i;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
      if (i == f) return false;
    }
    return i == s.size();
  }

  void offer_json(const YAML::Node& n, std::vector<ActionSpec::OfferPart>& parts,
                  std::string& lit) const {
    if (n.IsMap()) {
      lit += "{";
      bool first = true;
      for (const auto& kv : n) {
        if (!first) lit += ",";
        first = false;
        protocol::append_json_string(lit, kv.first.as<std::string>());
        lit += ":";
        offer_json(kv.second, parts, lit);
      }
      lit += "}";
    } else if (n.IsSequence()) {
      lit += "[";
      for (std::size_t i = 0; i < n.size(); ++i) {
        if (i) lit += ",";
        offer_json(n[i], parts, lit);
      }
      lit += "]";
    } else if (n.IsScalar()) {
      const std::string s = n.as<std::string>();
      const bool plain = n.Tag() == "?";
      if (plain && (json_number(s) || s == "true" || s == "false")) {
        lit += s;
      } else if (s.find('{') != std::string::npos) {
        parts.push_back({std::move(lit), template_at(n, "offer")});
        lit.clear();
      } else {
        protocol::append_json_string(lit, s);
      }
    } else {
      lit += "null";
    }
  }

  ActionSpec action(const YAML::Node& item) const {
    if (!item.IsMap()) fail(item, "each action is a map such as '- pos: \"text\"'");
    ActionSpec a;
    int channels = 0;
    for (const auto& kv : item) {
      const std::string key = kv.first.as<std::string>();
      if (key == "offer") {
        if (!kv.second.IsMap()) fail(kv.second, "'offer' is a map (code:, kind:, …)");
        std::string lit;
        offer_json(kv.second, a.offer, lit);
        a.offer.push_back({std::move(lit), std::nullopt});
        continue;
      }
      const auto* ch = std::find(std::begin(kChannelNames), std::end(kChannelNames), key);
      if (ch == std::end(kChannelNames))
        fail(kv.first,
             fmt::format("unknown action field '{}'{}", key,
                         did_you_mean(key, {std::begin(kActionKeys), std::end(kActionKeys)})));
      if (++channels > 1)
        fail(kv.first, "one channel per action: start another '- ' item for each channel");
      a.channel = static_cast<ActionChannel>(ch - std::begin(kChannelNames));
      a.text = template_at(kv.second, key);
    }
    if (channels == 0) fail(item, "the action names no channel (pos, web or sms)");
    return a;
  }

  ChannelCap parse_cap(const YAML::Node& at, ActionChannel ch, std::string_view s) const {
    // `1/day`, `3/week`, `2/12h`
    const auto slash = s.find('/');
    ChannelCap c;
    c.channel = ch;
    auto trim = [](std::string_view x) {
      while (!x.empty() && x.front() == ' ') x.remove_prefix(1);
      while (!x.empty() && x.back() == ' ') x.remove_suffix(1);
      return x;
    };
    const std::string_view num =
        slash == std::string_view::npos ? std::string_view() : trim(s.substr(0, slash));
    const std::string_view per =
        slash == std::string_view::npos ? std::string_view() : trim(s.substr(slash + 1));
    std::uint32_t n = 0;
    bool digits = !num.empty() && num.size() < 7;
    for (char d : num) {
      if (!std::isdigit(static_cast<unsigned char>(d)))
        digits = false;
      else
        n = n * 10 + static_cast<std::uint32_t>(d - '0');
    }
    if (per == "hour")
      c.window = 3600 * kUsPerSecond;
    else if (per == "day")
      c.window = kUsPerDay;
    else if (per == "week")
      c.window = 7 * kUsPerDay;
    else if (per == "month")
      c.window = 30 * kUsPerDay;
    else if (auto d = parse_duration(per))
      c.window = *d;
    if (!digits || n == 0 || c.window <= 0)
      fail(at, fmt::format("cap '{}' should read like 1/day, 3/week or 2/12h", s));
    c.max = n;
    return c;
  }

  void read_field(Rule& r, const std::string& key, const YAML::Node& keynode, const YAML::Node& v) {
    if (key == "rule") {
      r.name = scalar(v, key);
      const bool ok = !r.name.empty() && std::all_of(r.name.begin(), r.name.end(), [](char c) {
        return std::islower(static_cast<unsigned char>(c)) ||
               std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_';
      });
      if (!ok) fail(v, fmt::format("rule name '{}' may use only a-z, 0-9, '-' and '_'", r.name));
    } else if (key == "description") {
      r.description = scalar(v, key);
    } else if (key == "on") {
      r.on_mask = event_mask(v, key, &r.on);
    } else if (key == "cancel_on") {
      r.cancel_mask = event_mask(v, key, nullptr);
    } else if (key == "wait") {
      // A duration (2h, 90d), or an expression giving days for each customer
      // (`max(14d, 4 * profile.purchaseIntervalDays)`; durations in it are days).
      const std::string src = scalar(v, key);
      if (auto d = parse_duration(src); d && *d > 0) {
        r.wait = *d;
      } else {
        try {
          r.wait_expr = compile_expression(src);
        } catch (const ExpressionError& e) {
          throw FileError{map_pos(v, e.pos),
                          fmt::format("'wait': '{}' is not a duration (30m, 2h, 7d, 1w) nor an "
                                      "expression giving days: {}",
                                      src, e.message)};
        }
        const StaticType t = r.wait_expr.type();
        if (t != StaticType::kNumber && t != StaticType::kAny)
          fail(v, fmt::format("'wait': '{}' is not a number of days ({})", src,
                              t == StaticType::kBool   ? "it is true or false"
                              : t == StaticType::kTime ? "it is a point in time"
                                                       : "it is text"));
        r.wait_source = src;
      }
    } else if (key == "cooldown") {
      r.cooldown = duration(v, key);
    } else if (key == "attribution") {
      r.attribution = duration(v, key);
    } else if (key == "if") {
      const std::string src = scalar(v, key);
      try {
        r.condition = compile_condition(src);
      } catch (const ExpressionError& e) {
        throw FileError{map_pos(v, e.pos), e.message};
      }
    } else if (key == "then") {
      if (!v.IsSequence() || v.size() == 0)
        fail(v, "'then' is a list of actions ('- pos: \"text\"')");
      for (const auto& item : v) r.actions.push_back(action(item));
    } else if (key == "priority") {
      const std::string s = scalar(v, key);
      try {
        std::size_t used = 0;
        r.priority = std::stoi(s, &used);
        if (used != s.size()) throw std::invalid_argument(s);
      } catch (const std::exception&) {
        fail(v, fmt::format("'priority' is a whole number (higher wins), not '{}'", s));
      }
    } else if (key == "caps") {
      if (!v.IsMap()) fail(v, "'caps' maps a channel to limits, e.g. 'sms: 1/day, 3/week'");
      for (const auto& kv : v) {
        const std::string ch = kv.first.as<std::string>();
        const auto* it = std::find(std::begin(kChannelNames), std::end(kChannelNames), ch);
        if (it == std::end(kChannelNames))
          fail(kv.first,
               fmt::format("unknown channel '{}'{}", ch,
                           did_you_mean(ch, {std::begin(kChannelNames), std::end(kChannelNames)})));
        const auto channel = static_cast<ActionChannel>(it - std::begin(kChannelNames));
        std::vector<std::string> limits;
        if (kv.second.IsSequence()) {
          for (const auto& l : kv.second) limits.push_back(scalar(l, "caps"));
        } else {
          std::stringstream ss(scalar(kv.second, "caps"));
          for (std::string l; std::getline(ss, l, ',');) limits.push_back(l);
        }
        for (const auto& l : limits) r.caps.push_back(parse_cap(kv.second, channel, l));
      }
    } else if (key == "quiet_hours") {
      const std::string s = scalar(v, key);
      r.quiet_hours = parse_quiet_hours(s);
      if (!r.quiet_hours) fail(v, fmt::format("'quiet_hours' reads like 21:00-08:00, not '{}'", s));
    } else if (key == "timezone") {
      r.timezone = scalar(v, key);
      if (!find_time_zone(r.timezone))
        fail(v, fmt::format(
                    "unknown time zone '{}' (an IANA name such as Europe/Stockholm, or +01:00)",
                    r.timezone));
    } else if (key == "holdout") {
      std::string s = scalar(v, key);
      if (!s.empty() && s.back() == '%') s.pop_back();
      double pct = -1;
      try {
        std::size_t used = 0;
        pct = std::stod(s, &used);
        if (used != s.size()) pct = -1;
      } catch (const std::exception&) {
        pct = -1;
      }
      if (pct < 0 || pct > 100)
        fail(v, "'holdout' is a share of customers from 0% to 100%, e.g. 10%");
      r.holdout_basis_points = static_cast<std::uint32_t>(pct * 100 + 0.5);
    } else if (key == "enabled") {
      const std::string s = scalar(v, key);
      if (s == "true" || s == "yes" || s == "on")
        r.enabled = true;
      else if (s == "false" || s == "no" || s == "off")
        r.enabled = false;
      else
        fail(v, fmt::format("'enabled' is true or false, not '{}'", s));
    } else {
      fail(keynode, fmt::format("unknown field '{}'{}", key,
                                did_you_mean(key, {std::begin(kRuleKeys), std::end(kRuleKeys)})));
    }
  }

  std::string file_;
  std::string text_;
  std::vector<std::string> lines_;
};

}  // namespace

RuleLoadResult load_rules_from_sources(
    const std::vector<std::pair<std::string, std::string>>& sources) {
  RuleLoadResult res;
  std::vector<std::unique_ptr<Rule>> rules;
  std::map<std::string, std::string> names;  // rule -> file
  for (const auto& [file, text] : sources) {
    res.files.push_back(file);
    const std::size_t before = res.errors.size();
    auto rule = RuleFileReader(file, text).read(res.errors);
    if (!rule || res.errors.size() != before) continue;
    if (rule->zone == nullptr) rule->zone = find_time_zone(rule->timezone);
    if (auto [it, fresh] = names.emplace(rule->name, file); !fresh) {
      res.errors.push_back(
          {file,
           {1, 1},
           fmt::format("rule '{}' is already defined in {}", rule->name, it->second)});
      continue;
    }
    bool has_sms = false;
    for (const auto& a : rule->actions) has_sms |= a.channel == ActionChannel::kSms;
    if (rule->quiet_hours && !has_sms)
      res.errors.push_back(
          {file, {1, 1}, "'quiet_hours' applies to sms actions, and this rule sends none"});
    rules.push_back(std::move(rule));
  }
  if (res.errors.empty()) res.rules = std::make_shared<RuleBook>(std::move(rules));
  return res;
}

RuleLoadResult load_rules(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    RuleLoadResult res;
    res.errors.push_back({dir, {1, 1}, "no such rules folder"});
    return res;
  }
  std::vector<fs::path> paths;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && (e.path().extension() == ".yaml" || e.path().extension() == ".yml"))
      paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  std::vector<std::pair<std::string, std::string>> sources;
  for (const auto& p : paths) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    sources.emplace_back(p.string(), ss.str());
  }
  return load_rules_from_sources(sources);
}

}  // namespace storepulse::rules
