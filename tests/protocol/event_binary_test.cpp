#include "storepulse/protocol/event_binary.hpp"

#include <catch2/catch.hpp>

#include "storepulse/protocol/codec.hpp"

using namespace storepulse;
using namespace storepulse::protocol;

namespace {
const TimeUs kNow = *parse_iso8601("2026-11-26T12:00:00Z");

Event decoded(std::string json) {
  static EventDecoder dec;
  json.reserve(json.size() + decode_padding());
  Event ev;
  REQUIRE(dec.decode(json, kNow, ev).is_ok());
  return ev;
}

// Every field the decoder fills, compared one by one (Event has no operator==).
void check_same(const Event& a, const Event& b) {
  CHECK(a.type == b.type);
  CHECK(a.name == b.name);
  CHECK(a.channel == b.channel);
  CHECK(a.timestamp == b.timestamp);
  CHECK(a.message_id == b.message_id);
  CHECK(a.user_id == b.user_id);
  CHECK(a.anonymous_id == b.anonymous_id);
  CHECK(a.previous_id == b.previous_id);
  CHECK(a.store_id == b.store_id);
  CHECK(a.terminal_id == b.terminal_id);
  CHECK(a.campaign == b.campaign);
  CHECK(a.timezone == b.timezone);
  CHECK(a.order_id == b.order_id);
  CHECK(a.currency == b.currency);
  CHECK(a.promotion_id == b.promotion_id);
  CHECK(a.url == b.url);
  CHECK(a.total == b.total);
  CHECK(a.discount == b.discount);
  CHECK(a.has_total == b.has_total);
  CHECK(a.traits.first_name == b.traits.first_name);
  CHECK(a.traits.last_name == b.traits.last_name);
  CHECK(a.traits.birthday == b.traits.birthday);
  CHECK(a.traits.gender == b.traits.gender);
  CHECK(a.traits.phone == b.traits.phone);
  CHECK(a.traits.email == b.traits.email);
  CHECK(a.traits.postal_code == b.traits.postal_code);
  CHECK(a.traits.home_store == b.traits.home_store);
  CHECK(a.traits.sms_opt_in == b.traits.sms_opt_in);
  REQUIRE(a.products.size() == b.products.size());
  for (std::size_t i = 0; i < a.products.size(); ++i) {
    const Product &p = a.products[i], &q = b.products[i];
    CHECK(p.product_id == q.product_id);
    CHECK(p.sku == q.sku);
    CHECK(p.name == q.name);
    CHECK(p.category == q.category);
    CHECK(p.brand == q.brand);
    CHECK(p.size == q.size);
    CHECK(p.promo == q.promo);
    CHECK(p.price == q.price);
    CHECK(p.quantity == q.quantity);
  }
}

const char* kOrder = R"({"type":"track","event":"Order Completed","messageId":"m1","userId":"C1",
    "anonymousId":"v9","timestamp":"2026-11-26T10:00:00Z",
    "context":{"channel":"pos","storeId":"S1","terminalId":"T4","timezone":"Europe/Paris",
               "campaign":{"name":"winter"}},
    "traits":{"email":"c1@example.com","smsOptIn":false},
    "properties":{"orderId":"o1","currency":"EUR","total":59.90,"discount":5,"products":[
      {"productId":"p1","sku":"k1","name":"Dress","category":"Dresses","brand":"Acme","price":32.45,
       "quantity":2,"size":"M","promo":"X"},
      {"productId":"p2","name":"Belt \u00e9","category":"Belts","price":0,"quantity":1}]}})";
const char* kIdentify = R"({"type":"identify","messageId":"m2","userId":"C2",
    "traits":{"firstName":"Ana","lastName":"Lu","birthday":"1990-02-03","gender":"f",
              "phone":"+447700900123","postalCode":"N1","homeStore":"S2","smsOptIn":true}})";
const char* kPage = R"({"type":"page","messageId":"m3","anonymousId":"v1",
    "context":{"channel":"web"},"properties":{"url":"https://shop.example/a?b=c"}})";
}  // namespace

TEST_CASE("a decoded event survives the binary form field for field") {
  for (const char* json : {kOrder, kIdentify, kPage}) {
    INFO(json);
    const Event ev = decoded(json);
    std::string bin;
    encode_event_binary(ev, bin);
    Event back;
    REQUIRE(decode_event_binary(bin, back).is_ok());
    check_same(back, ev);
  }
}

TEST_CASE("decoding into a reused Event overwrites every field of the previous one") {
  // Recovery reuses one Event: an identify after an order must not keep the
  // order's products, total or ids.
  std::string order, identify;
  encode_event_binary(decoded(kOrder), order);
  encode_event_binary(decoded(kIdentify), identify);
  Event ev;
  REQUIRE(decode_event_binary(order, ev).is_ok());
  REQUIRE(ev.products.size() == 2);
  REQUIRE(decode_event_binary(identify, ev).is_ok());
  check_same(ev, decoded(kIdentify));
}

TEST_CASE("the binary form is smaller than the wire JSON") {
  std::string bin;
  encode_event_binary(decoded(kOrder), bin);
  CHECK(bin.size() < std::string_view(kOrder).size() / 2);
}

TEST_CASE("a damaged or foreign binary event is an error, never a partial event") {
  std::string bin;
  encode_event_binary(decoded(kOrder), bin);
  Event ev;
  SECTION("every truncation is refused") {
    for (std::size_t n = 0; n < bin.size(); ++n) {
      INFO(n);
      CHECK_FALSE(decode_event_binary(std::string_view(bin).substr(0, n), ev).is_ok());
    }
  }
  SECTION("bytes after the last field") {
    bin.push_back('\0');
    auto s = decode_event_binary(bin, ev);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.detail().find("after the last field") != std::string::npos);
  }
  SECTION("a newer version names itself") {
    bin[0] = static_cast<char>(kEventBinaryVersion + 1);
    auto s = decode_event_binary(bin, ev);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.code() == ErrorCode::kInternal);
    CHECK(s.detail().find("version 2") != std::string::npos);
  }
  SECTION("enums out of range") {
    for (std::size_t at : {1u, 2u, 3u}) {
      std::string bad = bin;
      bad[at] = 99;
      auto s = decode_event_binary(bad, ev);
      REQUIRE_FALSE(s.is_ok());
      CHECK(s.code() == ErrorCode::kBadField);
    }
  }
  SECTION("a product count larger than the bytes left") {
    // The count is the byte before the first product: "m1" ... find it by re-encoding
    // with no products and comparing lengths.
    Event none = decoded(kOrder);
    none.products.clear();
    std::string head;
    encode_event_binary(none, head);
    std::string bad = head;
    bad.back() = 0x7f;  // 127 products announced, none follow
    CHECK_FALSE(decode_event_binary(bad, ev).is_ok());
  }
}
