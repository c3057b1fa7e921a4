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
