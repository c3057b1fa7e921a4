#include "storepulse/analytics/channels.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

namespace storepulse::analytics {

using protocol::Channel;
using protocol::Event;
using protocol::EventName;

namespace {

enum class Side { kOnline, kStore, kUnknown };
Side side_of(Channel c) {
  if (c == Channel::kWeb || c == Channel::kApp) return Side::kOnline;
  if (c == Channel::kPos) return Side::kStore;
  return Side::kUnknown;
}

struct Order {
  TimeUs time;
  protocol::Money value;
  Side side;
  const Event* ev;
};

struct Customer {
  std::vector<Order> orders;
  std::vector<const Event*> views, adds, promos;
};

const std::string& product_key(const protocol::Product& p) {
  return !p.product_id.empty() ? p.product_id : !p.sku.empty() ? p.sku : p.name;
}

bool order_has(const Event& ev, const std::string& product) {
  for (const auto& p : ev.products)
    if (product_key(p) == product) return true;
  return false;
}

}  // namespace

ChannelResult analyze_channels(const std::vector<Event>& events, const ChannelOptions& opts) {
  ChannelResult r;
  // Follow alias links so a web visitor's browsing counts for the member who later swipes a card.
  std::unordered_map<std::string, std::string> alias;
  for (const auto& ev : events)
    if (ev.type == protocol::EventType::kAlias && !ev.previous_id.empty() && !ev.user_id.empty())
      alias[ev.previous_id] = ev.user_id;
  std::map<std::string, Customer> cust;
  for (const auto& ev : events) {
    if (ev.type != protocol::EventType::kTrack) continue;
    std::string key = ev.user_id;
    if (key.empty()) {
      auto a = alias.find(ev.anonymous_id);
      key = a != alias.end() ? a->second : ev.anonymous_id;
    }
    if (key.empty()) continue;
    auto& c = cust[key];
    switch (ev.name) {
      case EventName::kOrderCompleted: {
        protocol::Money v = ev.has_total ? ev.total : ev.products_value();
        Side s = side_of(ev.channel);
        c.orders.push_back({ev.timestamp, v, s, &ev});
        if (s == Side::kOnline)
          r.online_revenue += v, ++r.online_orders;
        else if (s == Side::kStore)
          r.store_revenue += v, ++r.store_orders;
        else
          r.unknown_revenue += v, ++r.unknown_orders;
        break;
      }
      case EventName::kProductViewed:
        if (side_of(ev.channel) == Side::kOnline) c.views.push_back(&ev);
        break;
      case EventName::kProductAdded:
        if (side_of(ev.channel) == Side::kOnline) c.adds.push_back(&ev);
        break;
      case EventName::kPromotionViewed:
      case EventName::kPromotionClicked: c.promos.push_back(&ev); break;
      default: break;
    }
  }
  for (auto& [k, c] : cust)
    std::stable_sort(c.orders.begin(), c.orders.end(),
                     [](const Order& a, const Order& b) { return a.time < b.time; });

  // New vs existing online buyers, and adoption dates for the cannibalisation estimate.
  std::vector<TimeUs> adoption;
  for (auto& [k, c] : cust) {
    auto first_online = std::find_if(c.orders.begin(), c.orders.end(),
                                     [](const Order& o) { return o.side == Side::kOnline; });
    if (first_online == c.orders.end()) continue;
    ++r.online_buyers;
    bool store_before = std::any_of(c.orders.begin(), first_online,
                                    [](const Order& o) { return o.side == Side::kStore; });
    if (store_before)
      ++r.online_buyers_existing, adoption.push_back(first_online->time);
    else
      ++r.online_buyers_new;
  }
  TimeUs t_min = 0, t_max = 0;
  bool any = false;
  for (const auto& ev : events) {
    if (!any || ev.timestamp < t_min) t_min = ev.timestamp;
    if (!any || ev.timestamp > t_max) t_max = ev.timestamp;
    any = true;
  }
  if (!adoption.empty()) {
    std::sort(adoption.begin(), adoption.end());
    const TimeUs median = adoption[adoption.size() / 2];
    double ab = 0, aa = 0, cb = 0, ca = 0, ab_days = 0, aa_days = 0, cb_days = 0, ca_days = 0;
    for (auto& [k, c] : cust) {
      auto first_online = std::find_if(c.orders.begin(), c.orders.end(),
                                       [](const Order& o) { return o.side == Side::kOnline; });
      const bool has_store = std::any_of(c.orders.begin(), c.orders.end(),
                                         [](const Order& o) { return o.side == Side::kStore; });
      if (!has_store) continue;
      TimeUs ref;
      bool adopter = first_online != c.orders.end();
      if (adopter) {
        if (!std::any_of(c.orders.begin(), first_online,
                         [](const Order& o) { return o.side == Side::kStore; }))
          continue;
        ref = first_online->time;
      } else {
        ref = median;
      }
      double before = 0, after = 0;
      for (const auto& o : c.orders)
        if (o.side == Side::kStore)
          (o.time < ref ? before : after) += static_cast<double>(o.value) / 100.0;
      // each customer observed from their first order to the end of the data
      const double d_before = std::max(
          1.0, static_cast<double>(ref - c.orders.front().time) / static_cast<double>(kUsPerDay));
      const double d_after =
          std::max(1.0, static_cast<double>(t_max - ref) / static_cast<double>(kUsPerDay));
      if (ref <= c.orders.front().time) continue;  // control customers who started after the split
      if (adopter)
        ++r.adopters, ab += before, aa += after, ab_days += d_before, aa_days += d_after;
      else
        ++r.control, cb += before, ca += after, cb_days += d_before, ca_days += d_after;
    }
    if (ab_days > 0)
      r.adopter_store_rate_before = ab / ab_days, r.adopter_store_rate_after = aa / aa_days;
    if (cb_days > 0)
      r.control_store_rate_before = cb / cb_days, r.control_store_rate_after = ca / ca_days;
    r.cannibalisation_per_day = (r.adopter_store_rate_after - r.adopter_store_rate_before) -
                                (r.control_store_rate_after - r.control_store_rate_before);
  }

  // Browse online -> buy in store.
  for (auto& [k, c] : cust) {
    if (c.views.empty()) continue;
    ++r.web_viewers;
    bool any_store = false, same = false;
    for (const Event* v : c.views) {
      for (const auto& o : c.orders) {
        if (o.side != Side::kStore || o.time < v->timestamp ||
            o.time > v->timestamp + opts.browse_window)
          continue;
        any_store = true;
        if (!v->products.empty() && order_has(*o.ev, product_key(v->products[0]))) same = true;
      }
    }
    r.browse_then_store += any_store;
    r.browse_then_store_same_product += same;
  }

  // Promotion response by the channel the promotion was seen on.
  std::map<std::string, PromotionResponse> promo;
  std::map<std::string, std::set<std::string>> exposed, converted;
  for (auto& [k, c] : cust) {
    std::set<std::string> counted;
    for (const Event* p : c.promos) {
      std::string ch(protocol::channel_name(p->channel));
      auto& pr = promo[ch];
      pr.channel = ch;
      if (p->name == EventName::kPromotionViewed)
        ++pr.viewed;
      else
        ++pr.clicked;
      exposed[ch].insert(k);
      for (const auto& o : c.orders) {
        if (o.time < p->timestamp || o.time > p->timestamp + opts.promo_window) continue;
        if (converted[ch].insert(k).second) pr.revenue += o.value;
        break;
      }
    }
  }
  for (auto& [ch, pr] : promo) {
    pr.exposed_customers = exposed[ch].size();
    pr.converted = converted[ch].size();
    r.promotions.push_back(pr);
  }

  // Abandoned carts: a web add not followed by an order containing the product
  // (any channel: buying it in store is not abandonment) within the window.
  std::map<std::string, AbandonedProduct> ab;
  for (auto& [k, c] : cust) {
    for (const Event* a : c.adds) {
      if (a->products.empty()) continue;
      const std::string& pk = product_key(a->products[0]);
      auto& e = ab[pk];
      e.product = pk;
      ++e.added;
      ++r.carts_added;
      bool bought = false;
      for (const auto& o : c.orders)
        if (o.time >= a->timestamp && o.time <= a->timestamp + opts.abandon_after &&
            order_has(*o.ev, pk))
          bought = true;
      if (!bought) ++e.abandoned, ++r.carts_abandoned;
    }
  }
  for (auto& [k, e] : ab)
    if (e.abandoned) r.abandoned.push_back(e);
  std::stable_sort(r.abandoned.begin(), r.abandoned.end(),
                   [](const AbandonedProduct& a, const AbandonedProduct& b) {
                     return a.abandoned > b.abandoned;
                   });
  return r;
}

Report channels_report(const ChannelResult& r, const ChannelOptions& opts) {
  Report rep;
  rep.analysis = "channels";
  const double total = static_cast<double>(r.online_revenue + r.store_revenue + r.unknown_revenue);
  auto share = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  rep.figures = {
      {"online_revenue", fmt_money(r.online_revenue)},
      {"store_revenue", fmt_money(r.store_revenue)},
      {"unknown_channel_revenue", fmt_money(r.unknown_revenue)},
      {"online_share_pct", fmt_percent(share(static_cast<double>(r.online_revenue), total), 2)},
      {"online_orders", std::to_string(r.online_orders)},
      {"store_orders", std::to_string(r.store_orders)},
      {"online_buyers", std::to_string(r.online_buyers)},
      {"online_buyers_new", std::to_string(r.online_buyers_new)},
      {"online_buyers_existing_store_customers", std::to_string(r.online_buyers_existing)},
      {"cannibalisation_adopters", std::to_string(r.adopters)},
      {"cannibalisation_control", std::to_string(r.control)},
      {"adopter_store_spend_per_day_before", fmt_fixed(r.adopter_store_rate_before, 4)},
      {"adopter_store_spend_per_day_after", fmt_fixed(r.adopter_store_rate_after, 4)},
      {"control_store_spend_per_day_before", fmt_fixed(r.control_store_rate_before, 4)},
      {"control_store_spend_per_day_after", fmt_fixed(r.control_store_rate_after, 4)},
      {"cannibalisation_store_spend_per_day", fmt_fixed(r.cannibalisation_per_day, 4)},
      {"browse_window_days",
       fmt_fixed(static_cast<double>(opts.browse_window) / static_cast<double>(kUsPerDay), 2)},
      {"web_viewers", std::to_string(r.web_viewers)},
      {"browse_online_buy_in_store", std::to_string(r.browse_then_store)},
      {"browse_online_buy_same_product_in_store", std::to_string(r.browse_then_store_same_product)},
      {"cart_adds", std::to_string(r.carts_added)},
      {"cart_adds_abandoned", std::to_string(r.carts_abandoned)}};
  ReportTable p;
  p.name = "promotions";
  p.csv_file = "promotions.csv";
  p.title = fmt::format(
      "Promotion response by channel (order within {} days)",
      fmt_fixed(static_cast<double>(opts.promo_window) / static_cast<double>(kUsPerDay), 1));
  p.columns = {"channel",   "viewed",         "clicked", "customers",
               "converted", "conversion_pct", "revenue"};
  p.numeric = {false, true, true, true, true, true, true};
  for (const auto& x : r.promotions)
    p.rows.push_back(
        {x.channel, std::to_string(x.viewed), std::to_string(x.clicked),
         std::to_string(x.exposed_customers), std::to_string(x.converted),
         fmt_percent(
             share(static_cast<double>(x.converted), static_cast<double>(x.exposed_customers)), 1),
         fmt_money(x.revenue)});
  rep.tables.push_back(std::move(p));
  ReportTable a;
  a.name = "abandoned";
  a.csv_file = "abandoned_carts.csv";
  a.title = "Products most often abandoned in web carts";
  a.columns = {"product", "abandoned", "added", "abandon_pct"};
  a.numeric = {false, true, true, true};
  for (std::size_t i = 0; i < r.abandoned.size() && i < opts.top_products; ++i) {
    const auto& x = r.abandoned[i];
    a.rows.push_back(
        {x.product, std::to_string(x.abandoned), std::to_string(x.added),
         fmt_percent(share(static_cast<double>(x.abandoned), static_cast<double>(x.added)), 1)});
  }
  rep.tables.push_back(std::move(a));
  return rep;
}

}  // namespace storepulse::analytics
