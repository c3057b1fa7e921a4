#include "storepulse/profile/profile.hpp"

#include <catch2/catch.hpp>

#include "support/events.hpp"

using namespace storepulse;
using namespace storepulse::profile;
using test::decode_event;

namespace {
const char* kOrder = R"({"type":"track","event":"Order Completed","messageId":"o1","userId":"C1",
  "timestamp":"2026-11-01T10:00:00Z","context":{"channel":"pos"},
  "properties":{"total":90,"discount":10,"products":[
    {"productId":"k1","category":"Kids","brand":"Tiny","price":40,"quantity":1,"size":"110"},
    {"productId":"d1","category":"Dresses","brand":"Acme","price":60,"quantity":1,"size":"M"}]}})";
}

TEST_CASE("orders update RFM - channels - categories - sizes - points and discount share") {
  CustomerProfile p;
  p.user_id = "C1";
  apply_event(p, decode_event(kOrder));
  apply_event(
      p, decode_event(R"({"type":"track","event":"Order Completed","messageId":"o2","userId":"C1",
    "timestamp":"2026-11-10T10:00:00Z","context":{"channel":"web"},
    "properties":{"total":20,"products":[{"productId":"k2","category":"Kids","price":20,"quantity":1,"size":"116"}]}})"));
  CHECK(p.orders == 2);
  CHECK(p.orders_pos == 1);
  CHECK(p.orders_web == 1);
  CHECK(p.monetary == 11000);
  CHECK(p.points == 110);
  CHECK(p.discount_share() == Approx(10.0 / 120.0));
  REQUIRE(p.category("Kids"));
  CHECK(p.category("Kids")->spend == 6000);
  REQUIRE(p.sizes.size() == 2);
  // The latest size per category wins: the child has grown.
  auto kids = std::find_if(p.sizes.begin(), p.sizes.end(),
                           [&](auto& s) { return p.name(s.category) == "Kids"; });
  REQUIRE(kids != p.sizes.end());
  CHECK(p.name(kids->size) == "116");
  CHECK(p.last_order == *parse_iso8601("2026-11-10T10:00:00Z"));
}

TEST_CASE("the cart follows adds and removes and a purchase in any channel settles it") {
  CustomerProfile p;
  apply_event(p, decode_event(
                     R"({"type":"track","event":"Product Added","messageId":"a1","anonymousId":"v1",
    "properties":{"productId":"p1","name":"Boots","category":"Shoes","price":80,"quantity":1}})"));
  apply_event(p, decode_event(
                     R"({"type":"track","event":"Product Added","messageId":"a2","anonymousId":"v1",
    "properties":{"productId":"p2","name":"Socks","category":"Socks","price":5,"quantity":2}})"));
  CHECK(p.cart.size() == 2);
  CHECK(p.cart_value() == 9000);
  apply_event(
      p,
      decode_event(R"({"type":"track","event":"Product Removed","messageId":"a3","anonymousId":"v1",
    "properties":{"productId":"p2","quantity":2}})"));
  CHECK(p.cart.size() == 1);
  CHECK(p.cart_value() == 8000);
  apply_event(p, decode_event(kOrder));
  CHECK(p.cart.empty());
}

TEST_CASE("refunds reduce monetary and points - never below zero points") {
  CustomerProfile p;
  apply_event(p, decode_event(kOrder));
  apply_event(
      p, decode_event(R"({"type":"track","event":"Order Refunded","messageId":"r1","userId":"C1",
    "properties":{"total":40,"products":[{"productId":"k1","category":"Kids","price":40,"quantity":1}]}})"));
  CHECK(p.monetary == 5000);
  CHECK(p.points == 50);
  CHECK(p.refunds == 1);
  CHECK(p.category("Kids")->spend == 0);
}

TEST_CASE("identify traits fill the profile - birthday and consent are derived") {
  CustomerProfile p;
  apply_event(p, decode_event(R"({"type":"identify","messageId":"i1","userId":"C1",
    "traits":{"firstName":"Ana","birthday":"1990-04-12","smsOptIn":true,"homeStore":"S3"}})"));
  apply_event(
      p, decode_event(
             R"({"type":"identify","messageId":"i2","userId":"C1","traits":{"lastName":"Berg"}})"));
  CHECK(p.traits.first_name == "Ana");
  CHECK(p.traits.last_name == "Berg");
  CHECK(p.birthday_mmdd == 412);
  CHECK(p.sms_consent);
}

TEST_CASE("merging a visitor into a member sums counters and keeps the member's traits") {
  CustomerProfile member, visitor;
  apply_event(member, decode_event(kOrder));
  apply_event(
      member,
      decode_event(
          R"({"type":"identify","messageId":"i1","userId":"C1","traits":{"firstName":"Ana"}})"));
  apply_event(
      visitor,
      decode_event(
          R"({"type":"identify","messageId":"i2","anonymousId":"v1","traits":{"firstName":"anon","email":"a@x"}})"));
  apply_event(
      visitor,
      decode_event(R"({"type":"track","event":"Product Added","messageId":"a1","anonymousId":"v1",
    "properties":{"productId":"p1","price":80}})"));
  visitor.contacts.push_back(
      {visitor.names->intern("abandoned-cart"), visitor.names->intern("web"), 5});
  visitor.timers.push_back({visitor.names->intern("abandoned-cart"), 99});
  merge_profile(member, visitor);
  REQUIRE(member.contacts.size() == 1);
  CHECK(member.name(member.contacts[0].rule) == "abandoned-cart");
  CHECK(member.name(member.contacts[0].channel) == "web");
  REQUIRE(member.timers.size() == 1);
  CHECK(member.traits.first_name == "Ana");
  CHECK(member.traits.email == "a@x");
  CHECK(member.cart.size() == 1);
  CHECK(member.orders == 1);
}

TEST_CASE("profiles survive serialization exactly and reject damage") {
  CustomerProfile p;
  p.user_id = "C1";
  apply_event(p, decode_event(kOrder));
  p.links.push_back({"v1", 5, "alias", true});
  p.contacts.push_back({p.names->intern("birthday-greeting"), p.names->intern("pos"), 7});
  std::string buf;
  serialize_profile(p, buf);
  CustomerProfile back;
  REQUIRE(deserialize_profile(buf, back));
  CHECK(profile_to_json(back, 0) == profile_to_json(p, 0));
  CHECK_FALSE(deserialize_profile(std::string_view(buf).substr(0, buf.size() - 3), back));
  // A list longer than its cap (only a damaged or foreign record has one) is
  // refused.
  CustomerProfile over = p;
  while (over.categories.size() <= CustomerProfile::kMaxCategories)
    over.categories.push_back(over.categories.front());
  buf.clear();
  serialize_profile(over, buf);
  CHECK_FALSE(deserialize_profile(buf, back));
}

TEST_CASE("profile JSON carries the contract fields") {
  CustomerProfile p;
  p.user_id = "C1";
  apply_event(p, decode_event(kOrder));
  const std::string j = profile_to_json(p, *parse_iso8601("2026-11-11T10:00:00Z"));
  for (const char* field :
       {"\"userId\":\"C1\"", "\"linkedIds\":[]", "\"traits\":{", "\"recencyDays\":10",
        "\"frequency\":1", "\"monetary\":90.00", "\"channels\":{\"pos\":1,\"web\":0}",
        "\"categories\":{", "\"discountShare\":", "\"cart\":{\"items\":[]", "\"sizes\":[",
        "\"points\":90"})
    CHECK(j.find(field) != std::string::npos);
}
