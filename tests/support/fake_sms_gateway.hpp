#pragma once
// The SMS gateway of the unit tests: an in-process SmsTransport that records
// every request and answers from a script, so the outbox's sends, retries and
// answer parsing are deterministic without a socket. (Integration tests run a
// loopback HTTP gateway against the real server: tests/integration/sms_test.cpp.)
#include <fmt/format.h>

#include <string>
#include <vector>

#include "storepulse/actions/sms_gateway.hpp"
#include "storepulse/actions/sms_signature.hpp"

namespace storepulse::test {

struct FakeSmsGateway {
  /// `otherwise` is answered once the script is used up: 200 (the JSON
  /// gateway), 201 (Twilio creates a message).
  explicit FakeSmsGateway(int otherwise = 200) : default_status(otherwise) {}
  int default_status;
  std::vector<int> script;           // statuses to answer, in order; 0 = connection refused
  std::vector<std::string> answers;  // bodies to answer, in order; then a Twilio-style {"sid":…}
  std::vector<actions::GatewayRequest> requests;
  std::vector<std::string> bodies;      // requests[i].body
  std::vector<std::string> signatures;  // requests[i]'s X-StorePulse-Signature header

  actions::SmsTransport transport() {
    return [this](const actions::GatewayRequest& r) {
      requests.push_back(r);
      bodies.push_back(r.body);
      signatures.push_back(std::string(r.header(actions::kSignatureHeader)));
      const std::size_t i = requests.size() - 1;
      const int st = i < script.size() ? script[i] : default_status;
      std::string answer = i < answers.size()
                               ? answers[i]
                               : fmt::format(R"({{"sid":"SM{:032}","status":"queued"}})", i);
      return actions::GatewayReply{st, st == 0 ? "connection refused" : "", st == 0 ? "" : answer};
    };
  }
};

}  // namespace storepulse::test
