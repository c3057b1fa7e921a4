// Data-driven rule cases: each tests/rules/cases/*.yaml plays events through
// the shipped rules/ folder (or rules given inline) and lists the actions it
// expects after each step. Timers fire as the event-time watermark passes them,
// as the engine does: before an event later than their due time, or at `advance`.
//
//   case: what it shows
//   rules: inline rule files (optional; default: the shipped rules/ folder)
//   steps:
//     - event: {...wire JSON...}     # timestamp required
//       expect: [{rule: r, channel: pos, text: "part of the text", offer: "part of the offer"}]
//     - advance: "2026-01-10T12:00:00Z"
//       expect: []
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>

#include "storepulse/rules/rule_book.hpp"
#include "support/events.hpp"

using namespace storepulse;
using namespace storepulse::rules;

namespace {

std::string to_json(const YAML::Node& n) {
  std::string out;
  if (n.IsMap()) {
    out = "{";
    for (const auto& kv : n) {
      if (out.size() > 1) out += ",";
      protocol::append_json_string(out, kv.first.as<std::string>());
      out += ":" + to_json(kv.second);
    }
    return out + "}";
  }
  if (n.IsSequence()) {
    out = "[";
    for (std::size_t i = 0; i < n.size(); ++i) out += (i ? "," : "") + to_json(n[i]);
    return out + "]";
  }
  const std::string s = n.as<std::string>();
  if (n.Tag() == "?") {
    char* end = nullptr;
    std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == '\0') return s;
    if (s == "true" || s == "false" || s == "null") return s;
  }
  protocol::append_json_string(out, s);
  return out;
}

struct Runner {
  std::shared_ptr<RuleBook> book;
  std::map<std::string, profile::CustomerProfile> profiles;

  // Fires every timer due at or before `watermark`, earliest first.
  void advance(TimeUs watermark, std::vector<protocol::Action>& out) {
    while (true) {
      profile::CustomerProfile* who = nullptr;
      std::size_t idx = 0;
      for (auto& [id, p] : profiles)
        for (std::size_t i = 0; i < p.timers.size(); ++i)
          if (p.timers[i].fire_at <= watermark &&
              (!who || p.timers[i].fire_at < who->timers[idx].fire_at)) {
            who = &p;
            idx = i;
          }
      if (!who) return;
      const auto t = who->timers[idx];
      who->timers.erase(who->timers.begin() + static_cast<std::ptrdiff_t>(idx));
      book->fire_timer(std::string(who->name(t.rule)), t.fire_at, *who, out);
    }
  }

  void event(const protocol::Event& ev, std::vector<protocol::Action>& out) {
    advance(ev.timestamp - 1, out);
    auto& p = profiles[std::string(ev.customer_key())];
    if (p.user_id.empty()) p.user_id = std::string(ev.customer_key());
    profile::apply_event(p, ev);
    book->evaluate(ev, p, out);
  }
};

std::string describe(const std::vector<protocol::Action>& v) {
  std::string s;
  for (const auto& a : v)
    s += fmt::format("  [{} {}] {} {}\n", a.rule, a.channel, a.text, a.offer_json);
  return s.empty() ? "  (no actions)\n" : s;
}

void run_case(const std::filesystem::path& file) {
  const YAML::Node doc = YAML::LoadFile(file.string());
  INFO(file.filename().string() << ": " << doc["case"].as<std::string>(""));
  Runner r;
  if (doc["rules"]) {
    std::vector<std::pair<std::string, std::string>> src;
    for (const auto& kv : doc["rules"])
      src.emplace_back(kv.first.as<std::string>(), kv.second.as<std::string>());
    auto res = load_rules_from_sources(src);
    for (const auto& e : res.errors) FAIL_CHECK(e.str());
    r.book = res.rules;
  } else {
    auto res = load_rules(std::string(STOREPULSE_SOURCE_DIR) + "/rules");
    for (const auto& e : res.errors) FAIL_CHECK(e.str());
    r.book = res.rules;
  }
  REQUIRE(r.book);
  int step_no = 0;
  for (const auto& step : doc["steps"]) {
    ++step_no;
    std::vector<protocol::Action> out;
    if (step["event"]) {
      const std::string json = to_json(step["event"]);
      const TimeUs t = *parse_iso8601(step["event"]["timestamp"].as<std::string>());
      r.event(test::decode_event(json, t), out);
    } else if (step["advance"]) {
      r.advance(*parse_iso8601(step["advance"].as<std::string>()), out);
    }
    if (!step["expect"]) continue;
    const auto expect = step["expect"];
    INFO("step " << step_no << " produced:\n" << describe(out));
    REQUIRE(out.size() == expect.size());
    for (std::size_t i = 0; i < expect.size(); ++i) {
      const auto e = expect[i];
      CHECK(out[i].rule == e["rule"].as<std::string>());
      if (e["channel"]) CHECK(out[i].channel == e["channel"].as<std::string>());
      if (e["text"]) CHECK_THAT(out[i].text, Catch::Contains(e["text"].as<std::string>()));
      if (e["offer"]) CHECK_THAT(out[i].offer_json, Catch::Contains(e["offer"].as<std::string>()));
      if (e["phone"]) CHECK(out[i].phone == e["phone"].as<std::string>());
    }
  }
}

}  // namespace

TEST_CASE("rule cases: tests/rules/cases/*.yaml") {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (const auto& e :
       fs::directory_iterator(std::string(STOREPULSE_SOURCE_DIR) + "/tests/rules/cases"))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 9);
  for (const auto& f : files) {
    SECTION(f.filename().string()) {
      run_case(f);
    }
  }
}
