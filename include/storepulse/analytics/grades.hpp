#pragma once
// Value grades: each member's spend and visit frequency against the member
// averages, giving the classic 2 x 2 (amount x frequency) grade matrix that
// retailers use to pick who gets which programme.
#include <string>
#include <vector>

#include "storepulse/analytics/order_book.hpp"
#include "storepulse/analytics/report_table.hpp"

namespace storepulse::analytics {

enum class ValueGrade {
  kHighAmountHighFrequency,
  kHighAmountLowFrequency,
  kLowAmountHighFrequency,
  kLowAmountLowFrequency
};
std::string_view value_grade_name(ValueGrade g);

struct GradeRow {
  std::string customer;
  protocol::Money spend = 0;
  std::int64_t orders = 0;
  double monthly_spend = 0;  // currency units per month of the observation period
  ValueGrade grade = ValueGrade::kLowAmountLowFrequency;
};

struct GradeCell {
  std::size_t members = 0;
  protocol::Money revenue = 0;
};

struct GradeOptions {
  double monthly_minimum = 0;  // currency units; members below are listed (0 = none)
};

struct GradeResult {
  double average_spend = 0;  // currency units per member
  double average_orders = 0;
  double period_months = 0;  // first to last order in the data, >= 1
  GradeCell cells[4];        // indexed by ValueGrade
  std::vector<GradeRow> rows;
  std::vector<std::size_t> under_minimum;  // indexes into rows, lowest monthly spend first
};

/// A member at or above the average counts as "high" on that axis.
GradeResult compute_grades(const OrderBook& book, const GradeOptions& opts = {});

Report grades_report(const GradeResult& g, const GradeOptions& opts);

}  // namespace storepulse::analytics
