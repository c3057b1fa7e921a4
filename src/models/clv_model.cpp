#include "storepulse/models/clv_model.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "model_json.hpp"
#include "storepulse/profile/profile.hpp"

namespace storepulse::models {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

// log(exp(a) - exp(b)), a > b
double log_diff_exp(double a, double b) {
  if (b >= a) return -kInf;
  return a + std::log1p(-std::exp(b - a));
}

std::int64_t day_number(TimeUs t) {
  return t >= 0 ? t / kUsPerDay : -((-t + kUsPerDay - 1) / kUsPerDay);
}
}  // namespace

double hyp2f1(double a, double b, double c, double z) {
  double term = 1.0, sum = 1.0;
  for (int k = 0; k < 100000; ++k) {
    term *= (a + k) * (b + k) / ((c + k) * (k + 1)) * z;
    sum += term;
    if (std::fabs(term) < 1e-15 * std::fabs(sum)) break;
  }
  return sum;
}

double bgnbd_p_alive(const BgNbdParams& p, double x, double t_x, double T) {
  if (x <= 0) return 1.0;
  const double lr =
      std::log(p.a / (p.b + x - 1)) + (p.r + x) * std::log((p.alpha + T) / (p.alpha + t_x));
  return 1.0 / (1.0 + std::exp(lr));
}

double bgnbd_expected_purchases(const BgNbdParams& p, double t, double x, double t_x, double T) {
  const double r = p.r, al = p.alpha, a = p.a, b = p.b;
  const double z = t / (al + T + t);
  const double hyp = hyp2f1(r + x, b + x, a + b + x - 1, z);
  const double head = (a + b + x - 1) / (a - 1);
  const double body = 1.0 - std::pow((al + T) / (al + T + t), r + x) * hyp;
  double denom = 1.0;
  if (x > 0) denom += a / (b + x - 1) * std::pow((al + T) / (al + t_x), r + x);
  return head * body / denom;
}

double pareto_nbd_log_a0(double r, double al, double s, double be, double x, double t_x, double T) {
  const double rsx = r + s + x;
  double l1, l2;
  if (al >= be) {
    l1 = std::log(hyp2f1(rsx, s + 1, rsx + 1, (al - be) / (al + t_x))) - rsx * std::log(al + t_x);
    l2 = std::log(hyp2f1(rsx, s + 1, rsx + 1, (al - be) / (al + T))) - rsx * std::log(al + T);
  } else {
    l1 = std::log(hyp2f1(rsx, r + x, rsx + 1, (be - al) / (be + t_x))) - rsx * std::log(be + t_x);
    l2 = std::log(hyp2f1(rsx, r + x, rsx + 1, (be - al) / (be + T))) - rsx * std::log(be + T);
  }
  return log_diff_exp(l1, l2);
}

double pareto_nbd_p_alive(const ParetoNbdParams& p, double x, double t_x, double T) {
  if (T <= t_x) return 1.0;
  const double la0 = pareto_nbd_log_a0(p.r, p.alpha, p.s, p.beta, x, t_x, T);
  const double lz = std::log(p.s / (p.r + p.s + x)) + (p.r + x) * std::log(p.alpha + T) +
                    p.s * std::log(p.beta + T) + la0;
  return 1.0 / (1.0 + std::exp(lz));
}

double pareto_nbd_expected_purchases(const ParetoNbdParams& p, double t, double x, double t_x,
                                     double T) {
  const double alive = pareto_nbd_p_alive(p, x, t_x, T);
  if (std::fabs(p.s - 1) < 1e-9) {
    // limit s -> 1: (r+x)(β+T)/(α+T) * ln((β+T+t)/(β+T))
    return (p.r + x) * (p.beta + T) / (p.alpha + T) * std::log((p.beta + T + t) / (p.beta + T)) *
           alive;
  }
  return (p.r + x) * (p.beta + T) / ((p.alpha + T) * (p.s - 1)) *
         (1.0 - std::pow((p.beta + T) / (p.beta + T + t), p.s - 1)) * alive;
}

double gamma_gamma_expected_spend(const GammaGammaParams& g, double x, double zbar) {
  // population mean when the customer has no repeat spend to learn from
  if (x <= 0 || zbar <= 0) return g.q > 1 ? g.p * g.v / (g.q - 1) : 0.0;
  return (g.p * (g.v + x * zbar)) / (g.p * x + g.q - 1);
}

ClvScore score_clv(const ClvModel& m, const ClvInputs& c, double horizon_time_units) {
  ClvScore r;
  r.p_alive = bgnbd_p_alive(m.bgnbd, c.x, c.t_x, c.T);
  r.expected_purchases = bgnbd_expected_purchases(m.bgnbd, horizon_time_units, c.x, c.t_x, c.T);
  r.expected_spend = gamma_gamma_expected_spend(m.gamma_gamma, c.x, c.zbar);
  const ClvValuation& v = m.valuation;
  double prev = 0, clv = 0;
  for (int i = 1; i <= v.clv_months; ++i) {
    const double cum =
        bgnbd_expected_purchases(m.bgnbd, i * v.time_units_per_month, c.x, c.t_x, c.T);
    clv += (cum - prev) * r.expected_spend * v.margin / std::pow(1.0 + v.monthly_discount_rate, i);
    prev = cum;
  }
  r.clv = clv;
  return r;
}

ClvInputs clv_inputs_of(const profile::CustomerProfile& p, double time_unit_days, TimeUs now) {
  ClvInputs in;
  if (p.first_order == 0 || time_unit_days <= 0) return in;
  const std::int64_t first = day_number(p.first_order);
  const std::int64_t last = day_number(p.last_order);
  const std::int64_t today = std::max(last, day_number(now));
  in.x = p.purchase_days > 0 ? static_cast<double>(p.purchase_days - 1) : 0.0;
  in.t_x = static_cast<double>(last - first) / time_unit_days;
  in.T = static_cast<double>(today - first) / time_unit_days;
  in.zbar =
      in.x > 0 && p.repeat_spend > 0 ? static_cast<double>(p.repeat_spend) / 100.0 / in.x : 0.0;
  return in;
}

namespace {
// A model with degenerate parameters must not poison rules with NaN.
double finite_or_zero(double v) {
  return std::isfinite(v) ? v : 0.0;
}
}  // namespace

void score_profile_clv(const ClvModel& m, profile::CustomerProfile& p, TimeUs now) {
  if (p.first_order == 0) return;
  const ClvInputs in = clv_inputs_of(p, m.time_unit_days, now);
  const ClvScore s = score_clv(m, in, 90.0 / m.time_unit_days);
  p.p_alive = finite_or_zero(s.p_alive);
  p.expected_purchases_90d = finite_or_zero(s.expected_purchases);
  p.clv = finite_or_zero(s.clv);
}

double p_alive_at(const ClvModel& m, const profile::CustomerProfile& p, TimeUs now) {
  if (p.first_order == 0) return p.p_alive;
  const ClvInputs in = clv_inputs_of(p, m.time_unit_days, now);
  return finite_or_zero(bgnbd_p_alive(m.bgnbd, in.x, in.t_x, in.T));
}

double expected_purchases_90d_at(const ClvModel& m, const profile::CustomerProfile& p, TimeUs now) {
  if (p.first_order == 0) return p.expected_purchases_90d;
  const ClvInputs in = clv_inputs_of(p, m.time_unit_days, now);
  return finite_or_zero(
      bgnbd_expected_purchases(m.bgnbd, 90.0 / m.time_unit_days, in.x, in.t_x, in.T));
}

double clv_at(const ClvModel& m, const profile::CustomerProfile& p, TimeUs now) {
  if (p.first_order == 0) return p.clv;
  return finite_or_zero(
      score_clv(m, clv_inputs_of(p, m.time_unit_days, now), 90.0 / m.time_unit_days).clv);
}

// ---- model file --------------------------------------------------------------

std::string clv_model_json(const ClvModel& m) {
  std::string o = "{";
  o += meta_json_fields(kClvFormat, m.meta);
  o += fmt::format(
      ",\"time_unit_days\":{},\"calibration_end\":\"{}\",\"customers\":{},\n"
      " \"bgnbd\":{{\"r\":{:.10g},\"alpha\":{:.10g},\"a\":{:.10g},\"b\":{:.10g},\"log_likelihood\":"
      "{:.10g}}},\n"
      " \"pareto_nbd\":{{\"r\":{:.10g},\"alpha\":{:.10g},\"s\":{:.10g},\"beta\":{:.10g},\"log_"
      "likelihood\":{:.10g}}},\n"
      " \"gamma_gamma\":{{\"p\":{:.10g},\"q\":{:.10g},\"v\":{:.10g},\"log_likelihood\":{:.10g},"
      "\"subjects\":{}}},\n"
      " \"valuation\":{{\"months\":{},\"monthly_discount_rate\":{},\"margin\":{},\"time_units_per_"
      "month\":{}}}}}\n",
      m.time_unit_days, m.calibration_end ? format_iso8601(m.calibration_end) : "", m.subjects,
      m.bgnbd.r, m.bgnbd.alpha, m.bgnbd.a, m.bgnbd.b, m.bgnbd.log_likelihood, m.pareto_nbd.r,
      m.pareto_nbd.alpha, m.pareto_nbd.s, m.pareto_nbd.beta, m.pareto_nbd.log_likelihood,
      m.gamma_gamma.p, m.gamma_gamma.q, m.gamma_gamma.v, m.gamma_gamma.log_likelihood,
      m.gamma_gamma.subjects, m.valuation.clv_months, m.valuation.monthly_discount_rate,
      m.valuation.margin, m.valuation.time_units_per_month);
  return o;
}

Result<ClvModel> parse_clv_model_json(std::string_view json) {
  namespace dom = simdjson::dom;
  dom::parser parser;
  dom::element root;
  simdjson::padded_string padded(json);
  ClvModel m;
  if (Status s = detail::parse_model_header(parser, padded, "clv model", kClvFormat, root, m.meta);
      !s)
    return s;
  auto bad = [](std::string_view what) {
    return Status(ErrorCode::kBadField, fmt::format("clv model: {}", what));
  };
  std::string_view sv;
  std::uint64_t u = 0;
  if (!root["customers"].get(u)) m.subjects = static_cast<std::size_t>(u);
  if (!root["calibration_end"].get(sv) && !sv.empty())
    if (auto t = parse_iso8601(sv)) m.calibration_end = *t;

  // Every parameter the evaluators divide by or take a log of must be a
  // positive finite number; anything else is refused rather than scored.
  auto num = [&](dom::element obj, const char* key, double& out, bool positive,
                 std::string_view where) -> Status {
    double d = 0;
    if (obj[key].get(d)) return bad(fmt::format("{}.{}: expected a number", where, key));
    if (!std::isfinite(d) || (positive && !(d > 0)))
      return bad(fmt::format("{}.{}: must be a positive number, got {}", where, key, d));
    out = d;
    return Status::ok();
  };
  Status s;
  if (!(s = num(root, "time_unit_days", m.time_unit_days, true, "model"))) return s;
  dom::element bg, gg, pn, val;
  if (root["bgnbd"].get(bg) || !bg.is_object()) return bad("bgnbd: missing");
  if (!(s = num(bg, "r", m.bgnbd.r, true, "bgnbd"))) return s;
  if (!(s = num(bg, "alpha", m.bgnbd.alpha, true, "bgnbd"))) return s;
  if (!(s = num(bg, "a", m.bgnbd.a, true, "bgnbd"))) return s;
  if (!(s = num(bg, "b", m.bgnbd.b, true, "bgnbd"))) return s;
  (void)num(bg, "log_likelihood", m.bgnbd.log_likelihood, false, "bgnbd");
  if (root["gamma_gamma"].get(gg) || !gg.is_object()) return bad("gamma_gamma: missing");
  if (!(s = num(gg, "p", m.gamma_gamma.p, true, "gamma_gamma"))) return s;
  if (!(s = num(gg, "q", m.gamma_gamma.q, true, "gamma_gamma"))) return s;
  if (!(s = num(gg, "v", m.gamma_gamma.v, true, "gamma_gamma"))) return s;
  (void)num(gg, "log_likelihood", m.gamma_gamma.log_likelihood, false, "gamma_gamma");
  if (!gg["subjects"].get(u)) m.gamma_gamma.subjects = static_cast<std::size_t>(u);
  if (!root["pareto_nbd"].get(pn) && pn.is_object()) {
    (void)num(pn, "r", m.pareto_nbd.r, false, "pareto_nbd");
    (void)num(pn, "alpha", m.pareto_nbd.alpha, false, "pareto_nbd");
    (void)num(pn, "s", m.pareto_nbd.s, false, "pareto_nbd");
    (void)num(pn, "beta", m.pareto_nbd.beta, false, "pareto_nbd");
    (void)num(pn, "log_likelihood", m.pareto_nbd.log_likelihood, false, "pareto_nbd");
  }
  if (root["valuation"].get(val) || !val.is_object()) return bad("valuation: missing");
  std::int64_t months = 0;
  if (val["months"].get(months) || months < 0 || months > 1200)
    return bad("valuation.months: expected a whole number of months 0..1200");
  m.valuation.clv_months = static_cast<int>(months);
  if (!(s = num(val, "monthly_discount_rate", m.valuation.monthly_discount_rate, false,
                "valuation")))
    return s;
  if (m.valuation.monthly_discount_rate <= -1)
    return bad("valuation.monthly_discount_rate: must be > -1");
  if (!(s = num(val, "margin", m.valuation.margin, false, "valuation"))) return s;
  if (!(s = num(val, "time_units_per_month", m.valuation.time_units_per_month, true, "valuation")))
    return s;
  return m;
}

}  // namespace storepulse::models
