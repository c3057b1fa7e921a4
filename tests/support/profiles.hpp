#pragma once
// What integration tests ask a running server about its customers and
// counters, shared by the durability, two-node and spool tests.
#include <catch2/catch.hpp>
#include <string>

#include "support/server_process.hpp"

namespace storepulse::test {

/// Orders applied to `customer` (rfm.frequency from GET /v1/profiles/{id}); 0 when unknown.
inline int frequency_of(unsigned short port, const std::string& customer) {
  auto p = http_request(port, http::verb::get, "/v1/profiles/" + customer, kAdminToken);
  if (p.status == 404) return 0;
  INFO(p.body);
  REQUIRE(p.status == 200);
  const auto at = p.body.find("\"frequency\":");
  REQUIRE(at != std::string::npos);
  return std::stoi(p.body.substr(at + 12));
}

/// An `ack`, or `actions` when a rule fired (also an ack: protocol.md, Replies).
inline bool acked_reply(const std::string& r) {
  return has(r, "\"ack\"") || has(r, "\"actions\"");
}

/// An `Order Completed` of total 1 (each one adds 1 to the customer's frequency).
inline std::string order_json(const std::string& mid, const std::string& customer,
                              const std::string& extra = "") {
  return fmt::format(
      R"({{"type":"track","event":"Order Completed","messageId":"{}","userId":"{}","properties":{{"total":1{}}}}})",
      mid, customer, extra);
}

/// The value of an unlabelled metric (or a labelled one, `name{…}`) in a /metrics body; -1 when
/// absent.
inline double metric_value(const std::string& metrics, const std::string& name) {
  const std::string key = "\n" + name + " ";
  const auto at = metrics.find(key);
  if (at == std::string::npos) return -1;
  return std::stod(metrics.substr(at + key.size()));
}

}  // namespace storepulse::test
