#include "storepulse/rules/parser.hpp"

#include <fmt/format.h>

#include "storepulse/rules/lexer.hpp"

namespace storepulse::rules {

std::string_view binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::kAdd: return "+";
    case BinaryOp::kSub: return "-";
    case BinaryOp::kMul: return "*";
    case BinaryOp::kDiv: return "/";
    case BinaryOp::kMod: return "%";
    case BinaryOp::kEq: return "==";
    case BinaryOp::kNe: return "!=";
    case BinaryOp::kLt: return "<";
    case BinaryOp::kLe: return "<=";
    case BinaryOp::kGt: return ">";
    case BinaryOp::kGe: return ">=";
    case BinaryOp::kAnd: return "and";
    case BinaryOp::kOr: return "or";
    case BinaryOp::kIn: return "in";
  }
  return "?";
}

std::string to_string(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kNumber: return fmt::format("{}", e.number);
    case ExprKind::kString: return fmt::format("\"{}\"", e.text);
    case ExprKind::kBool: return e.boolean ? "true" : "false";
    case ExprKind::kNull: return "null";
    case ExprKind::kPath: return e.text;
    case ExprKind::kCall:
    case ExprKind::kList: {
      std::string s = e.kind == ExprKind::kCall ? e.text + "(" : "[";
      for (std::size_t i = 0; i < e.args.size(); ++i) {
        if (i) s += ", ";
        s += to_string(*e.args[i]);
      }
      return s + (e.kind == ExprKind::kCall ? ")" : "]");
    }
    case ExprKind::kUnary:
      return fmt::format("({}{})", e.unary == UnaryOp::kNot ? "not " : "-", to_string(*e.args[0]));
    case ExprKind::kBinary:
      return fmt::format("({} {} {})", to_string(*e.args[0]), binary_op_name(e.binary),
                         to_string(*e.args[1]));
  }
  return "?";
}

namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : toks_(std::move(toks)) {}

  ExprPtr parse_all() {
    if (peek().kind == TokenKind::kEnd) throw ExpressionError{peek().pos, "empty expression"};
    // The parser, the compiler and the tree's destructor all recurse over the
    // tree: bounding its height keeps a hostile or generated rule from
    // overflowing the stack. A long chain (`a + b + c …`) grows the tree by one
    // level per operator, hence the token cap; nesting is capped separately.
    if (toks_.size() > kMaxTokens + 1)
      throw ExpressionError{toks_[kMaxTokens].pos,
                            fmt::format("expression is too long (over {} tokens)", kMaxTokens)};
    auto e = parse_or();
    if (peek().kind != TokenKind::kEnd)
      throw ExpressionError{peek().pos,
                            fmt::format("unexpected {} '{}' after a complete expression",
                                        token_kind_name(peek().kind), peek().text)};
    return e;
  }

 private:
  static constexpr std::size_t kMaxTokens = 1024;
  // Active parse_not / parse_unary frames: two per level of parentheses or
  // call arguments, one per chained `not` or `-`.
  static constexpr int kMaxNesting = 100;

  struct Nest {
    explicit Nest(Parser& p) : p_(p) {
      if (++p_.nesting_ > kMaxNesting) {
        --p_.nesting_;
        throw ExpressionError{p_.peek().pos,
                              "expression nests too deeply (parentheses, calls, 'not' or '-')"};
      }
    }
    ~Nest() { --p_.nesting_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;
    Parser& p_;
  };

  const Token& peek() const { return toks_[at_]; }
  const Token& take() { return toks_[at_ < toks_.size() - 1 ? at_++ : at_]; }
  bool accept(TokenKind k) {
    if (peek().kind != k) return false;
    take();
    return true;
  }
  void expect(TokenKind k, std::string_view what) {
    if (peek().kind != k)
      throw ExpressionError{peek().pos, fmt::format("expected {} {}, found {}", token_kind_name(k),
                                                    what, token_kind_name(peek().kind))};
    take();
  }

  static ExprPtr binary(BinaryOp op, SourcePos pos, ExprPtr l, ExprPtr r) {
    auto e = std::make_unique<Expr>();
    e->kind = ExprKind::kBinary;
    e->binary = op;
    e->pos = pos;
    e->args.push_back(std::move(l));
    e->args.push_back(std::move(r));
    return e;
  }

  ExprPtr parse_or() {
    auto l = parse_and();
    while (peek().kind == TokenKind::kOr) {
      const auto pos = take().pos;
      l = binary(BinaryOp::kOr, pos, std::move(l), parse_and());
    }
    return l;
  }
  ExprPtr parse_and() {
    auto l = parse_not();
    while (peek().kind == TokenKind::kAnd) {
      const auto pos = take().pos;
      l = binary(BinaryOp::kAnd, pos, std::move(l), parse_not());
    }
    return l;
  }
  ExprPtr parse_not() {
    const Nest nest(*this);
    if (peek().kind == TokenKind::kNot) {
      auto e = std::make_unique<Expr>();
      e->kind = ExprKind::kUnary;
      e->unary = UnaryOp::kNot;
      e->pos = take().pos;
      e->args.push_back(parse_not());
      return e;
    }
    return parse_comparison();
  }
  static bool comparison_op(TokenKind k, BinaryOp& op) {
    switch (k) {
      case TokenKind::kEq: op = BinaryOp::kEq; return true;
      case TokenKind::kNe: op = BinaryOp::kNe; return true;
      case TokenKind::kLt: op = BinaryOp::kLt; return true;
      case TokenKind::kLe: op = BinaryOp::kLe; return true;
      case TokenKind::kGt: op = BinaryOp::kGt; return true;
      case TokenKind::kGe: op = BinaryOp::kGe; return true;
      case TokenKind::kIn: op = BinaryOp::kIn; return true;
      default: return false;
    }
  }
  ExprPtr parse_comparison() {
    auto l = parse_additive();
    BinaryOp op;
    // `x not in [..]` reads naturally; it is `not (x in [..])`.
    if (peek().kind == TokenKind::kNot && at_ + 1 < toks_.size() &&
        toks_[at_ + 1].kind == TokenKind::kIn) {
      const auto pos = take().pos;
      take();
      auto in = binary(BinaryOp::kIn, pos, std::move(l), parse_list());
      auto e = std::make_unique<Expr>();
      e->kind = ExprKind::kUnary;
      e->unary = UnaryOp::kNot;
      e->pos = pos;
      e->args.push_back(std::move(in));
      return e;
    }
    if (comparison_op(peek().kind, op)) {
      const auto pos = take().pos;
      auto r = op == BinaryOp::kIn ? parse_list() : parse_additive();
      l = binary(op, pos, std::move(l), std::move(r));
      BinaryOp again;
      if (comparison_op(peek().kind, again))
        throw ExpressionError{peek().pos, "comparisons do not chain; combine them with 'and'"};
    }
    return l;
  }
  ExprPtr parse_list() {
    const auto pos = peek().pos;
    expect(TokenKind::kLBracket, "after 'in' (a list such as [\"a\", \"b\"])");
    auto e = std::make_unique<Expr>();
    e->kind = ExprKind::kList;
    e->pos = pos;
    if (!accept(TokenKind::kRBracket)) {
      do {
        e->args.push_back(parse_additive());
      } while (accept(TokenKind::kComma));
      expect(TokenKind::kRBracket, "to close the list");
    }
    return e;
  }
  ExprPtr parse_additive() {
    auto l = parse_multiplicative();
    while (peek().kind == TokenKind::kPlus || peek().kind == TokenKind::kMinus) {
      const auto& t = take();
      l = binary(t.kind == TokenKind::kPlus ? BinaryOp::kAdd : BinaryOp::kSub, t.pos, std::move(l),
                 parse_multiplicative());
    }
    return l;
  }
  ExprPtr parse_multiplicative() {
    auto l = parse_unary();
    while (peek().kind == TokenKind::kStar || peek().kind == TokenKind::kSlash ||
           peek().kind == TokenKind::kPercent) {
      const auto& t = take();
      const BinaryOp op = t.kind == TokenKind::kStar    ? BinaryOp::kMul
                          : t.kind == TokenKind::kSlash ? BinaryOp::kDiv
                                                        : BinaryOp::kMod;
      l = binary(op, t.pos, std::move(l), parse_unary());
    }
    return l;
  }
  ExprPtr parse_unary() {
    const Nest nest(*this);
    if (peek().kind == TokenKind::kMinus) {
      auto e = std::make_unique<Expr>();
      e->kind = ExprKind::kUnary;
      e->unary = UnaryOp::kNeg;
      e->pos = take().pos;
      e->args.push_back(parse_unary());
      return e;
    }
    return parse_primary();
  }
  ExprPtr parse_primary() {
    const Token& t = take();
    auto e = std::make_unique<Expr>();
    e->pos = t.pos;
    switch (t.kind) {
      case TokenKind::kNumber:
        e->kind = ExprKind::kNumber;
        e->number = t.number;
        return e;
      case TokenKind::kString:
        e->kind = ExprKind::kString;
        e->text = t.text;
        return e;
      case TokenKind::kTrue:
        e->kind = ExprKind::kBool;
        e->boolean = true;
        return e;
      case TokenKind::kFalse:
        e->kind = ExprKind::kBool;
        e->boolean = false;
        return e;
      case TokenKind::kNull: e->kind = ExprKind::kNull; return e;
      case TokenKind::kLParen: {
        auto inner = parse_or();
        expect(TokenKind::kRParen, "to close '('");
        return inner;
      }
      case TokenKind::kName:
        e->text = t.text;
        if (accept(TokenKind::kLParen)) {
          e->kind = ExprKind::kCall;
          if (!accept(TokenKind::kRParen)) {
            do {
              e->args.push_back(parse_or());
            } while (accept(TokenKind::kComma));
            expect(TokenKind::kRParen, fmt::format("to close the call of {}()", e->text));
          }
        } else {
          e->kind = ExprKind::kPath;
        }
        return e;
      case TokenKind::kLBracket: throw ExpressionError{t.pos, "a list is only allowed after 'in'"};
      default:
        throw ExpressionError{t.pos,
                              fmt::format("expected a value, found {}", token_kind_name(t.kind))};
    }
  }

  std::vector<Token> toks_;
  std::size_t at_ = 0;
  int nesting_ = 0;
};

}  // namespace

ExprPtr parse_expression(std::string_view src) {
  return Parser(tokenize(src)).parse_all();
}

}  // namespace storepulse::rules
