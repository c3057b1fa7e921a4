#pragma once
// Small builders shared by the analytics tests (hand-made events).
#include <string>

#include "storepulse/protocol/event.hpp"

namespace storepulse::analytics::testing {

inline protocol::Event order(const std::string& user, const std::string& iso, double amount,
                             protocol::Channel ch = protocol::Channel::kPos,
                             std::vector<std::string> products = {}) {
  protocol::Event e;
  e.type = protocol::EventType::kTrack;
  e.name = protocol::EventName::kOrderCompleted;
  e.user_id = user;
  e.timestamp = *parse_iso8601(iso);
  e.has_total = true;
  e.total = static_cast<protocol::Money>(amount * 100 + 0.5);
  e.channel = ch;
  for (auto& p : products) {
    protocol::Product pr;
    pr.product_id = p;
    e.products.push_back(pr);
  }
  return e;
}

inline protocol::Event track(protocol::EventName name, const std::string& user,
                             const std::string& iso, protocol::Channel ch,
                             const std::string& product = "", const std::string& promo = "") {
  protocol::Event e;
  e.type = protocol::EventType::kTrack;
  e.name = name;
  e.user_id = user;
  e.timestamp = *parse_iso8601(iso);
  e.channel = ch;
  e.promotion_id = promo;
  if (!product.empty()) {
    protocol::Product pr;
    pr.product_id = product;
    e.products.push_back(pr);
  }
  return e;
}

}  // namespace storepulse::analytics::testing
