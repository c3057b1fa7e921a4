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
