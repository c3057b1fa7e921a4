#pragma once
// Snapshot files: an opaque body (the shard's profiles and dedupe window,
// encoded by the engine) tagged with the journal position it reflects.
// Written to a temporary file, fsynced, then renamed over `snapshot.bin`, so a
// crash leaves either the old or the new snapshot, never half of one.
#include <cstdint>
#include <string>

#include "storepulse/common/status.hpp"

namespace storepulse::store {

Status write_snapshot(const std::string& dir, std::uint64_t seq, const std::string& body);

/// Reads `dir/snapshot.bin`. Returns false with seq 0 when there is none; an
/// error when it exists but is damaged (checksum, truncation).
Result<bool> read_snapshot(const std::string& dir, std::uint64_t& seq, std::string& body);

}  // namespace storepulse::store
