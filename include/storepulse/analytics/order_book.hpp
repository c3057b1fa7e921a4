#pragma once
// Purchases per customer, extracted once from events and shared by RFM, grades,
// CLV and the report. Orders are grouped per customer and sorted by time.
#include <cstdint>
#include <string>
#include <vector>

#include "storepulse/protocol/event.hpp"

namespace storepulse::analytics {

struct OrderRecord {
  TimeUs time = 0;
  protocol::Money value = 0;  // cents
  protocol::Channel channel = protocol::Channel::kUnknown;
};

struct OrderBookOptions {
  /// Subtract `Order Refunded` totals from the customer's revenue (as a negative
  /// order at refund time). Off by default: the published RFM figures use gross sales.
  bool net_of_refunds = false;
};

struct OrderBook {
  std::vector<std::string> customers;  // customer key (userId, else anonymousId)
  std::vector<std::size_t> offsets;    // orders of customer i: [offsets[i], offsets[i+1])
  std::vector<OrderRecord> orders;
  std::size_t anonymous_orders = 0;  // orders without a userId (not in `customers`)
  TimeUs first_time = 0;
  TimeUs last_time = 0;

  std::size_t size() const { return customers.size(); }
  const OrderRecord* begin_of(std::size_t i) const { return orders.data() + offsets[i]; }
  const OrderRecord* end_of(std::size_t i) const { return orders.data() + offsets[i + 1]; }
};

/// Value of an order event: `total` when sent, else the products' value.
protocol::Money order_value(const protocol::Event& ev);

/// Member orders (events with a userId). Alias events are followed: orders of a
/// linked anonymous visitor count for the member.
OrderBook build_order_book(const std::vector<protocol::Event>& events,
                           const OrderBookOptions& opts = {});

/// Days since 1970-01-01 of an event time (UTC calendar day).
std::int64_t day_of(TimeUs t);

}  // namespace storepulse::analytics
