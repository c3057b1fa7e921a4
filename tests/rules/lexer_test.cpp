#include "storepulse/rules/lexer.hpp"

#include <catch2/catch.hpp>

using namespace storepulse::rules;

TEST_CASE("lexer: names with dots - strings - numbers and operators") {
  auto t = tokenize(R"(traits.firstName == "Ana" and cart.value >= 20.5 or not x != 'b')");
  std::vector<TokenKind> kinds;
  for (const auto& k : t) kinds.push_back(k.kind);
  CHECK(kinds == std::vector<TokenKind>{TokenKind::kName, TokenKind::kEq, TokenKind::kString,
                                        TokenKind::kAnd, TokenKind::kName, TokenKind::kGe,
                                        TokenKind::kNumber, TokenKind::kOr, TokenKind::kNot,
                                        TokenKind::kName, TokenKind::kNe, TokenKind::kString,
                                        TokenKind::kEnd});
  CHECK(t[0].text == "traits.firstName");
  CHECK(t[2].text == "Ana");
  CHECK(t[6].number == 20.5);
  CHECK(t[11].text == "b");
}

TEST_CASE("lexer: durations are days") {
  auto t = tokenize("30d 2h 1w 90m");
  CHECK(t[0].number == 30);
  CHECK(t[0].duration);
  CHECK(t[1].number == Approx(2.0 / 24));
  CHECK(t[2].number == 7);
  CHECK(t[3].number == Approx(90.0 / 1440));
}

TEST_CASE("lexer: positions are line and column of each token") {
  auto t = tokenize("a and\n  b");
  CHECK(t[0].pos.line == 1);
  CHECK(t[0].pos.col == 1);
  CHECK(t[1].pos.col == 3);
  CHECK(t[2].pos.line == 2);
  CHECK(t[2].pos.col == 3);
}

TEST_CASE("lexer: escapes inside strings - && and || spellings") {
  auto t = tokenize(R"("say \"hi\"" && a || b)");
  CHECK(t[0].text == "say \"hi\"");
  CHECK(t[1].kind == TokenKind::kAnd);
  CHECK(t[3].kind == TokenKind::kOr);
}

TEST_CASE("lexer: errors carry the position and say what to fix") {
  auto err = [](const char* src) {
    try {
      tokenize(src);
    } catch (const ExpressionError& e) {
      return e;
    }
    return ExpressionError{{0, 0}, "no error"};
  };
  auto e1 = err("a = 3");
  CHECK(e1.pos.col == 3);
  CHECK(e1.message.find("did you mean '=='") != std::string::npos);
  auto e2 = err("x > 3q");
  CHECK(e2.pos.col == 5);
  CHECK(e2.message.find("unknown duration unit 'q'") != std::string::npos);
  CHECK(err("\"open").message == "unterminated string");
  CHECK(err("a # b").message.find("unexpected character '#'") != std::string::npos);
}
