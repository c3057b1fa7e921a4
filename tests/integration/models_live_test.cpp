// Live models against the real server: profiles pick up P(alive), expected
// purchases, CLV and segment on purchases; recommendations and the cross-sell
// rule read the basket model; a changed model file is reloaded while running
// and a bad one leaves the previous model in place.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "storepulse/common/time.hpp"
#include "storepulse/models/basket_model.hpp"
#include "storepulse/models/clv_model.hpp"
#include "storepulse/models/segment_model.hpp"
#include "storepulse/rules/rule_book.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::test;

namespace {

models::ClvModel clv_model(double r) {
  models::ClvModel m;
  m.bgnbd = {r, 4.4136019, 0.7929199, 2.4258881, 0};  // CDNOW's BG/NBD (r varied per test)
  m.gamma_gamma = {6.25, 3.74, 15.44, 0, 946};
  m.time_unit_days = 7;
  m.meta.fitted_on = "test";
  return m;
}

std::string basket_json() {
  models::BasketModel m;
  auto rule = [&](const std::string& lhs, const std::string& rhs, double conf) {
    models::BasketModelRule r;
    r.lhs.push_back(m.intern(lhs));
    r.rhs = m.intern(rhs);
    r.confidence = conf;
    r.lift = 3;
    m.add_rule(std::move(r));
  };
  rule("pasta", "parmesan", 0.8);
  rule("pasta", "tomatoes", 0.6);
  m.build_index();
  return models::basket_model_json(m);
}

std::string segment_json() {
  models::SegmentModel m;
  m.mean.fill(0);
  m.sd.fill(1);
  m.segment_names = {"supermarket-type", "brand-loyal"};
  models::FeatureVector w0{}, w1{};
  w0[models::kFeatLogBasketUnits] = 5;
  w1[models::kFeatBrandConcentration] = 1;
  m.centroids = {w0, w1};
  m.lda_weights = {w0, w1};
  m.lda_intercepts = {0, 0};
  m.new_member_orders = 3;
  return models::segment_model_json(m);
}

std::string order(const std::string& id, const std::string& user, const std::string& product,
                  int day) {
  // Days before now, so every order is inside the event-time window.
  const TimeUs t = wall_clock_us() - static_cast<TimeUs>(60 - day) * kUsPerDay;
  return fmt::format(
      R"({{"type":"track","event":"Order Completed","messageId":"{}","userId":"{}","timestamp":"{}",
    "properties":{{"total":12,"products":[{{"productId":"{}","category":"Food","brand":"Casa","price":4,"quantity":3}}]}}}})",
      id, user, format_iso8601(t), product);
}

std::string profile_json(unsigned short port, const std::string& id) {
  return http_request(port, http::verb::get, "/v1/profiles/" + id, kAdminToken).body;
}

double number_after(const std::string& body, const std::string& key) {
  auto at = body.find("\"" + key + "\":");
  REQUIRE(at != std::string::npos);
  return std::stod(body.substr(at + key.size() + 3));
}

}  // namespace

TEST_CASE(
    "live models: profile fields and recommendations follow the model files - hot reload "
    "included") {
  TempDir data, models_dir;
  std::filesystem::create_directories(models_dir.str());
  ServerProcess srv(data.str(), {"--models", models_dir.str()});
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  // Other shoppers make parmesan and olives popular (the fallback's best sellers).
  for (int i = 0; i < 3; ++i) {
    CHECK(
        has(pos.request(order(fmt::format("o-{}", i), fmt::format("X{}", i), "olives", 1)), "ack"));
    CHECK(has(pos.request(order(fmt::format("p-{}", i), fmt::format("Y{}", i), "parmesan", 1)),
              "ack"));
  }
  for (int d : {10, 20, 30})
    CHECK(has(pos.request(order(fmt::format("c1-{}", d), "C1", "pasta", d)), "ack"));

  // No models yet: nothing set, recommendations come from categories/popularity.
  std::string body = profile_json(srv.port(), "C1");
  CHECK(has(body, R"("segment":null)"));
  CHECK(has(body, R"("pAlive":0.0000)"));
  CHECK(has(body, R"("expectedPurchases90d":0.0000)"));
  WsClient web(srv.port(), "/v1/web");
  REQUIRE(web.ok());
  const std::string rec = R"({"type":"recommend","userId":"C1","limit":2})";
  std::string before = web.request(rec);
  CHECK_FALSE(has(before, "bought together"));
  CHECK_FALSE(has(before, R"("productId":"pasta")"));  // never what was just bought

  // Models appear while the server runs: the next purchase is scored.
  REQUIRE(models::write_file_atomic(models_dir / "clv.json",
                                    models::clv_model_json(clv_model(0.2425945)))
              .is_ok());
  REQUIRE(models::write_file_atomic(models_dir / "baskets.json", basket_json()).is_ok());
  REQUIRE(models::write_file_atomic(models_dir / "segments.json", segment_json()).is_ok());
  double p_alive = 0;
  int n = 0;
  // The watcher may catch the folder between two writes: wait for the last one (segments).
  for (; n < 40 && (p_alive == 0 || !has(body, "supermarket-type"));
       ++n) {  // reload poll is 250 ms
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(has(pos.request(order(fmt::format("c1-r{}", n), "C1", "pasta", 40)), "ack"));
    body = profile_json(srv.port(), "C1");
    p_alive = number_after(body, "pAlive");
  }
  INFO(body);
  CHECK(n <= 25);
  CHECK(p_alive > 0);
  CHECK(p_alive <= 1);
  CHECK(number_after(body, "expectedPurchases90d") > 0);
  CHECK(number_after(body, "clv") > 0);
  CHECK(has(body, R"("segment":"supermarket-type")"));  // 3 units an order pulls to it

  std::string after = web.request(rec);
  CHECK(has(after, R"("productId":"parmesan")"));
  CHECK(has(after, R"("productId":"tomatoes")"));
  CHECK(has(after, "bought together with pasta"));
  CHECK(after.find("parmesan") < after.find("tomatoes"));  // higher confidence first

  // A bad model file: logged, the previous model keeps scoring.
  {
    std::ofstream f(models_dir / "clv.json", std::ios::trunc);
    f << R"({"format":"storepulse.model.clv/9"})";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  CHECK(has(pos.request(order("c1-bad", "C1", "pasta", 41)), "ack"));
  body = profile_json(srv.port(), "C1");
  CHECK(number_after(body, "pAlive") > 0);

  // A new good model replaces it: the values change.
  const double clv_before = number_after(body, "clv");
  REQUIRE(models::write_file_atomic(models_dir / "clv.json", models::clv_model_json(clv_model(2.5)))
              .is_ok());
  double clv_now = clv_before;
  for (n = 0; n < 40 && clv_now == clv_before; ++n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(has(pos.request(order(fmt::format("c1-n{}", n), "C1", "pasta", 41)), "ack"));
    clv_now = number_after(profile_json(srv.port(), "C1"), "clv");
  }
  CHECK(n <= 25);
  CHECK(clv_now != clv_before);
}

TEST_CASE(
    "live models: P(alive) is read as of now - a customer who stayed away for a year has fallen") {
  TempDir data, models_dir, rules_dir;
  std::filesystem::create_directories(models_dir.str());
  const models::ClvModel m = clv_model(0.2425945);
  REQUIRE(models::write_file_atomic(models_dir / "clv.json", models::clv_model_json(m)).is_ok());
  // Fires at the till for a lapsed customer: reads P(alive) at the swipe, not
  // the value scored at the last order (which was high then).
  std::ofstream(rules_dir / "lapsed.yaml") << "rule: lapsed-at-till\non: Card Swiped\n"
                                              "if: p_alive > 0 and p_alive < 0.5\n"
                                              "then:\n  - pos: \"Welcome back\"\nenabled: true\n";
  ServerProcess srv(data.str(), {"--models", models_dir.str(), "--rules", rules_dir.str()});
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  // Three purchase days 400, 390 and 380 days ago (order() counts back from day 60).
  for (int d : {-340, -330, -320})
    REQUIRE(has(pos.request(order(fmt::format("lap-{}", d), "L1", "pasta", d)), "ack"));
  // At the last order: x = 2 repeat days, t_x = T = 20 days.
  const double at_order = models::bgnbd_p_alive(m.bgnbd, 2, 20.0 / 7, 20.0 / 7);
  // Now: T = 400 days (a day either way with the clock).
  const double now_want = models::bgnbd_p_alive(m.bgnbd, 2, 20.0 / 7, 400.0 / 7);
  REQUIRE(at_order > 0.5);
  REQUIRE(now_want < 0.2);
  const std::string body = profile_json(srv.port(), "L1");
  INFO(body);
  CHECK(number_after(body, "pAlive") == Approx(now_want).margin(0.01));
  CHECK(number_after(body, "expectedPurchases90d") <
        models::bgnbd_expected_purchases(m.bgnbd, 90.0 / 7, 2, 20.0 / 7, 20.0 / 7));
  const std::string r = pos.request(
      R"({"type":"track","event":"Card Swiped","messageId":"lap-swipe","userId":"L1"})");
  INFO(r);
  CHECK(has(r, R"("rule":"lapsed-at-till")"));
  // A customer who bought yesterday is not lapsed: no action.
  for (int d : {50, 55, 59})
    REQUIRE(has(pos.request(order(fmt::format("act-{}", d), "A1", "pasta", d)), "ack"));
  CHECK_FALSE(
      has(pos.request(
              R"({"type":"track","event":"Card Swiped","messageId":"act-swipe","userId":"A1"})"),
          "lapsed-at-till"));
}

TEST_CASE("live models: the cross-sell offer at the till names the basket rule its text names") {
  TempDir data, models_dir;
  REQUIRE(models::write_file_atomic(models_dir / "baskets.json", basket_json()).is_ok());
  ServerProcess srv(data.str(), {"--models", models_dir.str()});
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  // A member outside the shipped cross-sell rule's holdout, who bought pasta:
  // pasta -> parmesan (confidence 0.8) is the best basket rule for them.
  auto shipped = rules::load_rules(std::string(STOREPULSE_SOURCE_DIR) + "/rules");
  REQUIRE(shipped.rules);
  const rules::Rule* cross_sell = shipped.rules->find("cross-sell");
  REQUIRE(cross_sell);
  std::string id = "XS0";
  for (int i = 1; rules::RuleBook::in_holdout(*cross_sell, id); ++i) id = fmt::format("XS{}", i);
  CHECK(has(pos.request(order("xs-1", id, "pasta", 50)), "ack"));
  const std::string reply = pos.request(fmt::format(
      R"({{"type":"track","event":"Card Swiped","messageId":"xs-2","userId":"{}"}})", id));
  INFO(reply);
  CHECK(has(reply, R"("rule":"cross-sell")"));
  CHECK(has(reply, "Suggest parmesan to this member: 15% off today."));
  CHECK(has(
      reply,
      R"("offer":{"code":"XSELL15","kind":"percent","value":15,"item":"parmesan","itemKey":"product"})"));
  CHECK_FALSE(has(reply, "Cosmetics"));
}
