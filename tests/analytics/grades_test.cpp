#include "storepulse/analytics/grades.hpp"

#include <catch2/catch.hpp>

#include "analytics_fixtures.hpp"

using namespace storepulse;
using namespace storepulse::analytics;
using storepulse::analytics::testing::order;

TEST_CASE(
    "grades hand-computed: 2x2 matrix against the averages - members under a monthly minimum") {
  // period 2024-01-01 .. 2024-03-01 = 61 days = 2.004 months
  std::vector<protocol::Event> evs = {
      order("hh", "2024-01-01T10:00:00Z", 100), order("hh", "2024-02-01T10:00:00Z", 100),
      order("hh", "2024-03-01T10:00:00Z", 100),  // 300, 3
      order("hl", "2024-01-15T10:00:00Z", 400),  // 400, 1
      order("lh", "2024-01-02T10:00:00Z", 10),  order("lh", "2024-01-03T10:00:00Z", 10),
      order("lh", "2024-01-04T10:00:00Z", 10),   // 30, 3
      order("ll", "2024-02-02T10:00:00Z", 10)};  // 10, 1
  // averages: spend 740/4 = 185, orders 8/4 = 2
  GradeOptions opt;
  opt.monthly_minimum = 10;  // lh: 30/2.004 = 14.97 ok; ll: 4.99 under
  auto g = compute_grades(build_order_book(evs), opt);
  CHECK(g.average_spend == Approx(185));
  CHECK(g.average_orders == Approx(2));
  CHECK(g.period_months == Approx(61 / (365.2425 / 12)));
  using VG = ValueGrade;
  CHECK(g.cells[static_cast<int>(VG::kHighAmountHighFrequency)].members == 1);
  CHECK(g.cells[static_cast<int>(VG::kHighAmountHighFrequency)].revenue == 30000);
  CHECK(g.cells[static_cast<int>(VG::kHighAmountLowFrequency)].revenue == 40000);
  CHECK(g.cells[static_cast<int>(VG::kLowAmountHighFrequency)].revenue == 3000);
  CHECK(g.cells[static_cast<int>(VG::kLowAmountLowFrequency)].members == 1);
  REQUIRE(g.under_minimum.size() == 1);
  CHECK(g.rows[g.under_minimum[0]].customer == "ll");
  auto rep = grades_report(g, opt);
  CHECK(rep.tables[0].rows.size() == 4);
  CHECK(rep.tables[1].rows.size() == 1);
}
