// The VM: runs a compiled Program over a fixed-size value stack. No
// allocation, no exceptions, no clock; fields and functions are the
// catalogue's (catalogue.hpp).
#include <fmt/format.h>

#include <cmath>

#include "rules/catalogue_eval.hpp"
#include "storepulse/rules/compiler.hpp"

namespace storepulse::rules {

using catalogue::days_between;
using catalogue::FieldId;
using catalogue::kFields;
using catalogue::kFuncs;

bool Value::truthy() const {
  switch (kind) {
    case ValueKind::kNull: return false;
    case ValueKind::kBool: return boolean;
    case ValueKind::kNumber: return number != 0;
    case ValueKind::kString: return !str.empty();
    case ValueKind::kTime: return time != 0;
  }
  return false;
}

namespace {

bool values_equal(const Value& x, const Value& y) {
  if (x.kind != y.kind) return false;
  switch (x.kind) {
    case ValueKind::kNull: return true;
    case ValueKind::kBool: return x.boolean == y.boolean;
    case ValueKind::kNumber: return x.number == y.number;
    case ValueKind::kString: return x.str == y.str;
    case ValueKind::kTime: return x.time == y.time;
  }
  return false;
}

// -1/0/1, or 2 when the two cannot be ordered (null, mixed kinds).
int compare(const Value& x, const Value& y) {
  if (x.kind != y.kind || x.kind == ValueKind::kNull || x.kind == ValueKind::kBool) return 2;
  switch (x.kind) {
    case ValueKind::kNumber: return x.number < y.number ? -1 : x.number > y.number ? 1 : 0;
    case ValueKind::kTime: return x.time < y.time ? -1 : x.time > y.time ? 1 : 0;
    case ValueKind::kString: {
      const int r = x.str.compare(y.str);
      return r < 0 ? -1 : r > 0 ? 1 : 0;
    }
    default: return 2;
  }
}

Value arith(OpCode op, const Value& x, const Value& y) {
  // time ± duration (days) and time - time (days) keep `now - 30d` meaningful.
  if (x.kind == ValueKind::kTime && y.kind == ValueKind::kNumber &&
      (op == OpCode::kAdd || op == OpCode::kSub)) {
    const auto delta = static_cast<TimeUs>(std::llround(y.number * static_cast<double>(kUsPerDay)));
    return Value::of_time(op == OpCode::kAdd ? x.time + delta : x.time - delta);
  }
  if (x.kind == ValueKind::kTime && y.kind == ValueKind::kTime && op == OpCode::kSub)
    return Value::of_number(days_between(y.time, x.time));
  if (x.kind != ValueKind::kNumber || y.kind != ValueKind::kNumber) return Value::null();
  switch (op) {
    case OpCode::kAdd: return Value::of_number(x.number + y.number);
    case OpCode::kSub: return Value::of_number(x.number - y.number);
    case OpCode::kMul: return Value::of_number(x.number * y.number);
    case OpCode::kDiv: return y.number == 0 ? Value::null() : Value::of_number(x.number / y.number);
    case OpCode::kMod:
      return y.number == 0 ? Value::null() : Value::of_number(std::fmod(x.number, y.number));
    default: return Value::null();
  }
}

}  // namespace

Value Program::run(const EvalContext& ctx) const noexcept {
  Value stack[kMaxStack];
  std::size_t sp = 0;
  const std::size_t n = code_.size();
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Instr& in = code_[pc];
    switch (in.op) {
      case OpCode::kConst: stack[sp++] = consts_[in.arg]; break;
      case OpCode::kField:
        stack[sp++] = catalogue::load_field(static_cast<FieldId>(in.arg), ctx);
        break;
      case OpCode::kCall: {
        const auto& f = kFuncs[in.target];
        sp -= f.arity;
        stack[sp] = catalogue::call_function(f.id, &stack[sp], ctx);
        ++sp;
        break;
      }
      case OpCode::kNot: stack[sp - 1] = Value::of_bool(!stack[sp - 1].truthy()); break;
      case OpCode::kNeg:
        stack[sp - 1] = stack[sp - 1].kind == ValueKind::kNumber
                            ? Value::of_number(-stack[sp - 1].number)
                            : Value::null();
        break;
      case OpCode::kAdd:
      case OpCode::kSub:
      case OpCode::kMul:
      case OpCode::kDiv:
      case OpCode::kMod:
        --sp;
        stack[sp - 1] = arith(in.op, stack[sp - 1], stack[sp]);
        break;
      case OpCode::kEq:
      case OpCode::kNe: {
        --sp;
        const bool eq = values_equal(stack[sp - 1], stack[sp]);
        stack[sp - 1] = Value::of_bool(in.op == OpCode::kEq ? eq : !eq);
        break;
      }
      case OpCode::kLt:
      case OpCode::kLe:
      case OpCode::kGt:
      case OpCode::kGe: {
        --sp;
        const int r = compare(stack[sp - 1], stack[sp]);
        bool b = false;
        if (r != 2) {
          b = in.op == OpCode::kLt   ? r < 0
              : in.op == OpCode::kLe ? r <= 0
              : in.op == OpCode::kGt ? r > 0
                                     : r >= 0;
        }
        stack[sp - 1] = Value::of_bool(b);
        break;
      }
      case OpCode::kIn: {
        bool found = false;
        for (const auto& v : lists_[in.arg])
          if (values_equal(stack[sp - 1], v)) {
            found = true;
            break;
          }
        stack[sp - 1] = Value::of_bool(found);
        break;
      }
      case OpCode::kAndJump:
        if (!stack[sp - 1].truthy()) {
          stack[sp - 1] = Value::of_bool(false);
          pc = static_cast<std::size_t>(in.target) - 1;
        } else {
          --sp;
        }
        break;
      case OpCode::kOrJump:
        if (stack[sp - 1].truthy()) {
          stack[sp - 1] = Value::of_bool(true);
          pc = static_cast<std::size_t>(in.target) - 1;
        } else {
          --sp;
        }
        break;
      case OpCode::kToBool: stack[sp - 1] = Value::of_bool(stack[sp - 1].truthy()); break;
    }
  }
  return sp ? stack[sp - 1] : Value::null();
}

std::string Program::disassemble() const {
  static constexpr std::string_view kNames[] = {
      "const", "field", "call", "not", "neg", "add", "sub", "mul",      "div",     "mod",
      "eq",    "ne",    "lt",   "le",  "gt",  "ge",  "in",  "and_jump", "or_jump", "to_bool"};
  std::string s;
  for (std::size_t i = 0; i < code_.size(); ++i) {
    const auto& in = code_[i];
    s += fmt::format("{:3} {}", i, kNames[static_cast<int>(in.op)]);
    if (in.op == OpCode::kField) {
      for (const auto& f : kFields)
        if (static_cast<std::uint16_t>(f.id) == in.arg) {
          s += fmt::format(" {}", f.path);
          break;
        }
    } else if (in.op == OpCode::kCall) {
      s += fmt::format(" {}", kFuncs[in.target].name);
    } else if (in.op == OpCode::kConst) {
      std::string v;
      append_value_text(v, consts_[in.arg]);
      s += fmt::format(" {}", consts_[in.arg].kind == ValueKind::kNull ? "null" : v);
    } else if (in.op == OpCode::kAndJump || in.op == OpCode::kOrJump) {
      s += fmt::format(" -> {}", in.target);
    }
    s.push_back('\n');
  }
  return s;
}

}  // namespace storepulse::rules
