// Twilio-compatible delivery: the form the outbox POSTs (To, From, Body,
// StatusCallback, basic auth), Twilio's answers and error codes, the
// X-Twilio-Signature scheme, receipts counted per rule and dead numbers.
#include "storepulse/actions/sms_twilio.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "storepulse/actions/sms_outbox.hpp"
#include "support/fake_sms_gateway.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::actions;

namespace {

// Independent of the code under test: OpenSSL's one-shot HMAC and its base64.
std::string reference_hmac_sha1_base64(const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  unsigned char out[64] = {};
  const int n = EVP_EncodeBlock(out, mac, static_cast<int>(len));
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
}

struct Fixture {
  test::TempDir dir;
  TimeUs now = 1'800'000'000LL * kUsPerSecond;
  test::FakeSmsGateway gw{201};  // Twilio answers 201 Created
  SmsOptions opts() {
    SmsOptions o;
    o.dir = dir / "sms";
    o.format = GatewayFormat::kTwilio;
    o.gateway_url = "http://127.0.0.1:1/2010-04-01/Accounts/AC123/Messages.json";
    o.account_sid = "AC0123456789abcdef0123456789abcdef";
    o.auth_token = "twilio-auth-token";
    o.from = "+15005550006";
    o.public_url = "https://pulse.example.com/";
    o.rate_per_sec = 1000;
    o.retry_max = 3;
    o.retry_base_us = 10 * kUsPerSecond;
    return o;
  }
  std::unique_ptr<SmsOutbox> open(SmsOptions o) {
    auto r = SmsOutbox::open(std::move(o), gw.transport(), [this] { return now; });
    REQUIRE(r.is_ok());
    return std::move(r).value();
  }
  std::unique_ptr<SmsOutbox> open() { return open(opts()); }
};

SmsRequest req(std::string customer, std::string phone, TimeUs at, std::string rule = "win-back") {
  return SmsRequest{std::move(rule), std::move(customer), std::move(phone),
                    "We miss you & 50% off!", at};
}

std::string sid_of(std::size_t i) {
  return fmt::format("SM{:032}", i);
}

}  // namespace

TEST_CASE("twilio signature: Twilio's documented example and an independent HMAC") {
  const std::string url = "https://mycompany.com/myapp.php?foo=1&bar=2";
  // Deliberately not sorted: the scheme sorts by name.
  FormParams params = {{"To", "+18005551212"},
                       {"Digits", "1234"},
                       {"CallSid", "CA1234567890ABCDE"},
                       {"From", "+12349013030"},
                       {"Caller", "+12349013030"}};
  const std::string expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
  CHECK(twilio_signature("12345", url, params) == expected);
  CHECK(reference_hmac_sha1_base64("12345",
                                   url + "CallSidCA1234567890ABCDECaller+12349013030Digits1234From+"
                                         "12349013030To+18005551212") == expected);
  // Any change to the URL, a value or the token breaks it.
  CHECK(twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", params) !=
        expected);
  params[1].second = "1235";
  CHECK(twilio_signature("12345", url, params) != expected);
  CHECK(constant_time_equal(expected, expected));
  CHECK_FALSE(constant_time_equal(expected, "0/KCTR6DLpKmkAf8muzZqo1nDgQ"));
  CHECK_FALSE(constant_time_equal(expected, "1/KCTR6DLpKmkAf8muzZqo1nDgQ="));
}

TEST_CASE("form encoding round trip and refusals") {
  const FormParams p = {{"To", "+46 70 000"}, {"Body", "Hi Ana & co: 50% off = ä!"}, {"Empty", ""}};
  const std::string enc = form_encode(p);
  CHECK(enc ==
        "To=%2B46%2070%20000&Body=Hi%20Ana%20%26%20co%3A%2050%25%20off%20%3D%20%C3%A4%21&Empty=");
  auto back = parse_form(enc);
  REQUIRE(back.is_ok());
  CHECK(*back == p);
  auto plus = parse_form("Body=Hello+there&From=%2B4670");
  REQUIRE(plus.is_ok());
  CHECK(form_value(*plus, "Body") == "Hello there");
  CHECK(form_value(*plus, "From") == "+4670");
  CHECK(form_value(*plus, "Nope").empty());
  CHECK_FALSE(parse_form("Body=%zz").is_ok());
  CHECK_FALSE(parse_form("Body=%4").is_ok());
  CHECK_FALSE(parse_form("=x").is_ok());
  CHECK_FALSE(parse_form("a=1&b=2&c=3", 2).is_ok());
  CHECK(base64_encode("AC1:tok") == "QUMxOnRvaw==");
}

TEST_CASE("twilio answers and error codes") {
  auto ok = parse_twilio_answer(R"({"sid":"SM123","status":"queued","to":"+1"})");
  CHECK(ok.sid == "SM123");
  CHECK(ok.status == "queued");
  CHECK(ok.code == 0);
  auto err = parse_twilio_answer(
      R"({"code":21211,"message":"The 'To' number +1 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400})");
  CHECK(err.code == 21211);
  CHECK(err.message.find("not a valid phone number") != std::string::npos);
  CHECK(parse_twilio_answer("<html>Bad Gateway</html>").code == 0);
  for (int c : {21211, 21614, 30003, 30005, 30006}) CHECK(twilio_dead_number_code(c));
  for (int c : {0, 21610, 30007, 20003}) CHECK_FALSE(twilio_dead_number_code(c));
  CHECK(receipt_status_from_twilio("delivered") == ReceiptStatus::kDelivered);
  CHECK(receipt_status_from_twilio("undelivered") == ReceiptStatus::kUndelivered);
  CHECK(receipt_status_from_twilio("failed") == ReceiptStatus::kFailed);
  CHECK(receipt_status_from_twilio("sent") == ReceiptStatus::kInProgress);
  CHECK(join_public_url("https://a.example/", "/v1/sms/status?id=1") ==
        "https://a.example/v1/sms/status?id=1");
}

TEST_CASE(
    "twilio: the outbox POSTs To - From - Body - StatusCallback with basic auth and keeps the "
    "sid") {
  Fixture f;
  auto box = f.open();
  const SmsRequest r = req("C1", "+46 70-000 00 01", 1000);
  box->submit(r);
  CHECK(box->pump() == 1);
  REQUIRE(f.gw.requests.size() == 1);
  const GatewayRequest& sent = f.gw.requests[0];
  CHECK(sent.content_type == "application/x-www-form-urlencoded");
  CHECK(sent.header("Authorization") ==
        "Basic " + base64_encode("AC0123456789abcdef0123456789abcdef:twilio-auth-token"));
  const std::string id = SmsOutbox::message_id(r, f.now);
  CHECK(sent.header("Idempotency-Key") == id);
  CHECK(sent.header(kSignatureHeader).empty());
  auto form = parse_form(sent.body);
  REQUIRE(form.is_ok());
  CHECK(form_value(*form, "To") == "+46700000001");
  CHECK(form_value(*form, "From") == "+15005550006");
  CHECK(form_value(*form, "Body") == "We miss you & 50% off!");
  CHECK(form_value(*form, "StatusCallback") == "https://pulse.example.com/v1/sms/status?id=" + id);
  auto m = box->find(id);
  REQUIRE(m);
  CHECK(m->state == SmsState::kSent);
  CHECK(m->gateway_sid == sid_of(0));
  // A receipt that names only Twilio's sid finds the message.
  Receipt rc;
  rc.gateway_sid = sid_of(0);
  rc.status = ReceiptStatus::kInProgress;
  CHECK(box->on_receipt(rc) == ReceiptResult::kUnchanged);
  rc.status = ReceiptStatus::kDelivered;
  CHECK(box->on_receipt(rc) == ReceiptResult::kUpdated);
  CHECK(box->find(id)->state == SmsState::kDelivered);
  CHECK(box->status_json(5).find(R"("gatewaySid":")" + sid_of(0)) != std::string::npos);
  // A Messaging Service as sender goes in MessagingServiceSid.
  auto o = f.opts();
  o.from = "MG0123456789abcdef0123456789abcdef";
  o.dir = f.dir / "sms2";
  auto box2 = f.open(o);
  box2->submit(req("C2", "+46700000002", 1000));
  box2->pump();
  auto form2 = parse_form(f.gw.requests.back().body);
  REQUIRE(form2.is_ok());
  CHECK(form_value(*form2, "MessagingServiceSid") == "MG0123456789abcdef0123456789abcdef");
  CHECK(form_value(*form2, "From").empty());
}

TEST_CASE("twilio: 500 then 201 sends exactly one message with the same idempotency key") {
  Fixture f;
  f.gw.script = {500, 503};
  f.gw.answers = {R"({"code":20500,"message":"Internal Server Error","status":500})", ""};
  auto box = f.open();
  const SmsRequest r = req("C1", "+46700000001", 1000);
  const std::string id = SmsOutbox::message_id(r, f.now);
  box->submit(r);
  CHECK(box->pump() == 1);
  auto m = box->find(id);
  REQUIRE(m);
  CHECK(m->state == SmsState::kQueued);
  CHECK(m->last_error == "gateway answered 500 (error 20500: Internal Server Error)");
  for (int i = 0; i < 2; ++i) {
    f.now = box->find(id)->next_attempt_us;
    CHECK(box->pump() == 1);
  }
  CHECK(box->find(id)->state == SmsState::kSent);
  CHECK(f.gw.requests.size() == 3);
  for (const auto& q : f.gw.requests) CHECK(q.header("Idempotency-Key") == id);
  CHECK(box->counts().sent == 1);
  CHECK(box->counts().retries == 2);
}

TEST_CASE("twilio: a permanent 4xx is not retried - 21211 marks the number dead") {
  Fixture f;
  f.gw.script = {400};
  f.gw.answers = {
      R"({"code":21211,"message":"The 'To' number +4670 is not a valid phone number.","status":400})"};
  auto box = f.open();
  const SmsRequest r = req("C1", "+46700000001", 1000);
  box->submit(r);
  box->pump();
  f.now += 3600 * kUsPerSecond;
  box->pump();
  CHECK(f.gw.requests.size() == 1);  // no retry
  auto m = box->find(SmsOutbox::message_id(r, f.now));
  REQUIRE(m);
  CHECK(m->state == SmsState::kFailed);
  CHECK(m->attempts == 1);
  CHECK(m->last_error.find("error 21211") != std::string::npos);
  CHECK(box->is_dead("+46 70 000 00 01"));
  // Later SMS to it are suppressed and counted, for any rule.
  box->submit(req("C1", "+46700000001", 2000, "birthday"));
  box->pump();
  CHECK(f.gw.requests.size() == 1);
  const auto c = box->counts();
  CHECK(c.dead_numbers == 1);
  CHECK(c.dead_number == 1);
  CHECK(c.delivery_failed == 1);
  const auto stats = box->rule_stats();
  REQUIRE(stats.size() == 2);
  CHECK(stats[0].first == "birthday");
  CHECK(stats[0].second.dead_number == 1);
  CHECK(stats[1].first == "win-back");
  CHECK(stats[1].second.failed == 1);
  CHECK(box->recent(1)[0].last_error == "dead_number");
}

TEST_CASE("twilio: 21610 unsubscribed puts the phone on the STOP list") {
  Fixture f;
  f.gw.script = {400};
  f.gw.answers = {
      R"({"code":21610,"message":"Attempt to send to unsubscribed recipient","status":400})"};
  auto box = f.open();
  box->submit(req("C1", "+46700000001", 1000));
  box->pump();
  CHECK(box->is_suppressed("+46700000001"));
  CHECK_FALSE(box->is_dead("+46700000001"));
  CHECK(box->counts().opted_out == 1);
  CHECK(box->counts().delivery_failed == 0);
}

TEST_CASE(
    "twilio: failed and undelivered receipts count against the rule - undelivered twice is dead") {
  Fixture f;
  auto box = f.open();
  auto send = [&](const std::string& customer, const std::string& phone, TimeUs at,
                  const std::string& rule) {
    const SmsRequest r = req(customer, phone, at, rule);
    box->submit(r);
    box->pump();
    return SmsOutbox::message_id(r, f.now);
  };
  const std::string a = send("C1", "+46700000001", 1000, "win-back");
  Receipt r;
  r.id = a;
  r.status = ReceiptStatus::kUndelivered;
  CHECK(box->on_receipt(r) == ReceiptResult::kUpdated);
  CHECK(box->on_receipt(r) == ReceiptResult::kUnchanged);  // a repeat counts once
  CHECK_FALSE(box->is_dead("+46700000001"));               // one strike
  const std::string b = send("C1", "+46700000001", 2000, "win-back");
  r.id = b;
  CHECK(box->on_receipt(r) == ReceiptResult::kUpdated);
  CHECK(box->is_dead("+46700000001"));  // undelivered twice
  // A delivery in between clears the strike.
  const std::string c1 = send("C2", "+46700000002", 1000, "birthday");
  r.id = c1;
  box->on_receipt(r);
  const std::string c2 = send("C2", "+46700000002", 2000, "birthday");
  Receipt ok;
  ok.id = c2;
  ok.status = ReceiptStatus::kDelivered;
  box->on_receipt(ok);
  const std::string c3 = send("C2", "+46700000002", 3000, "birthday");
  r.id = c3;
  box->on_receipt(r);
  CHECK_FALSE(box->is_dead("+46700000002"));
  // A dead-number code in a failed receipt is dead at once.
  const std::string d = send("C3", "+46700000003", 1000, "birthday");
  Receipt dead;
  dead.id = d;
  dead.status = ReceiptStatus::kFailed;
  dead.error_code = 30006;
  dead.detail = "failed";
  CHECK(box->on_receipt(dead) == ReceiptResult::kUpdated);
  CHECK(box->find(d)->last_error == "failed (error 30006)");
  CHECK(box->is_dead("+46700000003"));
  const auto stats = box->rule_stats();
  REQUIRE(stats.size() == 2);
  CHECK(stats[0].first == "birthday");
  CHECK(stats[0].second.failed == 3);  // c1, c3, d
  CHECK(stats[1].second.failed == 2);  // a, b
  const std::string json = box->status_json(1);
  CHECK(json.find(R"("win-back":{"sms_failed":2,"dead_number":0})") != std::string::npos);
  CHECK(json.find(R"("deadNumbers":2)") != std::string::npos);
}

TEST_CASE("twilio: dead numbers and gateway sids survive a reopen - the dead set is bounded") {
  Fixture f;
  auto o = f.opts();
  o.max_dead_numbers = 3;
  std::string id;
  {
    auto box = f.open(o);
    f.gw.script = {201, 400};
    f.gw.answers = {R"({"sid":"SMabc","status":"queued"})",
                    R"({"code":30005,"message":"Unknown destination handset","status":400})"};
    const SmsRequest r = req("C1", "+46700000001", 1000);
    box->submit(r);
    box->pump();
    id = SmsOutbox::message_id(r, f.now);
    box->submit(req("C9", "+46700000009", 1000));
    box->pump();
    CHECK(box->is_dead("+46700000009"));
    box->stop();
  }
  {
    auto box = f.open(o);
    CHECK(box->is_dead("+46700000009"));
    REQUIRE(box->find(id));
    // The sid came back with the message: a sid-only receipt still finds it.
    f.gw.requests.clear();
    f.gw.answers.clear();
    f.gw.script.clear();
    Receipt r;
    r.gateway_sid = box->find(id)->gateway_sid;
    r.status = ReceiptStatus::kDelivered;
    CHECK(r.gateway_sid == "SMabc");
    CHECK(box->on_receipt(r) == ReceiptResult::kUpdated);
    // Bounded: the oldest entries go first.
    for (int i = 0; i < 4; ++i) {
      Receipt d;
      const SmsRequest q = req("D" + std::to_string(i), "+4670000010" + std::to_string(i), 5000);
      box->submit(q);
      box->pump();
      d.id = SmsOutbox::message_id(q, f.now);
      d.status = ReceiptStatus::kFailed;
      d.error_code = 30003;
      box->on_receipt(d);
    }
    CHECK(box->counts().dead_numbers == 3);
    CHECK_FALSE(box->is_dead("+46700000009"));
    CHECK(box->is_dead("+46700000103"));
  }
}

TEST_CASE("twilio callback dedupe window: once per key - bounded - forgettable") {
  CallbackDeduper d(60 * kUsPerSecond, 5);
  const TimeUs t = 1'800'000'000LL * kUsPerSecond;
  CHECK(d.first("status|SM1|delivered", t));
  CHECK_FALSE(d.first("status|SM1|delivered", t + 1));
  CHECK(d.first("status|SM1|failed", t + 2));  // another status of the same message is news
  d.forget("status|SM1|failed");
  CHECK(d.first("status|SM1|failed", t + 3));
  CHECK_FALSE(d.first("status|SM1|delivered", t + 59 * kUsPerSecond));
  CHECK(d.first("status|SM1|delivered", t + 61 * kUsPerSecond));  // outside the window
  for (int i = 0; i < 10; ++i) d.first("k" + std::to_string(i), t + 62 * kUsPerSecond);
  CHECK(d.size() <= 5);
}
