#include "storepulse/analytics/report_table.hpp"

#include <catch2/catch.hpp>
#include <sstream>

using namespace storepulse::analytics;

TEST_CASE("plain CSV table: one header row - RFC 4180 quoting - a row limit") {
  ReportTable t;
  t.name = "members";
  t.title = "Members";
  t.columns = {"userId", "note"};
  t.rows = {{"Smith, \"Jr\"", "two\nlines"}, {"plain", "x"}, {"third", "y"}};
  CHECK(csv_table(t) ==
        "userId,note\n"
        "\"Smith, \"\"Jr\"\"\",\"two\nlines\"\n"
        "plain,x\n"
        "third,y\n");
  CHECK(csv_table(t, 1) == "userId,note\n\"Smith, \"\"Jr\"\"\",\"two\nlines\"\n");
  t.rows.clear();
  CHECK(csv_table(t) == "userId,note\n");  // no rows: still a header
}

TEST_CASE("csv files: one per table named by csv_file - the figures as key,value - no sections") {
  Report r;
  r.analysis = "rfm";
  r.figures = {{"customers", "2"}, {"note", "a,b"}};
  ReportTable main;
  main.name = "customers";
  main.csv_file = "rfm.csv";
  main.columns = {"customer", "frequency"};
  main.rows = {{"a", "2"}, {"b", "1"}};
  ReportTable other;
  other.name = "pareto";
  other.columns = {"customer_pct"};
  other.rows = {{"0"}, {"10"}};
  r.tables = {main, other};
  auto files = csv_files(r, 1);
  REQUIRE(files.size() == 3);
  CHECK(files[0].name == "rfm.csv");
  CHECK(files[0].text == "customer,frequency\na,2\n");  // --limit applies per table
  CHECK(files[1].name == "rfm_pareto.csv");             // the default name
  CHECK(files[1].text == "customer_pct\n0\n");
  CHECK(files[2].name == "rfm_figures.csv");
  CHECK(files[2].text == "key,value\ncustomers,2\nnote,\"a,b\"\n");  // figures are never cut
}
