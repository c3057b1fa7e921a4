#include "storepulse/rules/quiet_hours.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

namespace storepulse::rules {

TimeZone TimeZone::fixed(std::int32_t offset_seconds) {
  TimeZone z;
  z.initial_ = offset_seconds;
  return z;
}

namespace {
std::int64_t be(std::string_view d, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(d[at + i]);
  if (bytes == 4) return static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
  return static_cast<std::int64_t>(v);
}
}  // namespace

std::optional<TimeZone> TimeZone::from_tzif(std::string_view d) {
  auto header = [&](std::size_t at, std::int64_t c[6]) {
    if (d.size() < at + 44 || d.substr(at, 4) != "TZif") return false;
    for (int i = 0; i < 6; ++i) c[i] = be(d, at + 20 + 4 * i, 4);
    return true;
  };
  // counts: isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  std::int64_t c[6];
  if (!header(0, c)) return std::nullopt;
  std::size_t at = 44;
  int tbytes = 4;
  if (d[4] >= '2') {
    // Skip the 32-bit block; the 64-bit one follows with its own header.
    at += c[3] * 5 + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0];
    if (!header(at, c)) return std::nullopt;
    at += 44;
    tbytes = 8;
  }
  const std::size_t need = at + c[3] * (tbytes + 1) + c[4] * 6;
  if (c[4] < 1 || d.size() < need) return std::nullopt;
  TimeZone z;
  std::vector<std::int32_t> type_off(static_cast<std::size_t>(c[4]));
  const std::size_t types_at = at + c[3] * (tbytes + 1);
  for (std::int64_t i = 0; i < c[4]; ++i)
    type_off[i] = static_cast<std::int32_t>(be(d, types_at + 6 * i, 4));
  z.initial_ = type_off[0];
  for (std::int64_t i = 0; i < c[3]; ++i) {
    const auto idx = static_cast<unsigned char>(d[at + c[3] * tbytes + i]);
    if (idx >= type_off.size()) return std::nullopt;
    z.transitions_.push_back(be(d, at + i * tbytes, tbytes));
    z.offsets_.push_back(type_off[idx]);
  }
  return z;
}

std::int32_t TimeZone::offset_at(TimeUs t) const {
  const std::int64_t s = t / kUsPerSecond;
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), s);
  if (it == transitions_.begin()) return initial_;
  return offsets_[static_cast<std::size_t>(it - transitions_.begin() - 1)];
}

namespace {

std::optional<std::int32_t> parse_offset(std::string_view s) {
  if (s == "UTC" || s == "Z" || s == "GMT" || s == "Etc/UTC") return 0;
  if (s.substr(0, 3) == "UTC") s.remove_prefix(3);
  if (s.size() < 2 || (s[0] != '+' && s[0] != '-')) return std::nullopt;
  const int sign = s[0] == '-' ? -1 : 1;
  s.remove_prefix(1);
  int h = 0, m = 0;
  std::size_t i = 0;
  while (i < s.size() && i < 2 && std::isdigit(static_cast<unsigned char>(s[i])))
    h = h * 10 + (s[i++] - '0');
  if (i == 0) return std::nullopt;
  if (i < s.size() && s[i] == ':') ++i;
  std::size_t mdigits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && mdigits < 2)
    m = m * 10 + (s[i++] - '0'), ++mdigits;
  if (i != s.size() || h > 14 || m > 59) return std::nullopt;
  return sign * (h * 3600 + m * 60);
}

bool safe_zone_name(std::string_view n) {
  if (n.empty() || n.size() > 64 || n.find("..") != std::string_view::npos || n.front() == '/')
    return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' ||
           c == '+';
  });
}

}  // namespace

const TimeZone* find_time_zone(std::string_view name) {
  // Bounded: event time zones come from the wire; beyond this many distinct
  // names new ones are not loaded (the caller falls back to its default).
  static constexpr std::size_t kMaxZones = 256;
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<TimeZone>, std::less<>> cache;
  std::lock_guard<std::mutex> lk(mu);
  if (auto it = cache.find(name); it != cache.end()) return it->second.get();
  if (cache.size() >= kMaxZones) return nullptr;
  std::unique_ptr<TimeZone> zone;
  if (auto off = parse_offset(name)) {
    zone = std::make_unique<TimeZone>(TimeZone::fixed(*off));
  } else if (safe_zone_name(name)) {
    std::ifstream f("/usr/share/zoneinfo/" + std::string(name), std::ios::binary);
    if (f) {
      std::stringstream ss;
      ss << f.rdbuf();
      if (auto z = TimeZone::from_tzif(ss.str())) zone = std::make_unique<TimeZone>(std::move(*z));
    }
  }
  const TimeZone* out = zone.get();
  cache.emplace(std::string(name), std::move(zone));  // unknown names cached as nullptr
  return out;
}

TimeUs QuietHours::ends_at(TimeUs t, const TimeZone& zone) const {
  if (start_minute == end_minute) return 0;
  const std::int64_t off = zone.offset_at(t);
  const TimeUs local = t + off * kUsPerSecond;
  const std::int64_t day = local >= 0 ? local / kUsPerDay : (local - kUsPerDay + 1) / kUsPerDay;
  const int minute = static_cast<int>((local - day * kUsPerDay) / (60 * kUsPerSecond));
  std::int64_t end_day;
  if (start_minute < end_minute) {
    if (minute < start_minute || minute >= end_minute) return 0;
    end_day = day;
  } else {
    if (minute >= start_minute)
      end_day = day + 1;
    else if (minute < end_minute)
      end_day = day;
    else
      return 0;
  }
  const TimeUs local_end =
      end_day * kUsPerDay + static_cast<TimeUs>(end_minute) * 60 * kUsPerSecond;
  // The offset at the end can differ from now's (a DST change overnight).
  const std::int64_t end_off = zone.offset_at(local_end - off * kUsPerSecond);
  return local_end - end_off * kUsPerSecond;
}

std::optional<QuietHours> parse_quiet_hours(std::string_view s) {
  auto hhmm = [](std::string_view p) -> std::optional<int> {
    while (!p.empty() && p.front() == ' ') p.remove_prefix(1);
    while (!p.empty() && p.back() == ' ') p.remove_suffix(1);
    if (p.size() != 5 || p[2] != ':') return std::nullopt;
    for (int i : {0, 1, 3, 4})
      if (!std::isdigit(static_cast<unsigned char>(p[i]))) return std::nullopt;
    const int h = (p[0] - '0') * 10 + (p[1] - '0'), m = (p[3] - '0') * 10 + (p[4] - '0');
    if (h > 24 || m > 59 || (h == 24 && m != 0)) return std::nullopt;
    return h * 60 + m;
  };
  const auto dash = s.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto a = hhmm(s.substr(0, dash)), b = hhmm(s.substr(dash + 1));
  if (!a || !b || *a == *b) return std::nullopt;
  return QuietHours{*a % 1440, *b % 1440};
}

}  // namespace storepulse::rules
