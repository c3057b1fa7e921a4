#include "storepulse/rules/lexer.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>

namespace storepulse::rules {

std::string_view token_kind_name(TokenKind k) {
  switch (k) {
    case TokenKind::kEnd: return "end of expression";
    case TokenKind::kNumber: return "number";
    case TokenKind::kString: return "string";
    case TokenKind::kName: return "name";
    case TokenKind::kTrue: return "'true'";
    case TokenKind::kFalse: return "'false'";
    case TokenKind::kNull: return "'null'";
    case TokenKind::kAnd: return "'and'";
    case TokenKind::kOr: return "'or'";
    case TokenKind::kNot: return "'not'";
    case TokenKind::kIn: return "'in'";
    case TokenKind::kLParen: return "'('";
    case TokenKind::kRParen: return "')'";
    case TokenKind::kLBracket: return "'['";
    case TokenKind::kRBracket: return "']'";
    case TokenKind::kComma: return "','";
    case TokenKind::kPlus: return "'+'";
    case TokenKind::kMinus: return "'-'";
    case TokenKind::kStar: return "'*'";
    case TokenKind::kSlash: return "'/'";
    case TokenKind::kPercent: return "'%'";
    case TokenKind::kEq: return "'=='";
    case TokenKind::kNe: return "'!='";
    case TokenKind::kLt: return "'<'";
    case TokenKind::kLe: return "'<='";
    case TokenKind::kGt: return "'>'";
    case TokenKind::kGe: return "'>='";
  }
  return "?";
}

namespace {

bool name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
}

// Durations count in days so that `days_since(x) > 30d` and `> 30` agree.
bool duration_days(std::string_view unit, double& per) {
  if (unit == "d")
    per = 1;
  else if (unit == "w")
    per = 7;
  else if (unit == "h")
    per = 1.0 / 24;
  else if (unit == "m" || unit == "min")
    per = 1.0 / 1440;
  else if (unit == "s")
    per = 1.0 / 86400;
  else
    return false;
  return true;
}

}  // namespace

std::vector<Token> tokenize(std::string_view src) {
  std::vector<Token> out;
  int line = 1, col = 1;
  std::size_t i = 0;
  auto advance = [&](std::size_t n) {
    for (std::size_t k = 0; k < n && i < src.size(); ++k, ++i) {
      if (src[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
  };
  while (true) {
    while (i < src.size() && std::isspace(static_cast<unsigned char>(src[i]))) advance(1);
    Token t;
    t.pos = {line, col};
    if (i >= src.size()) {
      t.kind = TokenKind::kEnd;
      out.push_back(std::move(t));
      return out;
    }
    const char c = src[i];
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && i + 1 < src.size() && std::isdigit(static_cast<unsigned char>(src[i + 1])))) {
      std::size_t j = i;
      while (j < src.size() && (std::isdigit(static_cast<unsigned char>(src[j])) || src[j] == '.'))
        ++j;
      const std::string_view num = src.substr(i, j - i);
      double v = 0;
      auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
      if (ec != std::errc() || ptr != num.data() + num.size())
        throw ExpressionError{t.pos, fmt::format("malformed number '{}'", num)};
      std::size_t k = j;
      while (k < src.size() && std::isalpha(static_cast<unsigned char>(src[k]))) ++k;
      if (k > j) {
        const std::string_view unit = src.substr(j, k - j);
        double per = 0;
        if (!duration_days(unit, per))
          throw ExpressionError{
              t.pos, fmt::format("unknown duration unit '{}' in '{}' (use s, m, h, d or w)", unit,
                                 src.substr(i, k - i))};
        v *= per;
        t.duration = true;
        j = k;
      }
      t.kind = TokenKind::kNumber;
      t.number = v;
      t.text = std::string(src.substr(i, j - i));
      advance(j - i);
      out.push_back(std::move(t));
      continue;
    }
    if (c == '"' || c == '\'') {
      std::string val;
      std::size_t j = i + 1;
      bool closed = false;
      while (j < src.size()) {
        if (src[j] == '\\' && j + 1 < src.size()) {
          val.push_back(src[j + 1]);
          j += 2;
          continue;
        }
        if (src[j] == c) {
          closed = true;
          break;
        }
        val.push_back(src[j]);
        ++j;
      }
      if (!closed) throw ExpressionError{t.pos, "unterminated string"};
      t.kind = TokenKind::kString;
      t.text = std::move(val);
      advance(j + 1 - i);
      out.push_back(std::move(t));
      continue;
    }
    if (name_start(c)) {
      std::size_t j = i;
      while (j < src.size() && name_char(src[j])) ++j;
      std::string_view name = src.substr(i, j - i);
      if (name.back() == '.')
        throw ExpressionError{t.pos, fmt::format("name '{}' ends with '.'", name)};
      if (name == "and")
        t.kind = TokenKind::kAnd;
      else if (name == "or")
        t.kind = TokenKind::kOr;
      else if (name == "not")
        t.kind = TokenKind::kNot;
      else if (name == "in")
        t.kind = TokenKind::kIn;
      else if (name == "true")
        t.kind = TokenKind::kTrue;
      else if (name == "false")
        t.kind = TokenKind::kFalse;
      else if (name == "null")
        t.kind = TokenKind::kNull;
      else
        t.kind = TokenKind::kName;
      t.text = std::string(name);
      advance(j - i);
      out.push_back(std::move(t));
      continue;
    }
    auto two = [&](char a, char b) { return c == a && i + 1 < src.size() && src[i + 1] == b; };
    std::size_t len = 1;
    if (two('=', '='))
      t.kind = TokenKind::kEq, len = 2;
    else if (two('!', '='))
      t.kind = TokenKind::kNe, len = 2;
    else if (two('<', '='))
      t.kind = TokenKind::kLe, len = 2;
    else if (two('>', '='))
      t.kind = TokenKind::kGe, len = 2;
    else if (two('&', '&'))
      t.kind = TokenKind::kAnd, len = 2;
    else if (two('|', '|'))
      t.kind = TokenKind::kOr, len = 2;
    else {
      switch (c) {
        case '<': t.kind = TokenKind::kLt; break;
        case '>': t.kind = TokenKind::kGt; break;
        case '(': t.kind = TokenKind::kLParen; break;
        case ')': t.kind = TokenKind::kRParen; break;
        case '[': t.kind = TokenKind::kLBracket; break;
        case ']': t.kind = TokenKind::kRBracket; break;
        case ',': t.kind = TokenKind::kComma; break;
        case '+': t.kind = TokenKind::kPlus; break;
        case '-': t.kind = TokenKind::kMinus; break;
        case '*': t.kind = TokenKind::kStar; break;
        case '/': t.kind = TokenKind::kSlash; break;
        case '%': t.kind = TokenKind::kPercent; break;
        case '!': t.kind = TokenKind::kNot; break;
        case '=':
          throw ExpressionError{t.pos, "'=' is not an operator \xE2\x80\x94 did you mean '=='?"};
        default: throw ExpressionError{t.pos, fmt::format("unexpected character '{}'", c)};
      }
    }
    t.text = std::string(src.substr(i, len));
    advance(len);
    out.push_back(std::move(t));
  }
}

}  // namespace storepulse::rules
