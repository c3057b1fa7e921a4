#pragma once
// HTTP(S) client for the SMS gateway: one signed JSON POST per message.
// Runs on the outbox's sender thread only; it blocks for at most the timeout.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "storepulse/common/status.hpp"
#include "storepulse/common/time.hpp"

namespace storepulse::actions {

/// What the gateway answered. `status` 0 means no HTTP answer at all (connect
/// refused, timeout, TLS failure); `error` then says why.
struct GatewayReply {
  int status = 0;
  std::string error;
};

/// Sends one request body with its signature header value. Replaced by a fake in tests.
using SmsTransport = std::function<GatewayReply(const std::string& body, const std::string& signature)>;

struct GatewayUrl {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;  // path and query, "/" when empty
};

/// Parses `http://host[:port][/path]` or `https://…`. Errors name what is wrong.
Result<GatewayUrl> parse_gateway_url(std::string_view url);

/// A transport that POSTs `application/json` to `url` with the signature in
/// `X-StorePulse-Signature`. HTTPS verifies the certificate against the system
/// store and the host name.
SmsTransport make_http_transport(GatewayUrl url, TimeUs timeout_us);

}  // namespace storepulse::actions
