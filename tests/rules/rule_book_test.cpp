// Guardrails and arbitration of RuleBook: cooldown, caps, consent, holdout,
// quiet hours, priority, timers.
#include "storepulse/rules/rule_book.hpp"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <tuple>

#include "storepulse/models/live_models.hpp"
#include "support/events.hpp"

using namespace storepulse;
using namespace storepulse::rules;

namespace {

std::shared_ptr<RuleBook> book(std::vector<std::pair<std::string, std::string>> sources) {
  auto res = load_rules_from_sources(sources);
  for (const auto& e : res.errors) FAIL_CHECK(e.str());
  REQUIRE(res.rules);
  return res.rules;
}

TimeUs at(const char* iso) {
  return *parse_iso8601(iso);
}

protocol::Event event(const std::string& name, const std::string& user, const char* iso,
                      const std::string& extra = "") {
  const std::string json = fmt::format(
      R"({{"type":"track","event":"{}","messageId":"m","userId":"{}","timestamp":"{}"{}}})", name,
      user, iso, extra);
  return test::decode_event(json, at(iso));
}

profile::CustomerProfile member(const std::string& id, bool consent = true) {
  profile::CustomerProfile p;
  p.user_id = id;
  p.traits.first_name = "Ana";
  p.traits.phone = "+46700000001";
  p.sms_consent = consent;
  return p;
}

std::uint64_t suppressed(const RuleBook& b, const char* rule, Suppression s) {
  return b.find(rule)->counters.suppressed[static_cast<std::size_t>(s)].load();
}

const std::string kTotal = R"(,"properties":{"total":10})";

const char* kSwipeSms = R"(rule: swipe-sms
on: Card Swiped
then:
  - sms: "Hi {traits.firstName}"
cooldown: 1d
)";

}  // namespace

TEST_CASE("guardrails: cooldown per rule and customer - from the contact log") {
  auto b = book({{"a.yaml", R"(rule: greet
on: Card Swiped
then:
  - pos: "Hello {traits.firstName|there}"
cooldown: 1d
)"}});
  auto p = member("C1");
  std::vector<protocol::Action> out;
  b->evaluate(event("Card Swiped", "C1", "2026-01-10T10:00:00Z"), p, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].rule == "greet");
  CHECK(out[0].channel == "pos");
  CHECK(out[0].text == "Hello Ana");
  CHECK(out[0].customer == "C1");
  CHECK(out[0].phone.empty());
  out.clear();
  b->evaluate(event("Card Swiped", "C1", "2026-01-10T20:00:00Z"), p, out);
  CHECK(out.empty());
  CHECK(suppressed(*b, "greet", Suppression::kCooldown) == 1);
  b->evaluate(event("Card Swiped", "C1", "2026-01-11T10:00:01Z"), p, out);
  CHECK(out.size() == 1);
  // Another customer is not affected by C1's cooldown.
  auto q = member("C2");
  out.clear();
  b->evaluate(event("Card Swiped", "C2", "2026-01-10T20:00:00Z"), q, out);
  CHECK(out.size() == 1);
  const auto& c = b->find("greet")->counters;
  CHECK(c.evaluated == 4);
  CHECK(c.matched == 4);
  CHECK(c.fired == 3);
}

TEST_CASE("guardrails: per-channel caps count contacts from every rule") {
  auto b = book({{"a.yaml", R"(rule: swipe-sms
on: Card Swiped
then:
  - sms: "swipe"
caps:
  sms: 1/day, 2/week
)"},
                 {"b.yaml", R"(rule: order-sms
on: Order Completed
then:
  - sms: "order"
caps:
  sms: 1/day, 2/week
)"}});
  auto p = member("C1");
  std::vector<protocol::Action> out;
  b->evaluate(event("Card Swiped", "C1", "2026-01-10T10:00:00Z"), p, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].phone == "+46700000001");
  b->evaluate(event("Order Completed", "C1", "2026-01-10T11:00:00Z", kTotal), p, out);
  CHECK(out.size() == 1);
  CHECK(suppressed(*b, "order-sms", Suppression::kCap) == 1);
  b->evaluate(event("Order Completed", "C1", "2026-01-11T11:00:00Z", kTotal), p, out);
  CHECK(out.size() == 2);  // a new day
  b->evaluate(event("Card Swiped", "C1", "2026-01-12T12:00:00Z"), p, out);
  CHECK(out.size() == 2);  // 2 a week reached
  CHECK(suppressed(*b, "swipe-sms", Suppression::kCap) == 1);
  b->evaluate(event("Card Swiped", "C1", "2026-01-17T10:00:01Z"), p, out);
  CHECK(out.size() == 3);  // the first SMS left the week window
}

TEST_CASE("guardrails: no SMS without consent or without a phone") {
  auto b = book({{"a.yaml", kSwipeSms}});
  std::vector<protocol::Action> out;
  auto no_consent = member("C1", false);
  b->evaluate(event("Card Swiped", "C1", "2026-01-10T10:00:00Z"), no_consent, out);
  auto no_phone = member("C2");
  no_phone.traits.phone.clear();
  b->evaluate(event("Card Swiped", "C2", "2026-01-10T10:00:00Z"), no_phone, out);
  CHECK(out.empty());
  CHECK(suppressed(*b, "swipe-sms", Suppression::kConsent) == 2);
  CHECK(no_consent.contacts.empty());
  // STOP withdraws consent: the very next event sends nothing.
  auto ok = member("C3");
  b->evaluate(event("Card Swiped", "C3", "2026-01-10T10:00:00Z"), ok, out);
  CHECK(out.size() == 1);
}

TEST_CASE("arbitration: per channel the highest priority wins") {
  auto b =
      book({{"low.yaml",
             "rule: low\non: Card Swiped\nthen:\n  - pos: low\n  - web: low web\npriority: 10\n"},
            {"high.yaml", "rule: high\non: Card Swiped\nthen:\n  - pos: high\npriority: 90\n"}});
  auto p = member("C1");
  std::vector<protocol::Action> out;
  b->evaluate(event("Card Swiped", "C1", "2026-01-10T10:00:00Z"), p, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].rule == "high");
  CHECK(out[0].channel == "pos");
  CHECK(out[1].rule == "low");
  CHECK(out[1].channel == "web");  // web was free
  CHECK(suppressed(*b, "low", Suppression::kPriority) == 1);
  CHECK(b->rule_names() == std::vector<std::string>{"high", "low"});
}

TEST_CASE("holdout: deterministic per customer and rule - about the configured share") {
  const char* src = "rule: h\non: Card Swiped\nthen:\n  - pos: x\nholdout: 30%\n";
  auto b1 = book({{"h.yaml", src}});
  auto b2 = book({{"h.yaml", src}});
  int held = 0;
  for (int i = 0; i < 2000; ++i) {
    const std::string id = fmt::format("C{}", i);
    const bool h1 = RuleBook::in_holdout(*b1->find("h"), id);
    CHECK(h1 == RuleBook::in_holdout(*b2->find("h"), id));
    held += h1;
  }
  // Binomial(2000, 0.3): mean 600, sd ~20.5; 5 sd either side.
  CHECK(held > 600 - 103);
  CHECK(held < 600 + 103);
  // A held-out customer gets nothing, is counted, and the contact log says "would have fired".
  std::string id;
  for (int i = 0; id.empty(); ++i)
    if (RuleBook::in_holdout(*b1->find("h"), fmt::format("C{}", i))) id = fmt::format("C{}", i);
  auto p = member(id);
  std::vector<protocol::Action> out;
  b1->evaluate(event("Card Swiped", id, "2026-01-10T10:00:00Z"), p, out);
  CHECK(out.empty());
  CHECK(b1->find("h")->counters.held_out == 1);
  REQUIRE(p.contacts.size() == 1);
  CHECK(p.name(p.contacts[0].channel) == "holdout");
  CHECK(b1->describe_json().find("\"held_out\":1") != std::string::npos);
}

TEST_CASE("quiet hours: an SMS is queued until the window opens - in the store's zone") {
  auto b = book({{"q.yaml", R"(rule: q
on: Card Swiped
then:
  - sms: "hello"
  - pos: "at the till"
quiet_hours: "21:00-08:00"
timezone: UTC
)"}});
  auto p = member("C1");
  std::vector<protocol::Action> out;
  b->evaluate(event("Card Swiped", "C1", "2026-01-10T22:30:00Z"), p, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].channel == "pos");  // only sms waits
  CHECK(suppressed(*b, "q", Suppression::kQuietHours) == 1);
  REQUIRE(p.timers.size() == 1);
  CHECK(p.name(p.timers[0].rule) == "q#sms");
  CHECK(p.timers[0].fire_at == at("2026-01-11T08:00:00Z"));
  // The engine removes the due timer and calls fire_timer.
  const auto t = p.timers[0];
  p.timers.clear();
  out.clear();
  b->fire_timer(std::string(p.name(t.rule)), t.fire_at, p, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].channel == "sms");
  CHECK(out[0].text == "hello");
  // The event's own zone wins: 19:30Z is 21:30 at +02:00, quiet until 06:00Z.
  auto p2 = member("C2");
  out.clear();
  b->evaluate(
      event("Card Swiped", "C2", "2026-01-10T19:30:00Z", R"(,"context":{"timezone":"+02:00"})"), p2,
      out);
  REQUIRE(p2.timers.size() == 1);
  CHECK(p2.timers[0].fire_at == at("2026-01-11T06:00:00Z"));
  // Daytime: sent at once.
  auto p3 = member("C3");
  out.clear();
  b->evaluate(event("Card Swiped", "C3", "2026-01-10T12:00:00Z"), p3, out);
  CHECK(out.size() == 2);
  CHECK(p3.timers.empty());
}

TEST_CASE("quiet hours: IANA zones follow daylight saving") {
  const auto* z = find_time_zone("Europe/Stockholm");
  REQUIRE(z);
  CHECK(z->offset_at(at("2026-01-10T12:00:00Z")) == 3600);
  CHECK(z->offset_at(at("2026-07-10T12:00:00Z")) == 7200);
  auto qh = parse_quiet_hours("21:00-08:00");
  REQUIRE(qh);
  CHECK(qh->ends_at(at("2026-07-10T19:30:00Z"), *z) == at("2026-07-11T06:00:00Z"));  // 21:30 CEST
  CHECK(qh->ends_at(at("2026-07-10T18:30:00Z"), *z) == 0);                           // 20:30 CEST
  CHECK(qh->ends_at(at("2026-01-10T06:30:00Z"), *z) == at("2026-01-10T07:00:00Z"));  // 07:30 CET
  CHECK_FALSE(find_time_zone("Mars/Olympus"));
  CHECK_FALSE(find_time_zone("../../etc/passwd"));
  CHECK_FALSE(parse_quiet_hours("21-08"));
}

TEST_CASE("timers: wait arms and re-arms - cancel_on removes - firing checks the condition again") {
  auto b = book({{"cart.yaml", R"(rule: cart
on: Product Added
wait: 2h
cancel_on: [Order Completed]
if: cart.value >= 20
then:
  - web: "your {cart.top.name} is waiting"
)"}});
  auto p = member("C1");
  std::vector<protocol::Action> out;
  auto add = event("Product Added", "C1", "2026-01-10T10:00:00Z",
                   R"(,"properties":{"productId":"p1","name":"Boots","price":30,"quantity":1})");
  profile::apply_event(p, add);
  b->evaluate(add, p, out);
  CHECK(out.empty());
  REQUIRE(p.timers.size() == 1);
  CHECK(p.timers[0].fire_at == at("2026-01-10T12:00:00Z"));
  auto add2 = event("Product Added", "C1", "2026-01-10T11:00:00Z",
                    R"(,"properties":{"productId":"p2","name":"Hat","price":5,"quantity":1})");
  profile::apply_event(p, add2);
  b->evaluate(add2, p, out);
  REQUIRE(p.timers.size() == 1);  // re-armed, not doubled
  CHECK(p.timers[0].fire_at == at("2026-01-10T13:00:00Z"));
  p.timers.clear();
  b->fire_timer("cart", at("2026-01-10T13:00:00Z"), p, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].text == "your Boots is waiting");

  // A purchase in any channel cancels.
  auto q = member("C2");
  out.clear();
  auto add3 = event("Product Added", "C2", "2026-01-10T10:00:00Z",
                    R"(,"properties":{"productId":"p1","name":"Boots","price":30,"quantity":1})");
  profile::apply_event(q, add3);
  b->evaluate(add3, q, out);
  REQUIRE(q.timers.size() == 1);
  auto order = event("Order Completed", "C2", "2026-01-10T11:00:00Z",
                     R"(,"context":{"channel":"pos"},"properties":{"total":30})");
  profile::apply_event(q, order);
  b->evaluate(order, q, out);
  CHECK(q.timers.empty());
  CHECK(b->find("cart")->counters.timers_cancelled == 1);
  // A timer whose condition no longer holds fires nothing.
  b->fire_timer("cart", at("2026-01-10T12:00:00Z"), q, out);
  CHECK(out.empty());
}

TEST_CASE("describe_json lists each rule with its counters") {
  auto b = book({{"a.yaml", kSwipeSms}});
  auto p = member("C1");
  std::vector<protocol::Action> out;
  b->evaluate(event("Card Swiped", "C1", "2026-01-10T10:00:00Z"), p, out);
  const std::string j = b->describe_json();
  for (const char* s :
       {R"("rule":"swipe-sms")", R"("on":["Card Swiped"])", R"("priority":0)", R"("enabled":true)",
        R"("evaluated":1)", R"("matched":1)", R"("fired":1)", R"("cooldown":0)", R"("cap":0)",
        R"("consent":0)", R"("quiet_hours":0)", R"("priority":0)", R"("holdout":0)"})
    CHECK(j.find(s) != std::string::npos);
}

TEST_CASE("describe_json: a rejected folder change is listed after the rules that still run") {
  auto b = book({{"rules/a.yaml", kSwipeSms}});
  CHECK_THAT(b->describe_json(), Catch::Contains(R"("rule":"swipe-sms","file":"rules/a.yaml")"));
  CHECK_THAT(b->describe_json(), !Catch::Contains(R"("error")"));
  auto broken = load_rules_from_sources({{"rules/a.yaml", kSwipeSms},
                                         {"rules/b.yaml",
                                          "rule: b\non: Card Swiped\nthen:\n  - "
                                          "pos: x\nif: profile.ordrs > 1\n"}});
  REQUIRE_FALSE(broken.rules);
  REQUIRE(broken.errors.size() == 1);
  b->set_rejected_change(broken.errors);
  const std::string j = b->describe_json();
  // The running rule first and unchanged, then the problem with its position.
  CHECK(j.find(R"({"rule":"swipe-sms")") == 1);
  CHECK_THAT(j, Catch::Contains(R"({"error":"rules/b.yaml:5:5: unknown field 'profile.ordrs')"));
  CHECK_THAT(j, Catch::Contains(R"("file":"rules/b.yaml","line":5,"col":5,"message":)"));
  std::string m;
  b->append_prometheus(m);
  CHECK_THAT(m, Catch::Contains("storepulse_rules_rejected_errors 1\n"));
  b->set_rejected_change({});
  CHECK_THAT(b->describe_json(), !Catch::Contains(R"("error")"));
  m.clear();
  b->append_prometheus(m);
  CHECK_THAT(m, Catch::Contains("storepulse_rules_rejected_errors 0\n"));
}

TEST_CASE("offers: YAML maps become JSON - with templated values") {
  auto b = book({{"o.yaml", R"(rule: o
on: Card Swiped
then:
  - pos: x
    offer:
      code: BDAY
      value: 10
      free: true
      product: "{traits.firstName}"
)"}});
  auto p = member("C1");
  std::vector<protocol::Action> out;
  b->evaluate(event("Card Swiped", "C1", "2026-01-10T10:00:00Z"), p, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].offer_json == R"({"code":"BDAY","value":10,"free":true,"product":"Ana"})");
}

namespace {

// The basket model a shard would hand its rules, for the scope of a test.
struct ActiveBaskets {
  std::shared_ptr<models::ModelSet> set = std::make_shared<models::ModelSet>();
  ActiveBaskets(std::string item_key,
                std::vector<std::tuple<std::string, std::string, double>> rules) {
    models::BasketModel m;
    m.item_key = std::move(item_key);
    for (const auto& [lhs, rhs, confidence] : rules) {
      models::BasketModelRule r;
      r.lhs.push_back(m.intern(lhs));
      r.rhs = m.intern(rhs);
      r.confidence = confidence;
      r.lift = 2;
      m.add_rule(std::move(r));
    }
    m.build_index();
    set->baskets = std::make_shared<const models::BasketModel>(std::move(m));
    models::set_active_models(set.get());
  }
  ~ActiveBaskets() { models::set_active_models(nullptr); }
};

}  // namespace

TEST_CASE(
    "shipped cross-sell: the offer names the consequent of the same basket rule as the text") {
  std::ifstream f(std::string(STOREPULSE_SOURCE_DIR) + "/rules/cross-sell.yaml");
  std::stringstream src;
  src << f.rdbuf();
  auto b = book({{"rules/cross-sell.yaml", src.str()}});
  // A customer outside the rule's 10% holdout, so the action is delivered.
  std::string id = "X0";
  for (int i = 1; RuleBook::in_holdout(*b->find("cross-sell"), id); ++i)
    id = "X" + std::to_string(i);
  const auto swipe =
      event("Card Swiped", id, "2026-01-12T10:00:00Z", R"(,"context":{"channel":"pos"})");
  auto p = member(id);
  const auto n = [&](std::string_view s) { return p.names->intern(s); };
  std::vector<protocol::Action> out;

  SECTION("a product model: the best rule's product, in the text and the offer") {
    // pasta -> parmesan is the better rule (confidence 0.8 over 0.6).
    ActiveBaskets baskets("product", {{"pasta", "tomatoes", 0.6}, {"pasta", "parmesan", 0.8}});
    p.recent_products.push_back(n("pasta"));
    b->evaluate(swipe, p, out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].text == "Suggest parmesan to Ana: 15% off today.");
    CHECK(
        out[0].offer_json ==
        R"({"code":"XSELL15","kind":"percent","value":15,"item":"parmesan","itemKey":"product"})");
  }
  SECTION("a category model: the consequent category, not Cosmetics") {
    ActiveBaskets baskets("category", {{"Women's Clothing", "Frozen", 0.7}});
    p.categories.push_back({n("Women's Clothing"), 6000, 60.0, *parse_iso8601("2026-01-05")});
    b->evaluate(swipe, p, out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].text == "Suggest Frozen to Ana: 15% off today.");
    CHECK(out[0].offer_json ==
          R"({"code":"XSELL15","kind":"percent","value":15,"item":"Frozen","itemKey":"category"})");
  }
  SECTION("no basket rule matches: the womenswear fallback offers Cosmetics, as its text says") {
    ActiveBaskets baskets("product", {{"pasta", "parmesan", 0.8}});  // nothing held matches
    p.categories.push_back({n("Women's Clothing"), 6000, 60.0, *parse_iso8601("2026-01-05")});
    b->evaluate(swipe, p, out);
    REQUIRE(out.size() == 1);
    CHECK(out[0].text == "Suggest our new cosmetics range to Ana: 15% off today.");
    CHECK(
        out[0].offer_json ==
        R"({"code":"XSELL15","kind":"percent","value":15,"item":"Cosmetics","itemKey":"category"})");
  }
}
