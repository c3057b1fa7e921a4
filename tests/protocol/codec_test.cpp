#include "storepulse/protocol/codec.hpp"

#include <fmt/format.h>

#include <catch2/catch.hpp>

using namespace storepulse;
using namespace storepulse::protocol;

namespace {
const TimeUs kNow = *parse_iso8601("2026-11-26T12:00:00Z");

// Through `dec` (its per-decode state, such as last_total_mismatch, is read after).
Status decode_with(EventDecoder& dec, std::string json, Event& ev) {
  json.reserve(json.size() + decode_padding());
  return dec.decode(json, kNow, ev);
}

Status decode(std::string json, Event& ev) {
  static EventDecoder dec;
  return decode_with(dec, std::move(json), ev);
}
}  // namespace

TEST_CASE("decodes an Order Completed with products into fixed-point money") {
  Event ev;
  auto s = decode(R"({"type":"track","event":"Order Completed","messageId":"m1","userId":"C1",
    "timestamp":"2026-11-26T10:00:00Z","context":{"channel":"pos","storeId":"S1"},
    "properties":{"orderId":"o1","total":59.90,"discount":5,"products":[
      {"productId":"p1","category":"Dresses","brand":"Acme","price":32.45,"quantity":2,"size":"M"}]}})",
                  ev);
  REQUIRE(s.is_ok());
  CHECK(ev.type == EventType::kTrack);
  CHECK(ev.name == EventName::kOrderCompleted);
  CHECK(ev.channel == Channel::kPos);
  CHECK(ev.total == 5990);
  CHECK(ev.discount == 500);
  REQUIRE(ev.products.size() == 1);
  CHECK(ev.products[0].price == 3245);
  CHECK(ev.products[0].quantity == 2);
  CHECK(ev.products[0].size == "M");
  CHECK(ev.timestamp == *parse_iso8601("2026-11-26T10:00:00Z"));
  CHECK(ev.customer_key() == "C1");
}

TEST_CASE("errors name the offending field and code") {
  Event ev;
  struct Case {
    const char* json;
    ErrorCode code;
    const char* detail_part;
  };
  const Case cases[] = {
      {"not json", ErrorCode::kBadJson, ""},
      {"[1,2]", ErrorCode::kBadJson, "object"},
      {R"({"type":"track","messageId":"m","userId":"u","event":"Teleported"})",
       ErrorCode::kUnknownEvent, "Teleported"},
      {R"({"type":"shout","messageId":"m","userId":"u"})", ErrorCode::kUnknownEvent, "shout"},
      {R"({"type":"track","messageId":"m","event":"Card Swiped"})", ErrorCode::kBadField, "userId"},
      {R"({"type":"track","userId":"u","event":"Card Swiped"})", ErrorCode::kBadField, "messageId"},
      {R"({"type":"track","messageId":"m","userId":"u","event":"Order Completed","properties":{"total":"ten"}})",
       ErrorCode::kBadField, "properties.total"},
      {R"({"type":"track","messageId":"m","userId":"u","event":"Order Completed","properties":{"total":-1}})",
       ErrorCode::kBadField, "negative"},
      {R"({"type":"track","messageId":"m","userId":"u","event":"Order Completed","properties":{"products":[{"productId":"p","price":1,"quantity":0}]}})",
       ErrorCode::kBadField, "products[0].quantity"},
      {R"({"type":"identify","messageId":"m","userId":"u","traits":{"birthday":"1990-02-30"}})",
       ErrorCode::kBadField, "traits.birthday"},
      {R"({"type":"track","messageId":"m","userId":"u","event":"Card Swiped","timestamp":"2031-01-01T00:00:00Z"})",
       ErrorCode::kBadField, "future"},
      {R"({"type":"track","messageId":"m","userId":"u","event":"Card Swiped","timestamp":"yesterday"})",
       ErrorCode::kBadField, "timestamp"},
      {R"({"type":"alias","messageId":"m","userId":"u"})", ErrorCode::kBadField, "previousId"},
      {R"({"type":"track","messageId":"m","userId":"u","event":"Card Swiped","context":{"channel":"fax"}})",
       ErrorCode::kBadField, "context.channel"},
  };
  for (const auto& c : cases) {
    INFO(c.json);
    auto s = decode(c.json, ev);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.code() == c.code);
    CHECK(s.detail().find(c.detail_part) != std::string::npos);
  }
}

TEST_CASE("order total defaults to products minus discount") {
  Event ev;
  REQUIRE(decode(R"({"type":"track","messageId":"m","userId":"u","event":"Order Completed",
     "properties":{"discount":1,"products":[{"sku":"a","price":2.5,"quantity":2}]}})",
                 ev)
              .is_ok());
  CHECK(ev.total == 400);
}

TEST_CASE("missing timestamp takes the receive time") {
  Event ev;
  REQUIRE(decode(R"({"type":"track","messageId":"m","anonymousId":"a","event":"Cart Viewed"})", ev)
              .is_ok());
  CHECK(ev.timestamp == kNow);
  CHECK(ev.customer_key() == "a");
}

TEST_CASE("encode_event round-trips through the decoder") {
  Event ev;
  REQUIRE(
      decode(
          R"({"type":"identify","messageId":"id-1","userId":"C9","timestamp":"2026-01-02T03:04:05Z",
     "traits":{"firstName":"Ana \"Q\"","birthday":"1990-04-12","phone":"+100","smsOptIn":true}})",
          ev)
          .is_ok());
  Event back;
  REQUIRE(decode(encode_event(ev), back).is_ok());
  CHECK(back.traits.first_name == "Ana \"Q\"");
  CHECK(back.traits.birthday == "1990-04-12");
  CHECK(back.traits.sms_opt_in == true);
  CHECK(back.timestamp == ev.timestamp);
}

TEST_CASE("replies are well-formed JSON with escaped text") {
  CHECK(encode_ack("m\"1") == R"({"type":"ack","messageId":"m\"1"})");
  CHECK(encode_error("", ErrorCode::kBadJson, "x") ==
        R"({"type":"error","messageId":null,"code":"bad_json","detail":"x"})");
  Action act;
  act.rule = "birthday";
  act.channel = "pos";
  act.text = "Happy birthday\n";
  act.offer_json = R"({"code":"BDAY"})";
  std::vector<Action> a{act};
  CHECK(
      encode_actions("m", a) ==
      R"({"type":"actions","messageId":"m","actions":[{"rule":"birthday","channel":"pos","text":"Happy birthday\n","offer":{"code":"BDAY"}}]})");
}

TEST_CASE("Segment spec spellings: product_id, order_id, revenue, a date-time birthday") {
  EventDecoder dec;
  auto run = [&](std::string json, Event& ev) { return decode_with(dec, std::move(json), ev); };
  Event ev;
  // As @segment/analytics-node 3.1.0 sends Segment's Order Completed example.
  REQUIRE(run(R"({"type":"track","event":"Order Completed","messageId":"s1","userId":"C1",
    "integrations":{},"context":{"library":{"name":"@segment/analytics-node","version":"3.1.0"}},
    "_metadata":{"jsRuntime":"node"},"properties":{"order_id":"50314b8e","revenue":25,
    "currency":"USD","products":[{"product_id":"507f1f77","sku":"45790-32","price":25,
    "quantity":1,"category":"Games"}]}})",
              ev)
              .is_ok());
  CHECK(ev.order_id == "50314b8e");
  CHECK(ev.total == 2500);  // revenue stands in for the missing total
  Event rev;
  // Segment's revenue leaves out tax and shipping: they are added back.
  REQUIRE(run(R"({"type":"track","event":"Order Completed","messageId":"s1b","userId":"C1",
    "properties":{"revenue":20,"tax":2,"shipping":3,"products":[{"product_id":"p","price":20,
    "quantity":1}]}})",
              rev)
              .is_ok());
  CHECK(rev.total == 2500);
  CHECK_FALSE(dec.last_total_mismatch());
  REQUIRE(ev.products.size() == 1);
  CHECK(ev.products[0].product_id == "507f1f77");
  CHECK_FALSE(dec.last_total_mismatch());
  // The camelCase name wins over the snake_case one when both are sent.
  REQUIRE(run(R"({"type":"track","event":"Product Viewed","messageId":"s2","userId":"C1",
    "properties":{"productId":"A","product_id":"B"}})",
              ev)
              .is_ok());
  REQUIRE(ev.products.size() == 1);
  CHECK(ev.products[0].product_id == "A");
  REQUIRE(run(R"({"type":"track","event":"Product Viewed","messageId":"s3","userId":"C1",
    "properties":{"product_id":"B"}})",
              ev)
              .is_ok());
  CHECK(ev.products[0].product_id == "B");
  // JavaScript's Date in traits: the date part is the birthday.
  REQUIRE(run(R"({"type":"identify","messageId":"s4","userId":"C1",
    "traits":{"birthday":"1990-11-26T00:00:00.000Z"}})",
              ev)
              .is_ok());
  CHECK(ev.traits.birthday == "1990-11-26");
  // Local midnight of UTC+2 and of UTC-5, as JSON.stringify(new Date(1990, 10, 26)) there.
  REQUIRE(run(R"({"type":"identify","messageId":"s4b","userId":"C1",
    "traits":{"birthday":"1990-11-25T22:00:00.000Z"}})",
              ev)
              .is_ok());
  CHECK(ev.traits.birthday == "1990-11-26");
  REQUIRE(run(R"({"type":"identify","messageId":"s4c","userId":"C1",
    "traits":{"birthday":"1990-11-26T05:00:00.000Z"}})",
              ev)
              .is_ok());
  CHECK(ev.traits.birthday == "1990-11-26");
  // Not a date either way: still an error, naming the field.
  auto s = run(R"({"type":"identify","messageId":"s5","userId":"C1",
    "traits":{"birthday":"1990-13-26T00:00:00.000Z"}})",
               ev);
  CHECK(s.code() == ErrorCode::kBadField);
  CHECK_THAT(s.detail(), Catch::Contains("traits.birthday"));
}

TEST_CASE("an order whose total does not add up to its lines is kept, with the stated total") {
  EventDecoder dec;
  auto run = [&](std::string json, Event& ev) { return decode_with(dec, std::move(json), ev); };
  Event ev;
  // A gift card: 20.00 paid against 50.00 of lines.
  REQUIRE(run(R"({"type":"track","event":"Order Completed","messageId":"g1","userId":"C1",
    "properties":{"total":20,"products":[{"productId":"p","price":50,"quantity":1}]}})",
              ev)
              .is_ok());
  CHECK(ev.total == 2000);
  CHECK(dec.last_total_mismatch());
  // Within max(5 cents, 1 %): not a mismatch; and the flag is per decode.
  REQUIRE(run(R"({"type":"track","event":"Order Completed","messageId":"g2","userId":"C1",
    "properties":{"total":50.4,"products":[{"productId":"p","price":50,"quantity":1}]}})",
              ev)
              .is_ok());
  CHECK_FALSE(dec.last_total_mismatch());
  // Data that cannot be used is still refused.
  CHECK(run(R"({"type":"track","event":"Order Completed","messageId":"g3","userId":"C1",
    "properties":{"products":[{"productId":"p","price":"x","quantity":1}]}})",
            ev)
            .code() == ErrorCode::kBadField);
  CHECK(run(R"({"type":"track","event":"Order Completed","messageId":"g4","userId":"C1",
    "properties":{"products":[{"productId":"p","price":5,"quantity":-1}]}})",
            ev)
            .code() == ErrorCode::kBadField);
}

TEST_CASE("every object is checked for repeated keys, with the key's full path") {
  // One walk over the document finds the fields the decoder reads and checks
  // the rest: a repeated key anywhere, read or not, is refused, and the error
  // names its path. The same message may be read by two readers (journal,
  // analytics): it must never mean two things.
  const std::string head =
      R"({"type":"track","messageId":"m","userId":"u","event":"Order Completed",)";
  std::string many_unknown = R"("properties":{"total":1,)";
  for (int i = 0; i < 20; ++i) many_unknown += fmt::format(R"("k{}":1,)", i);
  many_unknown += R"("k3":2})";
  std::string many_nested = R"("properties":{"total":1)";
  for (int i = 0; i < 9; ++i) many_nested += fmt::format(R"(,"n{}":{{"z":1}})", i);
  many_nested += R"(,"n9":{"z":1,"z":2}})";
  struct Case {
    std::string json;
    std::string detail;
  };
  const Case cases[] = {
      {R"({"type":"track","messageId":"m","userId":"a","userId":"b","event":"Card Swiped"})",
       "userId: duplicate key"},
      {head + R"("x":1,"x":2})", "x: duplicate key"},
      {R"({"type":"track","messageId":"m","userId":{"a":1,"a":2},"event":"Card Swiped"})",
       "userId.a: duplicate key"},
      {head + R"("context":{"campaign":{"name":"a","name":"b"}}})",
       "context.campaign.name: duplicate key"},
      {head + R"("context":{"campaign":{"extra":{"q":1,"q":2}}}})",
       "context.campaign.extra.q: duplicate key"},
      {head + R"("traits":{"email":"a@b.c","email":"d@e.f"}})", "traits.email: duplicate key"},
      {head +
           R"("properties":{"products":[{"productId":"p"},{"productId":"q","price":1,"price":2}]}})",
       "properties.products[1].price: duplicate key"},
      {head + R"("properties":{"products":[{"productId":"p"},[{"k":1,"k":2}]]}})",
       "properties.products[1][0].k: duplicate key"},
      {head + many_unknown + "}", "properties.k3: duplicate key"},
      {head + many_nested + "}", "properties.n9.z: duplicate key"},
      // This object's own keys are checked before the objects inside it.
      {R"({"context":{"a":1,"a":2},"type":"track","type":"page"})", "type: duplicate key"},
      {R"({"type":"track","messageId":"m","messageId":"n","userId":"u"})",
       "messageId: duplicate key"},
  };
  for (const auto& c : cases) {
    INFO(c.json);
    Event ev;
    auto s = decode(c.json, ev);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.code() == ErrorCode::kBadField);
    CHECK(s.detail() == c.detail);
  }

  SECTION("the error names the message when its id is not the repeated key") {
    Event ev;
    auto s = decode(head + R"("properties":{"total":1,"total":2}})", ev);
    REQUIRE_FALSE(s.is_ok());
    CHECK(ev.message_id == "m");
  }
  SECTION("items past max_products are checked too, and the array is refused") {
    DecodeLimits lim;
    lim.max_products = 2;
    EventDecoder dec(lim);
    Event ev;
    auto s = decode_with(
        dec, head + R"("properties":{"products":[{"sku":"a"},{"sku":"b"},{"a":1,"a":2}]}})", ev);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.detail() == "properties.products[2].a: duplicate key");
    s = decode_with(
        dec, head + R"("properties":{"products":[{"sku":"a"},{"sku":"b"},{"sku":"c"}]}})", ev);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.detail().find("more than 2 products") != std::string::npos);
    // The decoder is reusable after both: a valid message decodes whole.
    s = decode_with(dec, head + R"("properties":{"products":[{"sku":"a","price":1}]}})", ev);
    REQUIRE(s.is_ok());
    REQUIRE(ev.products.size() == 1);
    CHECK(ev.products[0].sku == "a");
  }
  SECTION("nesting past the cap inside an unread field is refused") {
    std::string deep = head + R"("properties":{"total":1,"x":)";
    for (int i = 0; i < 40; ++i) deep += "[";
    for (int i = 0; i < 40; ++i) deep += "]";
    deep += "}}";
    Event ev;
    auto s = decode(deep, ev);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.code() == ErrorCode::kBadJson);
    CHECK(s.detail().find("nested too deep") != std::string::npos);
  }
}
