#pragma once
// A log that keeps nothing: for scratch runs whose state dies with the process
// (`storepulse backtest`, which replays a history through a throw-away engine).
// Records get sequence numbers and commits succeed, so the shard runs the code
// it runs live (group commit included), but nothing reaches a disk: a backtest
// of a year of history neither writes that year again nor pays for it. Not a
// store kind a config can name (store.kind is "embedded" or "redis").
#include "storepulse/store/log.hpp"

namespace storepulse::store {

class MemoryLog final : public Log {
 public:
  Status replay(std::uint64_t after_seq, const std::function<void(const JournalRecord&)>& fn,
                RecoveryReport& report) override;
  std::uint64_t append(RecordType type, TimeUs recv_time, std::string_view payload) override;
  Status commit() override;
  Status tick() override { return Status::ok(); }
  Status sync() override { return Status::ok(); }
  void remove_through(std::uint64_t) override {}
  std::uint64_t last_seq() const override { return committed_; }
  Result<bool> read_snapshot(std::uint64_t& seq, std::string& body) override;
  Status write_snapshot(std::uint64_t, const std::string&) override { return Status::ok(); }
  void stage_key(const StoredKey&) override {}
  Status erase_keys(const std::vector<std::uint64_t>&) override { return Status::ok(); }
  Status load_keys(const std::function<void(StoredKey&&)>&, RecoveryReport&) override {
    return Status::ok();
  }
  bool durable() const override { return false; }
  std::string describe() const override { return "memory (nothing kept)"; }

  /// Records appended since start, and bytes they held (for tests).
  std::uint64_t records() const { return committed_; }
  std::uint64_t bytes() const { return bytes_; }

 private:
  std::uint64_t next_ = 0;       // last sequence number handed out
  std::uint64_t committed_ = 0;  // last one a commit covered
  std::uint64_t bytes_ = 0;
};

}  // namespace storepulse::store
