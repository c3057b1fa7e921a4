#include "storepulse/models/segment_model.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "model_json.hpp"
#include "storepulse/profile/profile.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::models {

namespace {

constexpr int kD = kSegmentFeatureCount;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::string_view kFeatureNames[kD] = {
    "log_basket_units",    "log_orders_per_week", "discount_share",   "promo_line_share",
    "brand_concentration", "everyday_share",      "category_entropy", "log_price_index",
    "home_store_share",    "hour_spread",         "gap_variation"};

double sq_dist(const FeatureVector& a, const FeatureVector& b) {
  double s = 0;
  for (std::size_t j = 0; j < a.size(); ++j) {
    const double d = a[j] - b[j];
    s += d * d;
  }
  return s;
}

}  // namespace

std::string_view segment_feature_name(int feature) {
  return feature >= 0 && feature < kD ? kFeatureNames[feature] : std::string_view{};
}

FeatureVector SegmentModel::standardise(const FeatureVector& raw) const {
  FeatureVector z{};
  for (std::size_t j = 0; j < static_cast<std::size_t>(kD); ++j) {
    const double v = raw[j];
    // Missing values sit at the population mean: they pull no cluster either way.
    z[j] = std::isnan(v) || sd[j] <= 0 ? 0.0 : (v - mean[j]) / sd[j];
  }
  return z;
}

int SegmentModel::classify(const FeatureVector& raw) const {
  const FeatureVector z = standardise(raw);
  int best = -1;
  double best_score = -std::numeric_limits<double>::infinity();
  for (std::size_t c = 0; c < lda_weights.size(); ++c) {
    double s = lda_intercepts[c];
    for (std::size_t j = 0; j < static_cast<std::size_t>(kD); ++j) s += lda_weights[c][j] * z[j];
    if (s > best_score) {
      best_score = s;
      best = static_cast<int>(c);
    }
  }
  return best;
}

int SegmentModel::nearest_centroid(const FeatureVector& raw) const {
  const FeatureVector z = standardise(raw);
  int best = -1;
  double bd = std::numeric_limits<double>::infinity();
  for (std::size_t c = 0; c < centroids.size(); ++c) {
    const double d = sq_dist(z, centroids[c]);
    if (d < bd) {
      bd = d;
      best = static_cast<int>(c);
    }
  }
  return best;
}

FeatureVector segment_features_of(const profile::CustomerProfile& p, const FeatureSpec& spec) {
  FeatureVector x;
  x.fill(kNaN);
  const double n = static_cast<double>(p.orders);
  if (p.orders == 0) return x;
  const double lines = static_cast<double>(p.lines);
  x[kFeatLogBasketUnits] = std::log(std::max(1.0, p.units / n));
  const double span_days =
      static_cast<double>(p.last_order - p.first_order) / static_cast<double>(kUsPerDay);
  x[kFeatLogOrdersPerWeek] =
      p.orders >= 2 ? std::log((n - 1) / std::max(1.0, span_days) * 7.0) : kNaN;
  x[kFeatDiscountShare] = p.discount_share();
  x[kFeatPromoLineShare] = lines > 0 ? static_cast<double>(p.promo_lines) / lines : 0.0;
  double brand_total = 0, hhi = 0;
  for (const auto& b : p.brands)
    brand_total += static_cast<double>(std::max<protocol::Money>(0, b.spend));
  for (const auto& b : p.brands) {
    const double s = static_cast<double>(std::max<protocol::Money>(0, b.spend)) / brand_total;
    hhi += s * s;
  }
  x[kFeatBrandConcentration] = brand_total > 0 ? hhi : kNaN;
  double everyday = 0, entropy = 0, log_price = 0, priced = 0;
  for (const auto& c : p.categories) {
    if (c.lines == 0) continue;
    const double v = static_cast<double>(c.lines);
    const std::string_view name = p.name(c.name);
    if (std::find(spec.everyday_categories.begin(), spec.everyday_categories.end(), name) !=
        spec.everyday_categories.end())
      everyday += v;
    if (lines > 0) entropy -= (v / lines) * std::log(v / lines);
    auto ref = spec.category_reference_price.find(name);
    if (ref != spec.category_reference_price.end() && ref->second > 0 && c.priced_lines > 0) {
      log_price += c.log_price_sum - c.priced_lines * std::log(ref->second);
      priced += c.priced_lines;
    }
  }
  const double category_count =
      std::max<double>(2.0, static_cast<double>(spec.category_reference_price.size()));
  x[kFeatEverydayShare] = lines > 0 ? everyday / lines : 0.0;
  x[kFeatCategoryEntropy] = lines > 0 ? entropy / std::log(category_count) : 0.0;
  x[kFeatLogPriceIndex] = priced > 0 ? log_price / priced : kNaN;
  double top = 0, store_total = 0;
  for (const auto& s : p.stores) {
    top = std::max(top, static_cast<double>(s.orders));
    store_total += s.orders;
  }
  x[kFeatHomeStoreShare] = store_total > 0 ? top / store_total : kNaN;
  if (p.orders >= 2) {
    const double mean_h = p.hour_sum / n;
    const double var = std::max(0.0, (p.hour_sq_sum - n * mean_h * mean_h) / (n - 1));
    x[kFeatHourSpread] = std::sqrt(var);
  }
  if (p.gap_count >= 2 && p.gap_mean_days > 0) {
    const double sd = std::sqrt(std::max(0.0, p.gap_m2 / (p.gap_count - 1)));
    x[kFeatGapVariation] = sd / p.gap_mean_days;
  }
  return x;
}

void classify_profile(const SegmentModel& model, profile::CustomerProfile& p) {
  if (!p.member || p.orders < static_cast<std::uint32_t>(std::max(1, model.new_member_orders)))
    return;
  const int c = model.classify(segment_features_of(p, model.spec));
  if (c < 0 || c >= static_cast<int>(model.segment_names.size())) return;
  const std::string& name = model.segment_names[static_cast<std::size_t>(c)];
  p.segment = p.names->intern_guardrail(name);  // a lookup once the model's few names are in
}

// ---- model file --------------------------------------------------------------------

namespace {
void append_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";  // JSON has no infinities; an empty class reads back as -inf
    return;
  }
  out += fmt::format("{:.17g}", v);
}
void append_vector(std::string& out, const FeatureVector& v) {
  out.push_back('[');
  for (std::size_t j = 0; j < v.size(); ++j) {
    if (j) out.push_back(',');
    append_number(out, v[j]);
  }
  out.push_back(']');
}
}  // namespace

std::string segment_model_json(const SegmentModel& m) {
  std::string o = "{\n  ";
  o += meta_json_fields(kSegmentsFormat, m.meta);
  o += ",\n  \"new_member_orders\": " + std::to_string(m.new_member_orders);
  o += ",\n  \"features\": [";
  for (int j = 0; j < kD; ++j) {
    if (j) o += ", ";
    protocol::append_json_string(o, kFeatureNames[j]);
  }
  o += "],\n  \"mean\": ";
  append_vector(o, m.mean);
  o += ",\n  \"sd\": ";
  append_vector(o, m.sd);
  o += ",\n  \"everyday_categories\": [";
  for (std::size_t i = 0; i < m.spec.everyday_categories.size(); ++i) {
    if (i) o += ", ";
    protocol::append_json_string(o, m.spec.everyday_categories[i]);
  }
  o += "],\n  \"category_reference_price\": {";
  bool first = true;
  for (const auto& [cat, price] : m.spec.category_reference_price) {
    if (!first) o += ", ";
    first = false;
    protocol::append_json_string(o, cat);
    o += ": ";
    append_number(o, price);
  }
  o += "},\n  \"segments\": [";
  for (std::size_t c = 0; c < m.segment_names.size(); ++c) {
    o += c ? ",\n    {" : "\n    {";
    o += "\"name\": ";
    protocol::append_json_string(o, m.segment_names[c]);
    o += ", \"centroid\": ";
    append_vector(o, c < m.centroids.size() ? m.centroids[c] : FeatureVector{});
    o += ", \"lda_weights\": ";
    append_vector(o, c < m.lda_weights.size() ? m.lda_weights[c] : FeatureVector{});
    o += ", \"lda_intercept\": ";
    append_number(o, c < m.lda_intercepts.size() ? m.lda_intercepts[c]
                                                 : -std::numeric_limits<double>::infinity());
    o += "}";
  }
  o += "\n  ]\n}\n";
  return o;
}

Result<SegmentModel> parse_segment_model_json(std::string_view json) {
  namespace dom = simdjson::dom;
  dom::parser parser;
  dom::element root;
  simdjson::padded_string padded(json);
  SegmentModel m;
  if (Status s = detail::parse_model_header(parser, padded, "segment model", kSegmentsFormat, root,
                                            m.meta);
      !s)
    return s;
  auto bad = [](std::string_view what) {
    return Status(ErrorCode::kBadField, fmt::format("segment model: {}", what));
  };
  std::int64_t nmo = 0;
  if (!root["new_member_orders"].get(nmo)) {
    if (nmo < 1 || nmo > 10000) return bad("new_member_orders: expected 1..10000");
    m.new_member_orders = static_cast<int>(nmo);
  }

  dom::array features;
  if (root["features"].get(features)) return bad("features missing");
  std::size_t fi = 0;
  for (auto f : features) {
    std::string_view name;
    if (f.get(name) || fi >= static_cast<std::size_t>(kD) || name != kFeatureNames[fi])
      return bad(fmt::format("features[{}] does not match this build's feature list", fi));
    ++fi;
  }
  if (fi != static_cast<std::size_t>(kD)) return bad("features: wrong count");

  auto read_vec = [&](dom::element e, FeatureVector& v, std::string_view what) -> Status {
    dom::array arr;
    if (e.get(arr)) return bad(fmt::format("{}: expected an array", what));
    std::size_t j = 0;
    for (auto x : arr) {
      if (j >= v.size()) return bad(fmt::format("{}: too many values", what));
      double d;
      if (x.is_null())
        d = std::numeric_limits<double>::quiet_NaN();
      else if (x.get(d))
        return bad(fmt::format("{}: expected numbers", what));
      v[j++] = d;
    }
    if (j != v.size()) return bad(fmt::format("{}: expected {} values", what, kD));
    return Status::ok();
  };
  Status s;
  if (!(s = read_vec(root["mean"], m.mean, "mean"))) return s;
  if (!(s = read_vec(root["sd"], m.sd, "sd"))) return s;
  dom::array everyday;
  if (!root["everyday_categories"].get(everyday)) {
    for (auto e : everyday) {
      std::string_view c;
      if (e.get(c)) return bad("everyday_categories: expected strings");
      m.spec.everyday_categories.emplace_back(c);
    }
  }
  dom::object prices;
  if (!root["category_reference_price"].get(prices)) {
    for (auto field : prices) {
      double p;
      if (field.value.get(p)) return bad("category_reference_price: expected numbers");
      m.spec.category_reference_price[std::string(field.key)] = p;
    }
  }
  dom::array segs;
  if (root["segments"].get(segs)) return bad("segments missing");
  for (auto seg : segs) {
    std::string_view name;
    if (seg["name"].get(name)) return bad("segments[].name missing");
    m.segment_names.emplace_back(name);
    FeatureVector c{}, w{};
    if (!(s = read_vec(seg["centroid"], c, "segments[].centroid"))) return s;
    if (!(s = read_vec(seg["lda_weights"], w, "segments[].lda_weights"))) return s;
    double b = -std::numeric_limits<double>::infinity();
    auto bi = seg["lda_intercept"];
    if (!bi.is_null() && bi.get(b)) return bad("segments[].lda_intercept: expected a number");
    m.centroids.push_back(c);
    m.lda_weights.push_back(w);
    m.lda_intercepts.push_back(b);
  }
  if (m.segment_names.empty()) return bad("no segments");
  return m;
}

}  // namespace storepulse::models
