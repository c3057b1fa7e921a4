#include "storepulse/store/memory_log.hpp"

namespace storepulse::store {

Status MemoryLog::replay(std::uint64_t, const std::function<void(const JournalRecord&)>&,
                         RecoveryReport&) {
  return Status::ok();  // a new scratch log: nothing to replay
}

std::uint64_t MemoryLog::append(RecordType, TimeUs, std::string_view payload) {
  bytes_ += payload.size();
  return ++next_;
}

Status MemoryLog::commit() {
  committed_ = next_;
  return Status::ok();
}

Result<bool> MemoryLog::read_snapshot(std::uint64_t& seq, std::string& body) {
  seq = 0;
  body.clear();
  return false;
}

}  // namespace storepulse::store
