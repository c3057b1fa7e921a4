// Templates: `{expression|fallback}` placeholders in action texts and offer
// values, compiled at load into literal pieces and Programs; rendered only
// when an action is delivered.
#include <fmt/format.h>

#include <cmath>

#include "storepulse/rules/compiler.hpp"

namespace storepulse::rules {

void append_value_text(std::string& out, const Value& v) {
  switch (v.kind) {
    case ValueKind::kNull: break;
    case ValueKind::kBool: out += v.boolean ? "true" : "false"; break;
    case ValueKind::kNumber:
      if (std::isfinite(v.number) && v.number == std::floor(v.number) && std::fabs(v.number) < 1e15)
        out += fmt::format("{}", static_cast<long long>(v.number));
      else
        out += fmt::format("{:.2f}", v.number);
      break;
    case ValueKind::kString: out.append(v.str); break;
    case ValueKind::kTime: out += format_iso8601(v.time); break;
  }
}

bool Template::has_placeholders() const {
  for (const auto& p : pieces_)
    if (!p.expr.empty()) return true;
  return false;
}

void Template::render(const EvalContext& ctx, std::string& out) const {
  for (const auto& p : pieces_) {
    out += p.literal;
    if (p.expr.empty()) continue;
    const std::size_t before = out.size();
    append_value_text(out, p.expr.run(ctx));
    if (out.size() == before) out += p.fallback;
  }
}

std::string Template::render(const EvalContext& ctx) const {
  std::string out;
  render(ctx, out);
  return out;
}

Template compile_template(std::string_view text) {
  Template t;
  Template::Piece cur;
  int line = 1, col = 1;
  auto step = [&](char c) {
    if (c == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {
      cur.literal.push_back(c);
      step(c), step(c);
      i += 2;
      continue;
    }
    if (c == '}')
      throw ExpressionError{{line, col}, "'}' without '{' (write '}}' for a literal brace)"};
    if (c != '{') {
      cur.literal.push_back(c);
      step(c);
      ++i;
      continue;
    }
    // Find the closing brace and a top-level single '|' outside quotes.
    const SourcePos open{line, col};
    std::size_t j = i + 1, bar = std::string_view::npos;
    char quote = 0;
    for (; j < text.size(); ++j) {
      const char d = text[j];
      if (quote) {
        if (d == '\\')
          ++j;
        else if (d == quote)
          quote = 0;
        continue;
      }
      if (d == '"' || d == '\'')
        quote = d;
      else if (d == '}')
        break;
      else if (d == '|' && bar == std::string_view::npos) {
        if (j + 1 < text.size() && text[j + 1] == '|')
          ++j;
        else
          bar = j;
      }
    }
    if (j >= text.size()) throw ExpressionError{open, "'{' without a closing '}'"};
    const std::string_view inner =
        text.substr(i + 1, (bar == std::string_view::npos ? j : bar) - i - 1);
    try {
      cur.expr = compile_expression(inner);
    } catch (ExpressionError& e) {
      if (e.pos.line == 1) e.pos.col += open.col;
      e.pos.line += open.line - 1;
      throw;
    }
    if (bar != std::string_view::npos)
      cur.fallback = std::string(text.substr(bar + 1, j - bar - 1));
    t.pieces_.push_back(std::move(cur));
    cur = Template::Piece{};
    for (std::size_t k = i; k <= j; ++k) step(text[k]);
    i = j + 1;
  }
  if (!cur.literal.empty()) t.pieces_.push_back(std::move(cur));
  return t;
}

}  // namespace storepulse::rules
