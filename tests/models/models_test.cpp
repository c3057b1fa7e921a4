#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "storepulse/models/basket_model.hpp"
#include "storepulse/models/clv_model.hpp"
#include "storepulse/models/live_models.hpp"
#include "storepulse/models/segment_model.hpp"
#include "storepulse/profile/profile.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse;
using namespace storepulse::models;

namespace {

// The published CDNOW BG/NBD fit (Fader, Hardie & Lee 2005) and Gamma-Gamma
// fit (Fader, Hardie & Lee 2005b / lifetimes' docs).
ClvModel cdnow_model() {
  ClvModel m;
  m.bgnbd = {0.2425945, 4.4136019, 0.7929199, 2.4258881, -9582.429};
  m.gamma_gamma = {6.25, 3.74, 15.44, 0, 946};
  m.time_unit_days = 7;
  m.meta = {"cdnow_customers_summary_with_transactions.csv", 1'700'000'000'000'000, 2357};
  return m;
}

TimeUs day(int d, int hour = 12) {
  // 2026-01-01T00:00:00Z + d days
  return 1'767'225'600LL * kUsPerSecond + d * kUsPerDay + hour * 3600LL * kUsPerSecond;
}

protocol::Event order(const std::string& user, TimeUs t, protocol::Money total,
                      std::vector<protocol::Product> products = {}) {
  protocol::Event ev;
  ev.type = protocol::EventType::kTrack;
  ev.name = protocol::EventName::kOrderCompleted;
  ev.channel = protocol::Channel::kPos;
  ev.user_id = user;
  ev.timestamp = t;
  ev.total = total;
  ev.has_total = true;
  ev.products = std::move(products);
  if (ev.products.empty()) {
    protocol::Product p;
    p.product_id = "sku-" + std::to_string(total);
    p.category = "Dairy";
    p.brand = "Farm";
    p.price = total;
    ev.products.push_back(p);
  }
  return ev;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

}  // namespace

TEST_CASE("clv model: the paper's conditional expectation through the shared evaluator") {
  const ClvModel m = cdnow_model();
  // Fader, Hardie & Lee (2005): x=2, t_x=30.43, T=38.86 -> 1.226 purchases in the next 39 weeks.
  const ClvScore s = score_clv(m, {2, 30.43, 38.86, 0}, 39);
  CHECK(s.expected_purchases == Approx(1.226).margin(0.0005));
  CHECK(score_clv(m, {0, 0, 38.86, 0}, 39).p_alive == 1.0);
  // discounting: a higher rate gives a lower CLV
  ClvModel steep = m;
  steep.valuation.monthly_discount_rate = 0.10;
  CHECK(score_clv(steep, {2, 30.43, 38.86, 20}, 39).clv < s.clv + 1e9);
  CHECK(score_clv(steep, {2, 30.43, 38.86, 20}, 39).clv <
        score_clv(m, {2, 30.43, 38.86, 20}, 39).clv);
}

TEST_CASE("clv model: JSON round trip keeps every parameter and the fitted-on metadata") {
  ClvModel m = cdnow_model();
  m.valuation.clv_months = 24;
  m.valuation.monthly_discount_rate = 0.02;
  const std::string json = clv_model_json(m);
  CHECK(json.find("\"format\":\"storepulse.model.clv/1\"") != std::string::npos);
  auto back = parse_clv_model_json(json);
  REQUIRE(back.is_ok());
  CHECK(back->bgnbd.r == Approx(m.bgnbd.r).epsilon(1e-9));
  CHECK(back->bgnbd.b == Approx(m.bgnbd.b).epsilon(1e-9));
  CHECK(back->gamma_gamma.v == Approx(m.gamma_gamma.v).epsilon(1e-9));
  CHECK(back->valuation.clv_months == 24);
  CHECK(back->valuation.monthly_discount_rate == Approx(0.02));
  CHECK(back->meta.fitted_on == m.meta.fitted_on);
  CHECK(back->meta.fitted_at == m.meta.fitted_at);
  CHECK(back->meta.subjects == 2357);
  const ClvInputs in{3, 20, 30, 25};
  CHECK(score_clv(*back, in, 13).clv == Approx(score_clv(m, in, 13).clv).epsilon(1e-9));
}

TEST_CASE("model files: unknown versions - other kinds - untagged and bad parameters are refused") {
  std::string json = clv_model_json(cdnow_model());
  auto v2 = json;
  v2.replace(v2.find("clv/1"), 5, "clv/2");
  auto r = parse_clv_model_json(v2);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().detail().find(
            "\"storepulse.model.clv/2\" is a version this build does not read") !=
        std::string::npos);
  r = parse_clv_model_json(R"({"model":"clv","version":1,"bgnbd":{}})");
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().detail().find("no \"format\" tag") != std::string::npos);
  auto seg = parse_segment_model_json(json);
  REQUIRE_FALSE(seg.is_ok());
  CHECK(seg.status().detail().find("is not a storepulse.model.segments model") !=
        std::string::npos);
  auto neg = json;
  neg.replace(neg.find("\"r\":0.2425945"), 13, "\"r\":-1");
  r = parse_clv_model_json(neg);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().detail().find("bgnbd.r: must be a positive number") != std::string::npos);
  CHECK_FALSE(parse_basket_model_json("not json").is_ok());
  CHECK_FALSE(
      parse_basket_model_json(R"({"format":"storepulse.model.baskets/9","rules":[]})").is_ok());
}

TEST_CASE(
    "clv inputs from a live profile: same-day orders merged - x t_x T zbar as the reference") {
  profile::CustomerProfile p;
  p.user_id = "C1";
  profile::apply_event(p, order("C1", day(0, 9), 1000));
  profile::apply_event(p, order("C1", day(0, 17), 500));  // same day: one occasion
  profile::apply_event(p, order("C1", day(14), 3000));
  profile::apply_event(p, order("C1", day(28, 10), 2000));
  profile::apply_event(p, order("C1", day(28, 11), 1000));  // same day as the previous
  CHECK(p.orders == 5);
  CHECK(p.purchase_days == 3);
  CHECK(p.repeat_spend == 6000);
  const ClvInputs in = clv_inputs_of(p, 7, day(42));
  CHECK(in.x == 2);
  CHECK(in.t_x == Approx(4.0));
  CHECK(in.T == Approx(6.0));
  CHECK(in.zbar == Approx(30.0));  // (30 + 20 + 10) / 2 repeat occasions, currency units

  const ClvModel m = cdnow_model();
  score_profile_clv(m, p, day(28, 11));
  CHECK(p.p_alive == Approx(bgnbd_p_alive(m.bgnbd, 2, 4, 4)));
  CHECK(p.expected_purchases_90d == Approx(bgnbd_expected_purchases(m.bgnbd, 90.0 / 7, 2, 4, 4)));
  CHECK(p.clv > 0);
  // A lapsing customer: the same history scored much later is less likely alive.
  profile::CustomerProfile later = p;
  score_profile_clv(m, later, day(400));
  CHECK(later.p_alive < p.p_alive);
}

TEST_CASE("basket model: best consequents of held items - never one already held") {
  BasketModel m;
  auto rule = [&](std::vector<std::string> lhs, std::string rhs, double conf, double lift) {
    BasketModelRule r;
    for (auto& l : lhs) r.lhs.push_back(m.intern(l));
    r.rhs = m.intern(rhs);
    r.confidence = conf;
    r.lift = lift;
    r.support = 0.01;
    m.add_rule(std::move(r));
  };
  rule({"bread"}, "butter", 0.6, 2.0);
  rule({"bread", "jam"}, "peanut butter", 0.9, 4.0);
  rule({"jam"}, "bread", 0.7, 1.5);
  rule({"bread"}, "milk", 0.6, 1.2);
  rule({"milk"}, "butter", 0.8, 1.1);
  m.build_index();

  std::array<BasketSuggestion, 4> out;
  std::vector<std::string_view> held = {"bread"};
  std::size_t n = m.suggest(held, out);
  REQUIRE(n == 2);
  CHECK(m.item(out[0].item) == "butter");  // conf 0.6 lift 2.0 beats conf 0.6 lift 1.2
  CHECK(m.item(out[1].item) == "milk");

  held = {"jam", "bread"};
  n = m.suggest(held, out);
  REQUIRE(n == 3);
  CHECK(m.item(out[0].item) == "peanut butter");  // needs both antecedents
  for (std::size_t i = 0; i < n; ++i) CHECK(m.item(out[i].item) != "bread");

  held = {"milk", "bread"};  // butter suggested by two rules: once, with the better one
  n = m.suggest(held, out);
  REQUIRE(n == 1);
  CHECK(m.item(out[0].item) == "butter");
  CHECK(out[0].confidence == Approx(0.8));

  held = {"caviar"};
  CHECK(m.suggest(held, out) == 0);

  auto back = parse_basket_model_json(basket_model_json(m));
  REQUIRE(back.is_ok());
  CHECK(back->rules().size() == 5);
  held = {"jam", "bread"};
  std::array<BasketSuggestion, 1> one;
  REQUIRE(back->suggest(held, one) == 1);
  CHECK(back->item(one[0].item) == "peanut butter");
}

TEST_CASE("basket model: a profile's held items are its cart then its recent purchases") {
  BasketModel m;
  profile::CustomerProfile p;
  p.user_id = "C1";
  protocol::Product a;
  a.product_id = "p-1";
  a.category = "Dairy";
  a.price = 100;
  profile::apply_event(p, order("C1", day(0), 100, {a}));
  protocol::Event add;
  add.type = protocol::EventType::kTrack;
  add.name = protocol::EventName::kProductAdded;
  add.timestamp = day(1);
  protocol::Product b = a;
  b.product_id = "p-2";
  add.products.push_back(b);
  profile::apply_event(p, add);
  std::array<std::string_view, BasketModel::kMaxHeld> held;
  const std::size_t n = m.held_items(p, held);
  REQUIRE(n == 2);
  CHECK(held[0] == "p-2");
  CHECK(held[1] == "p-1");
}

namespace {
SegmentModel two_segment_model() {
  SegmentModel m;
  m.mean.fill(0);
  m.sd.fill(1);
  m.segment_names = {"price-sensitive", "brand-loyal"};
  FeatureVector w0{}, w1{};
  w0[kFeatDiscountShare] = 100;  // discounts pull to price-sensitive
  w1[kFeatBrandConcentration] = 10;
  m.centroids = {w0, w1};
  m.lda_weights = {w0, w1};
  m.lda_intercepts = {0, 0};
  m.new_member_orders = 3;
  m.spec.everyday_categories = {"Dairy"};
  m.spec.category_reference_price = {{"Dairy", 100.0}, {"Beauty", 1000.0}};
  return m;
}
}  // namespace

TEST_CASE("segment model: live features from the profile match their definitions") {
  profile::CustomerProfile p;
  p.user_id = "C1";
  p.member = true;
  protocol::Product milk;
  milk.product_id = "milk";
  milk.category = "Dairy";
  milk.brand = "Farm";
  milk.price = 200;
  milk.quantity = 2;
  protocol::Product cream = milk;
  cream.product_id = "cream";
  cream.category = "Beauty";
  cream.brand = "Glow";
  cream.price = 1000;
  cream.quantity = 1;
  cream.promo = "P1";
  auto o1 = order("C1", day(0, 10), 1400, {milk, cream});
  o1.store_id = "S1";
  auto o2 = order("C1", day(7, 14), 400, {milk});
  o2.store_id = "S1";
  auto o3 = order("C1", day(21, 12), 400, {milk});
  o3.store_id = "S2";
  for (auto* o : {&o1, &o2, &o3}) profile::apply_event(p, *o);
  const FeatureVector x = segment_features_of(p, two_segment_model().spec);
  CHECK(x[kFeatLogBasketUnits] == Approx(std::log(7.0 / 3)));
  CHECK(x[kFeatLogOrdersPerWeek] == Approx(std::log(2.0 / (21 + 2.0 / 24) * 7)).epsilon(1e-6));
  CHECK(x[kFeatPromoLineShare] == Approx(0.25));
  // brand spend: Farm 1200, Glow 1000
  CHECK(x[kFeatBrandConcentration] ==
        Approx((12.0 / 22) * (12.0 / 22) + (10.0 / 22) * (10.0 / 22)));
  CHECK(x[kFeatEverydayShare] == Approx(0.75));
  CHECK(x[kFeatCategoryEntropy] ==
        Approx(-(0.75 * std::log(0.75) + 0.25 * std::log(0.25)) / std::log(2.0)));
  CHECK(x[kFeatLogPriceIndex] == Approx((3 * std::log(2.0) + 0) / 4));
  CHECK(x[kFeatHomeStoreShare] == Approx(2.0 / 3));
  CHECK(x[kFeatHourSpread] == Approx(2.0));  // hours 10, 14, 12
  // gaps 7.1667 and 13.9167 days
  const double g1 = 7 + 4.0 / 24, g2 = 14 - 2.0 / 24, gm = (g1 + g2) / 2;
  const double gsd = std::sqrt(((g1 - gm) * (g1 - gm) + (g2 - gm) * (g2 - gm)) / 1);
  CHECK(x[kFeatGapVariation] == Approx(gsd / gm));
}

TEST_CASE("segment model: a member is classified from the N-th order on and the file round-trips") {
  const SegmentModel m = two_segment_model();
  profile::CustomerProfile p;
  p.user_id = "C1";
  p.member = true;
  auto o = order("C1", day(0), 1000);
  o.discount = 500;
  profile::apply_event(p, o);
  classify_profile(m, p);
  CHECK(p.segment == profile::kNoName);  // 1 order < N = 3
  o.timestamp = day(5);
  profile::apply_event(p, o);
  o.timestamp = day(9);
  profile::apply_event(p, o);
  classify_profile(m, p);
  CHECK(p.name(p.segment) == "price-sensitive");

  auto back = parse_segment_model_json(segment_model_json(m));
  REQUIRE(back.is_ok());
  CHECK(back->segment_names == m.segment_names);
  CHECK(back->new_member_orders == 3);
  const FeatureVector x = segment_features_of(p, m.spec);
  CHECK(back->classify(x) == m.classify(x));
}

TEST_CASE("live models: a missing folder is no models - a bad file keeps the previous model") {
  test::TempDir dir;
  std::vector<std::string> notes, errors;
  auto none = load_models(dir / "absent", nullptr, notes, errors);
  CHECK(none->empty());
  CHECK(errors.empty());
  CHECK(models_stamp(dir / "absent") == 0);

  write(dir / "clv.json", clv_model_json(cdnow_model()));
  auto first = load_models(dir.str(), nullptr, notes, errors);
  REQUIRE(first->clv);
  CHECK(errors.empty());
  const auto stamp = models_stamp(dir.str());
  CHECK(stamp != 0);

  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write(dir / "clv.json", "{\"format\":\"storepulse.model.clv/7\"}");
  CHECK(models_stamp(dir.str()) != stamp);
  auto second = load_models(dir.str(), first.get(), notes, errors);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("clv.json") != std::string::npos);
  CHECK(errors[0].find("previous model keeps running") != std::string::npos);
  CHECK(second->clv == first->clv);

  REQUIRE(write_file_atomic(dir / "clv.json", clv_model_json(cdnow_model())).is_ok());
  CHECK_FALSE(std::filesystem::exists(dir / "clv.json.tmp"));
  errors.clear();
  auto third = load_models(dir.str(), second.get(), notes, errors);
  CHECK(errors.empty());
  CHECK(third->clv != first->clv);
}

TEST_CASE("live models: an order updates CLV figures and segment - other events do not") {
  ModelSet set;
  set.clv = std::make_shared<const ClvModel>(cdnow_model());
  set.segments = std::make_shared<const SegmentModel>(two_segment_model());
  profile::CustomerProfile p;
  p.user_id = "C1";
  p.member = true;
  protocol::Event swipe;
  swipe.name = protocol::EventName::kCardSwiped;
  swipe.timestamp = day(0);
  profile::apply_event(p, swipe);
  update_profile(set, p, swipe);
  CHECK(p.p_alive == 0);
  for (int d : {0, 10, 20}) {
    auto o = order("C1", day(d), 1000);
    profile::apply_event(p, o);
    update_profile(set, p, o);
  }
  CHECK(p.p_alive > 0);
  CHECK(p.p_alive <= 1);
  CHECK(p.expected_purchases_90d > 0);
  CHECK(p.clv > 0);
  CHECK(p.segment != profile::kNoName);
}

TEST_CASE("profile binary form keeps the model inputs") {
  profile::CustomerProfile p;
  p.user_id = "C1";
  auto o = order("C1", day(0), 1000);
  o.store_id = "S9";
  profile::apply_event(p, o);
  o.timestamp = day(3);
  profile::apply_event(p, o);
  p.expected_purchases_90d = 1.5;
  std::string buf;
  profile::serialize_profile(p, buf);
  profile::CustomerProfile q;
  REQUIRE(profile::deserialize_profile(buf, q));
  CHECK(q.purchase_days == 2);
  CHECK(q.repeat_spend == 1000);
  CHECK(q.recent_products == p.recent_products);
  CHECK(q.stores.size() == 1);
  CHECK(q.categories[0].lines == 2);
  CHECK(q.gap_count == 1);
  CHECK(q.expected_purchases_90d == 1.5);
}
