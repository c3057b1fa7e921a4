// SMS routes without a server: keyword parsing, the admin view and the checks
// that happen before any state is touched.
#include "net/sms_routes.hpp"

#include <catch2/catch.hpp>

#include "storepulse/common/metrics.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::net;

TEST_CASE("sms inbound keywords: carrier opt-out words - case and blanks ignored") {
  for (const char* w :
       {"STOP", "stop", " Stop ", "STOPALL", "unsubscribe", "Cancel", "END", "quit", "stop."})
    CHECK(parse_inbound_keyword(w) == InboundKeyword::kStop);
  for (const char* w : {"START", "yes", "Unstop"})
    CHECK(parse_inbound_keyword(w) == InboundKeyword::kStart);
  for (const char* w : {"HELP", "info"}) CHECK(parse_inbound_keyword(w) == InboundKeyword::kHelp);
  // A sentence that mentions stop is not an opt-out keyword.
  for (const char* w : {"", "thanks", "please stop by tomorrow", "STOPP"})
    CHECK(parse_inbound_keyword(w) == InboundKeyword::kNone);
}

TEST_CASE("sms admin view: counts and a bounded list") {
  test::TempDir dir;
  actions::SmsOptions o;
  o.dir = dir / "sms";
  auto box = actions::SmsOutbox::open(o);
  REQUIRE(box.is_ok());
  for (int i = 0; i < 3; ++i)
    (*box)->submit(actions::SmsRequest{"r", "C" + std::to_string(i),
                                       "+4670000000" + std::to_string(i), "hi", 1});
  (*box)->pump();
  CHECK_FALSE(handle_sms_admin(box->get(), "/v1/admin/stats", ""));
  auto all = handle_sms_admin(box->get(), "/v1/admin/sms", "");
  REQUIRE(all);
  CHECK(all->status == 200);
  CHECK(all->body.find(R"("queued":3)") != std::string::npos);
  auto one = handle_sms_admin(box->get(), "/v1/admin/sms", "limit=1");
  REQUIRE(one);
  CHECK(one->body.find("\"customer\":\"C2\"") != std::string::npos);  // newest first
  CHECK(one->body.find("\"customer\":\"C1\"") == std::string::npos);
  CHECK(handle_sms_admin(box->get(), "/v1/admin/sms", "limit=abc")->status == 400);
  CHECK(handle_sms_admin(nullptr, "/v1/admin/sms", "")->status == 503);
}

TEST_CASE("sms twiml reply: text escaped - empty gives an empty Response") {
  CHECK(twiml_message("") == R"(<?xml version="1.0" encoding="UTF-8"?><Response/>)");
  CHECK(
      twiml_message(R"(Tom & Jerry <3 "ok")") ==
      R"(<?xml version="1.0" encoding="UTF-8"?><Response><Message>Tom &amp; Jerry &lt;3 &quot;ok&quot;</Message></Response>)");
}

TEST_CASE("sms metrics text: per-rule failures and dead numbers") {
  CHECK(render_sms_metrics(nullptr).empty());
  test::TempDir dir;
  actions::SmsOptions o;
  o.dir = dir / "sms";
  auto box = actions::SmsOutbox::open(o);
  REQUIRE(box.is_ok());
  const std::string text = render_sms_metrics(box->get());
  CHECK(text.find("# TYPE storepulse_sms_failed_total counter") != std::string::npos);
  CHECK(text.find("storepulse_sms_messages{state=\"queued\"} 0") != std::string::npos);
  CHECK(text.find("storepulse_sms_dead_numbers 0") != std::string::npos);
}
