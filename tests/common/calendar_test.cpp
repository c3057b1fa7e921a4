// Calendar rules: leap years, and which day a birthday falls on, 29 February
// included. Expected days counted on a calendar, not taken from the code.
#include "storepulse/common/calendar.hpp"

#include <catch2/catch.hpp>

#include "storepulse/common/time.hpp"

using namespace storepulse;

namespace {

std::int64_t day(int y, unsigned m, unsigned d) {
  return days_from_civil(y, m, d);
}

}  // namespace

TEST_CASE("calendar: leap years and month lengths") {
  CHECK(is_leap_year(2024));
  CHECK(is_leap_year(2000));        // divisible by 400
  CHECK_FALSE(is_leap_year(1900));  // by 100, not 400
  CHECK_FALSE(is_leap_year(2025));
  CHECK(days_in_month(2024, 2) == 29);
  CHECK(days_in_month(2025, 2) == 28);
  CHECK(days_in_month(2025, 12) == 31);
  CHECK(days_in_month(2025, 4) == 30);
}

TEST_CASE("calendar: days since the latest birthday") {
  // Born 14 March: 0 on the day, 3 on the 17th, 8 on the 22nd.
  CHECK(days_since_birthday(314, day(2026, 3, 14)) == 0);
  CHECK(days_since_birthday(314, day(2026, 3, 17)) == 3);
  CHECK(days_since_birthday(314, day(2026, 3, 22)) == 8);
  // The day before is a year on from the previous birthday (2025-03-14 ->
  // 2026-03-13: 364 days, 2025 being a common year).
  CHECK(days_since_birthday(314, day(2026, 3, 13)) == 364);
  // Across the new year: born 30 December, 2 January is 3 days on.
  CHECK(days_since_birthday(1230, day(2027, 1, 2)) == 3);
  CHECK(days_since_birthday(0, day(2026, 3, 14)) == -1);
}

TEST_CASE("calendar: 29 February birthdays fall on 28 February in common years") {
  CHECK(birthday_in_year(229, 2024) == day(2024, 2, 29));
  CHECK(birthday_in_year(229, 2025) == day(2025, 2, 28));
  CHECK(days_since_birthday(229, day(2025, 2, 28)) == 0);
  CHECK(days_since_birthday(229, day(2025, 3, 1)) == 1);
  CHECK(days_since_birthday(229, day(2025, 3, 7)) == 7);
  // 2024-02-29 -> 2025-02-27: 364 days.
  CHECK(days_since_birthday(229, day(2025, 2, 27)) == 364);
  // In a leap year the 29th is the day; the 28th is 365 days after 2027-02-28.
  CHECK(days_since_birthday(229, day(2028, 2, 29)) == 0);
  CHECK(days_since_birthday(229, day(2028, 2, 28)) == 365);
  CHECK(days_since_birthday(229, day(2028, 3, 1)) == 1);
  // Nearest birthday, either side.
  CHECK(days_from_birthday(229, day(2025, 2, 26)) == 2);
  CHECK(days_from_birthday(229, day(2025, 3, 2)) == 2);
  CHECK(days_from_birthday(314, day(2026, 3, 10)) == 4);
  CHECK(days_from_birthday(0, day(2026, 3, 10)) == -1);
}
