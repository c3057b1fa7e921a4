#pragma once
// The live profile of one customer. Owned by exactly one shard worker: only
// that thread reads or writes it (no locks). Other threads see profiles only
// through JSON rendered by the owner.
#include <cstdint>
#include <string>
#include <vector>

#include "storepulse/protocol/event.hpp"

namespace storepulse::profile {

using protocol::Money;

struct CategoryStat {
  std::string name;
  Money spend = 0;
  double affinity = 0;  // spend-weighted, decayed with a 90-day half-life at each update
  TimeUs last = 0;
};

struct CartItem {
  std::string product_id;
  std::string name;
  std::string category;
  Money price = 0;
  std::int32_t quantity = 0;
};

struct SizeRecord {
  std::string category;
  std::string size;
  TimeUs when = 0;
};

/// A link between this profile and another id, absorbed once the other
/// shard's data was merged in (see docs/architecture.md "Identity").
struct MergeRecord {
  std::string other_id;
  TimeUs when = 0;
  std::string via;  // "alias" | "identify"
  bool absorbed = false;
};

/// Last time a rule contacted this customer on a channel; bounded (kMaxContacts).
struct ContactRecord {
  std::string rule;
  std::string channel;
  TimeUs when = 0;
};

/// An armed event-time timer of a rule (`wait:`), fired by the shard when its
/// watermark passes `fire_at`; re-arming replaces, `cancel_on` removes.
struct PendingTimer {
  std::string rule;
  TimeUs fire_at = 0;
};

struct CustomerProfile {
  static constexpr std::size_t kMaxCategories = 64;
  static constexpr std::size_t kMaxBrands = 64;
  static constexpr std::size_t kMaxCart = 100;
  static constexpr std::size_t kMaxSizes = 32;
  static constexpr std::size_t kMaxContacts = 32;
  static constexpr std::size_t kMaxLinks = 32;
  static constexpr std::size_t kMaxTimers = 16;

  std::string user_id;  // the profile's key (member id, or anonymous id before alias)
  std::string merged_into;  // non-empty: this id now routes to that profile
  bool member = false;      // keyed by a userId (member / card id), not a visitor id
  std::vector<MergeRecord> links;
  protocol::Traits traits;
  int birthday_mmdd = 0;
  bool sms_consent = false;

  TimeUs first_seen = 0;
  TimeUs last_seen = 0;
  TimeUs last_order = 0;
  TimeUs first_order = 0;
  std::uint32_t orders = 0;
  std::uint32_t orders_pos = 0;
  std::uint32_t orders_web = 0;
  std::uint32_t refunds = 0;
  std::uint32_t swipes = 0;
  std::uint32_t web_views = 0;
  Money monetary = 0;       // sum of order totals, net of refunds
  Money discount_total = 0;  // discounts received on orders
  std::int64_t points = 0;

  std::vector<CategoryStat> categories;
  std::vector<CategoryStat> brands;
  std::vector<CartItem> cart;
  TimeUs cart_updated = 0;
  std::vector<SizeRecord> sizes;
  std::vector<ContactRecord> contacts;
  std::vector<PendingTimer> timers;

  std::string segment;  // shopping type, set by the segment model
  double clv = 0;
  double p_alive = 0;
  int last_birthday_greeting_year = 0;

  Money cart_value() const;
  double discount_share() const;
  const CategoryStat* category(std::string_view name) const;
};

/// Applies one event's effect (not alias linking: the engine does that across shards).
void apply_event(CustomerProfile& p, const protocol::Event& ev);

/// Folds `other` (an absorbed anonymous profile) into `p`: sums, unions, latest wins.
void merge_profile(CustomerProfile& p, const CustomerProfile& other);

/// JSON for `GET /v1/profiles/{id}`; `now` gives recencyDays.
std::string profile_to_json(const CustomerProfile& p, TimeUs now);

void serialize_profile(const CustomerProfile& p, std::string& out);
bool deserialize_profile(std::string_view in, CustomerProfile& p);

}  // namespace storepulse::profile
