#pragma once
// Recursive-descent parser of rule expressions. Precedence, loosest first:
//   or < and < not < comparison (== != < <= > >= in) < + - < * / % < unary - < primary
// Comparisons do not chain (`a < b < c` is an error, not a surprise).
// Load path only: throws ExpressionError with the offending token's position.
// Bounded, so that no rule text can overflow the stack of the parser, the
// compiler or the tree's destructor: at most 1,024 tokens, and nesting
// (parentheses, call arguments, chained `not` / `-`) about 50 levels deep.
#include <string_view>

#include "storepulse/rules/ast.hpp"

namespace storepulse::rules {

ExprPtr parse_expression(std::string_view src);

}  // namespace storepulse::rules
