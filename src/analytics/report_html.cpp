#include "storepulse/analytics/report_html.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace storepulse::analytics {

std::string html_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o.push_back(c);
    }
  }
  return o;
}

namespace {

constexpr int kW = 520, kH = 300, kPad = 45;

struct Axes {
  double x0, x1, y0, y1;
  double px(double x) const {
    return kPad + (x - x0) / (x1 - x0 == 0 ? 1 : x1 - x0) * (kW - 2 * kPad);
  }
  double py(double y) const {
    return kH - kPad - (y - y0) / (y1 - y0 == 0 ? 1 : y1 - y0) * (kH - 2 * kPad);
  }
};

std::string svg_open(const std::string& label) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "role=\"img\" aria-label=\"{}\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n",
      kW, kH, kW, kH, html_escape(label));
}

}  // namespace

std::string tick_label(double v) {
  if (!std::isfinite(v)) return "";
  if (v == 0) return "0";
  // SI suffixes keep every label within ~5 characters, which the 45 px margin
  // left of the y axis holds at 10 px (1.79e+06 did not fit: "79e+06" showed).
  static constexpr std::string_view kSuffix[] = {"", "k", "M", "G", "T", "P", "E"};
  double a = std::fabs(v);
  if (a < 1) return fmt::format("{:.3g}", v);
  std::size_t i = 0;
  // 999.5 rounds to "1e+03" at 3 digits: move to the next suffix first.
  while (a >= 999.5 && i + 1 < std::size(kSuffix)) {
    a /= 1000;
    ++i;
  }
  return fmt::format("{}{:.3g}{}", v < 0 ? "-" : "", a, kSuffix[i]);
}

namespace {

std::string axes_svg(const Axes& a, const std::string& xlabel, const std::string& ylabel,
                     int ticks = 5, bool x_ticks = true) {
  std::string s;
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n", kPad,
                   kH - kPad, kW - kPad, kH - kPad);
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n", kPad, kPad,
                   kPad, kH - kPad);
  for (int i = 0; i <= ticks; ++i) {
    double xv = a.x0 + (a.x1 - a.x0) * i / ticks, yv = a.y0 + (a.y1 - a.y0) * i / ticks;
    if (x_ticks)
      s += fmt::format(
          "<text class=\"tick\" x=\"{:.1f}\" y=\"{}\" font-size=\"10\" "
          "text-anchor=\"middle\">{}</text>\n",
          a.px(xv), kH - kPad + 14, tick_label(xv));
    s += fmt::format(
        "<text class=\"tick\" x=\"{}\" y=\"{:.1f}\" font-size=\"10\" "
        "text-anchor=\"end\">{}</text>\n",
        kPad - 4, a.py(yv) + 3, tick_label(yv));
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
                   kW / 2, kH - 8, html_escape(xlabel));
  s += fmt::format(
      "<text x=\"12\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 "
      "{})\">{}</text>\n",
      kH / 2, kH / 2, html_escape(ylabel));
  return s;
}

std::string table_html(const ReportTable& t, std::size_t max_rows) {
  std::string s = "<table>\n<tr>";
  for (const auto& c : t.columns) s += "<th>" + html_escape(c) + "</th>";
  s += "</tr>\n";
  for (std::size_t i = 0; i < t.rows.size() && (max_rows == 0 || i < max_rows); ++i) {
    s += "<tr>";
    for (std::size_t c = 0; c < t.rows[i].size(); ++c) {
      bool num = c < t.numeric.size() && t.numeric[c];
      s += num ? "<td class=\"n\">" : "<td>";
      s += html_escape(t.rows[i][c]) + "</td>";
    }
    s += "</tr>\n";
  }
  s += "</table>\n";
  if (max_rows && t.rows.size() > max_rows)
    s += fmt::format("<p class=\"note\">{} more rows not shown.</p>\n", t.rows.size() - max_rows);
  return s;
}

std::string figures_html(const std::vector<std::pair<std::string, std::string>>& f) {
  std::string s = "<dl>";
  for (const auto& [k, v] : f)
    s += "<dt>" + html_escape(k) + "</dt><dd>" + html_escape(v) + "</dd>";
  return s + "</dl>\n";
}

std::string pareto_svg(const ParetoSummary& p) {
  Axes a{0, 100, 0, 100};
  std::string s = svg_open("Pareto curve") +
                  axes_svg(a, "% of customers (by revenue, descending)", "% of revenue");
  s += fmt::format(
      "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#bbb\" "
      "stroke-dasharray=\"4\"/>\n",
      a.px(0), a.py(0), a.px(100), a.py(100));
  std::string pts;
  for (const auto& q : p.curve)
    pts += fmt::format("{:.1f},{:.1f} ", a.px(q.customer_share * 100), a.py(q.revenue_share * 100));
  s += "<polyline fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\" points=\"" + pts + "\"/>\n";
  double x20 = 20, y20 = p.top20_revenue_share * 100;
  s += fmt::format(
      "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"#d73a49\"/><text x=\"{:.1f}\" "
      "y=\"{:.1f}\" font-size=\"11\">top 20 %: {:.1f} % of revenue</text>\n",
      a.px(x20), a.py(y20), a.px(x20) + 8, a.py(y20) + 14, y20);
  return s + "</svg>\n";
}

std::string grade_svg(const GradeResult& g) {
  std::string s = svg_open("Grade matrix");
  protocol::Money total = 0;
  for (const auto& c : g.cells) total += c.revenue;
  const char* names[] = {"high amount / high freq", "high amount / low freq",
                         "low amount / high freq", "low amount / low freq"};
  const int cw = (kW - 2 * kPad) / 2, ch = (kH - 2 * kPad) / 2;
  for (int k = 0; k < 4; ++k) {
    int col = k % 2 == 0 ? 1 : 0;  // frequency: high on the right
    int row = k < 2 ? 0 : 1;       // amount: high on top
    double share =
        total > 0 ? static_cast<double>(g.cells[k].revenue) / static_cast<double>(total) : 0;
    int shade = 255 - static_cast<int>(share * 180);
    double x = kPad + col * cw, y = kPad + row * ch;
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"rgb({},{},255)\" "
        "stroke=\"#333\"/>\n",
        x, y, cw, ch, shade, shade);
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n",
                     x + cw / 2.0, y + ch / 2.0 - 16, names[k]);
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{} members</text>\n",
        x + cw / 2.0, y + ch / 2.0 + 2, g.cells[k].members);
    s += fmt::format(
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{} ({:.1f} % of "
        "revenue)</text>\n",
        x + cw / 2.0, y + ch / 2.0 + 20, fmt_money(g.cells[k].revenue), share * 100);
  }
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">frequency: low | high (vs "
      "average {:.2f} orders)</text>\n",
      kW / 2, kH - 15, g.average_orders);
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">amount vs average {:.2f}: "
      "high (top) / low (bottom)</text>\n",
      kW / 2, 25, g.average_spend);
  return s + "</svg>\n";
}

std::string histogram_svg(const std::vector<double>& values, const std::string& label,
                          const std::string& xlabel) {
  std::string s = svg_open(label);
  if (values.empty()) return s + "</svg>\n";
  std::vector<double> v = values;
  std::sort(v.begin(), v.end());
  // clip at the 99th percentile so one whale does not flatten the chart
  double hi = v[std::min(v.size() - 1, v.size() * 99 / 100)], lo = std::min(0.0, v.front());
  if (hi <= lo) hi = lo + 1;
  constexpr int kBins = 30;
  std::vector<std::size_t> bins(kBins, 0);
  for (double x : v)
    bins[std::min<std::size_t>(
        kBins - 1, static_cast<std::size_t>(std::max(0.0, (x - lo) / (hi - lo) * kBins)))]++;
  double maxc = static_cast<double>(*std::max_element(bins.begin(), bins.end()));
  Axes a{lo, hi, 0, maxc};
  s += axes_svg(a, xlabel, "customers");
  for (int i = 0; i < kBins; ++i) {
    double x0 = a.px(lo + (hi - lo) * i / kBins), x1 = a.px(lo + (hi - lo) * (i + 1) / kBins);
    double y = a.py(static_cast<double>(bins[i]));
    s += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#2da44e\"/>\n",
        x0, y, std::max(0.5, x1 - x0 - 1), a.py(0) - y);
  }
  return s + "</svg>\n";
}

std::string scatter_svg(const std::vector<std::pair<double, double>>& pts, const std::string& label,
                        const std::string& xlabel, const std::string& ylabel) {
  std::string s = svg_open(label);
  double xmax = 1;
  for (const auto& p : pts) xmax = std::max(xmax, p.first);
  Axes a{0, xmax, 0, 1};
  s += axes_svg(a, xlabel, ylabel);
  const std::size_t step = std::max<std::size_t>(1, pts.size() / 3000);  // keep the page light
  for (std::size_t i = 0; i < pts.size(); i += step)
    s += fmt::format(
        "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"1.8\" fill=\"#8250df\" fill-opacity=\"0.5\"/>",
        a.px(pts[i].first), a.py(pts[i].second));
  return s + "\n</svg>\n";
}

std::string bars_svg(const std::vector<std::pair<std::string, double>>& bars,
                     const std::string& label, const std::string& ylabel) {
  std::string s = svg_open(label);
  double maxv = 1;
  for (const auto& b : bars) maxv = std::max(maxv, b.second);
  Axes a{0, static_cast<double>(bars.size()), 0, maxv};
  // Categories have no numeric x axis: each bar is named under it, its value above it.
  s += axes_svg(a, "", ylabel, 4, false);
  const double bw = (kW - 2 * kPad) / std::max<double>(1, static_cast<double>(bars.size()));
  for (std::size_t i = 0; i < bars.size(); ++i) {
    double x = kPad + bw * static_cast<double>(i) + bw * 0.15, y = a.py(bars[i].second);
    s += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#bf8700\"/>\n",
        x, y, bw * 0.7, a.py(0) - y);
    s += fmt::format(
        "<text class=\"value\" x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" "
        "text-anchor=\"middle\">{}</text>\n",
        x + bw * 0.35, std::max(12.0, y - 4), tick_label(bars[i].second));
    s += fmt::format(
        "<text class=\"category\" x=\"{:.1f}\" y=\"{}\" font-size=\"11\" "
        "text-anchor=\"middle\">{}</text>\n",
        x + bw * 0.35, kH - kPad + 15, html_escape(bars[i].first));
  }
  return s + "</svg>\n";
}

}  // namespace

std::string render_html_report(const HtmlReportInput& in) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" +
       html_escape(in.title) + "</title>\n";
  h += "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
       "h2{border-bottom:1px solid "
       "#ddd;padding-bottom:4px;margin-top:2em}table{border-collapse:collapse;font-size:13px}"
       "td,th{border:1px solid #ddd;padding:3px "
       "8px}td.n{text-align:right}dl{display:grid;grid-template-columns:max-content auto;gap:2px "
       "16px}"
       "dt{color:#555}dd{margin:0;font-weight:600}.note{color:#777;font-size:12px}.row{display:"
       "flex;gap:20px;flex-wrap:wrap}.warn{background:#fff4e5;border:1px solid "
       "#d4a72c;padding:8px 12px}</style>\n";
  h += "</head><body>\n<h1>" + html_escape(in.title) + "</h1>\n";
  if (!in.source.empty()) h += "<p class=\"note\">Source: " + html_escape(in.source) + "</p>\n";

  if (in.rfm) {
    auto rep = rfm_report(*in.rfm);
    h += "<h2>RFM and Pareto</h2>\n" + figures_html(rep.figures);
    h += "<div class=\"row\">" + pareto_svg(in.rfm->pareto) + "</div>\n";
    // RFM cell counts: how many customers per R score x F score
    ReportTable cells;
    cells.title = "Customers per R (rows) x F (columns) score";
    cells.columns = {"R \\ F", "1", "2", "3", "4", "5"};
    cells.numeric = {false, true, true, true, true, true};
    std::size_t cnt[6][6] = {};
    for (const auto& r : in.rfm->rows) cnt[r.r_score][r.f_score]++;
    for (int r = 5; r >= 1; --r) {
      std::vector<std::string> row{std::to_string(r)};
      for (int f = 1; f <= 5; ++f) row.push_back(std::to_string(cnt[r][f]));
      cells.rows.push_back(row);
    }
    h += "<h3>" + cells.title + "</h3>\n" + table_html(cells, 0);
  }
  if (in.grades) {
    auto rep = grades_report(*in.grades, {});
    h += "<h2>Value grades</h2>\n" + figures_html(rep.figures);
    h += "<div class=\"row\">" + grade_svg(*in.grades) + "</div>\n" + table_html(rep.tables[0], 0);
  }
  for (const auto& extra : in.extra) {
    h += "<h2>" + html_escape(extra.analysis) + "</h2>\n" + figures_html(extra.figures);
    for (const auto& t : extra.tables)
      h += "<h3>" + html_escape(t.title) + "</h3>\n" + table_html(t, 30);
  }
  if (in.baskets && in.rules) {
    BasketRuleOptions dummy;
    auto rep = basket_report(*in.baskets, *in.rules, dummy);
    h += "<h2>Basket rules</h2>\n";
    h += figures_html({{"transactions", std::to_string(in.rules->transactions)},
                       {"min_count", std::to_string(in.rules->min_count)},
                       {"frequent itemsets", std::to_string(in.rules->frequent_itemsets)},
                       {"rules", std::to_string(in.rules->rules.size())}});
    h += "<h3>Top rules by lift</h3>\n" + table_html(rep.tables[0], in.top_rules);
  }
  if (in.clv && in.clv_customers && in.clv_results) {
    ClvOptions o;
    auto rep = clv_report(*in.clv, *in.clv_customers, *in.clv_results, o);
    h += "<h2>Customer lifetime value (BG/NBD + Gamma-Gamma)</h2>\n";
    if (auto why = bgnbd_degeneracy(in.clv->bgnbd, *in.clv_results); !why.empty())
      h += "<p class=\"warn\" role=\"alert\"><strong>Degenerate BG/NBD fit: " + html_escape(why) +
           ".</strong> The data show no dropout this model can see, so P(alive), expected "
           "purchases and CLV below are not a result to act on. Check the calibration period "
           "(--calibration-end) and that the data cover customers who stopped buying.</p>\n";
    h += figures_html(rep.figures);
    std::vector<double> clv;
    std::vector<std::pair<double, double>> alive;
    for (std::size_t i = 0; i < in.clv_customers->size(); ++i) {
      clv.push_back((*in.clv_results)[i].clv);
      const auto& c = (*in.clv_customers)[i];
      alive.push_back({c.T - c.t_x, (*in.clv_results)[i].p_alive});
    }
    h += "<div class=\"row\">" + histogram_svg(clv, "CLV distribution", "CLV per customer") +
         scatter_svg(alive, "P(alive) vs recency", "time since last purchase (T - t_x)",
                     "P(alive)") +
         "</div>\n";
    h += "<h3>Top customers by CLV</h3>\n" + table_html(rep.tables[0], 20);
  }
  if (in.channels) {
    ChannelOptions o;
    auto rep = channels_report(*in.channels, o);
    h += "<h2>Channels: online vs store</h2>\n" + figures_html(rep.figures);
    const auto& c = *in.channels;
    h += "<div class=\"row\">" +
         bars_svg({{"online", static_cast<double>(c.online_revenue) / 100},
                   {"store", static_cast<double>(c.store_revenue) / 100},
                   {"unknown", static_cast<double>(c.unknown_revenue) / 100}},
                  "Revenue by channel", "revenue") +
         bars_svg({{"new", static_cast<double>(c.online_buyers_new)},
                   {"existing", static_cast<double>(c.online_buyers_existing)}},
                  "Online buyers: new vs existing store customers", "customers") +
         "</div>\n";
    for (const auto& t : rep.tables)
      h += "<h3>" + html_escape(t.title) + "</h3>\n" + table_html(t, 20);
  }
  h += "<p class=\"note\">Generated by storepulse analyze report. Self-contained: no scripts or "
       "network resources.</p>\n</body></html>\n";
  return h;
}

}  // namespace storepulse::analytics
