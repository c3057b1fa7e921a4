#pragma once
// Time in StorePulse is epoch microseconds (UTC) in an int64. Event time comes
// from the event's ISO-8601 `timestamp`; wall clock is only read for the
// watermark and for receive times.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace storepulse {

using TimeUs = std::int64_t;
inline constexpr TimeUs kUsPerSecond = 1'000'000;
inline constexpr TimeUs kUsPerDay = 86'400LL * kUsPerSecond;

/// Parses ISO-8601 / RFC 3339: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.frac]]` with
/// `Z`, `±HH:MM`, `±HHMM` or no zone (taken as UTC). nullopt when malformed
/// or a field is out of range.
std::optional<TimeUs> parse_iso8601(std::string_view s);

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (milliseconds dropped when zero).
std::string format_iso8601(TimeUs t);

/// Civil date <-> days since 1970-01-01 (proleptic Gregorian, H. Hinnant's algorithm).
std::int64_t days_from_civil(int y, unsigned m, unsigned d);
void civil_from_days(std::int64_t z, int& y, unsigned& m, unsigned& d);

/// Birthday as month*100+day (e.g. 0412) from "YYYY-MM-DD"; 0 when malformed.
int parse_birthday_mmdd(std::string_view s);

TimeUs wall_clock_us();
/// Monotonic clock in nanoseconds, for latency measurement only.
std::int64_t mono_ns();

/// Parses durations such as `250ms`, `30s`, `2h`, `7d`, `1w`; nullopt if malformed.
std::optional<TimeUs> parse_duration(std::string_view s);

}  // namespace storepulse
