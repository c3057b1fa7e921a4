#pragma once
// Reading recorded events for analysis: NDJSON files (optionally gzip) decoded
// with the wire decoder, so analytics see exactly what the engine would see.
#include <cstddef>
#include <string>
#include <vector>

#include "storepulse/common/status.hpp"
#include "storepulse/protocol/codec.hpp"
#include "storepulse/protocol/event.hpp"

namespace storepulse::analytics {

struct EventLog {
  std::vector<protocol::Event> events;    // sorted by timestamp (stable)
  std::size_t lines = 0;                  // non-empty lines read
  std::size_t bad_lines = 0;              // lines skipped (lenient mode only)
  std::vector<std::string> first_errors;  // "file:line: detail", at most 10
};

struct EventReadOptions {
  /// Strict: the first undecodable line fails the read with file:line in the message.
  /// Lenient: bad lines are counted and the first few reported.
  bool strict = true;
  bool progress = true;
};

/// Decoder limits for recorded history: any event time (no freshness guard:
/// it is judged against the reading machine's clock), big orders and strings.
/// The analytics readers and the backtest decode with these.
protocol::DecodeLimits history_limits();

/// Reads an NDJSON event file (plain or .gz). Historic data (e.g. 1997) is
/// accepted: the event-time guard of the live decoder does not apply here.
Result<EventLog> read_event_file(const std::string& path, const EventReadOptions& opts = {});

/// Reads the events in a server data folder's journals (all shards, including
/// archived segments; read-only, safe on a running server). Only the history
/// since the oldest kept segment is there: turn on `store.archive_segments`
/// to keep all of it.
Result<EventLog> read_journal_dir(const std::string& dir, const EventReadOptions& opts = {});

}  // namespace storepulse::analytics
