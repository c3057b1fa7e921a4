#include "storepulse/analytics/basket_rules.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <map>

#include "storepulse/analytics/importers.hpp"

using namespace storepulse::analytics;

namespace {
const BasketSet& groceries() {
  static BasketSet s = [] {
    auto raw =
        read_basket_file(std::string(STOREPULSE_SHARED_DIR) + "/data/groceries/groceries.csv");
    REQUIRE(raw.is_ok());
    return make_basket_set(*raw);
  }();
  return s;
}

std::map<std::size_t, std::size_t> length_histogram(const BasketRuleResult& r) {
  std::map<std::size_t, std::size_t> h;
  for (const auto& x : r.rules) ++h[x.lhs.size() + 1];
  return h;
}
}  // namespace

TEST_CASE("hand-computed rules on five baskets") {
  // a b c / a b / a c / b / a b c : supp(ab)=3/5, conf(a=>b)=3/4, lift=(3/4)/(4/5)
  auto data = make_basket_set({{"a", "b", "c"}, {"a", "b"}, {"a", "c"}, {"b"}, {"a", "b", "c"}});
  BasketRuleOptions o;
  o.min_support = 0.4;
  o.min_confidence = 0.7;
  o.min_len = 2;
  auto r = mine_basket_rules(data, o);
  CHECK(r.min_count == 2);
  bool found = false;
  for (const auto& x : r.rules) {
    if (format_rule_lhs(data, x) == "{a}" && data.items[x.rhs] == "b") {
      found = true;
      CHECK(x.count == 3);
      CHECK(x.support == Approx(0.6));
      CHECK(x.confidence == Approx(0.75));
      CHECK(x.lift == Approx(0.75 / 0.8));
    }
  }
  CHECK(found);
  // c => a (conf 3/3), {b,c} => a (2/2), {a,c}=>b? 2/3 no. c=>b 2/3 no, a=>c 3/4 yes, b=>a 3/4 yes
  CHECK(r.rules.size() == 5);
  // min_len 1 admits {} => b (supp 4/5 >= 0.7) and {} => a (4/5)
  o.min_len = 1;
  CHECK(mine_basket_rules(data, o).rules.size() == 7);
}

TEST_CASE("Groceries reproduces arules rule counts (data README)") {
  const auto& g = groceries();
  REQUIRE(g.baskets.size() == 9835);
  REQUIRE(g.items.size() == 169);
  BasketRuleOptions o;
  SECTION("supp 0.006 conf 0.25 minlen 2 -> 463 rules, lengths 150/297/16") {
    o.min_support = 0.006;
    o.min_confidence = 0.25;
    o.min_len = 2;
    auto r = mine_basket_rules(g, o);
    CHECK(r.frequent_itemsets == 747);
    CHECK(r.rules.size() == 463);
    CHECK(length_histogram(r) == std::map<std::size_t, std::size_t>{{2, 150}, {3, 297}, {4, 16}});
  }
  SECTION("supp 0.001 conf 0.5 -> 5668 rules, lengths 11/1461/3211/939/46, fast") {
    o.min_support = 0.001;
    o.min_confidence = 0.5;
    auto t0 = std::chrono::steady_clock::now();
    auto r = mine_basket_rules(g, o);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(r.frequent_itemsets == 13492);
    CHECK(r.rules.size() == 5668);
    CHECK(length_histogram(r) ==
          std::map<std::size_t, std::size_t>{{2, 11}, {3, 1461}, {4, 3211}, {5, 939}, {6, 46}});
    CHECK(secs < 2.0);
  }
  SECTION("supp 0.001 conf 0.8 -> 410 rules") {
    o.min_support = 0.001;
    o.min_confidence = 0.8;
    CHECK(mine_basket_rules(g, o).rules.size() == 410);
  }
  SECTION("supp 0.005 conf 0.5 -> 120 rules") {
    o.min_support = 0.005;
    o.min_confidence = 0.5;
    CHECK(mine_basket_rules(g, o).rules.size() == 120);
  }
  SECTION("supp 0.01 conf 0.5 -> 15 rules, all of length 3") {
    o.min_support = 0.01;
    o.min_confidence = 0.5;
    auto r = mine_basket_rules(g, o);
    CHECK(r.rules.size() == 15);
    CHECK(length_histogram(r) == std::map<std::size_t, std::size_t>{{3, 15}});
  }
  SECTION("max_len and min_lift filter") {
    o.min_support = 0.001;
    o.min_confidence = 0.5;
    o.max_len = 3;
    CHECK(mine_basket_rules(g, o).rules.size() == 11 + 1461);
    o.max_len = 10;
    o.min_lift = 3.0;
    auto r = mine_basket_rules(g, o);
    for (const auto& x : r.rules) CHECK(x.lift >= 3.0);
  }
}
