#include "storepulse/analytics/simulator.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <sstream>

#include "storepulse/protocol/codec.hpp"

using namespace storepulse;
using namespace storepulse::analytics;
using protocol::Channel;
using protocol::Event;
using protocol::EventName;
using protocol::EventType;

namespace {

SimulatorConfig small_config(std::uint64_t seed = 11) {
  SimulatorConfig cfg;
  cfg.customers = 400;
  cfg.days = 60;
  cfg.seed = seed;
  return cfg;
}

std::vector<std::string> encode_all(const SimulatorConfig& cfg) {
  ShopperSimulator sim(cfg);
  std::vector<std::string> lines;
  Event ev;
  while (sim.next(ev)) lines.push_back(protocol::encode_event(ev));
  return lines;
}

// Re-decodes an encoded event exactly as the server would on receipt.
Status decode_line(protocol::EventDecoder& dec, std::string line, TimeUs now, Event& out) {
  line.reserve(line.size() + protocol::decode_padding());
  return dec.decode(line, now, out);
}

}  // namespace

TEST_CASE("simulate: the same seed gives the same events - another seed other events") {
  auto a = encode_all(small_config(11));
  auto b = encode_all(small_config(11));
  auto c = encode_all(small_config(12));
  REQUIRE(a.size() > 1000);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("simulate: every event decodes - in time order - inside the period - unique ids") {
  SimulatorConfig cfg = small_config();
  ShopperSimulator sim(cfg);
  // The decoder's event-time guard is relative to the receive time: receive at the end.
  const TimeUs now = cfg.end;
  const TimeUs start = cfg.end - cfg.days * kUsPerDay;
  CHECK(sim.start_time() == start);
  protocol::EventDecoder dec;
  std::set<std::string> ids;
  std::map<std::string, int> kinds;
  TimeUs prev = start;
  Event ev, back;
  std::size_t n = 0, failures = 0;
  while (sim.next(ev)) {
    ++n;
    std::string line = protocol::encode_event(ev);
    Status s = decode_line(dec, line, now, back);
    if (!s.is_ok()) {
      if (++failures <= 3) FAIL_CHECK(s.detail() << " in " << line);
      continue;
    }
    // The round trip keeps what analytics rely on.
    CHECK(back.timestamp == ev.timestamp);
    CHECK(back.total == ev.total);
    CHECK(back.products.size() == ev.products.size());
    CHECK(ev.timestamp >= prev);
    CHECK(ev.timestamp >= start);
    CHECK(ev.timestamp < cfg.end);
    prev = ev.timestamp;
    CHECK(ids.insert(ev.message_id).second);
    std::string kind = std::string(protocol::event_type_name(ev.type)) + "/" +
                       std::string(protocol::event_name_str(ev.name)) + "/" +
                       std::string(protocol::channel_name(ev.channel));
    ++kinds[kind];
  }
  CHECK(failures == 0);
  CHECK(n == static_cast<std::size_t>(sim.stats().events));
  for (const char* k :
       {"track/Card Swiped/pos", "track/Order Completed/pos", "track/Order Completed/web",
        "page//web", "track/Product Viewed/web", "track/Product Added/web",
        "track/Product Removed/web", "track/Cart Viewed/web", "track/Checkout Started/web",
        "track/Promotion Viewed/web", "track/Promotion Clicked/web", "track/Product Reserved/web",
        "identify//pos", "alias//web", "track/Order Refunded/pos"}) {
    INFO(k);
    CHECK(kinds[k] > 0);
  }
}

TEST_CASE("simulate: orders are consistent - swipes precede store orders - aliases link visitors") {
  SimulatorConfig cfg = small_config(5);
  ShopperSimulator sim(cfg);
  std::map<std::string, std::string> visitor_of;  // truth: member -> anonymousId
  for (const auto& t : sim.truth())
    if (!t.anonymous_id.empty()) visitor_of[t.user_id] = t.anonymous_id;
  std::map<std::string, TimeUs> last_swipe;
  std::set<std::string> orders;
  Event ev;
  std::size_t aliases = 0, refunds = 0, promo_lines = 0, lines = 0;
  protocol::Money revenue = 0;
  while (sim.next(ev)) {
    if (ev.name == EventName::kCardSwiped) last_swipe[ev.user_id] = ev.timestamp;
    if (ev.name == EventName::kOrderCompleted) {
      REQUIRE(!ev.products.empty());
      CHECK(ev.total == ev.products_value() - ev.discount);
      CHECK(ev.discount >= 0);
      CHECK(!ev.user_id.empty());  // web checkout needs the member's login
      CHECK(orders.insert(ev.order_id).second);
      revenue += ev.total;
      for (const auto& p : ev.products) {
        ++lines;
        if (!p.promo.empty()) ++promo_lines;
        CHECK(!p.category.empty());
        CHECK(!p.brand.empty());
        CHECK(p.price > 0);
      }
      if (ev.channel == Channel::kPos) {
        // A store order follows the member's card swipe within minutes.
        REQUIRE(last_swipe.count(ev.user_id));
        CHECK(ev.timestamp - last_swipe[ev.user_id] < 30 * 60 * kUsPerSecond);
        CHECK(!ev.store_id.empty());
      }
    }
    if (ev.name == EventName::kOrderRefunded) {
      ++refunds;
      CHECK(orders.count(ev.order_id) == 1);  // refunds refer to an earlier order
    }
    if (ev.type == EventType::kAlias) {
      ++aliases;
      REQUIRE(visitor_of.count(ev.user_id));
      CHECK(visitor_of[ev.user_id] == ev.previous_id);
    }
  }
  CHECK(aliases > 0);
  CHECK(refunds > 0);
  CHECK(revenue == sim.stats().revenue);
  // Promotions are a real share of lines, not all of them.
  double promo_share = static_cast<double>(promo_lines) / static_cast<double>(lines);
  CHECK(promo_share > 0.1);
  CHECK(promo_share < 0.6);
}

TEST_CASE("simulate: hidden types shape behaviour the way RETAIL.md describes") {
  SimulatorConfig cfg = small_config(3);
  cfg.customers = 800;
  ShopperSimulator sim(cfg);
  std::map<std::string, ShoppingType> type_of;
  for (const auto& t : sim.truth()) type_of[t.user_id] = t.type;
  struct Acc {
    double orders = 0, lines = 0, gross = 0, discount = 0, grocery_lines = 0, members = 0;
    std::map<std::string, std::map<std::string, double>> brand_spend;  // member -> brand -> cents
  };
  std::array<Acc, kShoppingTypeCount> acc;
  for (const auto& [id, t] : type_of) acc[static_cast<int>(t)].members += 1;
  const std::set<std::string> grocery = {"Produce", "Dairy",  "Bakery",    "Beverages",
                                         "Pantry",  "Frozen", "Household", "Personal Care"};
  Event ev;
  while (sim.next(ev)) {
    if (ev.name != EventName::kOrderCompleted || ev.channel != Channel::kPos) continue;
    Acc& a = acc[static_cast<int>(type_of.at(ev.user_id))];
    a.orders += 1;
    a.gross += static_cast<double>(ev.products_value());
    a.discount += static_cast<double>(ev.discount);
    for (const auto& p : ev.products) {
      a.lines += 1;
      if (grocery.count(p.category)) a.grocery_lines += 1;
      a.brand_spend[ev.user_id][p.brand] += static_cast<double>(p.price * p.quantity);
    }
  }
  auto at = [&](ShoppingType t) -> const Acc& { return acc[static_cast<int>(t)]; };
  auto discount_share = [&](ShoppingType t) { return at(t).discount / at(t).gross; };
  auto basket = [&](ShoppingType t) { return at(t).lines / at(t).orders; };
  auto trips = [&](ShoppingType t) { return at(t).orders / at(t).members; };
  auto grocery_share = [&](ShoppingType t) { return at(t).grocery_lines / at(t).lines; };
  auto top_brand_share = [&](ShoppingType t) {
    double sum = 0;
    for (const auto& [m, spend] : at(t).brand_spend) {
      double total = 0, top = 0;
      for (const auto& [b, v] : spend) {
        total += v;
        top = std::max(top, v);
      }
      sum += top / total;
    }
    return sum / static_cast<double>(at(t).brand_spend.size());
  };
  using T = ShoppingType;
  for (T other : {T::kSupermarket, T::kBrandLoyal, T::kNearbyResident}) {
    CHECK(discount_share(T::kPriceSensitive) > 2 * discount_share(other));
  }
  for (T other : {T::kPriceSensitive, T::kBrandLoyal, T::kNearbyResident}) {
    CHECK(basket(T::kSupermarket) > 2 * basket(other));
  }
  for (T other : {T::kPriceSensitive, T::kSupermarket, T::kBrandLoyal}) {
    CHECK(trips(T::kNearbyResident) > 1.5 * trips(other));
  }
  for (T other : {T::kPriceSensitive, T::kSupermarket, T::kNearbyResident}) {
    CHECK(top_brand_share(T::kBrandLoyal) > top_brand_share(other) + 0.1);
  }
  CHECK(grocery_share(T::kSupermarket) > 0.8);
  CHECK(grocery_share(T::kNearbyResident) > 0.8);
  CHECK(grocery_share(T::kBrandLoyal) < 0.3);
}

TEST_CASE("simulate: birthdays spread over the year - children's clothes carry age sizes") {
  SimulatorConfig cfg = small_config(9);
  cfg.customers = 1200;
  ShopperSimulator sim(cfg);
  std::array<int, 12> per_month{};
  for (const auto& t : sim.truth()) {
    int mmdd = parse_birthday_mmdd(t.birthday);
    REQUIRE(mmdd > 0);
    ++per_month[static_cast<std::size_t>(mmdd / 100 - 1)];
  }
  // 100 expected per month; a uniform spread stays well inside 60..140.
  for (int m = 0; m < 12; ++m) {
    INFO("month " << m + 1);
    CHECK(per_month[static_cast<std::size_t>(m)] > 60);
    CHECK(per_month[static_cast<std::size_t>(m)] < 140);
  }
  Event ev;
  std::size_t kids = 0;
  while (sim.next(ev)) {
    if (ev.name != EventName::kOrderCompleted) continue;
    for (const auto& p : ev.products) {
      if (p.category != "Children's Clothing") continue;
      ++kids;
      // "A-(A+1)Y": the size names the child's age, so a size-up is the next age.
      auto dash = p.size.find('-');
      REQUIRE(dash != std::string::npos);
      int lo = std::stoi(p.size.substr(0, dash));
      int hi = std::stoi(p.size.substr(dash + 1));
      CHECK(hi == lo + 1);
      CHECK(p.size.back() == 'Y');
    }
  }
  CHECK(kids > 20);
}

TEST_CASE("simulate: truth CSV names every member with its type") {
  SimulatorConfig cfg = small_config();
  cfg.customers = 50;
  ShopperSimulator sim(cfg);
  std::ostringstream os;
  write_truth_csv(sim.truth(), os);
  std::istringstream is(os.str());
  std::string line;
  std::getline(is, line);
  CHECK(line.rfind("userId,type,", 0) == 0);
  int rows = 0;
  std::set<std::string> types;
  while (std::getline(is, line)) {
    ++rows;
    auto c1 = line.find(',');
    auto c2 = line.find(',', c1 + 1);
    std::string type = line.substr(c1 + 1, c2 - c1 - 1);
    CHECK(shopping_type_from(type).has_value());
    types.insert(type);
  }
  CHECK(rows == 50);
  CHECK(types.size() == 4);
}
