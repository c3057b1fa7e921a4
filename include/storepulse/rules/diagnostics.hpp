#pragma once
// Load-time diagnostics of the rule language: every problem is reported as
// `file:line:col: message`, with a did-you-mean suggestion for misspelt names.
// Load path only (may allocate and throw); nothing here runs per event.
#include <string>
#include <string_view>
#include <vector>

namespace storepulse::rules {

/// A position inside a rule file (1-based line and column).
struct SourcePos {
  int line = 1;
  int col = 1;
};

struct Diagnostic {
  std::string file;
  SourcePos pos;
  std::string message;
  /// `file:line:col: message`.
  std::string str() const;
};

/// Edit distance (insert, delete, substitute, swap neighbours), case-insensitive.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word` when it is close enough to be a typo
/// (distance at most a third of the word, at least 1), else empty.
std::string closest_name(std::string_view word, const std::vector<std::string_view>& candidates);

/// ` — did you mean 'x'?` when a close candidate exists, else empty.
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates);

/// Thrown by the lexer, parser and compiler; `pos` is relative to the start of
/// the expression text (line 1, col 1 = its first character).
struct ExpressionError {
  SourcePos pos;
  std::string message;
};

}  // namespace storepulse::rules
