// The compiler: expression AST -> flat postfix Program, with names resolved
// against the catalogue (catalogue.hpp) and types checked at load. Load path
// only: may allocate and throw ExpressionError.
#include "storepulse/rules/compiler.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "rules/catalogue.hpp"
#include "storepulse/rules/parser.hpp"

namespace storepulse::rules {

using catalogue::FieldDef;
using catalogue::FuncDef;
using catalogue::kChannels;
using catalogue::kEventNames;
using catalogue::kEventTypes;
using catalogue::kFields;
using catalogue::kFuncs;

namespace {

std::string_view type_name(StaticType t) {
  switch (t) {
    case StaticType::kAny: return "any";
    case StaticType::kNull: return "null";
    case StaticType::kBool: return "true/false";
    case StaticType::kNumber: return "number";
    case StaticType::kString: return "text";
    case StaticType::kTime: return "time";
  }
  return "?";
}

bool fits(StaticType have, StaticType want) {
  return want == StaticType::kAny || have == want || have == StaticType::kAny ||
         have == StaticType::kNull;
}

}  // namespace

class ExpressionCompiler {
 public:
  explicit ExpressionCompiler(Program& prog) : p_(prog) {}

  StaticType emit(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kNumber: push_const(Value::of_number(e.number)); return StaticType::kNumber;
      case ExprKind::kString: push_const(Value::of_string(own(e.text))); return StaticType::kString;
      case ExprKind::kBool: push_const(Value::of_bool(e.boolean)); return StaticType::kBool;
      case ExprKind::kNull: push_const(Value::null()); return StaticType::kNull;
      case ExprKind::kPath: {
        const FieldDef& f = resolve_field(e);
        add({OpCode::kField, static_cast<std::uint16_t>(f.id), 0}, +1);
        return f.type;
      }
      case ExprKind::kCall: return emit_call(e);
      case ExprKind::kList: throw ExpressionError{e.pos, "a list is only allowed after 'in'"};
      case ExprKind::kUnary: {
        const StaticType t = emit(*e.args[0]);
        if (e.unary == UnaryOp::kNeg) {
          require(t, StaticType::kNumber, *e.args[0], "'-'");
          add({OpCode::kNeg, 0, 0}, 0);
          return StaticType::kNumber;
        }
        add({OpCode::kNot, 0, 0}, 0);
        return StaticType::kBool;
      }
      case ExprKind::kBinary: return emit_binary(e);
    }
    throw ExpressionError{e.pos, "unsupported expression"};
  }

  void finish(StaticType t) { p_.type_ = t; }

 private:
  void add(Instr in, int stack_delta) {
    if (p_.code_.size() >= Program::kMaxCode)
      throw ExpressionError{{1, 1}, "expression is too long"};
    p_.code_.push_back(in);
    depth_ += stack_delta;
    if (depth_ > static_cast<int>(Program::kMaxStack))
      throw ExpressionError{
          {1, 1}, fmt::format("expression nests deeper than {} values", Program::kMaxStack)};
    p_.max_stack_ = std::max(p_.max_stack_, static_cast<std::size_t>(std::max(depth_, 0)));
  }
  std::string_view own(const std::string& s) {
    p_.strings_.push_back(std::make_unique<std::string>(s));
    return *p_.strings_.back();
  }
  void push_const(Value v) {
    p_.consts_.push_back(v);
    add({OpCode::kConst, static_cast<std::uint16_t>(p_.consts_.size() - 1), 0}, +1);
  }
  static void require(StaticType have, StaticType want, const Expr& at, std::string_view what) {
    if (!fits(have, want))
      throw ExpressionError{at.pos, fmt::format("{} needs a {} here, but {} is a {}", what,
                                                type_name(want), to_string(at), type_name(have))};
  }

  static const FieldDef& resolve_field(const Expr& e) {
    for (const auto& f : kFields)
      if (f.path == e.text) return f;
    for (const auto& f : kFuncs)
      if (f.name == e.text)
        throw ExpressionError{e.pos,
                              fmt::format("'{}' is a function: write {}", e.text, f.signature)};
    std::vector<std::string_view> names;
    const auto dot = e.text.find('.');
    const std::string_view root = std::string_view(e.text).substr(0, dot);
    bool known_root = false;
    for (const auto& f : kFields) {
      names.push_back(f.path);
      if (dot != std::string::npos && f.path.substr(0, f.path.find('.')) == root) known_root = true;
    }
    if (known_root)
      return fail_field(e,
                        fmt::format("unknown field '{}'{}", e.text, did_you_mean(e.text, names)));
    return fail_field(e, fmt::format("unknown name '{}'{}", e.text, did_you_mean(e.text, names)));
  }
  [[noreturn]] static const FieldDef& fail_field(const Expr& e, std::string msg) {
    throw ExpressionError{e.pos, std::move(msg)};
  }

  StaticType emit_call(const Expr& e) {
    if (e.text == "count")
      throw ExpressionError{
          e.pos,
          "count(event, days) is not available: profiles keep running totals, not event "
          "histories; use profile.orders, profile.swipes, bought_within(category, days) "
          "or days_since(profile.lastOrder)"};
    const FuncDef* f = nullptr;
    std::size_t index = 0;
    for (std::size_t i = 0; i < std::size(kFuncs); ++i)
      if (kFuncs[i].name == e.text) {
        f = &kFuncs[i];
        index = i;
      }
    if (!f) {
      std::vector<std::string_view> names;
      for (const auto& k : kFuncs) names.push_back(k.name);
      throw ExpressionError{
          e.pos, fmt::format("unknown function '{}'{}", e.text, did_you_mean(e.text, names))};
    }
    if (e.args.size() != f->arity)
      throw ExpressionError{e.pos, fmt::format("{} takes {} argument{}, not {}", f->signature,
                                               f->arity, f->arity == 1 ? "" : "s", e.args.size())};
    for (std::size_t i = 0; i < e.args.size(); ++i) {
      const StaticType t = emit(*e.args[i]);
      require(t, f->args[i], *e.args[i], fmt::format("argument {} of {}", i + 1, f->signature));
    }
    add({OpCode::kCall, 0, static_cast<std::uint16_t>(index)}, 1 - static_cast<int>(f->arity));
    return f->result;
  }

  // `event.name == "Order Complted"` can never be true: catch the typo at load.
  static void check_literal_against(const Expr& path, const Expr& lit) {
    if (path.kind != ExprKind::kPath || lit.kind != ExprKind::kString) return;
    std::vector<std::string_view> allowed;
    if (path.text == "event.name")
      allowed.assign(std::begin(kEventNames), std::end(kEventNames));
    else if (path.text == "event.channel")
      allowed.assign(std::begin(kChannels), std::end(kChannels));
    else if (path.text == "event.type")
      allowed.assign(std::begin(kEventTypes), std::end(kEventTypes));
    else
      return;
    if (std::find(allowed.begin(), allowed.end(), lit.text) != allowed.end()) return;
    throw ExpressionError{lit.pos, fmt::format("{} is never \"{}\"{}", path.text, lit.text,
                                               did_you_mean(lit.text, allowed))};
  }

  StaticType emit_binary(const Expr& e) {
    const Expr& l = *e.args[0];
    const Expr& r = *e.args[1];
    switch (e.binary) {
      case BinaryOp::kAnd:
      case BinaryOp::kOr: {
        emit(l);
        const std::size_t jump_at = p_.code_.size();
        add({e.binary == BinaryOp::kAnd ? OpCode::kAndJump : OpCode::kOrJump, 0, 0}, -1);
        emit(r);
        add({OpCode::kToBool, 0, 0}, 0);
        p_.code_[jump_at].target = static_cast<std::uint16_t>(p_.code_.size());
        return StaticType::kBool;
      }
      case BinaryOp::kIn: {
        const StaticType lt = emit(l);
        std::vector<Value> items;
        for (const auto& item : r.args) {
          switch (item->kind) {
            case ExprKind::kNumber: items.push_back(Value::of_number(item->number)); break;
            case ExprKind::kString:
              check_literal_against(l, *item);
              if (lt != StaticType::kAny && lt != StaticType::kString && lt != StaticType::kNull)
                throw ExpressionError{item->pos, fmt::format("{} is a {}, the list holds text",
                                                             to_string(l), type_name(lt))};
              items.push_back(Value::of_string(own(item->text)));
              break;
            case ExprKind::kBool: items.push_back(Value::of_bool(item->boolean)); break;
            case ExprKind::kUnary:
              if (item->unary == UnaryOp::kNeg && item->args[0]->kind == ExprKind::kNumber) {
                items.push_back(Value::of_number(-item->args[0]->number));
                break;
              }
              [[fallthrough]];
            default:
              throw ExpressionError{item->pos,
                                    "list items must be literal numbers, texts or true/false"};
          }
        }
        p_.lists_.push_back(std::move(items));
        add({OpCode::kIn, static_cast<std::uint16_t>(p_.lists_.size() - 1), 0}, 0);
        return StaticType::kBool;
      }
      default: break;
    }
    check_literal_against(l, r);
    check_literal_against(r, l);
    const StaticType lt = emit(l);
    const StaticType rt = emit(r);
    const std::string_view op = binary_op_name(e.binary);
    switch (e.binary) {
      case BinaryOp::kAdd:
      case BinaryOp::kSub:
        add({e.binary == BinaryOp::kAdd ? OpCode::kAdd : OpCode::kSub, 0, 0}, -1);
        if (lt == StaticType::kTime && fits(rt, StaticType::kNumber)) return StaticType::kTime;
        if (lt == StaticType::kTime && rt == StaticType::kTime && e.binary == BinaryOp::kSub)
          return StaticType::kNumber;
        require(lt, StaticType::kNumber, l, fmt::format("'{}'", op));
        require(rt, StaticType::kNumber, r, fmt::format("'{}'", op));
        return StaticType::kNumber;
      case BinaryOp::kMul:
      case BinaryOp::kDiv:
      case BinaryOp::kMod:
        require(lt, StaticType::kNumber, l, fmt::format("'{}'", op));
        require(rt, StaticType::kNumber, r, fmt::format("'{}'", op));
        add({e.binary == BinaryOp::kMul   ? OpCode::kMul
             : e.binary == BinaryOp::kDiv ? OpCode::kDiv
                                          : OpCode::kMod,
             0, 0},
            -1);
        return StaticType::kNumber;
      default: break;
    }
    // Comparisons: both sides of one kind (null and unknown fit anything).
    const bool lfree = lt == StaticType::kAny || lt == StaticType::kNull;
    const bool rfree = rt == StaticType::kAny || rt == StaticType::kNull;
    if (!lfree && !rfree && lt != rt)
      throw ExpressionError{e.pos, fmt::format("cannot compare {} ({}) with {} ({})", to_string(l),
                                               type_name(lt), to_string(r), type_name(rt))};
    OpCode code = OpCode::kEq;
    switch (e.binary) {
      case BinaryOp::kEq: code = OpCode::kEq; break;
      case BinaryOp::kNe: code = OpCode::kNe; break;
      case BinaryOp::kLt: code = OpCode::kLt; break;
      case BinaryOp::kLe: code = OpCode::kLe; break;
      case BinaryOp::kGt: code = OpCode::kGt; break;
      default: code = OpCode::kGe; break;
    }
    if ((code != OpCode::kEq && code != OpCode::kNe) &&
        (lt == StaticType::kBool || rt == StaticType::kBool))
      throw ExpressionError{e.pos, fmt::format("'{}' does not order true/false values", op)};
    add({code, 0, 0}, -1);
    return StaticType::kBool;
  }

  Program& p_;
  int depth_ = 0;
};

Program compile_expression(const Expr& e) {
  Program prog;
  ExpressionCompiler c(prog);
  c.finish(c.emit(e));
  return prog;
}

Program compile_expression(std::string_view src) {
  return compile_expression(*parse_expression(src));
}

Program compile_condition(std::string_view src) {
  auto ast = parse_expression(src);
  Program prog = compile_expression(*ast);
  const StaticType t = prog.type();
  if (t != StaticType::kBool && t != StaticType::kAny)
    throw ExpressionError{ast->pos, fmt::format("a condition must be true or false, but {} is a {}",
                                                to_string(*ast), type_name(t))};
  return prog;
}

std::vector<std::string_view> known_field_paths() {
  std::vector<std::string_view> v;
  for (const auto& f : kFields) v.push_back(f.path);
  return v;
}

std::vector<std::string_view> known_function_names() {
  std::vector<std::string_view> v;
  for (const auto& f : kFuncs) v.push_back(f.name);
  return v;
}

std::vector<std::string_view> known_event_names() {
  return {std::begin(kEventNames), std::end(kEventNames)};
}

}  // namespace storepulse::rules
