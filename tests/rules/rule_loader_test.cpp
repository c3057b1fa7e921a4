// Loading rule files: every error as file:line:col with a suggestion, and the
// shipped rules/ folder loads clean.
#include <algorithm>
#include <catch2/catch.hpp>

#include "storepulse/rules/rule_book.hpp"

using namespace storepulse;
using namespace storepulse::rules;

namespace {

std::vector<std::string> errors_of(const std::string& text,
                                   const std::string& file = "rules/x.yaml") {
  auto res = load_rules_from_sources({{file, text}});
  std::vector<std::string> v;
  for (const auto& e : res.errors) v.push_back(e.str());
  if (!v.empty()) CHECK_FALSE(res.rules);
  return v;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::any_of(v.begin(), v.end(),
                     [&](const auto& x) { return x.find(s) != std::string::npos; });
}

}  // namespace

TEST_CASE("load errors: misspelt field in a condition - at its line and column") {
  auto e = errors_of(
      "rule: birthday\non: Card Swiped\nthen:\n  - pos: hi\nif: profile.brthday == \"x\"\n");
  REQUIRE(e.size() == 1);
  CHECK(e[0] ==
        "rules/x.yaml:5:5: unknown field 'profile.brthday' \xE2\x80\x94 did you mean "
        "'profile.birthday'?");
  // Quoted and block scalars map to the right column / line too.
  e = errors_of(
      "rule: b\non: Card Swiped\nthen:\n  - pos: hi\nif: \"consent.sms and cart.valeu > 1\"\n");
  REQUIRE(e.size() == 1);
  CHECK(has(e, "rules/x.yaml:5:22: unknown field 'cart.valeu'"));
  e = errors_of(
      "rule: b\non: Card Swiped\nthen:\n  - pos: hi\nif: >-\n  consent.sms and\n  cart.valeu > "
      "1\n");
  REQUIRE(e.size() == 1);
  CHECK(has(e, "rules/x.yaml:7:3: unknown field 'cart.valeu'"));
}

TEST_CASE("load errors: unknown keys - events - channels and templates suggest the right name") {
  auto e = errors_of("rule: b\non: Card Swipd\npriorty: 3\nthen:\n  - pso: hi\n");
  CHECK(has(
      e, "rules/x.yaml:2:5: unknown event 'Card Swipd' \xE2\x80\x94 did you mean 'Card Swiped'?"));
  CHECK(has(e, "rules/x.yaml:3:1: unknown field 'priorty' \xE2\x80\x94 did you mean 'priority'?"));
  CHECK(has(e, "rules/x.yaml:5:5: unknown action field 'pso' \xE2\x80\x94 did you mean 'pos'?"));
  e = errors_of("rule: b\non: Card Swiped\nthen:\n  - pos: \"Hi {traits.frstName|there}\"\n");
  REQUIRE(e.size() == 1);
  CHECK(e[0] ==
        "rules/x.yaml:4:15: unknown field 'traits.frstName' \xE2\x80\x94 did you mean "
        "'traits.firstName'?");
  e = errors_of("rule: b\non: Card Swiped\nthen:\n  - pos: hi\ncaps:\n  smss: 1/day\n");
  CHECK(has(e, "rules/x.yaml:6:3: unknown channel 'smss' \xE2\x80\x94 did you mean 'sms'?"));
}

TEST_CASE("load errors: values - missing fields - count() - YAML syntax - duplicates") {
  auto e = errors_of(
      "rule: b\non: Card Swiped\nthen:\n  - sms: hi\nwait: soon\ncooldown: 7x\nholdout: 120%\n"
      "quiet_hours: late\ncaps:\n  sms: lots\nenabled: maybe\npriority: high\ntimezone: "
      "Mars/Base\n");
  CHECK(has(e, "rules/x.yaml:5:7: 'wait': 'soon' is not a duration"));
  CHECK(has(e, "rules/x.yaml:6:11: 'cooldown': '7x' is not a duration"));
  CHECK(has(e, "rules/x.yaml:7:10: 'holdout' is a share"));
  CHECK(has(e, "rules/x.yaml:8:14: 'quiet_hours' reads like 21:00-08:00"));
  CHECK(has(e, "rules/x.yaml:10:8: cap 'lots' should read like 1/day"));
  CHECK(has(e, "rules/x.yaml:11:10: 'enabled' is true or false"));
  CHECK(has(e, "rules/x.yaml:12:11: 'priority' is a whole number"));
  CHECK(has(e, "rules/x.yaml:13:11: unknown time zone 'Mars/Base'"));
  e = errors_of("description: nothing else\n");
  CHECK(has(e, "missing 'rule'"));
  CHECK(has(e, "missing 'on'"));
  CHECK(has(e, "missing 'then'"));
  e = errors_of(
      "rule: b\non: Card Swiped\nthen:\n  - pos: hi\nif: count(\"Order Completed\", 30) > 2\n");
  CHECK(has(e, "rules/x.yaml:5:5: count(event, days) is not available"));
  e = errors_of("rule: b\non: [Card Swiped\n");
  REQUIRE(e.size() == 1);
  CHECK(e[0].rfind("rules/x.yaml:", 0) == 0);
  e = errors_of("rule: b\non: Card Swiped\ncancel_on: Order Completed\nthen:\n  - pos: hi\n");
  CHECK(has(e, "'cancel_on' cancels a 'wait' timer"));
  auto dup =
      load_rules_from_sources({{"a.yaml", "rule: same\non: Card Swiped\nthen:\n  - pos: a\n"},
                               {"b.yaml", "rule: same\non: Card Swiped\nthen:\n  - pos: b\n"}});
  REQUIRE(dup.errors.size() == 1);
  CHECK(dup.errors[0].str() == "b.yaml:1:1: rule 'same' is already defined in a.yaml");
}

TEST_CASE("load_rule_set throws every error joined by newlines - a good folder loads") {
  std::vector<std::string> notes;
  CHECK_THROWS_WITH(load_rule_set("/nonexistent/rules", notes),
                    Catch::Contains("no such rules folder"));
}

TEST_CASE("the shipped rules/ folder loads with no errors") {
  const std::string dir = std::string(STOREPULSE_SOURCE_DIR) + "/rules";
  auto res = load_rules(dir);
  for (const auto& e : res.errors) FAIL_CHECK(e.str());
  REQUIRE(res.rules);
  auto names = res.rules->rule_names();
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"abandoned-cart", "birthday-banner", "birthday-greeting",
                                          "brand-loyal-new-arrivals", "cross-sell",
                                          "points-milestone", "price-sensitive-discount", "size-up",
                                          "viewed-online-then-store", "win-back"});
  std::vector<std::string> notes;
  auto rs = load_rule_set(dir, notes);
  CHECK(rs);
  CHECK(notes.size() == 11);
  const auto* cart = res.rules->find("abandoned-cart");
  REQUIRE(cart);
  CHECK(cart->wait == 2 * 3600 * kUsPerSecond);
  CHECK(cart->holdout_basis_points == 1000);
  CHECK(cart->caps.size() == 2);
  CHECK(cart->quiet_hours);
}

TEST_CASE("wait: a duration or an expression of days, checked at load, computed per customer") {
  auto ok = load_rules_from_sources(
      {{"rules/w.yaml",
        "rule: w\non: Order Completed\nwait: max(14d, 4 * profile.purchaseIntervalDays)\n"
        "then:\n  - sms: hi\n"}});
  for (const auto& e : ok.errors) FAIL_CHECK(e.str());
  REQUIRE(ok.rules);
  const Rule* r = ok.rules->find("w");
  REQUIRE(r);
  CHECK(r->wait == 0);
  CHECK_FALSE(r->wait_expr.empty());
  CHECK(r->wait_source == "max(14d, 4 * profile.purchaseIntervalDays)");
  CHECK(
      has({ok.rules->describe_json()},
          R"x("waitSeconds":null,"waitExpression":"max(14d, 4 * profile.purchaseIntervalDays)")x"));

  // Not a number of days, or not an expression at all: file:line:col, nothing loaded.
  auto e = errors_of("rule: b\non: Card Swiped\nthen:\n  - sms: hi\nwait: traits.firstName\n");
  CHECK(
      has(e, "rules/x.yaml:5:7: 'wait': 'traits.firstName' is not a number of days (it is text)"));
  e = errors_of(
      "rule: b\non: Card Swiped\nthen:\n  - sms: hi\nwait: 4 * profile.purchaseIntervalDay\n");
  CHECK(has(e, "rules/x.yaml:5:11: 'wait': '4 * profile.purchaseIntervalDay' is not a duration"));
  CHECK(has(e, "did you mean 'profile.purchaseIntervalDays'?"));
}
