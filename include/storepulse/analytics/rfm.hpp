#pragma once
// RFM per customer with quintile scores, and the Pareto (concentration) curve:
// which share of customers makes which share of revenue.
#include <optional>
#include <string>
#include <vector>

#include "storepulse/analytics/order_book.hpp"
#include "storepulse/analytics/report_table.hpp"

namespace storepulse::analytics {

struct RfmRow {
  std::string customer;
  std::int64_t recency_days = 0;              // snapshot day - day of last purchase
  std::int64_t frequency = 0;                 // orders
  protocol::Money monetary = 0;               // cents
  int r_score = 0, f_score = 0, m_score = 0;  // 1..5, 5 = best (most recent / most / most)
};

struct ParetoPoint {
  double customer_share = 0;  // top customers, by revenue
  double revenue_share = 0;
};

struct ParetoSummary {
  std::size_t customers = 0;
  protocol::Money revenue = 0;
  double customers_for_50 = 0;  // smallest share of customers making >= 50 % of revenue
  double customers_for_80 = 0;
  double customers_for_90 = 0;
  double top20_revenue_share = 0;  // revenue share of the top 20 % of customers
  std::vector<ParetoPoint> curve;  // 101 points, customer share 0..1
};

struct RfmOptions {
  /// Recency is counted to this day; default: the day after the last order.
  std::optional<TimeUs> snapshot;
};

struct RfmResult {
  std::vector<RfmRow> rows;  // book order
  ParetoSummary pareto;
  std::int64_t snapshot_day = 0;
};

RfmResult compute_rfm(const OrderBook& book, const RfmOptions& opts = {});

/// Pareto figures of per-customer revenues (any order).
ParetoSummary pareto_summary(std::vector<protocol::Money> revenues);

/// Quintile scores 1..5 by rank: min(5, 1 + floor(5 * below / (n - 1))),
/// `below` = customers with a strictly worse value, so ties share a score.
std::vector<int> quintile_scores(const std::vector<double>& values, bool higher_is_better);

Report rfm_report(const RfmResult& r);

/// One row per customer, in book order, for `--members-out`:
/// userId, recency (days), frequency (orders), monetary (currency units) and
/// grade, the R, F and M quintile scores as three digits ("545"; 5 = best).
ReportTable rfm_members_table(const RfmResult& r);

}  // namespace storepulse::analytics
