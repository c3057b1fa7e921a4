#include "storepulse/rules/compiler.hpp"

#include <catch2/catch.hpp>

#include "support/events.hpp"

using namespace storepulse;
using namespace storepulse::rules;

namespace {

const TimeUs kNow = *parse_iso8601("2026-03-14T12:00:00Z");

profile::CustomerProfile ana() {
  profile::CustomerProfile p;
  p.user_id = "C42";
  p.traits.first_name = "Ana";
  p.traits.phone = "+46700000042";
  p.traits.home_store = "Kungsgatan";
  p.traits.birthday = "1990-03-14";
  p.birthday_mmdd = 314;
  p.sms_consent = true;
  p.orders = 4;
  p.orders_pos = 3;
  p.orders_web = 1;
  p.monetary = 40000;  // 400.00
  p.discount_total = 10000;
  p.points = 400;
  p.first_order = kNow - 100 * kUsPerDay;
  p.last_order = kNow - 10 * kUsPerDay;
  auto n = [&](std::string_view s) { return p.names->intern(s); };
  p.categories.push_back({n("Children's Clothing"), 20000, 150.0, kNow - 10 * kUsPerDay});
  p.categories.push_back({n("Cosmetics"), 5000, 50.0, kNow - 200 * kUsPerDay});
  p.brands.push_back({n("Tiny"), 30000, 300.0, kNow - 10 * kUsPerDay});
  p.brands.push_back({n("Glow"), 10000, 100.0, kNow - 200 * kUsPerDay});
  p.sizes.push_back({n("Children's Clothing"), n("2-3Y"), kNow - 340 * kUsPerDay});
  p.sizes.push_back({n("Kidswear"), n("110"), kNow - 10 * kUsPerDay});
  p.cart.push_back({n("p-1"), n("Rain Jacket"), n("Children's Clothing"), 1, 3500});
  p.cart.push_back({n("p-2"), n("Socks"), n("Children's Clothing"), 2, 500});
  p.cart_updated = kNow - 3 * 3600 * kUsPerSecond;
  p.segment = n("brand-loyal");
  p.clv = 812.5;
  p.p_alive = 0.82;
  return p;
}

protocol::Event swipe() {
  return test::decode_event(
      R"({"type":"track","event":"Card Swiped","messageId":"m1","userId":"C42","timestamp":"2026-03-14T12:00:00Z",)"
      R"("context":{"channel":"pos","storeId":"S1"}})",
      kNow);
}

struct Fixture {
  profile::CustomerProfile p = ana();
  protocol::Event ev = swipe();
  EvalContext ctx() const { return {&ev, &p, kNow}; }
  Value eval(const char* src) const { return compile_expression(src).run(ctx()); }
  bool test(const char* src) const { return compile_condition(src).test(ctx()); }
  double num(const char* src) const {
    const Value v = eval(src);
    INFO(src);
    REQUIRE(v.kind == ValueKind::kNumber);
    return v.number;
  }
  std::string str(const char* src) const {
    const Value v = eval(src);
    INFO(src);
    REQUIRE(v.kind == ValueKind::kString);
    return std::string(v.str);
  }
};

ExpressionError compile_error(const char* src) {
  try {
    compile_condition(src);
  } catch (const ExpressionError& e) {
    return e;
  }
  return {{0, 0}, "no error"};
}

}  // namespace

TEST_CASE("compiler: arithmetic - comparison and logic") {
  Fixture f;
  CHECK(f.num("1 + 2 * 3") == 7);
  CHECK(f.num("(1 + 2) * 3") == 9);
  CHECK(f.num("7 % 4") == 3);
  CHECK(f.num("-2 + 5") == 3);
  CHECK(f.test("1 < 2 and 2 <= 2 and 3 > 2 and 3 >= 3 and 1 != 2 and 2 == 2"));
  CHECK_FALSE(f.test("1 > 2 or false"));
  CHECK(f.test("not false"));
  CHECK(f.test("\"a\" < \"b\""));
  CHECK(f.eval("1 / 0").kind == ValueKind::kNull);
}

TEST_CASE("compiler: profile - traits - cart - consent and event fields") {
  Fixture f;
  CHECK(f.num("profile.orders") == 4);
  CHECK(f.num("profile.monetary") == 400);
  CHECK(f.num("profile.points") == 400);
  CHECK(f.num("profile.recencyDays") == 10);
  CHECK(f.num("profile.discountShare") == Approx(0.2));  // 100 of 500 gross
  CHECK(f.num("profile.avgOrder") == 100);
  CHECK(f.num("profile.purchaseIntervalDays") == Approx(30));  // 90 days over 3 gaps
  CHECK(f.num("profile.topBrandShare") == Approx(0.75));
  CHECK(f.str("profile.topBrand") == "Tiny");
  CHECK(f.str("profile.topCategory") == "Children's Clothing");
  CHECK(f.str("profile.homeStore") == "Kungsgatan");
  CHECK(f.str("traits.firstName") == "Ana");
  CHECK(f.num("cart.value") == 45);
  CHECK(f.num("cart.items") == 3);
  CHECK(f.num("cart.lines") == 2);
  CHECK(f.str("cart.top.name") == "Rain Jacket");
  CHECK(f.str("cart.top.productId") == "p-1");
  CHECK(f.test("consent.sms"));
  CHECK(f.str("segment") == "brand-loyal");
  CHECK(f.num("clv") == 812.5);
  CHECK(f.num("p_alive") == Approx(0.82));
  CHECK(f.str("event.name") == "Card Swiped");
  CHECK(f.str("event.channel") == "pos");
  CHECK(f.str("event.storeId") == "S1");
  CHECK(f.eval("event.total").kind == ValueKind::kNull);  // a swipe carries no total
  CHECK(f.test("event.name in [\"Card Swiped\", \"Order Completed\"]"));
  CHECK(f.test("segment not in [\"price-sensitive\"]"));
}

TEST_CASE("compiler: days_since_birthday() counts from the latest birthday - 29 February too") {
  Fixture f;  // born 14 March
  const auto at = [&](const char* iso, const char* src) {
    return compile_expression(src).run({&f.ev, &f.p, *parse_iso8601(iso)});
  };
  CHECK(at("2026-03-17T18:00:00Z", "days_since_birthday()").number == 3);
  CHECK(at("2026-03-21T23:59:59Z", "days_since_birthday() <= 7").boolean);
  CHECK_FALSE(at("2026-03-22T00:00:00Z", "days_since_birthday() <= 7").boolean);
  // The day before the birthday: 364 days after 14 March 2025.
  CHECK(at("2026-03-13T10:00:00Z", "days_since_birthday()").number == 364);
  CHECK_FALSE(at("2026-03-13T10:00:00Z", "is_birthday_today()").boolean);
  CHECK(at("2026-03-13T10:00:00Z", "days_from_birthday()").number == 1);
  // Born 29 February: 28 February in a common year, the 29th in a leap year.
  f.p.birthday_mmdd = 229;
  CHECK(at("2027-02-28T10:00:00Z", "is_birthday_today()").boolean);
  CHECK(at("2027-03-01T10:00:00Z", "days_since_birthday()").number == 1);
  CHECK(at("2028-02-29T10:00:00Z", "days_since_birthday()").number == 0);
  CHECK(at("2028-02-28T10:00:00Z", "days_since_birthday()").number == 365);
  // No birthday known: null, so every comparison with it is false.
  f.p.birthday_mmdd = 0;
  CHECK(at("2026-03-14T10:00:00Z", "days_since_birthday()").kind == ValueKind::kNull);
  CHECK_FALSE(at("2026-03-14T10:00:00Z", "days_since_birthday() <= 7").boolean);
}

TEST_CASE("compiler: functions") {
  Fixture f;
  CHECK(f.num("days_since(profile.lastOrder)") == Approx(10));
  CHECK(f.test("days_since(profile.lastOrder) < 2w"));
  CHECK(f.test("is_birthday_today()"));
  CHECK(f.num("days_from_birthday()") == 0);
  CHECK(f.num("days_since_birthday()") == 0);
  CHECK(f.test("days_since_birthday() <= 7"));
  // Affinity halves every 90 days since the category's last purchase.
  CHECK(f.num("affinity(\"Cosmetics\")") == Approx(50.0 * std::exp2(-200.0 / 90.0)));
  CHECK(f.num("affinity(\"Garden\")") == 0);
  CHECK(f.test("bought_within(\"Children's Clothing\", 30)"));
  CHECK_FALSE(f.test("bought_within(\"Cosmetics\", 30)"));
  CHECK_FALSE(f.test("bought_within(\"Garden\", 3650)"));
  CHECK(f.eval("top_basket_rule()").kind == ValueKind::kNull);
  CHECK(f.eval("top_basket_rule_key()").kind == ValueKind::kNull);
  CHECK(f.str("size_of(\"Children's Clothing\")") == "2-3Y");
  CHECK(f.str("next_size(\"Children's Clothing\")") == "3-4Y");
  CHECK(f.str("next_size(\"Kidswear\")") == "116");
  CHECK(f.num("size_age_days(\"Children's Clothing\")") == Approx(340));
  CHECK(f.test("contains(cart.top.name, \"Jacket\")"));
  CHECK(f.num("max(2, 5) + min(2, 5) + abs(-1)") == 8);
}

TEST_CASE("compiler: null spreads and makes comparisons false") {
  Fixture f;
  f.p.last_order = 0;
  f.p.orders = 0;
  CHECK(f.eval("days_since(profile.lastOrder)").kind == ValueKind::kNull);
  CHECK_FALSE(f.test("days_since(profile.lastOrder) > 90"));
  CHECK_FALSE(f.test("days_since(profile.lastOrder) <= 90"));
  CHECK(f.test("profile.lastOrder == null"));
  CHECK(f.eval("profile.avgOrder + 1").kind == ValueKind::kNull);
}

TEST_CASE("compiler: and / or short-circuit to true/false values") {
  Fixture f;
  auto p = compile_condition("false and (1 / 0 > 1)");
  CHECK(p.run(f.ctx()).kind == ValueKind::kBool);
  CHECK_FALSE(p.test(f.ctx()));
  CHECK(compile_condition("cart.top.name or false").run(f.ctx()).boolean);
}

TEST_CASE("compiler: unknown names - types and count() are load errors with suggestions") {
  auto e = compile_error("profile.brthday == \"x\"");
  CHECK(e.pos.col == 1);
  CHECK(e.message ==
        "unknown field 'profile.brthday' \xE2\x80\x94 did you mean 'profile.birthday'?");
  CHECK(
      compile_error("traits.frstName == \"Ana\"").message.find("did you mean 'traits.firstName'") !=
      std::string::npos);
  CHECK(compile_error("is_birthdy_today()").message.find("did you mean 'is_birthday_today'") !=
        std::string::npos);
  CHECK(compile_error("event.name == \"Order Complted\"")
            .message.find("did you mean 'Order Completed'") != std::string::npos);
  CHECK(compile_error("event.channel == \"store\"").message.find("never \"store\"") !=
        std::string::npos);
  CHECK(compile_error("count(\"Order Completed\", 30) > 2")
            .message.find("count(event, days) is not available") != std::string::npos);
  CHECK(compile_error("traits.firstName > 3").message.find("cannot compare") != std::string::npos);
  CHECK(compile_error("days_since(3) > 1").message.find("needs a time") != std::string::npos);
  CHECK(compile_error("affinity()").message.find("takes 1 argument") != std::string::npos);
  CHECK(compile_error("profile.orders + 1").message.find("must be true or false") !=
        std::string::npos);
  const auto e2 = compile_error("consent.sms and cart.valeu > 3");
  CHECK(e2.pos.col == 17);
  CHECK(e2.message.find("did you mean 'cart.value'") != std::string::npos);
}

TEST_CASE("compiler: a program is flat postfix code over a bounded stack") {
  auto p = compile_condition("cart.value >= 20 and consent.sms");
  CHECK(p.size() == 6);  // field const ge and_jump field to_bool
  CHECK(p.max_stack() <= 2);
  CHECK(p.disassemble().find("field cart.value") != std::string::npos);
}

TEST_CASE("templates: placeholders - fallbacks and literal braces") {
  Fixture f;
  CHECK(compile_template("Hi {traits.firstName|there}!").render(f.ctx()) == "Hi Ana!");
  f.p.traits.first_name.clear();
  CHECK(compile_template("Hi {traits.firstName|there}!").render(f.ctx()) == "Hi there!");
  CHECK(compile_template("{profile.points} pts, {{literal}}").render(f.ctx()) ==
        "400 pts, {literal}");
  CHECK(compile_template("{cart.value}").render(f.ctx()) == "45");
  CHECK(compile_template("{profile.discountShare}").render(f.ctx()) == "0.20");
  CHECK(compile_template("next {next_size('Children\\'s Clothing')|size}").render(f.ctx()) ==
        "next 3-4Y");
  try {
    compile_template("Hi {traits.frstName|there}");
    FAIL("expected an error");
  } catch (const ExpressionError& e) {
    CHECK(e.pos.col == 5);
    CHECK(e.message.find("did you mean 'traits.firstName'") != std::string::npos);
  }
  CHECK_THROWS_AS(compile_template("Hi {traits.firstName"), ExpressionError);
}
