#pragma once
// The compact, decoded form of one wire event (Segment spec + POS events).
// Decoded once on the io thread, handed to the owning shard by move.
// Money is fixed-point: integer cents (1/100 of the currency unit).
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/common/time.hpp"

namespace storepulse::protocol {

using Money = std::int64_t;  // cents

enum class EventType : std::uint8_t { kTrack, kIdentify, kPage, kAlias };

enum class EventName : std::uint8_t {
  kNone = 0,  // identify / page / alias
  kCardSwiped,
  kOrderCompleted,
  kOrderRefunded,
  kProductViewed,
  kProductAdded,
  kProductRemoved,
  kCartViewed,
  kCheckoutStarted,
  kPromotionViewed,
  kPromotionClicked,
  kProductReserved,
};
inline constexpr int kEventNameCount = 12;

enum class Channel : std::uint8_t { kUnknown, kPos, kWeb, kApp };

std::string_view event_type_name(EventType t);
std::string_view event_name_str(EventName n);  // "Order Completed"; "" for kNone
std::string_view channel_name(Channel c);      // "pos", "web", "app", "unknown"
std::optional<EventName> event_name_from(std::string_view s);
std::optional<Channel> channel_from(std::string_view s);

struct Product {
  std::string product_id;
  std::string sku;
  std::string name;
  std::string category;
  std::string brand;
  std::string size;
  std::string promo;
  Money price = 0;  // unit price
  std::int32_t quantity = 1;
  /// As a default-constructed Product, keeping the strings' capacity.
  void clear() {
    for (std::string* f : {&product_id, &sku, &name, &category, &brand, &size, &promo}) f->clear();
    price = 0;
    quantity = 1;
  }
};

/// identify traits; empty string = not sent.
struct Traits {
  std::string first_name;
  std::string last_name;
  std::string birthday;  // YYYY-MM-DD, validated
  std::string gender;
  std::string phone;
  std::string email;
  std::string postal_code;
  std::string home_store;
  std::optional<bool> sms_opt_in;
  /// As a default-constructed Traits, keeping the strings' capacity.
  void clear() {
    for (std::string* f :
         {&first_name, &last_name, &birthday, &gender, &phone, &email, &postal_code, &home_store})
      f->clear();
    sms_opt_in.reset();
  }
  bool empty() const {
    return first_name.empty() && last_name.empty() && birthday.empty() && gender.empty() &&
           phone.empty() && email.empty() && postal_code.empty() && home_store.empty() &&
           !sms_opt_in;
  }
};

struct Event {
  EventType type = EventType::kTrack;
  EventName name = EventName::kNone;
  Channel channel = Channel::kUnknown;
  TimeUs timestamp = 0;  // event time (epoch µs)

  std::string message_id;
  std::string user_id;
  std::string anonymous_id;
  std::string previous_id;  // alias only

  // context
  std::string store_id;
  std::string terminal_id;
  std::string campaign;
  std::string timezone;

  // properties (track)
  std::string order_id;
  std::string currency;
  std::string promotion_id;
  std::string url;  // page / Product Viewed
  Money total = 0;
  Money discount = 0;
  bool has_total = false;
  /// Order / refund: the lines. Product Viewed/Added/Removed/Reserved: one entry.
  std::vector<Product> products;

  Traits traits;  // identify (and traits sent with track)

  /// As a default-constructed Event, keeping the capacity of its strings and
  /// of `products` (a decoder reusing one Event allocates nothing once warm).
  /// A string whose capacity is over `keep_bytes` gives its memory back (a
  /// pooled Event must not keep one oversized message's buffers for ever).
  void clear(std::size_t keep_bytes = SIZE_MAX) {
    type = EventType::kTrack;
    name = EventName::kNone;
    channel = Channel::kUnknown;
    timestamp = 0;
    for (std::string* f :
         {&message_id, &user_id, &anonymous_id, &previous_id, &store_id, &terminal_id, &campaign,
          &timezone, &order_id, &currency, &promotion_id, &url})
      if (f->capacity() > keep_bytes)
        std::string().swap(*f);
      else
        f->clear();
    total = 0;
    discount = 0;
    has_total = false;
    products.clear();
    traits.clear();
  }

  /// Key that routes this event to its shard: userId if present, else anonymousId.
  std::string_view customer_key() const {
    return user_id.empty() ? std::string_view(anonymous_id) : std::string_view(user_id);
  }
  /// Sum of price × quantity over products.
  Money products_value() const {
    Money v = 0;
    for (const auto& p : products) v += p.price * p.quantity;
    return v;
  }
};

}  // namespace storepulse::protocol
