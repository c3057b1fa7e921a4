// The transport-free part of the Segment HTTP Tracking API (src/net/segment_api.hpp);
// tests/integration/segment_sdk_test.cpp drives it with the real SDK.
#include "net/segment_api.hpp"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <string>

#include "storepulse/common/time.hpp"

using namespace storepulse::net;

namespace {

std::string compress(const std::string& in, int window_bits) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) ==
          Z_OK);
  std::string out(deflateBound(&z, static_cast<uLong>(in.size())) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

TEST_CASE("segment: the API's paths and nothing else") {
  CHECK(segment_call("/v1/batch") == "batch");
  CHECK(segment_call("/v1/track") == "track");
  CHECK(segment_call("/v1/screen") == "screen");
  CHECK(segment_call("/v1/group") == "group");
  CHECK(segment_call("/v1/events").empty());
  CHECK(segment_call("/v1/trackx").empty());
  CHECK(segment_call("/v2/track").empty());
}

TEST_CASE("segment: the write key is the user of HTTP Basic") {
  CHECK(basic_auth_user("Basic d2tfdGVzdDo=") == "wk_test");  // "wk_test:"
  CHECK(basic_auth_user("basic d2tfdGVzdDo=") == "wk_test");  // scheme is case-insensitive
  CHECK(basic_auth_user("Basic d2s6cHc=") == "wk");           // "wk:pw": the user
  CHECK(basic_auth_user("Basic YWJjZA==") == "");             // "abcd": no colon
  CHECK(basic_auth_user("Bearer d2tfdGVzdDo=") == "");
  CHECK(basic_auth_user("Basic not*base64!") == "");
  CHECK(basic_auth_user("Basic ") == "");
  CHECK(basic_auth_user("") == "");
}

TEST_CASE("segment: gzip and deflate bodies are decompressed, within the limit") {
  const std::string body = R"({"batch":[{"type":"track","event":"Card Swiped"}]})";
  std::string out, err;
  bool unsupported = false, too_large = false;
  REQUIRE(decode_body(compress(body, 15 + 16), "gzip", 1024, out, err, unsupported, too_large));
  CHECK(out == body);
  REQUIRE(decode_body(compress(body, 15), "deflate", 1024, out, err, unsupported, too_large));
  CHECK(out == body);
  REQUIRE(decode_body(body, "", 1024, out, err, unsupported, too_large));
  CHECK(out == body);
  REQUIRE(decode_body(body, "Identity", 1024, out, err, unsupported, too_large));
  // A small body that inflates past the limit (a zip bomb) stops at the limit.
  const std::string bomb = compress(std::string(1 << 20, ' '), 15 + 16);
  CHECK(bomb.size() < 8192);
  CHECK_FALSE(decode_body(bomb, "gzip", kSegmentMaxBatchBytes, out, err, unsupported, too_large));
  CHECK(too_large);
  CHECK_FALSE(decode_body(std::string(600 * 1024, ' '), "", kSegmentMaxBatchBytes, out, err,
                          unsupported, too_large));
  CHECK(too_large);
  CHECK_FALSE(decode_body("not gzip at all", "gzip", 1024, out, err, unsupported, too_large));
  CHECK_FALSE(too_large);
  CHECK_FALSE(unsupported);
  CHECK_THAT(err, Catch::Contains("does not decompress"));
  const std::string gz = compress(body, 15 + 16);
  CHECK_FALSE(
      decode_body(gz.substr(0, gz.size() / 2), "gzip", 1024, out, err, unsupported, too_large));
  // A second member or junk after the stream is refused, not silently dropped.
  CHECK_FALSE(decode_body(gz + gz, "gzip", 1024, out, err, unsupported, too_large));
  CHECK_THAT(err, Catch::Contains("after the end"));
  CHECK_FALSE(decode_body(body, "br", 1024, out, err, unsupported, too_large));
  CHECK(unsupported);
}

TEST_CASE("segment: a batch becomes one message per call, typed, in order") {
  SegmentRequest r;
  std::string err;
  REQUIRE(parse_segment_request("batch", R"({"batch":[
      {"type":"identify","messageId":"a","userId":"M1","traits":{"firstName":"Ann"}},
      {"type":"screen","messageId":"b","userId":"M1","name":"Home"},
      {"type":"group","messageId":"c","userId":"M1","groupId":"acme","traits":{"name":"Acme"}},
      {"messageId":"d","userId":"M1"}],
    "writeKey":"wk_body_key","sentAt":"2026-12-07T10:00:00Z"})",
                                r, err));
  CHECK(r.write_key == "wk_body_key");
  REQUIRE(r.messages.size() == 4);
  CHECK(r.messages[0] ==
        R"({"type":"identify","messageId":"a","userId":"M1","traits":{"firstName":"Ann"}})");
  CHECK(r.messages[1] == R"({"type":"page","messageId":"b","userId":"M1","name":"Home"})");
  CHECK(r.ignored[2]);  // the traits of a company, not of the customer
  CHECK(r.messages[2].empty());
  CHECK(r.messages[3] == R"({"type":"","messageId":"d","userId":"M1"})");  // the decoder says why
  CHECK(r.message_ids == std::vector<std::string>{"a", "b", "c", "d"});
}

TEST_CASE("segment: a single call takes its type from the path") {
  SegmentRequest r;
  std::string err;
  REQUIRE(parse_segment_request(
      "track", R"({"type":"identify","event":"Card Swiped","userId":"M1"})", r, err));
  REQUIRE(r.messages.size() == 1);
  CHECK(r.messages[0] == R"({"type":"track","event":"Card Swiped","userId":"M1"})");
  REQUIRE(parse_segment_request("alias", R"({"previousId":"v1","userId":"M1","writeKey":"k"})", r,
                                err));
  CHECK(r.messages[0] == R"({"type":"alias","previousId":"v1","userId":"M1","writeKey":"k"})");
  CHECK(r.write_key == "k");
}

TEST_CASE("segment: a body of the wrong shape is refused as a whole") {
  SegmentRequest r;
  std::string err;
  CHECK_FALSE(parse_segment_request("batch", "not json", r, err));
  CHECK_THAT(err, Catch::Contains("not valid JSON"));
  CHECK_FALSE(parse_segment_request("batch", R"({"batch":{}})", r, err));
  CHECK_THAT(err, Catch::Contains("batch"));
  CHECK_FALSE(parse_segment_request("batch", R"({"batch":[1]})", r, err));
  CHECK_THAT(err, Catch::Contains("batch[0]"));
  CHECK_FALSE(parse_segment_request("track", R"([])", r, err));
  CHECK_FALSE(parse_segment_request("track", R"({"a":1} {"b":2})", r, err));
}

TEST_CASE("segment: 200 only when every call is durable; retryable before rejected") {
  const std::string ack = R"({"type":"ack","messageId":"a"})";
  const std::string bad =
      R"({"type":"error","messageId":"b","code":"unknown_event","detail":"event: unknown"})";
  const std::string busy =
      R"({"type":"error","messageId":"c","code":"rate_limited","detail":"slow down"})";
  const std::string down =
      R"({"type":"error","messageId":"d","code":"unavailable","detail":"journal write failed"})";
  auto a = segment_answer({ack, R"({"type":"actions","messageId":"x","actions":[]})"});
  CHECK(a.status == 200);
  CHECK(a.body == R"({"success":true})");
  a = segment_answer({ack, bad});
  CHECK(a.status == 400);
  CHECK_THAT(a.body, Catch::Contains(R"("accepted":1)"));
  CHECK_THAT(
      a.body,
      Catch::Contains(
          R"({"index":1,"messageId":"b","code":"unknown_event","detail":"event: unknown"})"));
  a = segment_answer({bad, bad});
  CHECK(a.status == 400);  // all rejected: never a 2xx
  CHECK(segment_answer({ack, bad, busy}).status == 429);
  CHECK(segment_answer({ack, down}).status == 503);
  CHECK(segment_answer({busy, down}).status == 429);
  CHECK(segment_answer({ack, R"({"type":"error","messageId":"e","code":"internal","detail":"x"})"})
            .status == 500);
}

TEST_CASE("segment: clock skew from sentAt, as Segment corrects it") {
  const std::string sent = "2027-01-15T08:00:00Z";
  const auto base = storepulse::parse_iso8601(sent);
  REQUIRE(base);
  CHECK(segment_clock_skew_us("", *base) == 0);
  CHECK(segment_clock_skew_us("yesterday", *base) == 0);
  // An SDK whose clock is an hour behind, or 5 s ahead.
  CHECK(segment_clock_skew_us(sent, *base + 3'600'000'000) == 3'600'000'000);
  CHECK(segment_clock_skew_us(sent, *base - 5'000'000) == -5'000'000);
  // Within a second: network delay, not a skewed clock.
  CHECK(segment_clock_skew_us(sent, *base + 400'000) == 0);
  CHECK(segment_clock_skew_us(sent, *base - 999'999) == 0);
}
