#include "storepulse/actions/sms_twilio.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <algorithm>

namespace storepulse::actions {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

void append_encoded(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (unreserved(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
}

bool decode_component(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int h = hex_value(in[i + 1]), l = hex_value(in[i + 2]);
      if (h < 0 || l < 0) return false;
      out.push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return true;
}

}  // namespace

std::string form_encode(const FormParams& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out.push_back('&');
    append_encoded(out, k);
    out.push_back('=');
    append_encoded(out, v);
  }
  return out;
}

Result<FormParams> parse_form(std::string_view body, std::size_t max_params) {
  FormParams out;
  std::size_t start = 0;
  while (start <= body.size()) {
    std::size_t amp = body.find('&', start);
    if (amp == std::string_view::npos) amp = body.size();
    const std::string_view part = body.substr(start, amp - start);
    start = amp + 1;
    if (part.empty()) continue;
    if (out.size() >= max_params)
      return Status(ErrorCode::kTooLarge, fmt::format("more than {} form fields", max_params));
    const auto eq = part.find('=');
    std::string k, v;
    if (!decode_component(part.substr(0, eq), k) ||
        (eq != std::string_view::npos && !decode_component(part.substr(eq + 1), v)))
      return Status(ErrorCode::kBadField, "bad %-escape in form body");
    if (k.empty()) return Status(ErrorCode::kBadField, "form field without a name");
    out.emplace_back(std::move(k), std::move(v));
  }
  return out;
}

std::string_view form_value(const FormParams& params, std::string_view name) {
  for (const auto& [k, v] : params)
    if (k == name) return v;
  return {};
}

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string twilio_signature(std::string_view auth_token, std::string_view url, FormParams params) {
  std::sort(params.begin(), params.end());
  std::string text(url);
  for (const auto& [k, v] : params) {
    text += k;
    text += v;
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), auth_token.data(), static_cast<int>(auth_token.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  return base64_encode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

TwilioAnswer parse_twilio_answer(std::string_view body) {
  TwilioAnswer a;
  if (body.empty() || body.size() > 64 * 1024) return a;
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) || !doc.is_object()) return a;
  std::string_view s;
  if (!doc["sid"].get_string().get(s)) a.sid = std::string(s.substr(0, 64));
  if (!doc["status"].get_string().get(s)) a.status = std::string(s.substr(0, 32));
  std::int64_t code = 0;
  if (!doc["code"].get_int64().get(code) && code > 0 && code < 1'000'000)
    a.code = static_cast<int>(code);
  if (!doc["message"].get_string().get(s)) a.message = std::string(s.substr(0, 200));
  return a;
}

bool twilio_dead_number_code(int code) {
  return code == 21211 || code == 21614 || code == 30003 || code == 30005 || code == 30006;
}

std::string join_public_url(std::string_view public_url, std::string_view target) {
  while (!public_url.empty() && public_url.back() == '/') public_url.remove_suffix(1);
  std::string out(public_url);
  if (target.empty() || target.front() != '/') out.push_back('/');
  out += target;
  return out;
}

}  // namespace storepulse::actions
