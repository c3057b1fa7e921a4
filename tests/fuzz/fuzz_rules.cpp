// libFuzzer target: the rule language, from source text to evaluation.
//   - every input is compiled as a bare expression (lexer, parser, compiler),
//     as an `if:` condition and as a `{expr|fallback}` message template; what
//     compiles is run against fixed events and a profile;
//   - an input with a ':' is also loaded as a whole rule file (YAML, the rule
//     loader's field checks), and a rule book that loads evaluates the events
//     and fires its timers.
// Bad source must come back as an ExpressionError / Diagnostic with a message
// and a 1-based position; anything else (crash, other exception, sanitizer
// report, hang, leak) is a bug. Build: scripts/fuzz.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storepulse/profile/profile.hpp"
#include "storepulse/protocol/codec.hpp"
#include "storepulse/rules/compiler.hpp"
#include "storepulse/rules/rule_book.hpp"

using namespace storepulse;

namespace {

constexpr TimeUs kNow = 1'790'000'000LL * kUsPerSecond;  // fixed: runs must be reproducible

std::vector<protocol::Event> sample_events() {
  const char* json[] = {
      R"({"type":"identify","messageId":"f1","userId":"U1","timestamp":"2026-09-20T09:00:00Z",)"
      R"("traits":{"firstName":"Ana","lastName":"Lopez","birthday":"1990-09-20","phone":"+15550100","smsConsent":true}})",
      R"({"type":"track","event":"Card Swiped","messageId":"f2","userId":"U1","timestamp":"2026-09-20T10:00:00Z",)"
      R"("context":{"channel":"pos","storeId":"S1"}})",
      R"({"type":"track","event":"Product Added","messageId":"f3","userId":"U1","timestamp":"2026-09-20T10:05:00Z",)"
      R"("context":{"channel":"web"},"properties":{"product_id":"P1","name":"Boot","brand":"Acme","price":80,"quantity":1}})",
      R"({"type":"track","event":"Order Completed","messageId":"f4","userId":"U1","timestamp":"2026-09-20T11:00:00Z",)"
      R"("context":{"channel":"pos","storeId":"S1"},"properties":{"total":120.5,)"
      R"("products":[{"product_id":"P1","name":"Boot","brand":"Acme","category":"Shoes","price":120.5,"quantity":1}]}})",
      R"({"type":"page","messageId":"f5","userId":"U1","timestamp":"2026-09-20T12:00:00Z","name":"Home",)"
      R"("context":{"channel":"web"}})",
  };
  protocol::EventDecoder dec;
  std::vector<protocol::Event> out;
  for (const char* j : json) {
    std::string buf;
    buf.reserve(std::string_view(j).size() + protocol::decode_padding());
    buf.assign(j);
    protocol::Event ev;
    if (!dec.decode(buf, kNow, ev).is_ok()) std::abort();  // the harness itself is wrong
    out.push_back(std::move(ev));
  }
  return out;
}

const std::vector<protocol::Event>& events() {
  static const std::vector<protocol::Event> evs = sample_events();
  return evs;
}

void check(const rules::SourcePos& pos, const std::string& message) {
  if (message.empty() || pos.line < 1 || pos.col < 1) std::abort();
}

void run_expressions(std::string_view src) {
  profile::CustomerProfile p;
  p.user_id = "U1";
  try {
    rules::Program prog = rules::compile_expression(src);
    if (prog.max_stack() > rules::Program::kMaxStack || prog.size() > rules::Program::kMaxCode)
      std::abort();
    for (const auto& ev : events()) {
      profile::apply_event(p, ev);
      (void)prog.run({&ev, &p, ev.timestamp});
    }
    (void)prog.disassemble();
  } catch (const rules::ExpressionError& e) {
    check(e.pos, e.message);
  }
  try {
    rules::Program cond = rules::compile_condition(src);
    for (const auto& ev : events()) (void)cond.test({&ev, &p, ev.timestamp});
  } catch (const rules::ExpressionError& e) {
    check(e.pos, e.message);
  }
  try {
    rules::Template t = rules::compile_template(src);
    std::string out;
    for (const auto& ev : events()) t.render({&ev, &p, ev.timestamp}, out);
  } catch (const rules::ExpressionError& e) {
    check(e.pos, e.message);
  }
}

void run_rule_file(std::string_view src) {
  auto res = rules::load_rules_from_sources({{"fuzz.yaml", std::string(src)}});
  for (const auto& d : res.errors) check(d.pos, d.message);
  if (!res.errors.empty()) {
    if (res.rules) std::abort();  // a book with errors must not be loaded
    return;
  }
  if (!res.rules) std::abort();
  profile::CustomerProfile p;
  p.user_id = "U1";
  std::vector<protocol::Action> out;
  for (const auto& ev : events()) {
    profile::apply_event(p, ev);
    res.rules->evaluate(ev, p, out);
  }
  // Fire what was armed, as the engine does once the watermark passes.
  auto timers = std::move(p.timers);
  p.timers.clear();
  for (const auto& t : timers)
    res.rules->fire_timer(std::string(p.name(t.rule)), t.fire_at, p, out);
  (void)res.rules->describe_json();
  std::string prom;
  res.rules->append_prometheus(prom);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view src(reinterpret_cast<const char*>(data), size);
  run_expressions(src);
  if (src.find(':') != std::string_view::npos) run_rule_file(src);
  return 0;
}
