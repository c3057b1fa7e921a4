#include "storepulse/analytics/order_book.hpp"

#include <algorithm>
#include <unordered_map>

namespace storepulse::analytics {

using protocol::Event;
using protocol::EventName;

protocol::Money order_value(const Event& ev) {
  return ev.has_total ? ev.total : ev.products_value();
}

std::int64_t day_of(TimeUs t) {
  // floor division so pre-1970 times land on the right day
  return t >= 0 ? t / kUsPerDay : -((-t + kUsPerDay - 1) / kUsPerDay);
}

OrderBook build_order_book(const std::vector<Event>& events, const OrderBookOptions& opts) {
  // Anonymous visitors linked to a member by `alias` count as that member.
  std::unordered_map<std::string, std::string> alias;
  for (const auto& ev : events)
    if (ev.type == protocol::EventType::kAlias && !ev.previous_id.empty() && !ev.user_id.empty())
      alias[ev.previous_id] = ev.user_id;

  struct Tmp {
    std::uint32_t customer;
    OrderRecord rec;
  };
  std::unordered_map<std::string, std::uint32_t> index;
  OrderBook book;
  std::vector<Tmp> tmp;
  tmp.reserve(events.size());
  bool first = true;
  for (const auto& ev : events) {
    if (ev.type != protocol::EventType::kTrack) continue;
    const bool order = ev.name == EventName::kOrderCompleted;
    const bool refund = ev.name == EventName::kOrderRefunded;
    if (!order && !(refund && opts.net_of_refunds)) continue;
    std::string key = ev.user_id;
    if (key.empty()) {
      auto a = alias.find(ev.anonymous_id);
      if (a == alias.end()) {
        if (order) ++book.anonymous_orders;
        continue;
      }
      key = a->second;
    }
    auto [it, inserted] = index.try_emplace(key, static_cast<std::uint32_t>(book.customers.size()));
    if (inserted) book.customers.push_back(key);
    OrderRecord r;
    r.time = ev.timestamp;
    r.value = refund ? -order_value(ev) : order_value(ev);
    r.channel = ev.channel;
    tmp.push_back({it->second, r});
    if (first || ev.timestamp < book.first_time) book.first_time = ev.timestamp;
    if (first || ev.timestamp > book.last_time) book.last_time = ev.timestamp;
    first = false;
  }
  std::stable_sort(tmp.begin(), tmp.end(), [](const Tmp& a, const Tmp& b) {
    return a.customer != b.customer ? a.customer < b.customer : a.rec.time < b.rec.time;
  });
  book.offsets.assign(book.customers.size() + 1, 0);
  book.orders.reserve(tmp.size());
  for (const auto& t : tmp) {
    ++book.offsets[t.customer + 1];
    book.orders.push_back(t.rec);
  }
  for (std::size_t i = 1; i < book.offsets.size(); ++i) book.offsets[i] += book.offsets[i - 1];
  return book;
}

}  // namespace storepulse::analytics
