#pragma once
// Recursive-descent parser of rule expressions. Precedence, loosest first:
//   or < and < not < comparison (== != < <= > >= in) < + - < * / % < unary - < primary
// Comparisons do not chain (`a < b < c` is an error, not a surprise).
// Load path only: throws ExpressionError with the offending token's position.
#include <string_view>

#include "storepulse/rules/ast.hpp"

namespace storepulse::rules {

ExprPtr parse_expression(std::string_view src);

}  // namespace storepulse::rules
