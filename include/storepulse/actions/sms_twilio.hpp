#pragma once
// The Twilio-compatible side of SMS delivery: form encoding both ways, the
// `X-Twilio-Signature` scheme for callbacks, the Messages API's JSON answer and
// what its error codes mean for us. Pure functions; no I/O.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storepulse/common/status.hpp"

namespace storepulse::actions {

inline constexpr std::string_view kTwilioSignatureHeader = "X-Twilio-Signature";

using FormParams = std::vector<std::pair<std::string, std::string>>;

/// `application/x-www-form-urlencoded`: every byte outside A-Z a-z 0-9 - . _ ~
/// is percent-encoded (so a phone's '+' is %2B).
std::string form_encode(const FormParams& params);
/// Decodes a form body or a query string ('+' is a blank, %XX a byte). Refuses
/// a bad % escape and more than `max_params` fields.
Result<FormParams> parse_form(std::string_view body, std::size_t max_params = 128);
/// First value of `name`, or empty.
std::string_view form_value(const FormParams& params, std::string_view name);

std::string base64_encode(std::string_view data);

/// Twilio's webhook signature: base64(HMAC-SHA1(auth token, url + name1 + value1
/// + name2 + value2 …)) with the POST fields sorted by name (then value), decoded.
/// `url` is the full URL Twilio called, query included.
std::string twilio_signature(std::string_view auth_token, std::string_view url, FormParams params);

/// Constant time over the expected length.
bool constant_time_equal(std::string_view a, std::string_view b);

/// What the Messages API answered: `sid` and `status` on success, `code` and
/// `message` on an error (any field may be missing; a non-JSON body gives all empty).
struct TwilioAnswer {
  std::string sid;
  std::string status;
  int code = 0;
  std::string message;
};
TwilioAnswer parse_twilio_answer(std::string_view body);

/// Error codes that say the number itself cannot take texts: 21211 invalid
/// number, 21614 not a mobile number, 30003 unreachable, 30005 unknown or
/// inactive, 30006 landline or unreachable carrier.
bool twilio_dead_number_code(int code);
/// 21610: the recipient replied STOP to the sender (Twilio blocks the send).
inline constexpr int kTwilioUnsubscribedCode = 21610;

/// Joins the configured public base URL (no trailing '/') and a request target.
std::string join_public_url(std::string_view public_url, std::string_view target);

}  // namespace storepulse::actions
