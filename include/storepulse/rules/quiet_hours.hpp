#pragma once
// SMS quiet hours in the store's time zone. Zones are IANA names read from the
// system tz database (TZif files) or fixed offsets (`UTC`, `+02:00`).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/common/time.hpp"

namespace storepulse::rules {

/// UTC offsets of one zone over time. Immutable once loaded.
class TimeZone {
 public:
  static TimeZone fixed(std::int32_t offset_seconds);
  /// Parses a TZif (v1/v2+) file's contents; nullopt when malformed.
  static std::optional<TimeZone> from_tzif(std::string_view data);
  /// Seconds east of UTC in force at `t`.
  std::int32_t offset_at(TimeUs t) const;

 private:
  std::vector<std::int64_t> transitions_;  // epoch seconds, ascending
  std::vector<std::int32_t> offsets_;      // offset from each transition on
  std::int32_t initial_ = 0;
};

/// Finds a zone by name, loading it once and caching it for the process: safe
/// from any thread (a mutex guards the cache; only a zone's first use reads a
/// file). nullptr for an unknown or malformed name.
const TimeZone* find_time_zone(std::string_view name);

/// A daily window in local time, minutes after midnight; may wrap midnight.
struct QuietHours {
  int start_minute = 0;
  int end_minute = 0;
  /// 0 when `t` is outside the window in `zone`, else the instant it ends.
  TimeUs ends_at(TimeUs t, const TimeZone& zone) const;
};

/// `21:00-08:00`; nullopt when malformed or empty.
std::optional<QuietHours> parse_quiet_hours(std::string_view s);

}  // namespace storepulse::rules
