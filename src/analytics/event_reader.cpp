#include "storepulse/analytics/event_reader.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "storepulse/analytics/importers.hpp"
#include "storepulse/analytics/progress.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::analytics {

namespace {
// Recorded history can be decades old (CDNOW is 1997) or stamped ahead of the
// reading machine's clock; the live decoder's freshness guard is for live traffic.
constexpr TimeUs kTwoCenturiesUs = 200LL * 366 * kUsPerDay;
constexpr std::size_t kMaxReportedErrors = 10;
}  // namespace

Result<EventLog> read_event_file(const std::string& path, const EventReadOptions& opts) {
  TextFileReader in;
  if (Status s = in.open(path); !s) return s;
  protocol::DecodeLimits lim;
  lim.max_future_us = kTwoCenturiesUs;
  lim.max_past_us = kTwoCenturiesUs;
  lim.max_products = 100000;
  lim.max_string = 1 << 16;
  protocol::EventDecoder dec(lim);
  const TimeUs now = wall_clock_us();
  EventLog log;
  std::string line;
  const std::size_t pad = protocol::decode_padding();
  ProgressBar bar("reading " + path, opts.progress ? in.file_size() : 0);
  while (in.next_line(line)) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    ++log.lines;
    if (opts.progress && (log.lines & 8191) == 0) bar.update(in.bytes_read());
    const std::size_t len = line.size();
    line.reserve(len + pad);  // the decoder reads up to `pad` bytes past the end
    protocol::Event ev;
    Status s = dec.decode(std::string_view(line.data(), len), now, ev);
    if (!s) {
      std::string msg = fmt::format("{}:{}: {}", path, in.line_number(), s.detail());
      if (opts.strict) return Status(s.code(), msg);
      ++log.bad_lines;
      if (log.first_errors.size() < kMaxReportedErrors) log.first_errors.push_back(std::move(msg));
      continue;
    }
    log.events.push_back(std::move(ev));
  }
  if (!in.error().empty()) return Status(ErrorCode::kInternal, in.error());
  bar.finish();
  std::stable_sort(log.events.begin(), log.events.end(),
                   [](const protocol::Event& a, const protocol::Event& b) {
                     return a.timestamp < b.timestamp;
                   });
  return log;
}

Result<EventLog> read_journal_dir(const std::string& dir, const EventReadOptions&) {
  return Status(ErrorCode::kUnavailable,
                fmt::format("--journal {}: reading the server journal is not supported yet "
                            "(export events to NDJSON and use --events FILE)",
                            dir));
}

}  // namespace storepulse::analytics
