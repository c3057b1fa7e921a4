// SMS end to end: the real server, a rule that texts on a card swipe, and a
// loopback HTTP gateway in this test. Twilio format: the form POST with basic
// auth, retries on 500, X-Twilio-Signature callbacks (forged, replayed), failed
// receipts per rule, dead numbers, STOP / START / HELP with TwiML. JSON format:
// the signed POST, a delivery receipt, forged / replayed / stale callbacks, and
// STOP turning consent off.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <fstream>
#include <mutex>

#include "storepulse/actions/sms_signature.hpp"
#include "storepulse/actions/sms_twilio.hpp"
#include "storepulse/common/time.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::test;
namespace http = boost::beast::http;

namespace {

constexpr const char* kSecret = "test-sms-secret-0001";

/// A one-thread HTTP server on a free loopback port that records every POST.
class FakeGateway {
 public:
  struct Request {
    std::string target, body, signature, content_type, authorization, idempotency_key;
  };
  struct Answer {
    int status = 200;
    std::string body = R"({"accepted":true})";
  };
  /// Answers for the next requests, in order; then the default answer.
  void script(std::vector<Answer> answers, Answer otherwise) {
    std::lock_guard<std::mutex> lk(mu_);
    script_ = std::move(answers);
    otherwise_ = std::move(otherwise);
  }
  FakeGateway() : acceptor_(ioc_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeGateway() {
    stop_ = true;
    beast::error_code ec;
    // Wake the blocking accept with a connection of our own.
    asio::ip::tcp::socket s(ioc_);
    s.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  /// Waits until at least `n` requests arrived; returns what there is.
  std::vector<Request> wait_for(std::size_t n, int seconds = 15) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, std::chrono::seconds(seconds), [&] { return requests_.size() >= n; });
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      asio::ip::tcp::socket sock(ioc_);
      beast::error_code ec;
      acceptor_.accept(sock, ec);
      if (ec || stop_) return;
      beast::flat_buffer buf;
      http::request<http::string_body> req;
      http::read(sock, buf, req, ec);
      if (ec) continue;
      Answer answer;
      {
        std::lock_guard<std::mutex> lk(mu_);
        const std::size_t i = requests_.size();
        answer = i < script_.size() ? script_[i] : otherwise_;
        requests_.push_back(
            {std::string(req.target()), req.body(), std::string(req[actions::kSignatureHeader]),
             std::string(req[http::field::content_type]),
             std::string(req[http::field::authorization]), std::string(req["Idempotency-Key"])});
      }
      cv_.notify_all();
      http::response<http::string_body> res(static_cast<http::status>(answer.status), 11);
      res.set(http::field::content_type, "application/json");
      res.body() = answer.body;
      res.prepare_payload();
      http::write(sock, res, ec);
    }
  }
  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request> requests_;
  std::vector<Answer> script_;
  Answer otherwise_;
};

HttpReply post_signed(unsigned short port, const std::string& target, const std::string& body,
                      const std::string& signature) {
  http::request<http::string_body> req(http::verb::post, target, 11);
  req.set(http::field::content_type, "application/json");
  if (!signature.empty()) req.set(actions::kSignatureHeader, signature);
  req.body() = body;
  return http_send(port, std::move(req));
}

std::string sign_now(const std::string& body, const std::string& secret = kSecret,
                     std::int64_t skew_s = 0) {
  return actions::sign_request(secret, wall_clock_us() / kUsPerSecond + skew_s, body);
}

std::string field(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\":\"");
  if (at == std::string::npos) return {};
  const auto start = at + key.size() + 4;
  return json.substr(start, json.find('"', start) - start);
}

struct SmsSetup {
  TempDir dir;
  FakeGateway gateway;
  std::vector<std::string> args;
  /// The JSON format (X-StorePulse-Signature both ways).
  SmsSetup() {
    std::filesystem::create_directories(dir / "rules");
    std::ofstream(dir / "rules/swipe-sms.yaml") << R"(rule: swipe-sms
description: Texts a member who swipes their card (test rule).
on: Card Swiped
then:
  - sms: "Hi {traits.firstName|there}, thanks for visiting!"
priority: 10
enabled: true
)";
    std::ofstream(dir / "sms.toml") << fmt::format(R"([sms]
gateway_format = "json"
gateway_url = "http://127.0.0.1:{}/send"
gateway_secret = "{}"
retry_base = "100ms"
rate_per_sec = 100.0
)",
                                                   gateway.port(), kSecret);
    args = {"--config", dir / "sms.toml", "--rules", dir / "rules"};
  }
};

}  // namespace

TEST_CASE(
    "sms: a rule's SMS reaches the gateway signed - receipts - forgeries - replays and STOP") {
  SmsSetup setup;
  ServerProcess srv(setup.dir / "data", setup.args);
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  CHECK(
      pos.request(
          R"({"type":"identify","messageId":"i-1","userId":"C42","traits":{"firstName":"Ana","phone":"+46 70 000 00 42","smsOptIn":true}})") ==
      R"({"type":"ack","messageId":"i-1"})");
  pos.request(
      R"({"type":"track","event":"Card Swiped","messageId":"sw-1","userId":"C42","context":{"storeId":"S1"}})");

  // 1. The gateway gets a signed {id,to,text}.
  auto got = setup.gateway.wait_for(1);
  REQUIRE(got.size() == 1);
  const auto& sent = got[0];
  CHECK(sent.target == "/send");
  CHECK(has(sent.body, R"("to":"+46700000042")"));
  CHECK(has(sent.body, R"("text":"Hi Ana, thanks for visiting!")"));
  const std::string id = field(sent.body, "id");
  REQUIRE(id.rfind("sms-", 0) == 0);
  const auto t = sent.signature.substr(2, sent.signature.find(',') - 2);
  CHECK(sent.signature ==
        "t=" + t + ",v1=" + actions::hmac_sha256_hex(kSecret, t + "." + sent.body));
  CHECK(std::llabs(std::stoll(t) - wall_clock_us() / kUsPerSecond) < 60);

  auto admin = [&] {
    return http_request(srv.port(), http::verb::get, "/v1/admin/sms", kAdminToken);
  };
  // The gateway has the request; the outbox records the 200 a moment later.
  auto a1 = admin();
  for (int i = 0; i < 250 && a1.status == 200 && !has(a1.body, R"("sent":1)"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    a1 = admin();
  }
  REQUIRE(a1.status == 200);
  CHECK(has(a1.body, R"("sent":1)"));
  CHECK(has(a1.body, "\"id\":\"" + id + "\""));
  CHECK(http_request(srv.port(), http::verb::get, "/v1/admin/sms").status == 401);

  // 2. A forged receipt changes nothing.
  const std::string receipt = R"({"id":")" + id + R"(","status":"delivered"})";
  CHECK(post_signed(srv.port(), "/v1/sms/status", receipt, sign_now(receipt, "not-the-secret"))
            .status == 403);
  CHECK(post_signed(srv.port(), "/v1/sms/status", receipt, "").status == 403);
  // Stale: signed correctly, but 10 minutes ago.
  CHECK(
      post_signed(srv.port(), "/v1/sms/status", receipt, sign_now(receipt, kSecret, -600)).status ==
      403);
  CHECK(has(admin().body, R"("delivered":0)"));

  // 3. A signed receipt moves it to delivered; the same request again is a replay.
  const std::string sig = sign_now(receipt);
  auto r = post_signed(srv.port(), "/v1/sms/status", receipt, sig);
  CHECK(r.status == 200);
  CHECK(has(admin().body, R"("delivered":1)"));
  CHECK(post_signed(srv.port(), "/v1/sms/status", receipt, sig).status == 403);

  // 4. STOP from the phone (written differently) turns consent off at once.
  const std::string stop = R"({"from":"+46700000042","text":" Stop "})";
  auto s = post_signed(srv.port(), "/v1/sms/inbound", stop, sign_now(stop));
  CHECK(s.status == 200);
  CHECK(has(s.body, R"("keyword":"stop")"));
  CHECK(has(s.body, R"("customerKnown":true)"));
  std::string profile;
  for (int i = 0; i < 100; ++i) {
    profile = http_request(srv.port(), http::verb::get, "/v1/profiles/C42", kAdminToken).body;
    if (has(profile, R"("consent":{"sms":false})")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(has(profile, R"("consent":{"sms":false})"));
  // The next swipe texts nobody.
  pos.request(
      R"({"type":"track","event":"Card Swiped","messageId":"sw-2","userId":"C42","context":{"storeId":"S1"}})");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(setup.gateway.wait_for(2, 0).size() == 1);

  // STOP from a number we never texted still lands on the suppression list.
  const std::string stop2 = R"({"from":"+46700000099","text":"UNSUBSCRIBE"})";
  auto s2 = post_signed(srv.port(), "/v1/sms/inbound", stop2, sign_now(stop2));
  CHECK(s2.status == 200);
  CHECK(has(s2.body, R"("customerKnown":false)"));
  CHECK(has(admin().body, R"("suppressedPhones":2)"));
  // HELP gets the help text back.
  const std::string help = R"({"from":"+46700000099","text":"help"})";
  auto h = post_signed(srv.port(), "/v1/sms/inbound", help, sign_now(help));
  CHECK(h.status == 200);
  CHECK(has(h.body, R"("reply":")"));
}

TEST_CASE("sms: without a gateway SMS stay queued and visible - and survive a restart") {
  TempDir dir;
  std::filesystem::create_directories(dir / "rules");
  std::ofstream(dir / "rules/swipe-sms.yaml")
      << "rule: swipe-sms\non: Card Swiped\nthen:\n  - sms: \"Hello\"\n";
  std::ofstream(dir / "sms.toml") << "[sms]\nmax_outbox = 100\n";
  const std::vector<std::string> args = {"--config", dir / "sms.toml", "--rules", dir / "rules"};
  {
    ServerProcess srv(dir / "data", args);
    WsClient pos(srv.port(), "/v1/pos", kPosKey);
    REQUIRE(pos.ok());
    pos.request(
        R"({"type":"identify","messageId":"i-1","userId":"C7","traits":{"phone":"+46700000007","smsOptIn":true}})");
    pos.request(R"({"type":"track","event":"Card Swiped","messageId":"sw-1","userId":"C7"})");
    std::string body;
    for (int i = 0; i < 100 && !has(body, R"("queued":1)"); ++i) {
      body = http_request(srv.port(), http::verb::get, "/v1/admin/sms", kAdminToken).body;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(has(body, R"("queued":1)"));
    CHECK(has(body, R"("gateway":false)"));
    // Callbacks are refused outright when no secret is configured.
    const std::string receipt = R"({"id":"x","status":"delivered"})";
    CHECK(post_signed(srv.port(), "/v1/sms/status", receipt, sign_now(receipt)).status == 403);
  }
  ServerProcess srv(dir / "data", args);
  CHECK(has(http_request(srv.port(), http::verb::get, "/v1/admin/sms", kAdminToken).body,
            R"("queued":1)"));
}

namespace {

constexpr const char* kAccountSid = "ACtest0000000000000000000000000001";
constexpr const char* kAuthToken = "twilio-test-auth-token";
constexpr const char* kPublicUrl = "https://pulse.example.com";
constexpr const char* kFromNumber = "+15005550006";
constexpr const char* kHelpText = "StorePulse demo: call 555-0100 for help.";

using Params = std::vector<std::pair<std::string, std::string>>;

std::string b64(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

/// Twilio's scheme computed here with OpenSSL directly, not with the server's code.
std::string twilio_sign(const std::string& url, Params params,
                        const std::string& token = kAuthToken) {
  std::sort(params.begin(), params.end());
  std::string data = url;
  for (const auto& [k, v] : params) data += k + v;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), token.data(), static_cast<int>(token.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return b64(std::string(reinterpret_cast<const char*>(mac), len));
}

HttpReply post_form(unsigned short port, const std::string& target, const Params& params,
                    const std::string& signature) {
  // Host is 127.0.0.1 (http_send): a proxy's Host is not what Twilio signed, sms.public_url is.
  http::request<http::string_body> req(http::verb::post, target, 11);
  req.set(http::field::content_type, "application/x-www-form-urlencoded");
  if (!signature.empty()) req.set(actions::kTwilioSignatureHeader, signature);
  req.body() = actions::form_encode(params);
  return http_send(port, std::move(req));
}

struct EnvVar {
  std::string name;
  EnvVar(std::string n, const char* value) : name(std::move(n)) {
    ::setenv(name.c_str(), value, 1);
  }
  ~EnvVar() { ::unsetenv(name.c_str()); }
};

std::string wait_admin(unsigned short port, const std::string& part) {
  std::string body;
  for (int i = 0; i < 250; ++i) {
    body = http_request(port, http::verb::get, "/v1/admin/sms", kAdminToken).body;
    if (has(body, part)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return body;
}

std::string wait_profile(unsigned short port, const std::string& id, const std::string& part) {
  std::string body;
  for (int i = 0; i < 100; ++i) {
    body = http_request(port, http::verb::get, "/v1/profiles/" + id, kAdminToken).body;
    if (has(body, part)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return body;
}

}  // namespace

TEST_CASE(
    "sms twilio: form POST with basic auth - one message after a 500 - signed callbacks - dead "
    "numbers - STOP START HELP") {
  TempDir dir;
  FakeGateway gateway;
  const std::string gateway_sid = "SM00000000000000000000000000000a01";
  gateway.script({{500, R"({"code":20500,"message":"Internal Server Error","status":500})"}},
                 {201, R"({"sid":")" + gateway_sid + R"(","status":"queued"})"});
  std::filesystem::create_directories(dir / "rules");
  std::ofstream(dir / "rules/swipe-sms.yaml") << R"(rule: swipe-sms
description: Texts a member who swipes their card (test rule).
on: Card Swiped
then:
  - sms: "Hi {traits.firstName|there}, thanks for visiting!"
priority: 10
)";
  const std::string messages_path =
      fmt::format("/2010-04-01/Accounts/{}/Messages.json", kAccountSid);
  std::ofstream(dir / "sms.toml") << fmt::format(R"([sms]
gateway_format = "twilio"
gateway_url = "http://127.0.0.1:{}{}"
from = "{}"
public_url = "{}"
help_text = "{}"
retry_base = "100ms"
rate_per_sec = 100.0
)",
                                                 gateway.port(), messages_path, kFromNumber,
                                                 kPublicUrl, kHelpText);
  // Credentials from the environment, as in production.
  EnvVar sid_env("STOREPULSE_SMS_ACCOUNT_SID", kAccountSid);
  EnvVar token_env("STOREPULSE_SMS_AUTH_TOKEN", kAuthToken);
  ServerProcess srv(dir / "data", {"--config", dir / "sms.toml", "--rules", dir / "rules"});
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  CHECK(
      pos.request(
          R"({"type":"identify","messageId":"i-1","userId":"C42","traits":{"firstName":"Ana","phone":"+46 70 000 00 42","smsOptIn":true}})") ==
      R"({"type":"ack","messageId":"i-1"})");
  pos.request(
      R"({"type":"track","event":"Card Swiped","messageId":"sw-1","userId":"C42","context":{"storeId":"S1"}})");

  // 1. A 500, then the retry is accepted: two POSTs, one message, one idempotency key.
  auto got = gateway.wait_for(2);
  REQUIRE(got.size() == 2);
  const std::string id = got[0].idempotency_key;
  REQUIRE(id.rfind("sms-", 0) == 0);
  for (const auto& r : got) {
    CHECK(r.target == messages_path);
    CHECK(r.content_type == "application/x-www-form-urlencoded");
    CHECK(r.authorization == "Basic " + b64(std::string(kAccountSid) + ":" + kAuthToken));
    CHECK(r.idempotency_key == id);
    CHECK(r.signature.empty());
  }
  auto form = actions::parse_form(got[1].body);
  REQUIRE(form.is_ok());
  CHECK(actions::form_value(*form, "To") == "+46700000042");
  CHECK(actions::form_value(*form, "From") == kFromNumber);
  CHECK(actions::form_value(*form, "Body") == "Hi Ana, thanks for visiting!");
  const std::string status_target = "/v1/sms/status?id=" + id;
  CHECK(actions::form_value(*form, "StatusCallback") == std::string(kPublicUrl) + status_target);
  auto admin = wait_admin(srv.port(), R"("sent":1)");
  CHECK(has(admin, R"("sent":1)"));
  CHECK(has(admin, R"("format":"twilio")"));
  CHECK(has(admin, R"("attempts":2,"retries":1)"));
  CHECK(has(admin, "\"gatewaySid\":\"" + gateway_sid + "\""));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(gateway.wait_for(3, 0).size() == 2);

  // 2. Inbound texts: a forged STOP changes nothing; STOP, START, HELP answer TwiML.
  const Params stop = {{"MessageSid", "SM00000000000000000000000000000b01"},
                       {"AccountSid", kAccountSid},
                       {"From", "+46700000042"},
                       {"To", kFromNumber},
                       {"Body", " Stop "},
                       {"NumMedia", "0"}};
  const std::string inbound_url = std::string(kPublicUrl) + "/v1/sms/inbound";
  CHECK(post_form(srv.port(), "/v1/sms/inbound", stop,
                  twilio_sign(inbound_url, stop, "not-the-token"))
            .status == 403);
  CHECK(post_form(srv.port(), "/v1/sms/inbound", stop, "").status == 403);
  // Signed for the URL the request reached (Host header), not the public one.
  CHECK(post_form(srv.port(), "/v1/sms/inbound", stop,
                  twilio_sign(fmt::format("http://127.0.0.1:{}/v1/sms/inbound", srv.port()), stop))
            .status == 403);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(has(http_request(srv.port(), http::verb::get, "/v1/profiles/C42", kAdminToken).body,
            R"("consent":{"sms":true})"));
  CHECK(has(http_request(srv.port(), http::verb::get, "/v1/admin/sms", kAdminToken).body,
            R"("suppressedPhones":0)"));
  auto s = post_form(srv.port(), "/v1/sms/inbound", stop, twilio_sign(inbound_url, stop));
  CHECK(s.status == 200);
  CHECK(has(s.body, "<Response><Message>You are unsubscribed"));
  CHECK(has(wait_profile(srv.port(), "C42", R"("consent":{"sms":false})"),
            R"("consent":{"sms":false})"));
  CHECK(has(http_request(srv.port(), http::verb::get, "/v1/admin/sms", kAdminToken).body,
            R"("suppressedPhones":1)"));
  // The same callback again (a Twilio retry or a replay) is answered and ignored.
  auto again = post_form(srv.port(), "/v1/sms/inbound", stop, twilio_sign(inbound_url, stop));
  CHECK(again.status == 200);
  CHECK(has(again.body, "<Response/>"));
  Params start = stop;
  start[0].second = "SM00000000000000000000000000000b02";
  start[4].second = "start";
  auto st = post_form(srv.port(), "/v1/sms/inbound", start, twilio_sign(inbound_url, start));
  CHECK(st.status == 200);
  CHECK(has(st.body, "<Message>You are subscribed again"));
  CHECK(has(wait_profile(srv.port(), "C42", R"("consent":{"sms":true})"),
            R"("consent":{"sms":true})"));
  Params help = stop;
  help[0].second = "SM00000000000000000000000000000b03";
  help[4].second = "Help";
  auto h = post_form(srv.port(), "/v1/sms/inbound", help, twilio_sign(inbound_url, help));
  CHECK(h.status == 200);
  CHECK(h.body == std::string(R"(<?xml version="1.0" encoding="UTF-8"?><Response><Message>)") +
                      kHelpText + "</Message></Response>");

  // 3. Receipts: forged ones change nothing; `undelivered` 30003 counts against
  // the rule and marks the number dead; a replay does not count twice.
  const Params receipt = {
      {"MessageSid", gateway_sid},      {"SmsSid", gateway_sid},      {"AccountSid", kAccountSid},
      {"MessageStatus", "undelivered"}, {"SmsStatus", "undelivered"}, {"ErrorCode", "30003"},
      {"To", "+46700000042"},           {"From", kFromNumber},        {"ApiVersion", "2010-04-01"}};
  const std::string status_url = std::string(kPublicUrl) + status_target;
  CHECK(post_form(srv.port(), status_target, receipt,
                  twilio_sign(status_url, receipt, "not-the-token"))
            .status == 403);
  CHECK(post_form(srv.port(), status_target, receipt, "").status == 403);
  Params tampered = receipt;
  tampered[5].second = "30008";
  CHECK(post_form(srv.port(), status_target, tampered, twilio_sign(status_url, receipt)).status ==
        403);
  // Signed for another message's callback URL.
  CHECK(post_form(srv.port(), status_target, receipt,
                  twilio_sign(std::string(kPublicUrl) + "/v1/sms/status?id=x", receipt))
            .status == 403);
  admin = http_request(srv.port(), http::verb::get, "/v1/admin/sms", kAdminToken).body;
  CHECK(has(admin, R"("failed":0)"));
  CHECK(has(admin, R"("rules":{})"));
  auto r1 = post_form(srv.port(), status_target, receipt, twilio_sign(status_url, receipt));
  CHECK(r1.status == 200);
  CHECK(has(r1.body, R"("changed":true)"));
  auto r2 = post_form(srv.port(), status_target, receipt, twilio_sign(status_url, receipt));
  CHECK(r2.status == 200);
  CHECK(has(r2.body, R"("duplicate":true)"));
  admin = http_request(srv.port(), http::verb::get, "/v1/admin/sms", kAdminToken).body;
  CHECK(has(admin, R"("failed":1)"));
  CHECK(has(admin, R"("rules":{"swipe-sms":{"sms_failed":1,"dead_number":0}})"));
  CHECK(has(admin, R"("deadNumbers":1)"));
  CHECK(has(admin, R"(undelivered (error 30003))"));
  auto metrics = http_request(srv.port(), http::verb::get, "/metrics").body;
  CHECK(has(metrics, "storepulse_sms_failed_total{rule=\"swipe-sms\"} 1\n"));
  CHECK(has(metrics, "storepulse_sms_dead_numbers 1\n"));

  // 4. Another member with the same (dead) number: the rule fires, nothing is sent.
  pos.request(
      R"({"type":"identify","messageId":"i-2","userId":"C43","traits":{"phone":"+46700000042","smsOptIn":true}})");
  pos.request(
      R"({"type":"track","event":"Card Swiped","messageId":"sw-2","userId":"C43","context":{"storeId":"S1"}})");
  admin = wait_admin(srv.port(), R"("deadNumber":1)");
  CHECK(has(admin, R"("deadNumber":1)"));
  CHECK(has(admin, R"("swipe-sms":{"sms_failed":1,"dead_number":1})"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(gateway.wait_for(3, 0).size() == 2);
  CHECK(has(http_request(srv.port(), http::verb::get, "/metrics").body,
            "storepulse_sms_suppressed_total{reason=\"dead_number\"} 1\n"));
}
