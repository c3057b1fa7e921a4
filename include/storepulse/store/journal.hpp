#pragma once
// Segmented append-only journal, one per shard. Single writer: only the owning
// shard worker calls append/commit; replay runs before the worker starts.
//
// Record layout (little-endian):
//   u32 payload_len | u32 crc32(seq..payload) | u64 seq | u8 type | i64 recv_time_us | payload
// Segments are files named by the first sequence number they hold
// (`00000000000000000001.log`); a segment is rolled once it passes
// `segment_bytes`. Group commit: append() only buffers, commit() writes the
// whole batch with one write() and, under `always`, one fdatasync().
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/common/status.hpp"
#include "storepulse/common/time.hpp"
#include "storepulse/store/log.hpp"

namespace storepulse::store {

enum class FsyncPolicy : unsigned char { kAlways, kInterval, kNever };
std::string_view fsync_policy_name(FsyncPolicy p);
bool parse_fsync_policy(std::string_view s, FsyncPolicy& out);

struct JournalOptions {
  std::string dir;
  std::uint64_t segment_bytes = 64ull << 20;
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  TimeUs fsync_interval_us = 10'000;
  /// Move segments covered by a snapshot to `archive/` instead of deleting them
  /// (full history for `analyze --journal`; disk grows with it).
  bool archive_segments = false;
};

class Journal final : public Log {
 public:
  /// Opens (creating) the directory. Call replay() once before appending.
  static Result<std::unique_ptr<Journal>> open(const JournalOptions& opts);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  /// Calls `fn` for every intact record with seq > after_seq, in order. A torn
  /// or corrupt record ends recovery: the segment is truncated to the last good
  /// record and any later segments are renamed `*.damaged` so they are never
  /// half-applied. Afterwards the journal appends after the last good record.
  Status replay(std::uint64_t after_seq, const std::function<void(const JournalRecord&)>& fn,
                RecoveryReport& report) override;

  /// Buffers a record; returns its sequence number. Not durable until commit().
  std::uint64_t append(RecordType type, TimeUs recv_time, std::string_view payload) override;
  /// Writes the buffered batch (and fsyncs under `always`). On failure nothing of
  /// the batch counts as written: the file is truncated back and seqs are reused.
  Status commit() override;
  /// Under `interval`, fsyncs when the interval has passed since the last one.
  Status tick() override;
  /// Forces an fsync of everything written so far.
  Status sync() override;

  /// Writes what is buffered and starts a new segment, so the records so far
  /// can all be dropped by remove_segments_through() (erasure, compaction).
  Status roll_segment();
  /// Deletes whole segments whose records are all <= seq (after a snapshot).
  void remove_segments_through(std::uint64_t seq);
  void remove_through(std::uint64_t seq) override { remove_segments_through(seq); }

  std::uint64_t last_seq() const override { return last_seq_; }
  /// Snapshots are `snapshot.bin` in the journal's folder (snapshot.hpp).
  Result<bool> read_snapshot(std::uint64_t& seq, std::string& body) override;
  Status write_snapshot(std::uint64_t seq, const std::string& body) override;
  std::string describe() const override { return "journal in " + opts_.dir; }
  /// Keys are records in `keys.bin` (u32 crc | u64 kid | 32-byte key | str subject),
  /// appended on commit and fsynced with the journal; erase_keys() rewrites the
  /// file without the erased ones (write, fsync, rename, fsync the folder).
  void stage_key(const StoredKey& key) override;
  Status erase_keys(const std::vector<std::uint64_t>& kids) override;
  Status load_keys(const std::function<void(StoredKey&&)>& fn, RecoveryReport& report) override;
  std::size_t pending_bytes() const { return buffer_.size(); }
  /// Bytes of segments and keys.bin on disk (what a bound on the folder counts).
  std::uint64_t disk_bytes() const { return disk_bytes_ + keys_bytes_; }
  /// Calls `fn` for committed records with seq > after_seq, in order, until
  /// about `max_bytes` or `max_records` were delivered (at least one record
  /// when there is one).
  /// Reads with pread from a cursor kept between calls, so a caller that reads
  /// on from where it stopped never rescans (the Redis spool's drain). Records
  /// passed to `fn` live until it returns.
  Status read_committed(std::uint64_t after_seq, std::size_t max_bytes, std::size_t max_records,
                        const std::function<void(const JournalRecord&)>& fn);
  /// Closes the files and deletes every segment and keys.bin (oldest first).
  /// The object is unusable afterwards.
  Status remove_all();
  const JournalOptions& options() const { return opts_; }
  /// Test hook: make the next commit() fail as a full disk would.
  void inject_write_failure() { fail_next_write_ = true; }

 private:
  /// fsync `interval`: the fdatasync runs on a helper thread (the shard's
  /// thread is an io thread now and must not block on the disk); journal.cpp.
  struct BackgroundSync;
  /// Waits until the helper is not syncing (before an fd it may use is closed).
  void quiesce_sync();
  /// With bg_->mu held: a failed helper sync, if any, taken (errno set to its
  /// error) and both fds marked dirty again. True when there was one.
  bool take_sync_error();
  std::unique_ptr<BackgroundSync> bg_;
  explicit Journal(JournalOptions opts);
  Status open_segment(std::uint64_t first_seq);
  std::vector<std::pair<std::uint64_t, std::string>> list_segments() const;

  JournalOptions opts_;
  int fd_ = -1;
  std::uint64_t segment_first_seq_ = 0;
  std::uint64_t segment_size_ = 0;
  std::uint64_t last_seq_ = 0;       // last seq written (or buffered)
  std::uint64_t committed_seq_ = 0;  // last seq written to the file
  std::string buffer_;
  std::int64_t last_sync_ns_ = 0;
  bool dirty_ = false;  // written but not fsynced
  bool fail_next_write_ = false;
  std::uint64_t disk_bytes_ = 0;  // segments on disk
  std::uint64_t keys_bytes_ = 0;  // keys.bin
  // read_committed() cursor: segment, byte offset in it, seq of the record there.
  std::uint64_t read_seg_first_ = 0;
  std::uint64_t read_off_ = 0;
  std::uint64_t read_next_seq_ = 0;
  int keys_fd_ = -1;
  std::string key_buffer_;  // staged keys, written first by the next commit()
  bool keys_dirty_ = false;
  Status write_keys();
};

std::uint32_t crc32_of(std::string_view data, std::uint32_t seed = 0);

/// Read-only scan of a journal folder (and its `archive/` subfolder, where
/// retired segments are kept when `store.archive_segments` is on), for
/// analytics and tools: never truncates or renames. Each segment is read up to
/// its first damaged record; damage is reported in `report.problems`.
Status scan_journal(const std::string& dir, const std::function<void(const JournalRecord&)>& fn,
                    RecoveryReport& report);

/// Read-only scan of the customer keys in `dir`/keys.bin (for tools); damage is
/// reported, never repaired. `good_bytes`: how much of the file is intact.
Status scan_keys(const std::string& dir, const std::function<void(StoredKey&&)>& fn,
                 RecoveryReport& report, std::size_t* good_bytes = nullptr);

}  // namespace storepulse::store
