#include "storepulse/analytics/channels.hpp"

#include <catch2/catch.hpp>

#include "analytics_fixtures.hpp"

using namespace storepulse;
using namespace storepulse::analytics;
using namespace storepulse::analytics::testing;
using protocol::Channel;
using protocol::EventName;

TEST_CASE(
    "channels hand-computed: revenue split - new vs existing web buyers - browse then store") {
  std::vector<protocol::Event> evs = {
      // s: store customer who later goes online
      order("s", "2024-01-01T10:00:00Z", 50, Channel::kPos),
      order("s", "2024-02-01T10:00:00Z", 20, Channel::kWeb),
      // w: web-only, new to the business
      order("w", "2024-01-10T10:00:00Z", 30, Channel::kWeb),
      // b: views a coat online, buys it in store 3 days later; views a hat, buys nothing for 10
      // days
      track(EventName::kProductViewed, "b", "2024-01-05T10:00:00Z", Channel::kWeb, "coat"),
      order("b", "2024-01-08T10:00:00Z", 100, Channel::kPos, {"coat"}),
      // c: views online, store purchase 9 days later: outside a 7-day window
      track(EventName::kProductViewed, "c", "2024-01-05T10:00:00Z", Channel::kWeb, "hat"),
      order("c", "2024-01-14T10:00:00Z", 10, Channel::kPos, {"hat"}),
  };
  auto r = analyze_channels(evs);
  CHECK(r.online_revenue == 5000);
  CHECK(r.store_revenue == 16000);
  CHECK(r.online_buyers == 2);
  CHECK(r.online_buyers_new == 1);
  CHECK(r.online_buyers_existing == 1);
  CHECK(r.web_viewers == 2);
  CHECK(r.browse_then_store == 1);
  CHECK(r.browse_then_store_same_product == 1);
  ChannelOptions wide;
  wide.browse_window = 10 * kUsPerDay;
  CHECK(analyze_channels(evs, wide).browse_then_store == 2);
}

TEST_CASE("channels hand-computed: promotion response and abandoned cart products") {
  std::vector<protocol::Event> evs = {
      track(EventName::kPromotionViewed, "p", "2024-01-01T10:00:00Z", Channel::kWeb, "", "spring"),
      track(EventName::kPromotionClicked, "p", "2024-01-01T10:01:00Z", Channel::kWeb, "", "spring"),
      order("p", "2024-01-03T10:00:00Z", 40, Channel::kWeb, {"scarf"}),
      track(EventName::kPromotionViewed, "q", "2024-01-01T10:00:00Z", Channel::kPos, "", "spring"),
      // cart: r adds scarf and gloves, buys only the scarf (in store, same day)
      track(EventName::kProductAdded, "r", "2024-01-02T10:00:00Z", Channel::kWeb, "scarf"),
      track(EventName::kProductAdded, "r", "2024-01-02T10:01:00Z", Channel::kWeb, "gloves"),
      order("r", "2024-01-02T15:00:00Z", 15, Channel::kPos, {"scarf"}),
      // t adds gloves, buys them two days later: abandoned under a 24 h window
      track(EventName::kProductAdded, "t", "2024-01-02T10:00:00Z", Channel::kWeb, "gloves"),
      order("t", "2024-01-04T10:00:00Z", 12, Channel::kWeb, {"gloves"}),
  };
  auto r = analyze_channels(evs);
  REQUIRE(r.promotions.size() == 2);
  const auto& pos = r.promotions[0].channel == "pos" ? r.promotions[0] : r.promotions[1];
  const auto& web = r.promotions[0].channel == "web" ? r.promotions[0] : r.promotions[1];
  CHECK(web.viewed == 1);
  CHECK(web.clicked == 1);
  CHECK(web.exposed_customers == 1);
  CHECK(web.converted == 1);
  CHECK(web.revenue == 4000);
  CHECK(pos.converted == 0);
  CHECK(r.carts_added == 3);
  CHECK(r.carts_abandoned == 2);
  REQUIRE(r.abandoned.size() == 1);
  CHECK(r.abandoned[0].product == "gloves");
  CHECK(r.abandoned[0].abandoned == 2);
  ChannelOptions longer;
  longer.abandon_after = 3 * kUsPerDay;
  CHECK(analyze_channels(evs, longer).carts_abandoned == 1);
}

TEST_CASE(
    "channels: cannibalisation compares adopters' store spend change with store-only customers") {
  std::vector<protocol::Event> evs;
  // adopter a: 10/day-ish in store before going online on day 10, nothing in store after
  evs.push_back(order("a", "2024-01-01T00:00:00Z", 100, Channel::kPos));
  evs.push_back(order("a", "2024-01-11T00:00:00Z", 50, Channel::kWeb));
  // control c: store purchases before and after the split (the adoption date)
  evs.push_back(order("c", "2024-01-01T00:00:00Z", 100, Channel::kPos));
  evs.push_back(order("c", "2024-01-15T00:00:00Z", 100, Channel::kPos));
  evs.push_back(order("z", "2024-01-21T00:00:00Z", 1, Channel::kPos));  // end of data: day 20
  auto r = analyze_channels(evs);
  CHECK(r.adopters == 1);
  CHECK(r.control == 1);
  // adopter: 100 over 10 days before, 0 over 10 days after -> -10/day
  CHECK(r.adopter_store_rate_before == Approx(10));
  CHECK(r.adopter_store_rate_after == Approx(0));
  // control: 100/10 before, 100/10 after -> 0 change
  CHECK(r.cannibalisation_per_day == Approx(-10));
}
