#include "storepulse/common/calendar.hpp"

#include <cstdlib>

#include "storepulse/common/time.hpp"

namespace storepulse {

unsigned days_in_month(int y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap_year(y) ? 29 : kDays[m - 1];
}

std::int64_t birthday_in_year(int mmdd, int y) {
  const auto m = static_cast<unsigned>(mmdd / 100);
  auto d = static_cast<unsigned>(mmdd % 100);
  if (m == 2 && d == 29 && !is_leap_year(y)) d = 28;
  return days_from_civil(y, m, d);
}

int days_since_birthday(int mmdd, std::int64_t day) {
  if (mmdd == 0) return -1;
  int y;
  unsigned m, d;
  civil_from_days(day, y, m, d);
  std::int64_t last = birthday_in_year(mmdd, y);
  if (last > day) last = birthday_in_year(mmdd, y - 1);
  return static_cast<int>(day - last);
}

int days_from_birthday(int mmdd, std::int64_t day) {
  if (mmdd == 0) return -1;
  int y;
  unsigned m, d;
  civil_from_days(day, y, m, d);
  std::int64_t best = -1;
  for (int yy = y - 1; yy <= y + 1; ++yy) {
    const std::int64_t diff = std::llabs(birthday_in_year(mmdd, yy) - day);
    if (best < 0 || diff < best) best = diff;
  }
  return static_cast<int>(best);
}

}  // namespace storepulse
