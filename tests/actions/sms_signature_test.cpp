// Callback signatures: HMAC-SHA256 over "t.body", a ±5 minute window, and
// replays of an accepted signature refused inside it.
#include "storepulse/actions/sms_signature.hpp"

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "storepulse/actions/sms_gateway.hpp"

using namespace storepulse;
using namespace storepulse::actions;

TEST_CASE("hmac-sha256 matches the RFC 4231 test vector") {
  // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
  CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("callback verifier: good - forged - stale - replayed - malformed") {
  const TimeUs now = 1'800'000'000LL * kUsPerSecond;
  const std::int64_t t = now / kUsPerSecond;
  CallbackVerifier v("s3cret");
  const std::string body = R"({"id":"sms-1","status":"delivered"})";
  const std::string good = sign_request("s3cret", t, body);
  CHECK(v.verify(good, body, now) == SignatureCheck::kOk);
  CHECK(v.verify(good, body, now) == SignatureCheck::kReplayed);
  CHECK(v.verify(sign_request("other", t, body), body, now) == SignatureCheck::kBadSignature);
  // The body is covered: changing it breaks the signature.
  CHECK(v.verify(sign_request("s3cret", t + 1, body), R"({"id":"sms-2","status":"delivered"})",
                 now) == SignatureCheck::kBadSignature);
  // Outside ±5 minutes.
  CHECK(v.verify(sign_request("s3cret", t - 301, body), body, now) == SignatureCheck::kStale);
  CHECK(v.verify(sign_request("s3cret", t + 301, body), body, now) == SignatureCheck::kStale);
  CHECK(v.verify(sign_request("s3cret", t - 299, body), body, now) == SignatureCheck::kOk);
  CHECK(v.verify("", body, now) == SignatureCheck::kMissing);
  CHECK(v.verify("v1=abc,t=1", body, now) == SignatureCheck::kMalformed);
  CHECK(v.verify(fmt::format("t={},v1=zz", t), body, now) == SignatureCheck::kMalformed);
  CallbackVerifier none("");
  CHECK(none.verify(good, body, now) == SignatureCheck::kNoSecret);
}

TEST_CASE("gateway url parsing") {
  auto u = parse_gateway_url("http://127.0.0.1:9000/sms/send?x=1");
  REQUIRE(u.is_ok());
  CHECK_FALSE(u->tls);
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == "9000");
  CHECK(u->target == "/sms/send?x=1");
  auto s = parse_gateway_url("https://sms.example.com");
  REQUIRE(s.is_ok());
  CHECK(s->tls);
  CHECK(s->port == "443");
  CHECK(s->target == "/");
  CHECK_FALSE(parse_gateway_url("ftp://x").is_ok());
  CHECK_FALSE(parse_gateway_url("http://user:pw@host/").is_ok());
  CHECK_FALSE(parse_gateway_url("http://host:abc/").is_ok());
}
