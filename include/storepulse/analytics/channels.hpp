#pragma once
// Online vs store: revenue split, whether web buyers are new to the business or
// existing store customers, a cannibalisation estimate, browse-online-buy-in-store,
// promotion response by channel, and the products most often left in web carts.
// Web = channel "web" or "app"; store = "pos"; "unknown" is reported apart.
#include <string>
#include <vector>

#include "storepulse/analytics/report_table.hpp"
#include "storepulse/protocol/event.hpp"

namespace storepulse::analytics {

struct ChannelOptions {
  TimeUs browse_window = 7 * kUsPerDay;               // web view -> store purchase
  TimeUs promo_window = 7 * kUsPerDay;                // promotion view/click -> order
  TimeUs abandon_after = 24LL * 3600 * kUsPerSecond;  // added, not bought within
  std::size_t top_products = 20;
};

struct PromotionResponse {
  std::string channel;
  std::size_t viewed = 0, clicked = 0;
  std::size_t converted = 0;  // customers ordering within the window after a view/click
  std::size_t exposed_customers = 0;
  protocol::Money revenue = 0;  // of those converting orders
};

struct AbandonedProduct {
  std::string product;
  std::size_t abandoned = 0;
  std::size_t added = 0;
};

struct ChannelResult {
  protocol::Money online_revenue = 0, store_revenue = 0, unknown_revenue = 0;
  std::size_t online_orders = 0, store_orders = 0, unknown_orders = 0;
  std::size_t online_buyers = 0;
  std::size_t online_buyers_new = 0;       // first ever order was online
  std::size_t online_buyers_existing = 0;  // bought in store before their first online order
  // Cannibalisation: store spend per customer-day after vs before the reference
  // date, for adopters (reference = their first online order) and for store-only
  // customers (reference = median adoption date). estimate = adopters' change - control's change.
  std::size_t adopters = 0, control = 0;
  double adopter_store_rate_before = 0, adopter_store_rate_after = 0;  // currency units / day
  double control_store_rate_before = 0, control_store_rate_after = 0;
  double cannibalisation_per_day = 0;
  std::size_t web_viewers = 0;                     // customers with a web Product Viewed
  std::size_t browse_then_store = 0;               // ... who bought in store within the window
  std::size_t browse_then_store_same_product = 0;  // ... a product they viewed
  std::vector<PromotionResponse> promotions;       // one per channel
  std::size_t carts_added = 0, carts_abandoned = 0;
  std::vector<AbandonedProduct> abandoned;  // most abandoned first
};

ChannelResult analyze_channels(const std::vector<protocol::Event>& events,
                               const ChannelOptions& opts = {});

Report channels_report(const ChannelResult& r, const ChannelOptions& opts);

}  // namespace storepulse::analytics
