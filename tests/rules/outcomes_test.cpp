// Per-rule outcomes: an order within the rule's attribution window after a
// contact counts as a conversion (once per contact) and its total as revenue,
// for the treated and the holdout group; lift compares the two.
#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "storepulse/rules/rule_book.hpp"
#include "support/events.hpp"

using namespace storepulse;
using namespace storepulse::rules;

namespace {

std::shared_ptr<RuleBook> book(const std::string& yaml) {
  auto res = load_rules_from_sources({{"r.yaml", yaml}});
  for (const auto& e : res.errors) FAIL_CHECK(e.str());
  REQUIRE(res.rules);
  return res.rules;
}

TimeUs at(const char* iso) {
  return *parse_iso8601(iso);
}

protocol::Event event(const std::string& name, const std::string& user, const char* iso,
                      int total = 0) {
  const std::string props = total ? fmt::format(R"(,"properties":{{"total":{}}})", total) : "";
  const std::string json = fmt::format(
      R"({{"type":"track","event":"{}","messageId":"m","userId":"{}","timestamp":"{}"{}}})", name,
      user, iso, props);
  return test::decode_event(json, at(iso));
}

profile::CustomerProfile customer(const std::string& id) {
  profile::CustomerProfile p;
  p.user_id = id;
  return p;
}

// Applies and evaluates as the engine does (profile first, then rules).
void play(RuleBook& b, profile::CustomerProfile& p, const protocol::Event& ev) {
  std::vector<protocol::Action> out;
  profile::apply_event(p, ev);
  b.evaluate(ev, p, out);
}

const char* kGreet = R"(rule: greet
on: Card Swiped
then:
  - pos: "Hello"
attribution: 3d
)";

}  // namespace

TEST_CASE("outcomes: orders within the attribution window convert once and add revenue") {
  auto b = book(kGreet);
  const Rule& r = *b->find("greet");
  CHECK(r.attribution == 3 * kUsPerDay);
  auto p = customer("C1");
  // An order before any contact earns the rule nothing.
  play(*b, p, event("Order Completed", "C1", "2026-03-01T09:00:00Z", 99));
  play(*b, p, event("Card Swiped", "C1", "2026-03-01T10:00:00Z"));
  REQUIRE(r.counters.fired == 1);
  play(*b, p, event("Order Completed", "C1", "2026-03-02T10:00:00Z", 50));
  play(*b, p, event("Order Completed", "C1", "2026-03-03T10:00:00Z", 20));
  // Four days after the swipe: outside the 3-day window.
  play(*b, p, event("Order Completed", "C1", "2026-03-05T10:00:00Z", 7));
  CHECK(r.counters.converted[kGroupTreated] == 1);
  CHECK(r.counters.revenue[kGroupTreated] == 7000);  // 50 + 20, in cents
  CHECK(r.counters.converted[kGroupHoldout] == 0);
  CHECK(p.exposures.empty());  // the closed window was dropped by the last order
  // Another customer's orders never count for C1's contact.
  auto q = customer("C2");
  play(*b, q, event("Order Completed", "C2", "2026-03-02T10:00:00Z", 500));
  CHECK(r.counters.revenue[kGroupTreated] == 7000);
}

TEST_CASE("outcomes: the order that fires a rule is not its own conversion") {
  auto b = book(R"(rule: thanks
on: Order Completed
then:
  - pos: "Thanks"
)");
  const Rule& r = *b->find("thanks");
  CHECK(r.attribution == 7 * kUsPerDay);  // the default
  auto p = customer("C1");
  play(*b, p, event("Order Completed", "C1", "2026-03-01T10:00:00Z", 30));
  CHECK(r.counters.fired == 1);
  CHECK(r.counters.converted[kGroupTreated] == 0);
  // The next order converts the first contact; it also fires again and opens a new window.
  play(*b, p, event("Order Completed", "C1", "2026-03-02T10:00:00Z", 40));
  CHECK(r.counters.converted[kGroupTreated] == 1);
  CHECK(r.counters.revenue[kGroupTreated] == 4000);
  REQUIRE(p.exposures.size() == 1);
  CHECK(p.exposures[0].since == at("2026-03-02T10:00:00Z"));
  CHECK_FALSE(p.exposures[0].converted);
}

TEST_CASE("outcomes: holdout contacts convert into the holdout group - lift compares the groups") {
  auto b = book(R"(rule: greet
on: Card Swiped
then:
  - pos: "Hello"
holdout: 50%
)");
  const Rule& r = *b->find("greet");
  // Two customers on each side of the deterministic split.
  std::vector<std::string> treated, held;
  for (int i = 0; (treated.size() < 2 || held.size() < 2) && i < 1000; ++i) {
    const std::string id = fmt::format("C{}", i);
    auto& side = RuleBook::in_holdout(r, id) ? held : treated;
    if (side.size() < 2) side.push_back(id);
  }
  REQUIRE(treated.size() == 2);
  REQUIRE(held.size() == 2);
  std::map<std::string, profile::CustomerProfile> ps;
  for (const auto& id : treated) ps[id] = customer(id);
  for (const auto& id : held) ps[id] = customer(id);
  for (auto& [id, p] : ps) play(*b, p, event("Card Swiped", id.c_str(), "2026-03-01T10:00:00Z"));
  CHECK(r.counters.fired == 2);
  CHECK(r.counters.held_out == 2);
  // Both treated customers buy (10 and 30); one held-out customer buys (10).
  play(*b, ps[treated[0]],
       event("Order Completed", treated[0].c_str(), "2026-03-02T10:00:00Z", 10));
  play(*b, ps[treated[1]],
       event("Order Completed", treated[1].c_str(), "2026-03-02T11:00:00Z", 30));
  play(*b, ps[held[0]], event("Order Completed", held[0].c_str(), "2026-03-02T12:00:00Z", 10));
  const RuleOutcome o = rule_outcome(r.counters);
  CHECK(o.converted[kGroupTreated] == 2);
  CHECK(o.converted[kGroupHoldout] == 1);
  CHECK(o.rate(kGroupTreated) == Approx(1.0));
  CHECK(o.rate(kGroupHoldout) == Approx(0.5));
  // 100 % vs 50 % conversion: +100 %; revenue per contact 20.00 vs 5.00: +300 %.
  REQUIRE(o.conversion_lift());
  CHECK(*o.conversion_lift() == Approx(1.0));
  REQUIRE(o.revenue_lift());
  CHECK(*o.revenue_lift() == Approx(3.0));
}

TEST_CASE("outcomes: no lift without a holdout to compare with") {
  auto b = book(kGreet);
  const Rule& r = *b->find("greet");
  auto p = customer("C1");
  play(*b, p, event("Card Swiped", "C1", "2026-03-01T10:00:00Z"));
  play(*b, p, event("Order Completed", "C1", "2026-03-01T12:00:00Z", 10));
  const RuleOutcome o = rule_outcome(r.counters);
  CHECK(o.rate(kGroupTreated) == Approx(1.0));
  CHECK_FALSE(o.conversion_lift());
  CHECK_FALSE(o.revenue_lift());
  CHECK_THAT(b->describe_json(), Catch::Contains(R"("lift":{"conversion":null,"revenue":null})"));
}

TEST_CASE("outcomes: every per-rule counter is in describe_json and in the Prometheus text") {
  auto b = book(R"(rule: greet
on: Card Swiped
then:
  - pos: "Hello"
cooldown: 1d
attribution: 2d
)");
  auto p = customer("C1");
  play(*b, p, event("Card Swiped", "C1", "2026-03-01T10:00:00Z"));
  play(*b, p, event("Card Swiped", "C1", "2026-03-01T11:00:00Z"));  // cooldown
  play(*b, p, event("Order Completed", "C1", "2026-03-01T12:00:00Z", 25));
  const std::string j = b->describe_json();
  CHECK_THAT(j, Catch::Contains(R"("evaluated":2,"matched":2,"fired":1)"));
  CHECK_THAT(j, Catch::Contains(R"("cooldown":1)"));
  CHECK_THAT(j, Catch::Contains(R"("converted":{"treated":1,"holdout":0})"));
  CHECK_THAT(j, Catch::Contains(R"("revenue":{"treated":25.00,"holdout":0.00})"));
  CHECK_THAT(j, Catch::Contains(R"("conversionRate":{"treated":1.0000,"holdout":0.0000})"));
  CHECK_THAT(j, Catch::Contains(R"("attributionDays":2.00)"));
  std::string m;
  b->append_prometheus(m);
  CHECK_THAT(m, Catch::Contains("# TYPE storepulse_rule_fired_total counter\n"));
  CHECK_THAT(m, Catch::Contains("storepulse_rule_evaluated_total{rule=\"greet\"} 2\n"));
  CHECK_THAT(m, Catch::Contains("storepulse_rule_matched_total{rule=\"greet\"} 2\n"));
  CHECK_THAT(m, Catch::Contains("storepulse_rule_fired_total{rule=\"greet\"} 1\n"));
  CHECK_THAT(m, Catch::Contains("storepulse_rule_held_out_total{rule=\"greet\"} 0\n"));
  CHECK_THAT(m, Catch::Contains(
                    "storepulse_rule_suppressed_total{rule=\"greet\",reason=\"cooldown\"} 1\n"));
  CHECK_THAT(m, Catch::Contains(
                    "storepulse_rule_suppressed_total{rule=\"greet\",reason=\"quiet_hours\"} 0\n"));
  CHECK_THAT(
      m, Catch::Contains("storepulse_rule_converted_total{rule=\"greet\",group=\"treated\"} 1\n"));
  CHECK_THAT(
      m, Catch::Contains("storepulse_rule_converted_total{rule=\"greet\",group=\"holdout\"} 0\n"));
  CHECK_THAT(m, Catch::Contains(
                    "storepulse_rule_revenue_total{rule=\"greet\",group=\"treated\"} 25.00\n"));
  CHECK_THAT(m,
             Catch::Contains(
                 "storepulse_rule_revenue_cents_total{rule=\"greet\",group=\"treated\"} 2500\n"));
  // No holdout: no lift series rather than a made-up number.
  CHECK_THAT(m, !Catch::Contains("storepulse_rule_conversion_lift{"));
}

TEST_CASE("outcomes: a bad attribution duration is a load error with its position") {
  auto res = load_rules_from_sources(
      {{"r.yaml", "rule: x\non: Card Swiped\nthen:\n  - pos: \"a\"\nattribution: soon\n"}});
  REQUIRE(res.errors.size() == 1);
  CHECK(res.errors[0].str() ==
        "r.yaml:5:14: 'attribution': 'soon' is not a duration (e.g. 30m, 2h, 7d, 1w)");
}

TEST_CASE("outcomes: attribution windows survive profile serialization and merge into the member") {
  profile::CustomerProfile p = customer("V1");
  p.exposures.push_back({p.names->intern("greet"), 10, 20, true, false});
  p.exposures.push_back({p.names->intern("nudge"), 11, 30, false, true});
  std::string bytes;
  profile::serialize_profile(p, bytes);
  profile::CustomerProfile back;
  REQUIRE(profile::deserialize_profile(bytes, back));
  REQUIRE(back.exposures.size() == 2);
  CHECK(back.name(back.exposures[0].rule) == "greet");
  CHECK(back.exposures[0].holdout);
  CHECK_FALSE(back.exposures[0].converted);
  CHECK(back.exposures[1].until == 30);
  CHECK(back.exposures[1].converted);
  profile::CustomerProfile m = customer("M1");
  m.exposures.push_back({m.names->intern("greet"), 5, 15, false, false});
  profile::merge_profile(m, p);
  REQUIRE(m.exposures.size() == 2);
  CHECK(m.exposures[0].since == 10);  // the visitor's newer contact of `greet` wins
  CHECK(m.name(m.exposures[1].rule) == "nudge");
}
