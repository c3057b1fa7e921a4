#include "storepulse/profile/names.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "storepulse/profile/profile.hpp"
#include "support/events.hpp"

using namespace storepulse;
using namespace storepulse::profile;
using test::decode_event;

TEST_CASE("a name table gives one id per name and the text back") {
  NameTable t;
  const NameId shoes = t.intern("Shoes");
  const NameId socks = t.intern("Socks");
  CHECK(shoes != kNoName);
  CHECK(socks != kNoName);
  CHECK(shoes != socks);
  CHECK(t.intern("Shoes") == shoes);  // the same name again: the same id, no new entry
  CHECK(t.size() == 2);
  CHECK(t.view(shoes) == "Shoes");
  CHECK(t.view(socks) == "Socks");
  CHECK(t.find("Socks") == socks);
  CHECK(t.find("Boots") == kNoName);  // find never adds
  CHECK(t.size() == 2);
  // The empty name is id 0 and is never stored.
  CHECK(t.intern("") == kNoName);
  CHECK(t.view(kNoName).empty());
  CHECK(t.view(12345).empty());  // an id the table never gave out
}

TEST_CASE("name views stay valid while the table grows") {
  NameTable t;
  const NameId first = t.intern("a");  // short: stored inline in its std::string
  for (int i = 0; i < 10000; ++i) t.intern("name-" + std::to_string(i));
  CHECK(t.view(first) == "a");
  CHECK(t.find("a") == first);
  CHECK(t.view(t.find("name-9999")) == "name-9999");
  CHECK(t.size() == 10001);
}

TEST_CASE("a full name table refuses new names and keeps the ones it has") {
  SECTION("by count") {
    NameTable t(/*max_names=*/2, /*max_bytes=*/1000);
    const NameId a = t.intern("Kids");
    const NameId b = t.intern("Dresses");
    CHECK(t.intern("Shoes") == kNoName);
    CHECK(t.refused() == 1);
    CHECK(t.size() == 2);
    CHECK(t.intern("Kids") == a);  // known names still resolve when full
    CHECK(t.intern("Dresses") == b);
    CHECK(t.refused() == 1);
  }
  SECTION("by bytes of text") {
    NameTable t(/*max_names=*/100, /*max_bytes=*/10);
    CHECK(t.intern("12345") != kNoName);
    CHECK(t.intern("123456") == kNoName);  // 11 bytes > 10
    CHECK(t.intern("12345") != kNoName);
    CHECK(t.intern("abcde") != kNoName);  // exactly 10
    CHECK(t.bytes() == 10);
    CHECK(t.refused() == 1);
  }
}

TEST_CASE("a profile whose name table is full records what it can and nothing else") {
  NameTable t(/*max_names=*/1, /*max_bytes=*/1000);
  CustomerProfile p;
  p.names = &t;
  apply_event(
      p, decode_event(R"({"type":"track","event":"Order Completed","messageId":"o1","userId":"C1",
    "timestamp":"2026-11-01T10:00:00Z","context":{"channel":"pos"},
    "properties":{"total":60,"products":[{"productId":"k1","category":"Kids","price":40,"quantity":1},
                                         {"productId":"d1","category":"Dresses","price":20,"quantity":1}]}})"));
  // The order itself counts in full; only the second category name found no room.
  CHECK(p.orders == 1);
  CHECK(p.monetary == 6000);
  REQUIRE(p.categories.size() == 1);
  CHECK(p.name(p.categories[0].name) == "Kids");
  CHECK(p.category("Dresses") == nullptr);
  CHECK(p.recent_products.empty());  // the product ids found no room either
  CHECK(t.refused() >= 1);
  const std::string json = profile_to_json(p, 0);
  CHECK(json.find("\"categories\":{\"Kids\":40.00}") != std::string::npos);
}

TEST_CASE("profiles on different name tables merge and round-trip by name, not by id") {
  NameTable shard_a, shard_b;
  shard_b.intern("Unrelated");  // so that the same name has different ids on the two tables
  CustomerProfile visitor;
  visitor.names = &shard_a;
  apply_event(
      visitor,
      decode_event(R"({"type":"track","event":"Order Completed","messageId":"o1","anonymousId":"v1",
    "timestamp":"2026-11-01T10:00:00Z","context":{"channel":"web","storeId":"S1"},
    "properties":{"total":40,"products":[{"productId":"k1","category":"Kids","brand":"Tiny","price":40,"quantity":1}]}})"));
  std::string payload;
  serialize_profile(visitor, payload);

  CustomerProfile other;
  other.names = &shard_b;
  REQUIRE(deserialize_profile(payload, other));
  CHECK(other.names == &shard_b);  // reading keeps the reader's table
  REQUIRE(other.category("Kids"));
  CHECK(other.category("Kids")->spend == 4000);
  CHECK(shard_b.find("Kids") != shard_a.find("Kids"));

  CustomerProfile member;
  member.names = &shard_b;
  merge_profile(member, visitor);  // straight from the other table
  REQUIRE(member.category("Kids"));
  CHECK(member.category("Kids")->spend == 4000);
  REQUIRE(member.brands.size() == 1);
  CHECK(member.name(member.brands[0].name) == "Tiny");
  REQUIRE(member.recent_products.size() == 1);
  CHECK(member.name(member.recent_products[0]) == "k1");
  REQUIRE(member.stores.size() == 1);
  CHECK(member.name(member.stores[0].store_id) == "S1");
  CHECK(profile_to_json(member, 0).find("\"categories\":{\"Kids\":40.00}") != std::string::npos);
}

TEST_CASE("a name table full of catalogue names still takes rule names - so cooldowns hold") {
  NameTable t(/*max_names=*/1, /*max_bytes=*/1000);
  CHECK(t.intern("Kids") != kNoName);
  CHECK(t.intern("Dresses") == kNoName);
  const NameId rule = t.intern_guardrail("abandoned-cart");
  CHECK(rule != kNoName);
  CHECK(t.view(rule) == "abandoned-cart");
  CHECK(t.intern("abandoned-cart") == rule);  // once in, an ordinary lookup finds it
  // The extra room is bounded too.
  NameTable small(/*max_names=*/0, /*max_bytes=*/0);
  std::size_t taken = 0;
  for (std::size_t i = 0; i < NameTable::kGuardrailRoom + 10; ++i)
    if (small.intern_guardrail("rule-" + std::to_string(i)) != kNoName) ++taken;
  CHECK(taken == NameTable::kGuardrailRoom);
  CHECK(small.refused() == 10);

  // In a profile: the contact of a rule is recorded even though the table is full.
  CustomerProfile p;
  p.names = &t;
  std::string payload;
  p.contacts.push_back({t.intern_guardrail("win-back"), t.intern_guardrail("sms"), 5});
  serialize_profile(p, payload);
  CustomerProfile back;
  back.names = &t;
  REQUIRE(deserialize_profile(payload, back));
  REQUIRE(back.contacts.size() == 1);
  CHECK(back.name(back.contacts[0].rule) == "win-back");
  CHECK(back.name(back.contacts[0].channel) == "sms");
}

TEST_CASE("a purchase releases the settled cart's memory") {
  CustomerProfile p;
  apply_event(p, decode_event(
                     R"({"type":"track","event":"Product Added","messageId":"a1","anonymousId":"v1",
    "properties":{"productId":"p1","name":"Boots","category":"Shoes","price":80,"quantity":1}})"));
  REQUIRE(p.cart.size() == 1);
  CHECK(p.name(p.cart[0].name) == "Boots");
  CHECK(p.name(p.cart[0].category) == "Shoes");
  apply_event(
      p,
      decode_event(R"({"type":"track","event":"Order Completed","messageId":"o1","anonymousId":"v1",
    "properties":{"total":80,"products":[{"productId":"p1","category":"Shoes","price":80,"quantity":1}]}})"));
  CHECK(p.cart.empty());
  CHECK(p.cart.capacity() == 0);
}
