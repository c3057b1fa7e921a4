#include "storepulse/analytics/rfm.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <numeric>

namespace storepulse::analytics {

std::vector<int> quintile_scores(const std::vector<double>& values, bool higher_is_better) {
  const std::size_t n = values.size();
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    // number of customers with a strictly worse value
    std::size_t below =
        higher_is_better
            ? static_cast<std::size_t>(std::lower_bound(sorted.begin(), sorted.end(), values[i]) -
                                       sorted.begin())
            : static_cast<std::size_t>(sorted.end() -
                                       std::upper_bound(sorted.begin(), sorted.end(), values[i]));
    // spread ranks linearly over 1..5 (the best gets 5 even with few customers)
    out[i] = n == 1 ? 5 : std::min(5, 1 + static_cast<int>(5 * below / (n - 1)));
  }
  return out;
}

ParetoSummary pareto_summary(std::vector<protocol::Money> rev) {
  ParetoSummary p;
  p.customers = rev.size();
  std::sort(rev.begin(), rev.end(), std::greater<>());
  for (auto v : rev) p.revenue += v;
  const std::size_t n = rev.size();
  if (n == 0 || p.revenue <= 0) return p;
  const double total = static_cast<double>(p.revenue);
  std::vector<double> cum(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) cum[i + 1] = cum[i] + static_cast<double>(rev[i]);
  auto customers_for = [&](double share) {
    // integer cents: compare without rounding surprises at exactly 50 %
    for (std::size_t k = 1; k <= n; ++k)
      if (cum[k] >= share * total - 1e-6) return static_cast<double>(k) / static_cast<double>(n);
    return 1.0;
  };
  p.customers_for_50 = customers_for(0.5);
  p.customers_for_80 = customers_for(0.8);
  p.customers_for_90 = customers_for(0.9);
  std::size_t top = (n * 20 + 99) / 100;  // ceil(20 % of n)
  p.top20_revenue_share = cum[top] / total;
  for (int i = 0; i <= 100; ++i) {
    std::size_t k = (n * static_cast<std::size_t>(i) + 50) / 100;
    p.curve.push_back({static_cast<double>(i) / 100.0, cum[k] / total});
  }
  return p;
}

RfmResult compute_rfm(const OrderBook& book, const RfmOptions& opts) {
  RfmResult r;
  r.snapshot_day = opts.snapshot ? day_of(*opts.snapshot) : day_of(book.last_time) + 1;
  std::vector<double> rec, freq, mon;
  std::vector<protocol::Money> revenues;
  for (std::size_t i = 0; i < book.size(); ++i) {
    RfmRow row;
    row.customer = book.customers[i];
    TimeUs last = 0;
    bool any = false;
    for (const auto* o = book.begin_of(i); o != book.end_of(i); ++o) {
      row.monetary += o->value;
      if (o->value >= 0) {  // refunds (net mode) are not visits
        ++row.frequency;
        last = any ? std::max(last, o->time) : o->time;
        any = true;
      }
    }
    if (!any) continue;
    row.recency_days = r.snapshot_day - day_of(last);
    rec.push_back(static_cast<double>(row.recency_days));
    freq.push_back(static_cast<double>(row.frequency));
    mon.push_back(static_cast<double>(row.monetary));
    revenues.push_back(std::max<protocol::Money>(0, row.monetary));
    r.rows.push_back(std::move(row));
  }
  auto rs = quintile_scores(rec, false), fs = quintile_scores(freq, true),
       ms = quintile_scores(mon, true);
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    r.rows[i].r_score = rs[i];
    r.rows[i].f_score = fs[i];
    r.rows[i].m_score = ms[i];
  }
  r.pareto = pareto_summary(std::move(revenues));
  return r;
}

Report rfm_report(const RfmResult& r) {
  Report rep;
  rep.analysis = "rfm";
  std::int64_t orders = 0;
  for (const auto& row : r.rows) orders += row.frequency;
  std::int64_t y_days = r.snapshot_day;
  int y;
  unsigned m, d;
  civil_from_days(y_days, y, m, d);
  rep.figures = {{"customers", std::to_string(r.rows.size())},
                 {"orders", std::to_string(orders)},
                 {"revenue", fmt_money(r.pareto.revenue)},
                 {"snapshot", fmt::format("{:04}-{:02}-{:02}", y, m, d)},
                 {"customers_for_50pct_revenue_pct", fmt_percent(r.pareto.customers_for_50, 2)},
                 {"customers_for_80pct_revenue_pct", fmt_percent(r.pareto.customers_for_80, 2)},
                 {"customers_for_90pct_revenue_pct", fmt_percent(r.pareto.customers_for_90, 2)},
                 {"top20pct_customers_revenue_pct", fmt_percent(r.pareto.top20_revenue_share, 2)}};
  ReportTable t;
  t.name = "customers";
  t.csv_file = "rfm.csv";
  t.title = "RFM per customer (by monetary)";
  t.columns = {"customer", "recency_days", "frequency", "monetary", "R", "F", "M", "RFM"};
  t.numeric = {false, true, true, true, true, true, true, false};
  std::vector<std::size_t> order(r.rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return r.rows[a].monetary > r.rows[b].monetary;
  });
  for (auto i : order) {
    const auto& x = r.rows[i];
    t.rows.push_back({x.customer, std::to_string(x.recency_days), std::to_string(x.frequency),
                      fmt_money(x.monetary), std::to_string(x.r_score), std::to_string(x.f_score),
                      std::to_string(x.m_score),
                      fmt::format("{}{}{}", x.r_score, x.f_score, x.m_score)});
  }
  ReportTable pc;
  pc.name = "pareto";
  pc.csv_file = "pareto.csv";
  pc.title = "Pareto curve (top customers by revenue)";
  pc.columns = {"customer_pct", "revenue_pct"};
  pc.numeric = {true, true};
  for (std::size_t i = 0; i < r.pareto.curve.size(); i += 10)
    pc.rows.push_back({fmt_percent(r.pareto.curve[i].customer_share, 0),
                       fmt_percent(r.pareto.curve[i].revenue_share, 2)});
  rep.tables.push_back(std::move(pc));
  rep.tables.push_back(std::move(t));
  return rep;
}

ReportTable rfm_members_table(const RfmResult& r) {
  ReportTable t;
  t.name = "members";
  t.title = "RFM per member";
  t.columns = {"userId", "recency", "frequency", "monetary", "grade"};
  t.numeric = {false, true, true, true, false};
  t.rows.reserve(r.rows.size());
  for (const auto& x : r.rows)
    t.rows.push_back({x.customer, std::to_string(x.recency_days), std::to_string(x.frequency),
                      fmt_money(x.monetary),
                      fmt::format("{}{}{}", x.r_score, x.f_score, x.m_score)});
  return t;
}

}  // namespace storepulse::analytics
