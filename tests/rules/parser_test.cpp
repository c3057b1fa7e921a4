#include "storepulse/rules/parser.hpp"

#include <catch2/catch.hpp>

using namespace storepulse::rules;

namespace {
std::string parsed(const char* src) {
  return to_string(*parse_expression(src));
}
ExpressionError parse_error(const char* src) {
  try {
    parse_expression(src);
  } catch (const ExpressionError& e) {
    return e;
  }
  return {{0, 0}, "no error"};
}
}  // namespace

TEST_CASE("parser: precedence or < and < not < comparison < additive < multiplicative") {
  CHECK(parsed("a or b and c") == "(a or (b and c))");
  CHECK(parsed("not a and b") == "((not a) and b)");
  CHECK(parsed("a + b * c > 3 - d") == "((a + (b * c)) > (3 - d))");
  CHECK(parsed("-a * 2") == "((-a) * 2)");
  CHECK(parsed("(a or b) and c") == "((a or b) and c)");
  CHECK(parsed("1 - 2 - 3") == "((1 - 2) - 3)");
}

TEST_CASE("parser: calls - lists and in / not in") {
  CHECK(parsed("days_since(profile.lastOrder) > 30") == "(days_since(profile.lastOrder) > 30)");
  CHECK(parsed("is_birthday_today()") == "is_birthday_today()");
  CHECK(parsed("bought_within(\"Shoes\", 30)") == "bought_within(\"Shoes\", 30)");
  CHECK(parsed("segment in [\"a\", \"b\"]") == "(segment in [\"a\", \"b\"])");
  CHECK(parsed("segment not in [\"a\"]") == "(not (segment in [\"a\"]))");
}

TEST_CASE("parser: errors point at the offending token") {
  auto e = parse_error("a < b < c");
  CHECK(e.pos.col == 7);
  CHECK(e.message.find("do not chain") != std::string::npos);
  e = parse_error("(a and b");
  CHECK(e.message.find("expected ')'") != std::string::npos);
  e = parse_error("a and");
  CHECK(e.pos.col == 6);
  CHECK(e.message.find("expected a value") != std::string::npos);
  e = parse_error("a b");
  CHECK(e.pos.col == 3);
  CHECK(parse_error("x in y").message.find("expected '['") != std::string::npos);
  CHECK(parse_error("").message == "empty expression");
}

// Found by fuzz_rules: the parser, the compiler and the tree's destructor
// recursed once per level, so deep nesting or a long operator chain overflowed
// the stack instead of being a load error.
TEST_CASE("parser: deep nesting and long chains are load errors - not stack overflows") {
  // The inputs that crashed: over the token cap, refused before parsing.
  const std::string parens = std::string(30000, '(') + "1" + std::string(30000, ')');
  CHECK(parse_error(parens.c_str()).message.find("too long") != std::string::npos);
  std::string nots;
  for (int i = 0; i < 20000; ++i) nots += "not ";
  CHECK(parse_error((nots + "true").c_str()).message.find("too long") != std::string::npos);

  // Under the token cap, nesting has its own limit.
  const std::string deep = std::string(400, '(') + "1" + std::string(400, ')');
  auto e = parse_error(deep.c_str());
  CHECK(e.message.find("nests too deeply") != std::string::npos);
  CHECK(e.pos.line == 1);
  CHECK(e.pos.col > 1);
  CHECK(parse_error((nots.substr(0, 4 * 600) + "true").c_str()).message.find("nests too deeply") !=
        std::string::npos);
  CHECK(parse_error((std::string(600, '-') + "1").c_str()).message.find("nests too deeply") !=
        std::string::npos);

  std::string chain = "1";
  for (int i = 0; i < 30000; ++i) chain += "+1";
  e = parse_error(chain.c_str());
  CHECK(e.message.find("too long") != std::string::npos);
  CHECK(e.pos.col > 1000);

  // What a person writes is far inside the limits.
  const std::string nested = std::string(40, '(') + "a" + std::string(40, ')');
  CHECK(parsed(nested.c_str()) == "a");
  std::string sum = "a";
  for (int i = 0; i < 400; ++i) sum += " + 1";
  CHECK_NOTHROW(parse_expression(sum));
}
