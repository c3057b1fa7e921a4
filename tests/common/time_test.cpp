#include "storepulse/common/time.hpp"

#include <catch2/catch.hpp>

using namespace storepulse;

TEST_CASE("ISO-8601 parsing against known epoch values") {
  CHECK(parse_iso8601("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_iso8601("2000-03-01") == 951868800LL * kUsPerSecond);  // date(1) -d 2000-03-01 +%s
  CHECK(parse_iso8601("2026-11-26T12:30:15.250Z") == 1795696215LL * kUsPerSecond + 250000);
  CHECK(parse_iso8601("2026-11-26T14:30:15+02:00") == 1795696215LL * kUsPerSecond);
  CHECK_FALSE(parse_iso8601("2026-02-29T00:00:00Z"));
  CHECK_FALSE(parse_iso8601("2026-11-26T25:00:00Z"));
  CHECK_FALSE(parse_iso8601("2026-11-26X"));
  CHECK_FALSE(parse_iso8601(""));
}

TEST_CASE("format_iso8601 inverts parse") {
  for (const char* s :
       {"2026-11-26T12:30:15Z", "1999-12-31T23:59:59.123Z", "2024-02-29T00:00:00.000001Z"})
    CHECK(format_iso8601(*parse_iso8601(s)) == s);
}

TEST_CASE("durations and birthdays") {
  CHECK(parse_duration("2h") == 2 * 3600 * kUsPerSecond);
  CHECK(parse_duration("7d") == 7 * kUsPerDay);
  CHECK(parse_duration("250ms") == 250000);
  CHECK_FALSE(parse_duration("soon"));
  CHECK(parse_birthday_mmdd("1990-04-12") == 412);
  CHECK(parse_birthday_mmdd("1990-13-01") == 0);
}
