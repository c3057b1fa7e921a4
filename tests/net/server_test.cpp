// Pieces of the server that need no socket: secret comparison and the
// messageId peek used by rate-limited replies.
#include "storepulse/net/server.hpp"

#include <catch2/catch.hpp>

using storepulse::net::peek_message_id;
using storepulse::net::secret_equals;

TEST_CASE("secret_equals matches only the identical non-empty secret", "[net]") {
  CHECK(secret_equals("test-admin-token-0001", "test-admin-token-0001"));
  CHECK_FALSE(secret_equals("test-admin-token-0002", "test-admin-token-0001"));
  CHECK_FALSE(secret_equals("test-admin-token-000", "test-admin-token-0001"));    // prefix
  CHECK_FALSE(secret_equals("test-admin-token-00011", "test-admin-token-0001"));  // longer
  CHECK_FALSE(secret_equals("", ""));
  CHECK_FALSE(secret_equals("", "x"));
  CHECK_FALSE(secret_equals(std::string_view("abc\0d", 5), std::string_view("abc\0e", 5)));
}

TEST_CASE("peek_message_id finds the top-level messageId without decoding", "[net]") {
  CHECK(peek_message_id(R"({"type":"page","messageId":"m-1","anonymousId":"v"})") == "m-1");
  CHECK(peek_message_id(R"(  { "messageId" :  "first" })") == "first");
  // Only the outermost object counts.
  CHECK(peek_message_id(R"({"properties":{"messageId":"inner"},"messageId":"outer"})") == "outer");
  CHECK(peek_message_id(R"({"properties":{"messageId":"inner"}})").empty());
  CHECK(peek_message_id(R"({"list":["messageId","x"],"messageId":"after-array"})") ==
        "after-array");
  // A value equal to "messageId" is not a key.
  CHECK(peek_message_id(R"({"event":"messageId","x":1})").empty());
  CHECK(peek_message_id(R"({"s":"a \"messageId\": \"fake\"","messageId":"real"})") == "real");
}

TEST_CASE("peek_message_id gives up on anything it cannot return verbatim", "[net]") {
  CHECK(peek_message_id(R"({"messageId":"with \"escape\""})").empty());
  CHECK(peek_message_id(R"({"messageId":""})").empty());
  CHECK(peek_message_id(R"({"messageId":42})").empty());
  CHECK(peek_message_id(R"({"messageId":")" + std::string(129, 'a') + "\"}").empty());
  CHECK(peek_message_id(R"({"messageId":")" + std::string(128, 'a') + "\"}").size() == 128);
  CHECK(peek_message_id(R"({"messageId":"unterminated)").empty());
  CHECK(peek_message_id(R"(["messageId","x"])").empty());
  CHECK(peek_message_id("").empty());
  CHECK(peek_message_id(R"({"a":"\)").empty());
  CHECK(peek_message_id(R"({"messageId\u0000":"x"})").empty());
}
