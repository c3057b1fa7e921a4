#pragma once
// The CLV model: BG/NBD (Fader, Hardie & Lee 2005) purchase process, optional
// Pareto/NBD parameters, Gamma-Gamma spend, and how value is discounted. The
// closed-form per-customer evaluators live here so `storepulse analyze clv` and
// the live engine compute P(alive), expected purchases and CLV with one
// implementation; fitting (maximum likelihood) stays in analytics.
//
// Pure functions, no allocation, no exceptions: safe on a shard worker.
#include <cstddef>
#include <string>
#include <string_view>

#include "storepulse/common/status.hpp"
#include "storepulse/common/time.hpp"
#include "storepulse/models/model_file.hpp"

namespace storepulse::profile {
struct CustomerProfile;
}

namespace storepulse::models {

struct BgNbdParams {
  double r = 0, alpha = 0, a = 0, b = 0;
  double log_likelihood = 0;
};
struct ParetoNbdParams {
  double r = 0, alpha = 0, s = 0, beta = 0;
  double log_likelihood = 0;
};
struct GammaGammaParams {
  double p = 0, q = 0, v = 0;
  double log_likelihood = 0;
  std::size_t subjects = 0;  // customers with x > 0
};

/// How expected purchases are turned into value.
struct ClvValuation {
  int clv_months = 12;  // CLV horizon in months
  double monthly_discount_rate = 0.01;
  double margin = 1.0;                  // share of spend that is profit
  double time_units_per_month = 4.345;  // weeks per month (lifetimes' factor)
};

struct ClvModel {
  BgNbdParams bgnbd;
  ParetoNbdParams pareto_nbd;  // zero when not fitted
  GammaGammaParams gamma_gamma;
  std::size_t subjects = 0;
  double time_unit_days = 7;
  TimeUs calibration_end = 0;
  ClvValuation valuation;
  ModelMeta meta;
};

/// One customer's model inputs: repeat purchase occasions x, time of the last
/// since the first t_x, age T (model time units), mean repeat-occasion value zbar.
struct ClvInputs {
  double x = 0, t_x = 0, T = 0, zbar = 0;
};

struct ClvScore {
  double p_alive = 0;
  double expected_purchases = 0;  // over the horizon asked for
  double expected_spend = 0;      // per purchase
  double clv = 0;                 // discounted, over valuation.clv_months
};

/// Gauss hypergeometric 2F1(a, b; c; z) for |z| < 1 (power series).
double hyp2f1(double a, double b, double c, double z);

double bgnbd_p_alive(const BgNbdParams& p, double x, double t_x, double T);
/// Expected purchases in the next `t` time units for a customer with (x, t_x, T).
double bgnbd_expected_purchases(const BgNbdParams& p, double t, double x, double t_x, double T);
/// log A0 of the Pareto/NBD (Fader & Hardie 2005 note, eq. 22/23); shared with the likelihood.
double pareto_nbd_log_a0(double r, double alpha, double s, double beta, double x, double t_x,
                         double T);
double pareto_nbd_p_alive(const ParetoNbdParams& p, double x, double t_x, double T);
double pareto_nbd_expected_purchases(const ParetoNbdParams& p, double t, double x, double t_x,
                                     double T);
/// E[spend per purchase | x, zbar] under Gamma-Gamma (population mean when x = 0).
double gamma_gamma_expected_spend(const GammaGammaParams& p, double x, double zbar);

/// P(alive), expected purchases over `horizon_time_units`, expected spend and
/// discounted CLV (monthly sum, as lifetimes' customer_lifetime_value).
ClvScore score_clv(const ClvModel& m, const ClvInputs& c, double horizon_time_units);

/// A live profile's inputs at `now` (same-day orders merged: purchase_days).
/// Money is in currency units, time in the model's unit.
ClvInputs clv_inputs_of(const profile::CustomerProfile& p, double time_unit_days, TimeUs now);

/// Sets p.p_alive, p.expected_purchases_90d and p.clv from the model at `now`.
/// A profile without an order is left alone.
void score_profile_clv(const ClvModel& m, profile::CustomerProfile& p, TimeUs now);

/// The same figures as of `now`, one at a time, without changing the profile.
/// P(alive) and expected purchases fall while a customer stays away, so what
/// was scored at the last order is stale later: rules and the profile lookup
/// read these. A profile without an order gives its stored value (0).
double p_alive_at(const ClvModel& m, const profile::CustomerProfile& p, TimeUs now);
double expected_purchases_90d_at(const ClvModel& m, const profile::CustomerProfile& p, TimeUs now);
double clv_at(const ClvModel& m, const profile::CustomerProfile& p, TimeUs now);

std::string clv_model_json(const ClvModel& m);
/// Rejects other kinds and unknown versions with a message naming the tag.
Result<ClvModel> parse_clv_model_json(std::string_view json);

}  // namespace storepulse::models
