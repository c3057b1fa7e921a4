#include "net/segment_api.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <simdjson.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>

#include "storepulse/common/time.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::net {

namespace dom = simdjson::dom;

std::string_view segment_call(std::string_view path) {
  static constexpr std::string_view kCalls[] = {"batch",  "track", "identify", "page",
                                                "screen", "group", "alias"};
  constexpr std::string_view kPrefix = "/v1/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return {};
  const std::string_view call = path.substr(kPrefix.size());
  for (std::string_view c : kCalls)
    if (call == c) return c;
  return {};
}

std::string basic_auth_user(std::string_view authorization) {
  constexpr std::string_view kBasic = "Basic ";
  if (authorization.size() <= kBasic.size()) return {};
  for (std::size_t i = 0; i < kBasic.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kBasic[i])))
      return {};
  std::string_view b64 = authorization.substr(kBasic.size());
  while (!b64.empty() && b64.back() == ' ') b64.remove_suffix(1);
  if (b64.empty() || b64.size() % 4 != 0 || b64.size() > 1024) return {};
  std::string raw(b64.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0) return {};
  // EVP_DecodeBlock counts the padding as zero bytes: take them off again.
  std::size_t len = static_cast<std::size_t>(n);
  if (b64.back() == '=') --len;
  if (b64.size() >= 2 && b64[b64.size() - 2] == '=') --len;
  raw.resize(len);
  const auto colon = raw.find(':');
  if (colon == std::string::npos) return {};
  raw.resize(colon);
  return raw;
}

bool decode_body(std::string_view body, std::string_view encoding, std::size_t limit,
                 std::string& out, std::string& error, bool& unsupported, bool& too_large) {
  unsupported = too_large = false;
  out.clear();
  std::string enc(encoding);
  std::transform(enc.begin(), enc.end(), enc.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (enc.empty() || enc == "identity") {
    if (body.size() > limit) {
      too_large = true;
      error = fmt::format("body of {} bytes is over the {} byte limit", body.size(), limit);
      return false;
    }
    out.assign(body);
    return true;
  }
  int window_bits;
  if (enc == "gzip" || enc == "x-gzip")
    window_bits = 15 + 16;
  else if (enc == "deflate")
    window_bits = 15 + 32;  // zlib-wrapped as RFC 9110 says (auto-detected; raw is not)
  else {
    unsupported = true;
    error = fmt::format("Content-Encoding {} is not supported (gzip, deflate or identity)", enc);
    return false;
  }
  z_stream z{};
  if (inflateInit2(&z, window_bits) != Z_OK) {
    error = "cannot start the decompressor";
    return false;
  }
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  z.avail_in = static_cast<uInt>(body.size());
  char chunk[16384];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      error = fmt::format("the {} body does not decompress ({})", enc, z.msg ? z.msg : "damaged");
      return false;
    }
    const std::size_t got = sizeof chunk - z.avail_out;
    if (out.size() + got > limit) {
      inflateEnd(&z);
      too_large = true;
      error = fmt::format("body inflates past the {} byte limit", limit);
      return false;
    }
    out.append(chunk, got);
    if (rc == Z_OK && got == 0 && z.avail_in == 0) {
      inflateEnd(&z);
      error = fmt::format("the {} body ends before its stream does", enc);
      return false;
    }
  }
  const bool trailing = z.avail_in > 0;
  inflateEnd(&z);
  if (trailing) {
    error = fmt::format("{} bytes after the end of the {} stream", z.avail_in, enc);
    return false;
  }
  return true;
}

namespace {

// One call as the decoder takes it: `type` first (the call's), then every
// other field of the object as sent.
void build_message(dom::object obj, std::string_view type, std::string& out) {
  out = R"({"type":)";
  protocol::append_json_string(out, type);
  for (dom::key_value_pair kv : obj) {
    if (kv.key == "type") continue;
    out.push_back(',');
    protocol::append_json_string(out, kv.key);
    out.push_back(':');
    out += simdjson::minify(kv.value);
  }
  out.push_back('}');
}

bool add_call(dom::element e, std::string_view call, std::size_t index, SegmentRequest& out,
              std::string& error) {
  dom::object obj;
  if (e.get_object().get(obj)) {
    error = call == "batch" ? fmt::format("batch[{}]: expected an object", index)
                            : std::string("expected a JSON object");
    return false;
  }
  std::string_view id;
  if (obj["messageId"].get_string().get(id)) id = {};
  out.message_ids.emplace_back(id.substr(0, 128));
  std::string_view type = call;
  if (call == "batch") {
    if (obj["type"].get_string().get(type)) type = {};
    // Left to the decoder, which names what is missing or unknown.
  }
  if (type == "screen") type = "page";  // an app's page view
  if (type == "group") {
    out.messages.emplace_back();
    out.ignored.push_back(true);
    return true;
  }
  build_message(obj, type, out.messages.emplace_back());
  out.ignored.push_back(false);
  return true;
}

}  // namespace

bool parse_segment_request(std::string_view call, std::string_view body, SegmentRequest& out,
                           std::string& error) {
  out = SegmentRequest{};
  thread_local dom::parser parser;
  dom::element root;
  if (auto err = parser.parse(body.data(), body.size()).get(root)) {
    error = fmt::format("not valid JSON: {}", simdjson::error_message(err));
    return false;
  }
  dom::object obj;
  if (root.get_object().get(obj)) {
    error = "expected a JSON object";
    return false;
  }
  std::string_view key;
  if (!obj["writeKey"].get_string().get(key)) out.write_key.assign(key);
  if (std::string_view sent; !obj["sentAt"].get_string().get(sent))
    out.sent_at.assign(sent.substr(0, 64));
  if (call != "batch") return add_call(root, call, 0, out, error);
  dom::array batch;
  if (obj["batch"].get_array().get(batch)) {
    error = R"(expected {"batch":[...]})";
    return false;
  }
  std::size_t i = 0;
  for (dom::element e : batch)
    if (!add_call(e, call, i++, out, error)) return false;
  return true;
}

std::int64_t segment_clock_skew_us(std::string_view sent_at, std::int64_t received_us) {
  if (sent_at.empty()) return 0;
  const auto sent = parse_iso8601(sent_at);
  if (!sent) return 0;
  const std::int64_t skew = received_us - *sent;
  return skew > -1'000'000 && skew < 1'000'000 ? 0 : skew;
}

SegmentAnswer segment_answer(const std::vector<std::string>& replies) {
  dom::parser parser;
  std::string rejected;
  std::size_t n_rejected = 0;
  bool retry_rate = false, retry_later = false, server_fault = false;
  for (std::size_t i = 0; i < replies.size(); ++i) {
    dom::element r;
    std::string_view type, code = "internal", detail, id;
    if (parser.parse(replies[i]).get(r) || r["type"].get_string().get(type)) type = "error";
    if (type != "error") continue;
    // Absent fields keep their defaults (the engine's errors have all three).
    if (r["code"].get_string().get(code)) code = "internal";
    if (r["detail"].get_string().get(detail)) detail = {};
    if (r["messageId"].get_string().get(id)) id = {};
    if (code == "rate_limited") retry_rate = true;
    if (code == "unavailable" || code == "wrong_node") retry_later = true;
    if (code == "internal") server_fault = true;
    if (n_rejected++) rejected.push_back(',');
    rejected += fmt::format(R"({{"index":{},"messageId":)", i);
    protocol::append_json_string(rejected, id);
    rejected += R"(,"code":)";
    protocol::append_json_string(rejected, code);
    rejected += R"(,"detail":)";
    protocol::append_json_string(rejected, detail);
    rejected.push_back('}');
  }
  SegmentAnswer a;
  if (n_rejected == 0) {
    a.body = R"({"success":true})";
    return a;
  }
  a.status = retry_rate ? 429 : retry_later ? 503 : server_fault ? 500 : 400;
  const std::string message =
      a.status == 400 || a.status == 500
          ? fmt::format("{} of {} calls rejected; the others were kept", n_rejected, replies.size())
          : fmt::format(
                "{} of {} calls not stored yet; retry (already stored calls "
                "are deduplicated by messageId)",
                n_rejected, replies.size());
  a.body = R"({"success":false,"message":)";
  protocol::append_json_string(a.body, message);
  a.body +=
      fmt::format(R"(,"accepted":{},"rejected":[{}]}})", replies.size() - n_rejected, rejected);
  return a;
}

}  // namespace storepulse::net
