#pragma once
// HTTP(S) client for the SMS gateway: one POST per message (a Twilio-style form
// with basic auth, or signed JSON; the outbox builds the request).
// Runs on the outbox's sender thread only; it blocks for at most the timeout.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storepulse/common/status.hpp"
#include "storepulse/common/time.hpp"

namespace storepulse::actions {

/// What the gateway answered. `status` 0 means no HTTP answer at all (connect
/// refused, timeout, TLS failure); `error` then says why.
struct GatewayReply {
  int status = 0;
  std::string error;
  std::string body;  // the answer's body (at most 64 KiB), e.g. Twilio's JSON
};

/// One POST to the gateway URL: body, its content type and extra headers
/// (authorization, signature, idempotency key).
struct GatewayRequest {
  std::string body;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view header(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return {};
  }
};

/// Sends one request. Replaced by a fake in tests.
using SmsTransport = std::function<GatewayReply(const GatewayRequest& request)>;

struct GatewayUrl {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;  // path and query, "/" when empty
};

/// Parses `http://host[:port][/path]` or `https://…`. Errors name what is wrong.
Result<GatewayUrl> parse_gateway_url(std::string_view url);

/// A transport that POSTs each request to `url`. HTTPS verifies the certificate
/// against the system store and the host name.
SmsTransport make_http_transport(GatewayUrl url, TimeUs timeout_us);

}  // namespace storepulse::actions
