#pragma once
// What every model file shares: a versioned format tag, where and when it was
// fitted, and an atomic write so an engine hot-reloading the folder never reads
// half a file. Model files are JSON (small, diffable, readable by an analyst).
//
//   {"format":"storepulse.model.clv/1","fitted_on":"events.ndjson","fitted_at":"2026-11-26T14:00:00Z",
//    "subjects":2357, ...model fields...}
//
// A reader accepts only the versions it knows and says which one it found.
#include <cstdint>
#include <string>
#include <string_view>

#include "storepulse/common/status.hpp"
#include "storepulse/common/time.hpp"

namespace storepulse::models {

/// "storepulse.model.<kind>/<version>" tags this build reads and writes.
inline constexpr std::string_view kClvFormat = "storepulse.model.clv/1";
inline constexpr std::string_view kSegmentsFormat = "storepulse.model.segments/1";
inline constexpr std::string_view kBasketsFormat = "storepulse.model.baskets/1";

/// File names in a models folder (`analyze ... --model-out DIR`, `[models] dir`).
inline constexpr std::string_view kClvFile = "clv.json";
inline constexpr std::string_view kSegmentsFile = "segments.json";
inline constexpr std::string_view kBasketsFile = "baskets.json";

/// Fitted-on metadata carried by every model file.
struct ModelMeta {
  std::string fitted_on;       // input the model was fitted on (file or folder)
  TimeUs fitted_at = 0;        // wall clock of the fit
  std::uint64_t subjects = 0;  // customers (clv, segments) or baskets
};

/// `"format":...,"fitted_on":...,"fitted_at":...,"subjects":N` (no braces).
std::string meta_json_fields(std::string_view format, const ModelMeta& meta);

/// Checks a file's format tag against the one this build reads: a clear error
/// for a missing tag, another kind of model, or an unknown version.
Status check_format(std::string_view found, bool present, std::string_view expected);

/// Writes `text` to `path` through `path.tmp` + fsync + rename.
Status write_file_atomic(const std::string& path, std::string_view text);

/// Reads a whole file.
Result<std::string> read_file(const std::string& path);

}  // namespace storepulse::models
