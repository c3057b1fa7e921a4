// SmsOutbox: state machine, retries with backoff, idempotency, the bound,
// persistence across reopen and STOP suppression. A fake clock and a fake
// gateway make every step deterministic; pump() is what the sender thread runs.
#include "storepulse/actions/sms_outbox.hpp"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>
#include <vector>

#include "support/fake_sms_gateway.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::actions;

namespace {

struct Fixture {
  test::TempDir dir;
  TimeUs now = 1'800'000'000LL * kUsPerSecond;
  test::FakeSmsGateway gw;  // 200 once its script is used up
  GatewayFormat format = GatewayFormat::kJson;
  SmsOptions opts() {
    SmsOptions o;
    o.dir = dir / "sms";
    o.format = format;
    o.gateway_secret = "shared-secret";
    o.account_sid = "AC0123456789abcdef0123456789abcdef";
    o.auth_token = "twilio-auth-token";
    o.from = "+15005550006";
    o.public_url = "https://pulse.example.com";
    o.rate_per_sec = 1000;
    o.retry_max = 3;
    o.retry_base_us = 10 * kUsPerSecond;
    return o;
  }
  std::unique_ptr<SmsOutbox> open(SmsOptions o, bool with_gateway = true) {
    auto r = SmsOutbox::open(std::move(o), with_gateway ? gw.transport() : SmsTransport{},
                             [this] { return now; });
    REQUIRE(r.is_ok());
    return std::move(r).value();
  }
  std::unique_ptr<SmsOutbox> open() { return open(opts()); }
};

SmsRequest req(std::string customer, std::string phone, TimeUs at, std::string rule = "win-back") {
  return SmsRequest{std::move(rule), std::move(customer), std::move(phone), "We miss you!", at};
}

}  // namespace

TEST_CASE("sms: queued -> sent -> delivered - with a signed {id - to - text} body") {
  Fixture f;
  auto box = f.open();
  const SmsRequest r = req("C1", "+46 70-000 00 01", 1000);
  box->submit(r);
  CHECK(box->pump() == 1);
  REQUIRE(f.gw.bodies.size() == 1);
  const std::string id = SmsOutbox::message_id(r, f.now);
  CHECK(f.gw.bodies[0] == R"({"id":")" + id + R"(","to":"+46700000001","text":"We miss you!"})");
  // The signature covers the timestamp and the exact body.
  const std::int64_t t = f.now / kUsPerSecond;
  CHECK(f.gw.signatures[0] ==
        fmt::format("t={},v1={}", t,
                    hmac_sha256_hex("shared-secret", fmt::format("{}.{}", t, f.gw.bodies[0]))));
  REQUIRE(box->find(id));
  CHECK(box->find(id)->state == SmsState::kSent);
  CHECK(box->on_receipt(id, true, "") == ReceiptResult::kUpdated);
  CHECK(box->find(id)->state == SmsState::kDelivered);
  // A repeated or contradicting receipt does not change the final word.
  CHECK(box->on_receipt(id, false, "late") == ReceiptResult::kUnchanged);
  CHECK(box->find(id)->state == SmsState::kDelivered);
  CHECK(box->on_receipt("sms-nope", true, "") == ReceiptResult::kUnknown);
  const auto c = box->counts();
  CHECK(c.delivered == 1);
  CHECK(c.queued == 0);
}

TEST_CASE("sms: a failed receipt marks the message failed") {
  Fixture f;
  auto box = f.open();
  const SmsRequest r = req("C1", "+46700000001", 1000);
  box->submit(r);
  box->pump();
  const std::string id = SmsOutbox::message_id(r, f.now);
  CHECK(box->on_receipt(id, false, "unreachable") == ReceiptResult::kUpdated);
  CHECK(box->find(id)->state == SmsState::kFailed);
  CHECK(box->find(id)->last_error == "unreachable");
}

TEST_CASE("sms: transport errors and 5xx are retried with exponential backoff - then fail") {
  Fixture f;
  f.gw.script = {0, 503, 500};
  auto box = f.open();
  const SmsRequest r = req("C1", "+46700000001", 1000);
  const std::string id = SmsOutbox::message_id(r, f.now);
  box->submit(r);
  CHECK(box->pump() == 1);  // attempt 1: no answer
  auto m = box->find(id);
  REQUIRE(m);
  CHECK(m->state == SmsState::kQueued);
  CHECK(m->attempts == 1);
  CHECK(m->last_error == "connection refused");
  // First delay: base 10 s with ±20 % jitter.
  const TimeUs d1 = m->next_attempt_us - f.now;
  CHECK(d1 >= 8 * kUsPerSecond);
  CHECK(d1 <= 12 * kUsPerSecond);
  CHECK(box->pump() == 0);  // not due yet
  f.now = m->next_attempt_us;
  CHECK(box->pump() == 1);  // attempt 2: 503
  m = box->find(id);
  const TimeUs d2 = m->next_attempt_us - f.now;
  CHECK(d2 >= 16 * kUsPerSecond);  // doubled
  CHECK(d2 <= 24 * kUsPerSecond);
  f.now = m->next_attempt_us;
  CHECK(box->pump() == 1);  // attempt 3: 500, and retry_max = 3
  m = box->find(id);
  CHECK(m->state == SmsState::kFailed);
  CHECK(m->attempts == 3);
  CHECK(m->last_error == "gave up after 3 attempts: gateway answered 500");
  CHECK(box->counts().retries == 2);
}

TEST_CASE("sms: a 4xx other than 429 is permanent - a 429 is retried") {
  Fixture f;
  f.gw.script = {429, 200, 400};
  auto box = f.open();
  const SmsRequest a = req("C1", "+46700000001", 1000);
  box->submit(a);
  box->pump();
  CHECK(box->find(SmsOutbox::message_id(a, f.now))->state == SmsState::kQueued);
  f.now += 60 * kUsPerSecond;
  box->pump();
  CHECK(box->find(SmsOutbox::message_id(a, f.now))->state == SmsState::kSent);
  const SmsRequest b = req("C2", "+46700000002", 1000);
  box->submit(b);
  box->pump();
  CHECK(box->find(SmsOutbox::message_id(b, f.now))->state == SmsState::kFailed);
  CHECK(box->find(SmsOutbox::message_id(b, f.now))->attempts == 1);
}

TEST_CASE("sms: the same firing submitted twice is sent once") {
  Fixture f;
  auto box = f.open();
  box->submit(req("C1", "+46700000001", 1000));
  box->submit(req("C1", "+46700000001", 1000));
  box->pump();
  box->submit(req("C1", "+46700000001", 1000));  // replayed after it was sent
  box->pump();
  CHECK(f.gw.bodies.size() == 1);
  CHECK(box->counts().duplicates == 2);
  // Another event time, rule or customer is another message.
  box->submit(req("C1", "+46700000001", 2000));
  box->submit(req("C1", "+46700000001", 1000, "abandoned-cart"));
  box->submit(req("C2", "+46700000001", 1000));
  box->pump();
  CHECK(f.gw.bodies.size() == 4);
}

TEST_CASE("sms: without a gateway messages stay queued - bounded and visible") {
  Fixture f;
  auto o = f.opts();
  o.max_outbox = 3;
  auto box = f.open(o, false);
  for (int i = 0; i < 5; ++i)
    box->submit(req(fmt::format("C{}", i), "+4670000000" + std::to_string(i), 1000));
  CHECK(box->pump() == 0);
  const auto c = box->counts();
  CHECK(c.queued == 3);
  CHECK(c.dropped_full == 2);
  CHECK(c.accepted == 3);
  const std::string json = box->status_json(10);
  CHECK(json.find(R"("gateway":false)") != std::string::npos);
  CHECK(json.find(R"("queued":3)") != std::string::npos);
  CHECK(json.find(R"("droppedFull":2)") != std::string::npos);
  // Phones are masked on the admin view.
  CHECK(json.find("+46700000001") == std::string::npos);
  CHECK(json.find(R"("to":"***001")") != std::string::npos);
}

TEST_CASE("sms: the rate limit spreads sends over time") {
  Fixture f;
  auto o = f.opts();
  o.rate_per_sec = 2;
  auto box = f.open(o);
  for (int i = 0; i < 5; ++i)
    box->submit(req(fmt::format("C{}", i), "+4670000000" + std::to_string(i), 1000));
  CHECK(box->pump() == 2);  // burst of 2
  CHECK(box->pump() == 0);
  f.now += kUsPerSecond;
  CHECK(box->pump() == 2);
  f.now += kUsPerSecond / 2;
  CHECK(box->pump() == 1);
}

TEST_CASE("sms: queue - states - STOP list and contacts survive a reopen") {
  Fixture f;
  std::string sent_id, queued_id;
  {
    auto box = f.open();
    const SmsRequest a = req("C1", "+46700000001", 1000);
    box->submit(a);
    box->pump();
    sent_id = SmsOutbox::message_id(a, f.now);
    f.gw.script = {200, 503};
    const SmsRequest b = req("C2", "+46700000002", 1000);
    box->submit(b);
    box->pump();  // 503: queued for a retry
    queued_id = SmsOutbox::message_id(b, f.now);
    box->opt_out("+46 70 000 00 03");
    box->stop();
  }
  auto box = f.open();
  REQUIRE(box->find(sent_id));
  CHECK(box->find(sent_id)->state == SmsState::kSent);
  REQUIRE(box->find(queued_id));
  CHECK(box->find(queued_id)->state == SmsState::kQueued);
  CHECK(box->find(queued_id)->attempts == 1);
  CHECK(box->is_suppressed("+46700000003"));
  CHECK(box->customer_for_phone("+46700000002") == std::optional<std::string>("C2"));
  // The same firing is still a duplicate after the restart.
  box->submit(req("C1", "+46700000001", 1000));
  f.now += 3600 * kUsPerSecond;
  box->pump();
  CHECK(box->counts().duplicates == 1);
  CHECK(box->find(queued_id)->state == SmsState::kSent);  // the retry went out
  // A receipt for a message sent before the restart still lands.
  CHECK(box->on_receipt(sent_id, true, "") == ReceiptResult::kUpdated);
}

TEST_CASE("sms: STOP suppresses at once - for known and unknown customers - START lifts it") {
  Fixture f;
  auto box = f.open();
  const SmsRequest a = req("C1", "+46700000001", 1000);
  box->submit(a);
  box->pump();
  // Known customer: STOP returns who it was.
  CHECK(box->opt_out("+46700000001") == std::optional<std::string>("C1"));
  // Unknown number: nothing to return, but it still holds.
  CHECK_FALSE(box->opt_out("+46700000009"));
  // A message queued before the STOP (gateway down) fails instead of going out.
  f.gw.script = {200, 0};
  box->submit(req("C9", "+46700000008", 1000));
  box->pump();  // attempt 1 fails: queued for retry
  box->opt_out("+46700000008");
  f.now += 3600 * kUsPerSecond;
  const std::size_t before = f.gw.bodies.size();
  box->submit(req("C1", "+46700000001", 5000));
  box->submit(req("C7", "+46700000009", 5000));
  box->pump();
  CHECK(f.gw.bodies.size() == before);    // nothing sent to any stopped phone
  for (const auto& m : box->recent(3)) {  // the stopped C9 and the two refused at submit
    CHECK(m.state == SmsState::kFailed);
    CHECK(m.last_error == "opted_out");
  }
  CHECK(box->counts().opted_out == 3);
  CHECK(box->opt_in("+46700000001") == std::optional<std::string>("C1"));
  CHECK_FALSE(box->is_suppressed("+46700000001"));
  box->submit(req("C1", "+46700000001", 9000));
  box->pump();
  CHECK(f.gw.bodies.size() == before + 1);
}

TEST_CASE("sms: the journal is compacted and keeps only the live state") {
  Fixture f;
  auto o = f.opts();
  o.keep_finished = 50;
  {
    auto box = f.open(o);
    for (int i = 0; i < 12'000; ++i) {
      box->submit(
          req("C" + std::to_string(i % 100), "+4670000" + std::to_string(1000 + i % 100), i + 1));
      if (i % 500 == 0) {
        box->pump();
        f.now += 10 * kUsPerSecond;
      }
    }
    box->pump();
    CHECK(box->counts().sent == 50);  // only the newest keep_finished are kept
    CHECK(box->counts().queued == 0);
    CHECK(f.gw.bodies.size() == 12'000);
    box->stop();
  }
  std::uintmax_t bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(f.dir / "sms")) bytes += e.file_size();
  // Uncompacted, 12 000 messages with their states are ~2.6 MB of records
  // (~125 B message + ~90 B state each).
  CHECK(bytes < 1'000'000);
  auto box = f.open(o);
  CHECK(box->counts().sent == 50);
  CHECK(box->counts().queued == 0);
  CHECK(box->customer_for_phone("+46700001042") == std::optional<std::string>("C42"));
}

TEST_CASE("sms: a sender thread delivers what shard threads submit") {
  Fixture f;
  auto o = f.opts();
  auto r = SmsOutbox::open(o, f.gw.transport());  // wall clock
  REQUIRE(r.is_ok());
  auto box = std::move(r).value();
  box->start();
  std::vector<std::thread> shards;
  for (int s = 0; s < 4; ++s)
    shards.emplace_back([&, s] {
      for (int i = 0; i < 25; ++i)
        box->submit(req(fmt::format("C{}-{}", s, i), "+4670000" + std::to_string(s * 100 + i), 1));
    });
  for (auto& t : shards) t.join();
  for (int i = 0; i < 200 && box->counts().sent < 100; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  box->stop();
  CHECK(box->counts().sent == 100);
}
