#pragma once
// Compiles rule expressions once, at load, into a flat postfix program that
// evaluates per event over a fixed-size value stack: no allocation, no
// exceptions, no clock (time comes from the event, or the timer's due time).
//
// Values are null, bool, number (money in currency units, durations in days),
// string (a view into the event, the profile or the program's constants) and
// time (epoch µs). Null spreads through arithmetic and makes comparisons false,
// so `days_since(profile.lastOrder) > 90` is false for a customer who never
// ordered instead of being an error.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/profile/profile.hpp"
#include "storepulse/protocol/event.hpp"
#include "storepulse/rules/ast.hpp"

namespace storepulse::rules {

enum class ValueKind : std::uint8_t { kNull, kBool, kNumber, kString, kTime };

struct Value {
  ValueKind kind = ValueKind::kNull;
  bool boolean = false;
  double number = 0;
  TimeUs time = 0;
  std::string_view str;

  static Value null() { return {}; }
  static Value of_bool(bool b) {
    Value v;
    v.kind = ValueKind::kBool;
    v.boolean = b;
    return v;
  }
  static Value of_number(double n) {
    Value v;
    v.kind = ValueKind::kNumber;
    v.number = n;
    return v;
  }
  static Value of_string(std::string_view s) {
    Value v;
    v.kind = ValueKind::kString;
    v.str = s;
    return v;
  }
  static Value of_time(TimeUs t) {
    Value v;
    v.kind = ValueKind::kTime;
    v.time = t;
    return v;
  }
  /// false, null, 0 and "" are falsy.
  bool truthy() const;
};

/// What one evaluation sees. `now` is the event time, or a timer's due time.
struct EvalContext {
  const protocol::Event* event = nullptr;
  const profile::CustomerProfile* profile = nullptr;
  TimeUs now = 0;
};

/// Static type the compiler infers, to reject `traits.firstName > 3` at load.
enum class StaticType : std::uint8_t { kAny, kNull, kBool, kNumber, kString, kTime };

enum class OpCode : std::uint8_t {
  kConst,  // push consts[arg]
  kField,  // push field arg (a FieldId)
  kCall,   // call function arg (a FuncId) on its arguments
  kNot,
  kNeg,
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
  kIn,       // top in lists[arg]
  kAndJump,  // falsy top: replace by false, jump to target; else pop
  kOrJump,   // truthy top: replace by true, jump to target; else pop
  kToBool,
};

struct Instr {
  OpCode op;
  std::uint16_t arg = 0;
  std::uint16_t target = 0;
};

/// A compiled expression. Owns the strings its constants view, at stable
/// addresses, so a Program can be moved (not copied) freely.
class Program {
 public:
  static constexpr std::size_t kMaxStack = 32;
  static constexpr std::size_t kMaxCode = 4096;

  Program() = default;
  Program(Program&&) = default;
  Program& operator=(Program&&) = default;
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  bool empty() const { return code_.empty(); }
  StaticType type() const { return type_; }
  std::size_t max_stack() const { return max_stack_; }
  std::size_t size() const { return code_.size(); }
  /// Evaluates; never throws or allocates.
  Value run(const EvalContext& ctx) const noexcept;
  bool test(const EvalContext& ctx) const noexcept { return run(ctx).truthy(); }
  /// A readable listing, one instruction a line (tests and `rules check -v`).
  std::string disassemble() const;

 private:
  friend class ExpressionCompiler;
  std::vector<Instr> code_;
  std::vector<Value> consts_;
  std::vector<std::vector<Value>> lists_;
  std::vector<std::unique_ptr<std::string>> strings_;
  StaticType type_ = StaticType::kAny;
  std::size_t max_stack_ = 0;
};

/// Compiles an expression; throws ExpressionError (unknown names come with a
/// did-you-mean suggestion). `count()` is rejected: profiles keep summaries,
/// not event histories.
Program compile_expression(std::string_view src);
Program compile_expression(const Expr& e);
/// As compile_expression, and the result must be a truth value.
Program compile_condition(std::string_view src);

/// `Hi {traits.firstName|there}`: text with `{expression|fallback}` placeholders
/// (`{{` and `}}` are literal braces). A null or empty value renders the fallback.
class Template {
 public:
  bool empty() const { return pieces_.empty(); }
  bool has_placeholders() const;
  /// Allocates the text: called only when an action is delivered.
  std::string render(const EvalContext& ctx) const;
  void render(const EvalContext& ctx, std::string& out) const;

 private:
  friend Template compile_template(std::string_view text);
  struct Piece {
    std::string literal;
    Program expr;  // empty: literal only
    std::string fallback;
  };
  std::vector<Piece> pieces_;
};

/// Throws ExpressionError with a position relative to the template text.
Template compile_template(std::string_view text);

/// Appends a value as template text (integral numbers without decimals,
/// others with two, times as ISO-8601).
void append_value_text(std::string& out, const Value& v);

/// Every field path and function name, for suggestions and documentation.
std::vector<std::string_view> known_field_paths();
std::vector<std::string_view> known_function_names();
/// Event names accepted by `on:` / `cancel_on:` and in `event.name == "…"`.
std::vector<std::string_view> known_event_names();

}  // namespace storepulse::rules
