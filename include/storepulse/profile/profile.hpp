#pragma once
// The live profile of one customer. Owned by exactly one shard worker: only
// that thread reads or writes it (no locks). Other threads see profiles only
// through JSON rendered by the owner.
#include <cstdint>
#include <string>
#include <vector>

#include "storepulse/profile/compact_vec.hpp"
#include "storepulse/profile/names.hpp"
#include "storepulse/protocol/event.hpp"

namespace storepulse::profile {

using protocol::Money;

/// Spend and affinity per category (or brand). `name` is interned in the
/// profile's NameTable (CustomerProfile::name() gives the text).
struct CategoryStat {
  NameId name = kNoName;
  Money spend = 0;
  double affinity = 0;  // spend-weighted, decayed with a 90-day half-life at each update
  TimeUs last = 0;
  // Segment-model inputs (order lines, not spend): line counts and the sum of
  // log unit prices, so the price-tier feature can be formed against the
  // model's reference prices at classification time.
  std::uint32_t lines = 0;
  std::uint32_t priced_lines = 0;
  double log_price_sum = 0;
};

/// Spend and affinity per brand: a CategoryStat without the segment-model
/// inputs, which only categories have (32 bytes instead of 48).
struct BrandStat {
  NameId name = kNoName;
  Money spend = 0;
  double affinity = 0;  // as CategoryStat::affinity
  TimeUs last = 0;
};

/// Orders per store (home-store share, a segment-model input); bounded.
struct StoreOrders {
  NameId store_id = kNoName;
  std::uint32_t orders = 0;
};

/// Names interned in the profile's NameTable, like every NameId below.
struct CartItem {
  NameId product_id = kNoName;
  NameId name = kNoName;
  NameId category = kNoName;
  std::int32_t quantity = 0;
  Money price = 0;
};

struct SizeRecord {
  NameId category = kNoName;
  NameId size = kNoName;
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
  NameId rule = kNoName;
  NameId channel = kNoName;
  TimeUs when = 0;
};

/// An armed event-time timer of a rule (`wait:`), fired by the shard when its
/// watermark passes `fire_at`; re-arming replaces, `cancel_on` removes.
struct PendingTimer {
  NameId rule = kNoName;  // the rule's name, or "rule#channel" for a delivery held by quiet hours
  TimeUs fire_at = 0;
};

/// A rule's latest contact with this customer, kept for its attribution window
/// so an order can be credited to it: `holdout` marks a "would have fired"
/// contact of the control group. One per rule (a new contact replaces it),
/// bounded (kMaxExposures); expired ones are dropped when an order comes in.
struct RuleExposure {
  NameId rule = kNoName;
  TimeUs since = 0;  // event time of the firing (or hold-out decision)
  TimeUs until = 0;  // since + the rule's attribution window
  bool holdout = false;
  bool converted = false;  // an order was already counted for this contact
};

struct CustomerProfile {
  static constexpr std::size_t kMaxCategories = 64;
  static constexpr std::size_t kMaxBrands = 64;
  static constexpr std::size_t kMaxCart = 100;
  static constexpr std::size_t kMaxSizes = 32;
  static constexpr std::size_t kMaxContacts = 32;
  static constexpr std::size_t kMaxLinks = 32;
  static constexpr std::size_t kMaxTimers = 16;
  static constexpr std::size_t kMaxExposures = 16;
  static constexpr std::size_t kMaxStores = 8;
  static constexpr std::size_t kMaxRecentProducts = 16;

  // The shard's name dictionary: every NameId in this profile is an index into
  // it. Set by the owner when the profile is made (the engine: its shard's
  // table); a profile made elsewhere uses the calling thread's table.
  NameTable* names = &NameTable::thread_default();

  std::string user_id;      // the profile's key (member id, or anonymous id before alias)
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
  Money monetary = 0;        // sum of order totals, net of refunds
  Money discount_total = 0;  // discounts received on orders
  std::int64_t points = 0;

  CompactVec<CategoryStat> categories;
  CompactVec<BrandStat> brands;
  CompactVec<CartItem> cart;
  TimeUs cart_updated = 0;
  CompactVec<SizeRecord> sizes;
  CompactVec<ContactRecord> contacts;
  CompactVec<PendingTimer> timers;
  CompactVec<RuleExposure> exposures;  // rules' attribution windows (kMaxExposures)

  NameId segment = kNoName;  // shopping type, set by the segment model
  double clv = 0;
  double p_alive = 0;
  int last_birthday_greeting_year = 0;

  // Live-model inputs, kept incrementally by apply_event on every order (no
  // history is re-read): the CLV model's x / t_x / T and repeat spend, the
  // segment model's behaviour features, the basket model's recent items.
  std::uint32_t purchase_days =
      0;  // days with an order: same-day orders are one occasion (CDNOW convention)
  Money repeat_spend = 0;   // order value on purchase days after the first (Gamma-Gamma zbar * x)
  double units = 0;         // product units ordered
  std::uint32_t lines = 0;  // order lines
  std::uint32_t promo_lines = 0;  // order lines bought on a promotion
  double hour_sum = 0;            // order hour of day (UTC), sum and sum of squares
  double hour_sq_sum = 0;
  std::uint32_t gap_count = 0;  // gaps between consecutive orders (Welford mean / M2, days)
  double gap_mean_days = 0;
  double gap_m2 = 0;
  CompactVec<StoreOrders> stores;      // kMaxStores
  CompactVec<NameId> recent_products;  // last kMaxRecentProducts bought, newest last
  double expected_purchases_90d = 0;   // set by the CLV model

  Money cart_value() const;
  double discount_share() const;
  const CategoryStat* category(std::string_view name) const;
  /// The text of an interned name of this profile.
  std::string_view name(NameId id) const { return names->view(id); }
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
