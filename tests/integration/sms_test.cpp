// SMS end to end: the real server, a rule that texts on a card swipe, and a
// loopback HTTP gateway in this test. Checks the signed POST, a delivery
// receipt, forged / replayed / stale callbacks, and STOP turning consent off.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>

#include "storepulse/actions/sms_signature.hpp"
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
    std::string target, body, signature;
  };
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
      {
        std::lock_guard<std::mutex> lk(mu_);
        requests_.push_back({std::string(req.target()), req.body(),
                             std::string(req[actions::kSignatureHeader])});
      }
      cv_.notify_all();
      http::response<http::string_body> res(http::status::ok, 11);
      res.set(http::field::content_type, "application/json");
      res.body() = R"({"accepted":true})";
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
};

HttpReply post_signed(unsigned short port, const std::string& target, const std::string& body,
                      const std::string& signature) {
  asio::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  s.expires_after(std::chrono::seconds(20));
  http::request<http::string_body> req(http::verb::post, target, 11);
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  if (!signature.empty()) req.set(actions::kSignatureHeader, signature);
  req.body() = body;
  req.prepare_payload();
  http::write(s, req);
  beast::flat_buffer b;
  http::response<http::string_body> res;
  http::read(s, b, res);
  return {static_cast<int>(res.result_int()), res.body()};
}

std::string sign_now(const std::string& body, const std::string& secret = kSecret, std::int64_t skew_s = 0) {
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
gateway_url = "http://127.0.0.1:{}/send"
gateway_secret = "{}"
retry_base = "100ms"
rate_per_sec = 100.0
)", gateway.port(), kSecret);
    args = {"--config", dir / "sms.toml", "--rules", dir / "rules"};
  }
};

}  // namespace

TEST_CASE("sms: a rule's SMS reaches the gateway signed - receipts - forgeries - replays and STOP") {
  SmsSetup setup;
  ServerProcess srv(setup.dir / "data", setup.args);
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  CHECK(pos.request(R"({"type":"identify","messageId":"i-1","userId":"C42","traits":{"firstName":"Ana","phone":"+46 70 000 00 42","smsOptIn":true}})") ==
        R"({"type":"ack","messageId":"i-1"})");
  pos.request(R"({"type":"track","event":"Card Swiped","messageId":"sw-1","userId":"C42","context":{"storeId":"S1"}})");

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
  CHECK(sent.signature == "t=" + t + ",v1=" + actions::hmac_sha256_hex(kSecret, t + "." + sent.body));
  CHECK(std::llabs(std::stoll(t) - wall_clock_us() / kUsPerSecond) < 60);

  auto admin = [&] { return http_request(srv.port(), http::verb::get, "/v1/admin/sms", kAdminToken); };
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
  CHECK(post_signed(srv.port(), "/v1/sms/status", receipt, sign_now(receipt, "not-the-secret")).status == 403);
  CHECK(post_signed(srv.port(), "/v1/sms/status", receipt, "").status == 403);
  // Stale: signed correctly, but 10 minutes ago.
  CHECK(post_signed(srv.port(), "/v1/sms/status", receipt, sign_now(receipt, kSecret, -600)).status == 403);
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
  pos.request(R"({"type":"track","event":"Card Swiped","messageId":"sw-2","userId":"C42","context":{"storeId":"S1"}})");
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
  std::ofstream(dir / "rules/swipe-sms.yaml") << "rule: swipe-sms\non: Card Swiped\nthen:\n  - sms: \"Hello\"\n";
  std::ofstream(dir / "sms.toml") << "[sms]\nmax_outbox = 100\n";
  const std::vector<std::string> args = {"--config", dir / "sms.toml", "--rules", dir / "rules"};
  {
    ServerProcess srv(dir / "data", args);
    WsClient pos(srv.port(), "/v1/pos", kPosKey);
    REQUIRE(pos.ok());
    pos.request(R"({"type":"identify","messageId":"i-1","userId":"C7","traits":{"phone":"+46700000007","smsOptIn":true}})");
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
  CHECK(has(http_request(srv.port(), http::verb::get, "/v1/admin/sms", kAdminToken).body, R"("queued":1)"));
}
