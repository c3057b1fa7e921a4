#pragma once
// Lexer of the rule expression language (`if:` conditions and template
// placeholders). Load path only: it allocates and throws ExpressionError.
//
//   numbers 12, 2.5; durations 30d, 2h, 90m, 1w (a number of days);
//   strings "…" or '…' with \" \' \\ escapes; true false null;
//   names with dots: event.total, traits.firstName, cart.top.name;
//   operators + - * / % == != < <= > >= ( ) [ ] , and keywords and or not in.
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/rules/diagnostics.hpp"

namespace storepulse::rules {

enum class TokenKind : unsigned char {
  kEnd,
  kNumber,  // also durations, already converted to days
  kString,
  kName,  // identifier or dotted path
  kTrue,
  kFalse,
  kNull,
  kAnd,
  kOr,
  kNot,
  kIn,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
};

std::string_view token_kind_name(TokenKind k);

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string text;  // names: the name; strings: the unescaped value; else the source text
  double number = 0;
  bool duration = false;
  SourcePos pos;
};

/// Splits `src` into tokens; the last one is kEnd. Throws ExpressionError.
std::vector<Token> tokenize(std::string_view src);

}  // namespace storepulse::rules
