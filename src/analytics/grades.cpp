#include "storepulse/analytics/grades.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace storepulse::analytics {

std::string_view value_grade_name(ValueGrade g) {
  switch (g) {
    case ValueGrade::kHighAmountHighFrequency: return "high amount / high frequency";
    case ValueGrade::kHighAmountLowFrequency: return "high amount / low frequency";
    case ValueGrade::kLowAmountHighFrequency: return "low amount / high frequency";
    case ValueGrade::kLowAmountLowFrequency: return "low amount / low frequency";
  }
  return "";
}

namespace {
constexpr double kDaysPerMonth = 365.2425 / 12;
}

GradeResult compute_grades(const OrderBook& book, const GradeOptions& opts) {
  GradeResult g;
  const double days = static_cast<double>(day_of(book.last_time) - day_of(book.first_time) + 1);
  g.period_months = std::max(1.0, days / kDaysPerMonth);
  double spend_sum = 0, order_sum = 0;
  for (std::size_t i = 0; i < book.size(); ++i) {
    GradeRow row;
    row.customer = book.customers[i];
    for (const auto* o = book.begin_of(i); o != book.end_of(i); ++o) {
      row.spend += o->value;
      if (o->value >= 0) ++row.orders;
    }
    if (row.orders == 0) continue;
    row.monthly_spend = static_cast<double>(row.spend) / 100.0 / g.period_months;
    spend_sum += static_cast<double>(row.spend) / 100.0;
    order_sum += static_cast<double>(row.orders);
    g.rows.push_back(std::move(row));
  }
  if (g.rows.empty()) return g;
  const double n = static_cast<double>(g.rows.size());
  g.average_spend = spend_sum / n;
  g.average_orders = order_sum / n;
  for (std::size_t i = 0; i < g.rows.size(); ++i) {
    auto& row = g.rows[i];
    const bool high_amount = static_cast<double>(row.spend) / 100.0 >= g.average_spend;
    const bool high_freq = static_cast<double>(row.orders) >= g.average_orders;
    row.grade = high_amount ? (high_freq ? ValueGrade::kHighAmountHighFrequency
                                         : ValueGrade::kHighAmountLowFrequency)
                            : (high_freq ? ValueGrade::kLowAmountHighFrequency
                                         : ValueGrade::kLowAmountLowFrequency);
    auto& cell = g.cells[static_cast<int>(row.grade)];
    ++cell.members;
    cell.revenue += row.spend;
    if (opts.monthly_minimum > 0 && row.monthly_spend < opts.monthly_minimum)
      g.under_minimum.push_back(i);
  }
  std::stable_sort(g.under_minimum.begin(), g.under_minimum.end(),
                   [&](std::size_t a, std::size_t b) {
                     return g.rows[a].monthly_spend < g.rows[b].monthly_spend;
                   });
  return g;
}

Report grades_report(const GradeResult& g, const GradeOptions& opts) {
  Report rep;
  rep.analysis = "grades";
  protocol::Money total = 0;
  for (const auto& c : g.cells) total += c.revenue;
  rep.figures = {{"members", std::to_string(g.rows.size())},
                 {"average_spend", fmt_fixed(g.average_spend, 2)},
                 {"average_orders", fmt_fixed(g.average_orders, 3)},
                 {"period_months", fmt_fixed(g.period_months, 2)},
                 {"monthly_minimum", fmt_fixed(opts.monthly_minimum, 2)},
                 {"members_under_minimum", std::to_string(g.under_minimum.size())}};
  ReportTable m;
  m.name = "matrix";
  m.csv_file = "grades.csv";
  m.title = "Grade matrix (amount x frequency vs the member average)";
  m.columns = {"amount", "frequency", "members", "members_pct", "revenue", "revenue_pct"};
  m.numeric = {false, false, true, true, true, true};
  const char* amount[] = {"high", "high", "low", "low"};
  const char* freq[] = {"high", "low", "high", "low"};
  for (int k = 0; k < 4; ++k) {
    const auto& c = g.cells[k];
    m.rows.push_back(
        {amount[k], freq[k], std::to_string(c.members),
         fmt_percent(g.rows.empty()
                         ? 0
                         : static_cast<double>(c.members) / static_cast<double>(g.rows.size()),
                     1),
         fmt_money(c.revenue),
         fmt_percent(total > 0 ? static_cast<double>(c.revenue) / static_cast<double>(total) : 0,
                     1)});
  }
  rep.tables.push_back(std::move(m));
  ReportTable u;
  u.name = "under_minimum";
  u.csv_file = "grades_under_minimum.csv";
  u.title =
      fmt::format("Members under the monthly minimum of {}", fmt_fixed(opts.monthly_minimum, 2));
  u.columns = {"customer", "monthly_spend", "spend", "orders", "grade"};
  u.numeric = {false, true, true, true, false};
  for (auto i : g.under_minimum) {
    const auto& r = g.rows[i];
    u.rows.push_back({r.customer, fmt_fixed(r.monthly_spend, 2), fmt_money(r.spend),
                      std::to_string(r.orders), std::string(value_grade_name(r.grade))});
  }
  rep.tables.push_back(std::move(u));
  return rep;
}

}  // namespace storepulse::analytics
