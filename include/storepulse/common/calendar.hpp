#pragma once
// Calendar rules shared by date parsing, the rule language and the built-in
// birthday greeting, so each is decided in one place: leap years, month
// lengths, and the day a member's birthday falls on in a given year.
#include <cstdint>

namespace storepulse {

/// Gregorian leap year.
constexpr bool is_leap_year(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/// Days in month `m` (1-12) of year `y`.
unsigned days_in_month(int y, unsigned m);

/// The day (days since 1970-01-01) a member born on `mmdd` (month*100+day, as
/// CustomerProfile::birthday_mmdd) celebrates in year `y`. Members born on
/// 29 February celebrate on 28 February in common years, so they get one
/// birthday every year, before the month ends (a greeting in February, not March).
std::int64_t birthday_in_year(int mmdd, int y);

/// Days from the member's latest birthday on or before `day` (days since
/// 1970-01-01) to `day`: 0 on the birthday, 1 the day after, up to 365 the day
/// before the next one. -1 when `mmdd` is 0 (no birthday known).
int days_since_birthday(int mmdd, std::int64_t day);

/// Days from `day` to the nearest birthday, before or after (0 on the day).
/// -1 when `mmdd` is 0.
int days_from_birthday(int mmdd, std::int64_t day);

}  // namespace storepulse
