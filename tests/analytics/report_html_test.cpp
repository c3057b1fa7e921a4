#include "storepulse/analytics/report_html.hpp"

#include <catch2/catch.hpp>
#include <sstream>

#include "analytics_fixtures.hpp"

using namespace storepulse;
using namespace storepulse::analytics;
using storepulse::analytics::testing::order;

TEST_CASE("HTML report: escapes text - draws the Pareto and grade charts inline") {
  std::vector<protocol::Event> evs = {order("<b>", "2024-01-01T10:00:00Z", 10),
                                      order("b", "2024-01-02T10:00:00Z", 30),
                                      order("b", "2024-01-05T10:00:00Z", 30)};
  auto book = build_order_book(evs);
  auto rfm = compute_rfm(book);
  auto grades = compute_grades(book);
  HtmlReportInput in;
  in.title = "Test & report";
  in.rfm = &rfm;
  in.grades = &grades;
  auto html = render_html_report(in);
  CHECK(html.find("Test &amp; report") != std::string::npos);
  CHECK(html.find("<b>") == std::string::npos);
  CHECK(html.find("aria-label=\"Pareto curve\"") != std::string::npos);
  CHECK(html.find("aria-label=\"Grade matrix\"") != std::string::npos);
  CHECK(html.find("<script") == std::string::npos);
}

TEST_CASE("report table renderer: csv quoting and json numbers") {
  Report r;
  r.analysis = "x";
  r.figures = {{"n", "3"}, {"name", "a,b"}};
  ReportTable t;
  t.name = "t";
  t.title = "T";
  t.columns = {"k", "v"};
  t.numeric = {false, true};
  t.rows = {{"a,\"b\"", "1.50"}};
  r.tables.push_back(t);
  std::ostringstream csv, json;
  render_report(r, OutputFormat::kCsv, csv);
  render_report(r, OutputFormat::kJson, json);
  CHECK(csv.str().find("\"a,\"\"b\"\"\",1.50") != std::string::npos);
  CHECK(json.str() ==
        "{\"analysis\":\"x\",\"figures\":{\"n\":3,\"name\":\"a,b\"},\"tables\":{\"t\":[{\"k\":\"a,"
        "\\\"b\\\"\",\"v\":1.50}]}}\n");
  CHECK(fmt_money(-1234) == "-12.34");
}

namespace {
// The <svg>…</svg> whose aria-label is `label`.
std::string chart(const std::string& html, const std::string& label) {
  auto at = html.find("aria-label=\"" + label + "\"");
  if (at == std::string::npos) return {};
  auto begin = html.rfind("<svg", at);
  return html.substr(begin, html.find("</svg>", at) - begin);
}
}  // namespace

TEST_CASE("chart labels: 3 significant digits and an SI suffix, never an exponent") {
  CHECK(tick_label(0) == "0");
  CHECK(tick_label(1790000) == "1.79M");  // was "1.79e+06", clipped to "79e+06"
  CHECK(tick_label(2500) == "2.5k");
  CHECK(tick_label(999.7) == "1k");  // not "1e+03k"
  CHECK(tick_label(150) == "150");
  CHECK(tick_label(0.25) == "0.25");
  CHECK(tick_label(-2e6) == "-2M");
  CHECK(tick_label(8.91e9) == "8.91G");
  CHECK(tick_label(1) == "1");
}

TEST_CASE("HTML report: category bars are named under the axis - no numeric x ticks") {
  ChannelResult c;
  c.online_revenue = 179000000;  // 1.79 M in currency units
  c.store_revenue = 395000000;
  c.online_buyers_new = 120;
  c.online_buyers_existing = 80;
  HtmlReportInput in;
  in.channels = &c;
  auto html = render_html_report(in);
  auto revenue = chart(html, "Revenue by channel");
  REQUIRE_FALSE(revenue.empty());
  std::size_t categories = 0;
  for (auto at = revenue.find("class=\"category\""); at != std::string::npos;
       at = revenue.find("class=\"category\"", at + 1))
    ++categories;
  CHECK(categories == 3);
  CHECK(revenue.find(">online</text>") != std::string::npos);
  CHECK(revenue.find(">store</text>") != std::string::npos);
  CHECK(revenue.find(">1.79M</text>") != std::string::npos);  // the online bar's value
  CHECK(revenue.find(">3.95M</text>") != std::string::npos);  // the top of the y axis
  CHECK(revenue.find("e+0") == std::string::npos);
  // the x axis of a category chart has no numbers: 0, 0.6, 1.2 … under 3 bars was the defect
  CHECK(revenue.find(">0.6</text>") == std::string::npos);
  CHECK(revenue.find(">0.75</text>") == std::string::npos);
  auto buyers = chart(html, "Online buyers: new vs existing store customers");
  CHECK(buyers.find(">new</text>") != std::string::npos);
  CHECK(buyers.find(">existing</text>") != std::string::npos);
  CHECK(buyers.find(">0.4</text>") == std::string::npos);
}

TEST_CASE("HTML report: a degenerate BG/NBD fit is flagged above its figures") {
  std::vector<ClvCustomer> cs;
  for (int i = 0; i < 20; ++i) cs.push_back({std::to_string(i), 3, 10, 12, 25, 0});
  ClvModel m;
  m.bgnbd = {3.3, 2.1, 7.9e-10, 16703, 0};  // what a fit of storepulse simulate data gave
  m.gamma_gamma = {6.2488, 3.7446, 15.4477, 0, 0};
  std::vector<ClvCustomerResult> rs;
  for (const auto& c : cs) rs.push_back(score_customer(m, c, ClvOptions{}));
  HtmlReportInput in;
  in.clv = &m;
  in.clv_customers = &cs;
  in.clv_results = &rs;
  auto html = render_html_report(in);
  auto warn = html.find("Degenerate BG/NBD fit: a = 7.9e-10");
  REQUIRE(warn != std::string::npos);
  CHECK(warn < html.find("<dt>bgnbd_r</dt>"));  // read before the parameters

  m.bgnbd = {0.2425945, 4.4136019, 0.7929199, 2.4258881, 0};  // CDNOW
  rs.clear();
  for (const auto& c : cs) rs.push_back(score_customer(m, c, ClvOptions{}));
  CHECK(render_html_report(in).find("Degenerate") == std::string::npos);
}
