#pragma once
// Syntax tree of one rule expression, produced by the parser and consumed by
// the compiler; it lives only while a rule file loads.
#include <memory>
#include <string>
#include <vector>

#include "storepulse/rules/diagnostics.hpp"

namespace storepulse::rules {

enum class ExprKind : unsigned char {
  kNumber,
  kString,
  kBool,
  kNull,
  kPath,    // event.total, traits.firstName, segment …
  kCall,    // days_since(x) …
  kList,    // [a, b, c] — only as the right side of `in`
  kUnary,   // not, unary minus
  kBinary,  // arithmetic, comparison, and, or, in
};

enum class UnaryOp : unsigned char { kNot, kNeg };
enum class BinaryOp : unsigned char {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kAnd,
  kOr,
  kIn
};

std::string_view binary_op_name(BinaryOp op);

struct Expr {
  ExprKind kind = ExprKind::kNull;
  SourcePos pos;
  double number = 0;
  bool boolean = false;
  std::string text;  // string value, path, or function name
  UnaryOp unary = UnaryOp::kNot;
  BinaryOp binary = BinaryOp::kAdd;
  std::vector<std::unique_ptr<Expr>> args;  // operands, call arguments or list items
};

using ExprPtr = std::unique_ptr<Expr>;

/// Renders the tree back as fully parenthesised text (tests and debugging).
std::string to_string(const Expr& e);

}  // namespace storepulse::rules
