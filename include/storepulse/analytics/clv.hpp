#pragma once
// Customer-lifetime value: BG/NBD (Fader, Hardie & Lee 2005) and Pareto/NBD
// (Schmittlein et al. 1987) purchase models, Gamma-Gamma spend model, fitted by
// maximum likelihood (Nelder-Mead on log-parameters, no external optimiser).
// Time unit: weeks by default, as in the published CDNOW fits.
#include <cstdint>
#include <string>
#include <vector>

#include "storepulse/analytics/order_book.hpp"
#include "storepulse/analytics/report_table.hpp"
#include "storepulse/common/status.hpp"
#include "storepulse/models/clv_model.hpp"

namespace storepulse::analytics {

/// One customer's calibration-period summary ("RFM in model form").
struct ClvCustomer {
  std::string id;
  double x = 0;     // repeat purchase days (same-day purchases merged)
  double t_x = 0;   // time of last purchase since first, in time units
  double T = 0;     // time from first purchase to the end of calibration
  double zbar = 0;  // mean value of the repeat purchase days (currency units), 0 when x = 0
  std::int64_t holdout_days = 0;  // purchase days after the calibration end
};

struct ClvSummaryOptions {
  TimeUs calibration_end = 0;  // inclusive: purchases on this day belong to calibration
  double time_unit_days = 7.0;
};

/// Customers whose first purchase is on or before the calibration end.
std::vector<ClvCustomer> summarize_for_clv(const OrderBook& book, const ClvSummaryOptions& opts);

/// Reads a lifetimes summary CSV: `ID,x,t_x,T,zbar` or `ID,frequency,recency,T[,monetary_value]`.
Result<std::vector<ClvCustomer>> read_clv_summary_csv(const std::string& path);

// Parameters and the closed-form evaluators live in the models stage, so the
// live engine scores profiles with the same code (models/clv_model.hpp).
using models::bgnbd_expected_purchases;
using models::bgnbd_p_alive;
using models::BgNbdParams;
using models::gamma_gamma_expected_spend;
using models::GammaGammaParams;
using models::hyp2f1;
using models::pareto_nbd_expected_purchases;
using models::pareto_nbd_p_alive;
using models::ParetoNbdParams;

double bgnbd_log_likelihood(const BgNbdParams& p, const std::vector<ClvCustomer>& c);
double pareto_nbd_log_likelihood(const ParetoNbdParams& p, const std::vector<ClvCustomer>& c);
double gamma_gamma_log_likelihood(const GammaGammaParams& p, const std::vector<ClvCustomer>& c);

BgNbdParams fit_bgnbd(const std::vector<ClvCustomer>& customers);
ParetoNbdParams fit_pareto_nbd(const std::vector<ClvCustomer>& customers);
GammaGammaParams fit_gamma_gamma(const std::vector<ClvCustomer>& customers);

struct ClvOptions {
  double horizon_time_units = 39;  // expected purchases reported for this horizon
  int clv_months = 12;             // CLV horizon in months
  double monthly_discount_rate = 0.01;
  double margin = 1.0;                  // share of spend that is profit
  double time_units_per_month = 4.345;  // weeks per month (lifetimes' factor)
  bool pareto_nbd = false;              // opt-in: see --pareto-nbd
};

struct ClvCustomerResult {
  double p_alive = 0;
  double expected_purchases = 0;  // in horizon_time_units
  double expected_spend = 0;      // per purchase
  double clv = 0;                 // discounted, over clv_months
};

/// The fitted model (also the model file the engine loads: models::clv_model_json).
using ClvModel = models::ClvModel;

/// The valuation part of the options, as stored in the model file.
models::ClvValuation clv_valuation(const ClvOptions& o);

ClvCustomerResult score_customer(const ClvModel& m, const ClvCustomer& c, const ClvOptions& o);

/// Fits everything; the per-customer results are in `results` (same order as customers).
ClvModel fit_clv(const std::vector<ClvCustomer>& customers, const ClvOptions& o);

/// Why a BG/NBD fit cannot be trusted, or "" when it can: a ≈ 0 or b huge
/// (the fitted dropout probability per purchase a/(a+b) is ≈ 0), or every
/// customer's P(alive) rounds to 1. Such a fit found no dropout in the data
/// and reports a Poisson rate as if it were a churn model.
std::string bgnbd_degeneracy(const BgNbdParams& p, const std::vector<ClvCustomerResult>& results);

Report clv_report(const ClvModel& m, const std::vector<ClvCustomer>& customers,
                  const std::vector<ClvCustomerResult>& results, const ClvOptions& o);

/// One row per customer, in `customers` order, for `--members-out`: userId,
/// p_alive, expected_purchases (over the horizon) and expected_value (the
/// discounted CLV over clv_months, the `clv` column of the report).
ReportTable clv_members_table(const std::vector<ClvCustomer>& customers,
                              const std::vector<ClvCustomerResult>& results);

/// Model file the engine loads to score live profiles (valuation from `o`).
std::string clv_model_json(const ClvModel& m, const ClvOptions& o);

}  // namespace storepulse::analytics
