#pragma once
// Reading the part every model file shares (models stage only): the JSON object,
// its format tag and the fitted-on metadata.
#include <fmt/format.h>
#include <simdjson.h>

#include "storepulse/models/model_file.hpp"

namespace storepulse::models::detail {

/// Parses `padded` with `parser` into `root` (must be an object), checks the
/// format tag against `expected` and fills `meta`. Errors start with `what`
/// ("clv model: ...").
inline Status parse_model_header(simdjson::dom::parser& parser,
                                 const simdjson::padded_string& padded, std::string_view what,
                                 std::string_view expected, simdjson::dom::element& root,
                                 ModelMeta& meta) {
  if (parser.parse(padded).get(root) || !root.is_object())
    return Status(ErrorCode::kBadJson, fmt::format("{}: not a JSON object", what));
  std::string_view format;
  const bool has_format = !root["format"].get(format);
  if (Status s = check_format(format, has_format, expected); !s)
    return Status(ErrorCode::kBadField, fmt::format("{}: {}", what, s.detail()));
  std::string_view sv;
  if (!root["fitted_on"].get(sv)) meta.fitted_on = std::string(sv);
  if (!root["fitted_at"].get(sv) && !sv.empty())
    if (auto t = parse_iso8601(sv)) meta.fitted_at = *t;
  std::uint64_t u = 0;
  if (!root["subjects"].get(u)) meta.subjects = u;
  return Status::ok();
}

}  // namespace storepulse::models::detail
