#include "storepulse/analytics/event_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "storepulse/analytics/importers.hpp"
#include "storepulse/analytics/progress.hpp"
#include "storepulse/common/bytes.hpp"
#include "storepulse/protocol/codec.hpp"
#include "storepulse/protocol/event_binary.hpp"
#include "storepulse/store/journal.hpp"

namespace storepulse::analytics {

namespace {
// Recorded history can be decades old (CDNOW is 1997) or stamped ahead of the
// reading machine's clock; the live decoder's freshness guard is for live traffic.
constexpr TimeUs kTwoCenturiesUs = 200LL * 366 * kUsPerDay;
constexpr std::size_t kMaxReportedErrors = 10;
}  // namespace

protocol::DecodeLimits history_limits() {
  protocol::DecodeLimits lim;
  lim.max_future_us = kTwoCenturiesUs;
  lim.max_past_us = kTwoCenturiesUs;
  lim.max_products = 100000;
  lim.max_string = 1 << 16;
  return lim;
}

Result<EventLog> read_event_file(const std::string& path, const EventReadOptions& opts) {
  TextFileReader in;
  if (Status s = in.open(path); !s) return s;
  protocol::EventDecoder dec(history_limits());
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
  std::stable_sort(
      log.events.begin(), log.events.end(),
      [](const protocol::Event& a, const protocol::Event& b) { return a.timestamp < b.timestamp; });
  return log;
}

Result<EventLog> read_journal_dir(const std::string& dir, const EventReadOptions& opts) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return Status(ErrorCode::kNotFound, fmt::format("--journal {}: no such folder", dir));
  // A data folder holds shard-NNN/ journals; a single shard folder is accepted too.
  std::vector<std::string> shard_dirs;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && e.path().filename().string().rfind("shard-", 0) == 0)
      shard_dirs.push_back(e.path().string());
  if (shard_dirs.empty()) shard_dirs.push_back(dir);
  std::sort(shard_dirs.begin(), shard_dirs.end());
  protocol::EventDecoder dec(history_limits());
  EventLog log;
  std::string raw, plain;
  store::Sealer sealer;
  for (const auto& sd : shard_dirs) {
    store::RecoveryReport rep;
    // Sealed records (privacy.encrypt_journal) open with the shard's customer
    // keys; those of erased customers stay closed and are not counted.
    std::unordered_map<std::uint64_t, store::KeyBytes> keys;
    if (Status ks = store::scan_keys(
            sd, [&](store::StoredKey&& k) { keys.emplace(k.kid, k.key); }, rep);
        !ks)
      return ks;
    Status s = store::scan_journal(
        sd,
        [&](const store::JournalRecord& sealed_rec) {
          store::JournalRecord rec = sealed_rec;
          const auto t = static_cast<std::uint8_t>(rec.type);
          if (t & store::kSealedBit) {
            auto k = keys.find(store::Sealer::kid_of(rec.payload));
            if (k == keys.end()) return;  // an erased customer
            if (!sealer.open(k->second, t, rec.payload, plain)) {
              if (log.first_errors.size() < kMaxReportedErrors)
                log.first_errors.push_back(
                    fmt::format("{} record {}: fails authentication", sd, rec.seq));
              return;
            }
            rec.type = static_cast<store::RecordType>(t & ~store::kSealedBit);
            rec.payload = plain;
          }
          if (!store::is_event_record(rec.type)) return;  // identity / timer records
          ByteReader r(rec.payload);
          r.str_view();  // the profile key the event was applied to
          if (rec.type == store::RecordType::kEventBinary) {
            // The decoded event as it was applied (channel included): no JSON to check.
            ++log.lines;
            protocol::Event ev;
            Status d = r.ok() ? protocol::decode_event_binary(rec.payload.substr(r.pos()), ev)
                              : Status(ErrorCode::kBadField, "no profile key");
            if (!d) {
              ++log.bad_lines;
              if (log.first_errors.size() < kMaxReportedErrors)
                log.first_errors.push_back(
                    fmt::format("{} record {}: {}", sd, rec.seq, d.detail()));
              return;
            }
            log.events.push_back(std::move(ev));
            return;
          }
          const bool has_channel = rec.type == store::RecordType::kEventOnChannel;
          const auto channel = static_cast<protocol::Channel>(has_channel ? r.u8() : 0);
          raw.assign(rec.payload.substr(r.pos()));
          const std::size_t len = raw.size();
          raw.reserve(len + protocol::decode_padding());
          ++log.lines;
          protocol::Event ev;
          if (Status d = dec.decode(std::string_view(raw.data(), len), rec.recv_time, ev); !d) {
            ++log.bad_lines;
            if (log.first_errors.size() < kMaxReportedErrors)
              log.first_errors.push_back(fmt::format("{} record {}: {}", sd, rec.seq, d.detail()));
            return;
          }
          if (has_channel) ev.channel = channel;  // as applied live (endpoint default included)
          log.events.push_back(std::move(ev));
        },
        rep);
    if (!s) return s;
    for (const auto& p : rep.problems)
      if (log.first_errors.size() < kMaxReportedErrors) log.first_errors.push_back(p);
  }
  (void)opts;
  std::stable_sort(
      log.events.begin(), log.events.end(),
      [](const protocol::Event& a, const protocol::Event& b) { return a.timestamp < b.timestamp; });
  return log;
}

}  // namespace storepulse::analytics
