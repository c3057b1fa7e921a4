#include "storepulse/rules/compiler.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <span>

#include "storepulse/common/calendar.hpp"
#include "storepulse/models/live_models.hpp"
#include "storepulse/rules/parser.hpp"

namespace storepulse::rules {

using profile::CustomerProfile;
using protocol::Event;

bool Value::truthy() const {
  switch (kind) {
    case ValueKind::kNull: return false;
    case ValueKind::kBool: return boolean;
    case ValueKind::kNumber: return number != 0;
    case ValueKind::kString: return !str.empty();
    case ValueKind::kTime: return time != 0;
  }
  return false;
}

namespace {

// ---- fields ----------------------------------------------------------------

enum class FieldId : std::uint16_t {
  kEventName,
  kEventType,
  kEventChannel,
  kEventTotal,
  kEventDiscount,
  kEventStoreId,
  kEventTerminalId,
  kEventCampaign,
  kEventTimezone,
  kEventOrderId,
  kEventCurrency,
  kEventTime,
  kEventUserId,
  kEventAnonymousId,
  kEventValue,
  kEventItems,
  kEventPromotionId,
  kEventUrl,
  kProductId,
  kProductSku,
  kProductName,
  kProductCategory,
  kProductBrand,
  kProductSize,
  kProductPrice,
  kProductQuantity,
  kProductPromo,
  kProfileOrders,
  kProfileOrdersPos,
  kProfileOrdersWeb,
  kProfileRefunds,
  kProfileSwipes,
  kProfileWebViews,
  kProfileMonetary,
  kProfilePoints,
  kProfileRecencyDays,
  kProfileTenureDays,
  kProfileDiscountShare,
  kProfileAvgOrder,
  kProfileHomeStore,
  kProfileLastOrder,
  kProfileFirstOrder,
  kProfileFirstSeen,
  kProfileLastSeen,
  kProfileBirthday,
  kProfileTopCategory,
  kProfileTopBrand,
  kProfileTopBrandShare,
  kProfilePurchaseIntervalDays,
  kProfileWebShare,
  kTraitFirstName,
  kTraitLastName,
  kTraitBirthday,
  kTraitGender,
  kTraitPhone,
  kTraitEmail,
  kTraitPostalCode,
  kTraitHomeStore,
  kTraitSmsOptIn,
  kCartValue,
  kCartItems,
  kCartLines,
  kCartUpdated,
  kCartTopName,
  kCartTopCategory,
  kCartTopPrice,
  kCartTopProductId,
  kConsentSms,
  kSegment,
  kClv,
  kPAlive,
  kExpectedPurchases90d,
  kNow,
};

struct FieldDef {
  std::string_view path;
  FieldId id;
  StaticType type;
};

constexpr StaticType kNum = StaticType::kNumber, kStr = StaticType::kString,
                     kTim = StaticType::kTime, kBoo = StaticType::kBool;

// Segment names the same things `properties.*`; both spellings resolve to one field.
constexpr FieldDef kFields[] = {
    {"event.name", FieldId::kEventName, kStr},
    {"event.type", FieldId::kEventType, kStr},
    {"event.channel", FieldId::kEventChannel, kStr},
    {"event.total", FieldId::kEventTotal, kNum},
    {"event.discount", FieldId::kEventDiscount, kNum},
    {"event.storeId", FieldId::kEventStoreId, kStr},
    {"event.terminalId", FieldId::kEventTerminalId, kStr},
    {"event.campaign", FieldId::kEventCampaign, kStr},
    {"event.timezone", FieldId::kEventTimezone, kStr},
    {"event.orderId", FieldId::kEventOrderId, kStr},
    {"event.currency", FieldId::kEventCurrency, kStr},
    {"event.time", FieldId::kEventTime, kTim},
    {"event.userId", FieldId::kEventUserId, kStr},
    {"event.anonymousId", FieldId::kEventAnonymousId, kStr},
    {"event.value", FieldId::kEventValue, kNum},
    {"event.items", FieldId::kEventItems, kNum},
    {"event.promotionId", FieldId::kEventPromotionId, kStr},
    {"event.url", FieldId::kEventUrl, kStr},
    {"event.product.productId", FieldId::kProductId, kStr},
    {"event.product.sku", FieldId::kProductSku, kStr},
    {"event.product.name", FieldId::kProductName, kStr},
    {"event.product.category", FieldId::kProductCategory, kStr},
    {"event.product.brand", FieldId::kProductBrand, kStr},
    {"event.product.size", FieldId::kProductSize, kStr},
    {"event.product.price", FieldId::kProductPrice, kNum},
    {"event.product.quantity", FieldId::kProductQuantity, kNum},
    {"event.product.promo", FieldId::kProductPromo, kStr},
    {"properties.total", FieldId::kEventTotal, kNum},
    {"properties.discount", FieldId::kEventDiscount, kNum},
    {"properties.orderId", FieldId::kEventOrderId, kStr},
    {"properties.currency", FieldId::kEventCurrency, kStr},
    {"properties.promotionId", FieldId::kEventPromotionId, kStr},
    {"properties.url", FieldId::kEventUrl, kStr},
    {"properties.products", FieldId::kEventItems, kNum},
    {"properties.productId", FieldId::kProductId, kStr},
    {"properties.sku", FieldId::kProductSku, kStr},
    {"properties.name", FieldId::kProductName, kStr},
    {"properties.category", FieldId::kProductCategory, kStr},
    {"properties.brand", FieldId::kProductBrand, kStr},
    {"properties.size", FieldId::kProductSize, kStr},
    {"properties.price", FieldId::kProductPrice, kNum},
    {"properties.quantity", FieldId::kProductQuantity, kNum},
    {"properties.promo", FieldId::kProductPromo, kStr},
    {"profile.orders", FieldId::kProfileOrders, kNum},
    {"profile.ordersPos", FieldId::kProfileOrdersPos, kNum},
    {"profile.ordersWeb", FieldId::kProfileOrdersWeb, kNum},
    {"profile.refunds", FieldId::kProfileRefunds, kNum},
    {"profile.swipes", FieldId::kProfileSwipes, kNum},
    {"profile.webViews", FieldId::kProfileWebViews, kNum},
    {"profile.monetary", FieldId::kProfileMonetary, kNum},
    {"profile.points", FieldId::kProfilePoints, kNum},
    {"profile.recencyDays", FieldId::kProfileRecencyDays, kNum},
    {"profile.tenureDays", FieldId::kProfileTenureDays, kNum},
    {"profile.discountShare", FieldId::kProfileDiscountShare, kNum},
    {"profile.avgOrder", FieldId::kProfileAvgOrder, kNum},
    {"profile.homeStore", FieldId::kProfileHomeStore, kStr},
    {"profile.lastOrder", FieldId::kProfileLastOrder, kTim},
    {"profile.firstOrder", FieldId::kProfileFirstOrder, kTim},
    {"profile.firstSeen", FieldId::kProfileFirstSeen, kTim},
    {"profile.lastSeen", FieldId::kProfileLastSeen, kTim},
    {"profile.birthday", FieldId::kProfileBirthday, kStr},
    {"profile.topCategory", FieldId::kProfileTopCategory, kStr},
    {"profile.topBrand", FieldId::kProfileTopBrand, kStr},
    {"profile.topBrandShare", FieldId::kProfileTopBrandShare, kNum},
    {"profile.purchaseIntervalDays", FieldId::kProfilePurchaseIntervalDays, kNum},
    {"profile.webShare", FieldId::kProfileWebShare, kNum},
    {"profile.segment", FieldId::kSegment, kStr},
    {"profile.clv", FieldId::kClv, kNum},
    {"profile.pAlive", FieldId::kPAlive, kNum},
    {"profile.expectedPurchases90d", FieldId::kExpectedPurchases90d, kNum},
    {"traits.firstName", FieldId::kTraitFirstName, kStr},
    {"traits.lastName", FieldId::kTraitLastName, kStr},
    {"traits.birthday", FieldId::kTraitBirthday, kStr},
    {"traits.gender", FieldId::kTraitGender, kStr},
    {"traits.phone", FieldId::kTraitPhone, kStr},
    {"traits.email", FieldId::kTraitEmail, kStr},
    {"traits.postalCode", FieldId::kTraitPostalCode, kStr},
    {"traits.homeStore", FieldId::kTraitHomeStore, kStr},
    {"traits.smsOptIn", FieldId::kTraitSmsOptIn, kBoo},
    {"cart.value", FieldId::kCartValue, kNum},
    {"cart.items", FieldId::kCartItems, kNum},
    {"cart.lines", FieldId::kCartLines, kNum},
    {"cart.updated", FieldId::kCartUpdated, kTim},
    {"cart.top.name", FieldId::kCartTopName, kStr},
    {"cart.top.category", FieldId::kCartTopCategory, kStr},
    {"cart.top.price", FieldId::kCartTopPrice, kNum},
    {"cart.top.productId", FieldId::kCartTopProductId, kStr},
    {"consent.sms", FieldId::kConsentSms, kBoo},
    {"segment", FieldId::kSegment, kStr},
    {"clv", FieldId::kClv, kNum},
    {"p_alive", FieldId::kPAlive, kNum},
    {"expected_purchases_90d", FieldId::kExpectedPurchases90d, kNum},
    {"now", FieldId::kNow, kTim},
};

// ---- functions -------------------------------------------------------------

enum class FuncId : std::uint16_t {
  kDaysSince,
  kIsBirthdayToday,
  kDaysFromBirthday,
  kDaysSinceBirthday,
  kAffinity,
  kBrandAffinity,
  kBoughtWithin,
  kTopBasketRule,
  kTopBasketRuleKey,
  kSizeOf,
  kSizeAgeDays,
  kNextSize,
  kContains,
  kMin,
  kMax,
  kAbs,
};

struct FuncDef {
  std::string_view name;
  FuncId id;
  std::uint8_t arity;
  StaticType args[2];
  StaticType result;
  std::string_view signature;
};

constexpr StaticType kAnyT = StaticType::kAny;
constexpr FuncDef kFuncs[] = {
    {"days_since", FuncId::kDaysSince, 1, {kTim, kAnyT}, kNum, "days_since(time)"},
    {"is_birthday_today", FuncId::kIsBirthdayToday, 0, {kAnyT, kAnyT}, kBoo, "is_birthday_today()"},
    {"days_from_birthday",
     FuncId::kDaysFromBirthday,
     0,
     {kAnyT, kAnyT},
     kNum,
     "days_from_birthday()"},
    {"days_since_birthday",
     FuncId::kDaysSinceBirthday,
     0,
     {kAnyT, kAnyT},
     kNum,
     "days_since_birthday()"},
    {"affinity", FuncId::kAffinity, 1, {kStr, kAnyT}, kNum, "affinity(category)"},
    {"brand_affinity", FuncId::kBrandAffinity, 1, {kStr, kAnyT}, kNum, "brand_affinity(brand)"},
    {"bought_within",
     FuncId::kBoughtWithin,
     2,
     {kStr, kNum},
     kBoo,
     "bought_within(category, days)"},
    {"top_basket_rule", FuncId::kTopBasketRule, 0, {kAnyT, kAnyT}, kStr, "top_basket_rule()"},
    {"top_basket_rule_key",
     FuncId::kTopBasketRuleKey,
     0,
     {kAnyT, kAnyT},
     kStr,
     "top_basket_rule_key()"},
    {"size_of", FuncId::kSizeOf, 1, {kStr, kAnyT}, kStr, "size_of(category)"},
    {"size_age_days", FuncId::kSizeAgeDays, 1, {kStr, kAnyT}, kNum, "size_age_days(category)"},
    {"next_size", FuncId::kNextSize, 1, {kStr, kAnyT}, kStr, "next_size(category)"},
    {"contains", FuncId::kContains, 2, {kStr, kStr}, kBoo, "contains(text, part)"},
    {"min", FuncId::kMin, 2, {kNum, kNum}, kNum, "min(a, b)"},
    {"max", FuncId::kMax, 2, {kNum, kNum}, kNum, "max(a, b)"},
    {"abs", FuncId::kAbs, 1, {kNum, kAnyT}, kNum, "abs(x)"},
};

constexpr std::string_view kEventNames[] = {
    "Card Swiped",
    "Order Completed",
    "Order Refunded",
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Cart Viewed",
    "Checkout Started",
    "Promotion Viewed",
    "Promotion Clicked",
    "Product Reserved",
    "identify",
    "page",
    "alias",
};
constexpr std::string_view kChannels[] = {"pos", "web", "app", "unknown"};
constexpr std::string_view kEventTypes[] = {"track", "identify", "page", "alias"};

std::string_view type_name(StaticType t) {
  switch (t) {
    case StaticType::kAny: return "any";
    case StaticType::kNull: return "null";
    case StaticType::kBool: return "true/false";
    case StaticType::kNumber: return "number";
    case StaticType::kString: return "text";
    case StaticType::kTime: return "time";
  }
  return "?";
}

bool fits(StaticType have, StaticType want) {
  return want == StaticType::kAny || have == want || have == StaticType::kAny ||
         have == StaticType::kNull;
}

// ---- runtime helpers (no allocation) ----------------------------------------

double money(protocol::Money m) {
  return static_cast<double>(m) / 100.0;
}
Value time_or_null(TimeUs t) {
  return t ? Value::of_time(t) : Value::null();
}
Value str_or_null(std::string_view s) {
  return s.empty() ? Value::null() : Value::of_string(s);
}
double days_between(TimeUs from, TimeUs to) {
  return static_cast<double>(to - from) / static_cast<double>(kUsPerDay);
}
const profile::CartItem* cart_top(const CustomerProfile& p) {
  const profile::CartItem* best = nullptr;
  for (const auto& i : p.cart)
    if (!best || i.price * i.quantity > best->price * best->quantity) best = &i;
  return best;
}

template <class Stat>
const Stat* top_stat(const profile::CompactVec<Stat>& v) {
  const Stat* best = nullptr;
  for (const auto& s : v)
    if (!best || s.affinity > best->affinity) best = &s;
  return best;
}

const profile::SizeRecord* size_record(const CustomerProfile& p, std::string_view cat) {
  const profile::NameId id = p.names->find(cat);
  if (id == profile::kNoName && !cat.empty()) return nullptr;  // a category never sized
  for (const auto& s : p.sizes)
    if (s.category == id) return &s;
  return nullptr;
}

// Affinity decays with the profile's 90-day half-life up to `now`, so an old
// passion counts less than a fresh one even if no order updated it since.
template <class Stat>
double decayed_affinity(const Stat* s, TimeUs now) {
  if (!s) return 0;
  if (s->last == 0 || now <= s->last) return s->affinity;
  return s->affinity * std::exp2(-days_between(s->last, now) / 90.0);
}

// Children's sizes in Europe step by 6 cm of height (50, 56, … 176); letter
// sizes step through the usual ladder. Views into static tables: no allocation.
constexpr std::string_view kHeightSizes[] = {"50",  "56",  "62",  "68",  "74",  "80",  "86",  "92",
                                             "98",  "104", "110", "116", "122", "128", "134", "140",
                                             "146", "152", "158", "164", "170", "176"};
constexpr std::string_view kLetterSizes[] = {"XXS", "XS", "S", "M", "L", "XL", "XXL", "XXXL"};
// Age sizes as the catalogue writes them: "2-3Y" for a child aged 2.
constexpr std::string_view kAgeSizes[] = {"0-1Y",   "1-2Y",   "2-3Y",   "3-4Y",  "4-5Y",   "5-6Y",
                                          "6-7Y",   "7-8Y",   "8-9Y",   "9-10Y", "10-11Y", "11-12Y",
                                          "12-13Y", "13-14Y", "14-15Y", "15-16Y"};

std::string_view next_size_of(std::string_view size) {
  for (std::size_t i = 0; i + 1 < std::size(kHeightSizes); ++i)
    if (kHeightSizes[i] == size) return kHeightSizes[i + 1];
  for (std::size_t i = 0; i + 1 < std::size(kLetterSizes); ++i)
    if (kLetterSizes[i] == size) return kLetterSizes[i + 1];
  for (std::size_t i = 0; i + 1 < std::size(kAgeSizes); ++i)
    if (kAgeSizes[i] == size) return kAgeSizes[i + 1];
  return {};
}

// Birthday arithmetic on the event date (UTC), by the calendar rules of
// common/calendar.hpp (29 February is 28 February in common years).
Value days_from_birthday(const CustomerProfile& p, TimeUs now) {
  if (p.birthday_mmdd == 0 || now <= 0) return Value::null();
  return Value::of_number(storepulse::days_from_birthday(p.birthday_mmdd, now / kUsPerDay));
}
Value days_since_birthday(const CustomerProfile& p, TimeUs now) {
  if (p.birthday_mmdd == 0 || now <= 0) return Value::null();
  return Value::of_number(storepulse::days_since_birthday(p.birthday_mmdd, now / kUsPerDay));
}

// The best consequent for the customer in the live basket model
// (models::active_models(): the snapshot of this shard's batch, which outlives
// the evaluation). nullptr without a model or a match.
const models::BasketModel* top_basket_consequent(const CustomerProfile& p, std::uint32_t& item) {
  const models::ModelSet* m = models::active_models();
  if (!m || !m->baskets) return nullptr;
  std::array<std::string_view, models::BasketModel::kMaxHeld> held;
  const std::size_t n = m->baskets->held_items(p, held);
  std::array<models::BasketSuggestion, 1> best;
  if (m->baskets->suggest(std::span(held.data(), n), best) == 0) return nullptr;
  item = best[0].item;
  return m->baskets.get();
}

Value load_field(FieldId id, const EvalContext& c) {
  const Event& e = *c.event;
  const CustomerProfile& p = *c.profile;
  const protocol::Product* prod = e.products.empty() ? nullptr : &e.products.front();
  switch (id) {
    case FieldId::kEventName:
      return e.type == protocol::EventType::kTrack
                 ? Value::of_string(protocol::event_name_str(e.name))
                 : Value::of_string(protocol::event_type_name(e.type));
    case FieldId::kEventType: return Value::of_string(protocol::event_type_name(e.type));
    case FieldId::kEventChannel: return Value::of_string(protocol::channel_name(e.channel));
    case FieldId::kEventTotal:
      return e.has_total ? Value::of_number(money(e.total)) : Value::null();
    case FieldId::kEventDiscount: return Value::of_number(money(e.discount));
    case FieldId::kEventStoreId: return str_or_null(e.store_id);
    case FieldId::kEventTerminalId: return str_or_null(e.terminal_id);
    case FieldId::kEventCampaign: return str_or_null(e.campaign);
    case FieldId::kEventTimezone: return str_or_null(e.timezone);
    case FieldId::kEventOrderId: return str_or_null(e.order_id);
    case FieldId::kEventCurrency: return str_or_null(e.currency);
    case FieldId::kEventTime: return time_or_null(e.timestamp ? e.timestamp : c.now);
    case FieldId::kEventUserId: return str_or_null(e.user_id);
    case FieldId::kEventAnonymousId: return str_or_null(e.anonymous_id);
    case FieldId::kEventValue: return Value::of_number(money(e.products_value()));
    case FieldId::kEventItems: return Value::of_number(static_cast<double>(e.products.size()));
    case FieldId::kEventPromotionId: return str_or_null(e.promotion_id);
    case FieldId::kEventUrl: return str_or_null(e.url);
    case FieldId::kProductId: return prod ? str_or_null(prod->product_id) : Value::null();
    case FieldId::kProductSku: return prod ? str_or_null(prod->sku) : Value::null();
    case FieldId::kProductName: return prod ? str_or_null(prod->name) : Value::null();
    case FieldId::kProductCategory: return prod ? str_or_null(prod->category) : Value::null();
    case FieldId::kProductBrand: return prod ? str_or_null(prod->brand) : Value::null();
    case FieldId::kProductSize: return prod ? str_or_null(prod->size) : Value::null();
    case FieldId::kProductPrice: return prod ? Value::of_number(money(prod->price)) : Value::null();
    case FieldId::kProductQuantity: return prod ? Value::of_number(prod->quantity) : Value::null();
    case FieldId::kProductPromo: return prod ? str_or_null(prod->promo) : Value::null();
    case FieldId::kProfileOrders: return Value::of_number(p.orders);
    case FieldId::kProfileOrdersPos: return Value::of_number(p.orders_pos);
    case FieldId::kProfileOrdersWeb: return Value::of_number(p.orders_web);
    case FieldId::kProfileRefunds: return Value::of_number(p.refunds);
    case FieldId::kProfileSwipes: return Value::of_number(p.swipes);
    case FieldId::kProfileWebViews: return Value::of_number(p.web_views);
    case FieldId::kProfileMonetary: return Value::of_number(money(p.monetary));
    case FieldId::kProfilePoints: return Value::of_number(static_cast<double>(p.points));
    case FieldId::kProfileRecencyDays:
      return p.last_order
                 ? Value::of_number(std::floor(std::max(0.0, days_between(p.last_order, c.now))))
                 : Value::null();
    case FieldId::kProfileTenureDays:
      return p.first_order
                 ? Value::of_number(std::floor(std::max(0.0, days_between(p.first_order, c.now))))
                 : Value::null();
    case FieldId::kProfileDiscountShare: return Value::of_number(p.discount_share());
    case FieldId::kProfileAvgOrder:
      return p.orders ? Value::of_number(money(p.monetary) / p.orders) : Value::null();
    case FieldId::kProfileHomeStore: return str_or_null(p.traits.home_store);
    case FieldId::kProfileLastOrder: return time_or_null(p.last_order);
    case FieldId::kProfileFirstOrder: return time_or_null(p.first_order);
    case FieldId::kProfileFirstSeen: return time_or_null(p.first_seen);
    case FieldId::kProfileLastSeen: return time_or_null(p.last_seen);
    case FieldId::kProfileBirthday: return str_or_null(p.traits.birthday);
    case FieldId::kProfileTopCategory: {
      const auto* s = top_stat(p.categories);
      return s ? str_or_null(p.name(s->name)) : Value::null();
    }
    case FieldId::kProfileTopBrand: {
      const auto* s = top_stat(p.brands);
      return s ? str_or_null(p.name(s->name)) : Value::null();
    }
    case FieldId::kProfileTopBrandShare: {
      protocol::Money total = 0, top = 0;
      for (const auto& b : p.brands) {
        total += std::max<protocol::Money>(0, b.spend);
        top = std::max(top, b.spend);
      }
      return total > 0 ? Value::of_number(static_cast<double>(top) / static_cast<double>(total))
                       : Value::null();
    }
    case FieldId::kProfilePurchaseIntervalDays:
      return p.orders >= 2 && p.last_order > p.first_order
                 ? Value::of_number(days_between(p.first_order, p.last_order) / (p.orders - 1))
                 : Value::null();
    case FieldId::kProfileWebShare:
      return p.orders ? Value::of_number(static_cast<double>(p.orders_web) / p.orders)
                      : Value::null();
    case FieldId::kTraitFirstName: return str_or_null(p.traits.first_name);
    case FieldId::kTraitLastName: return str_or_null(p.traits.last_name);
    case FieldId::kTraitBirthday: return str_or_null(p.traits.birthday);
    case FieldId::kTraitGender: return str_or_null(p.traits.gender);
    case FieldId::kTraitPhone: return str_or_null(p.traits.phone);
    case FieldId::kTraitEmail: return str_or_null(p.traits.email);
    case FieldId::kTraitPostalCode: return str_or_null(p.traits.postal_code);
    case FieldId::kTraitHomeStore: return str_or_null(p.traits.home_store);
    case FieldId::kTraitSmsOptIn:
      return p.traits.sms_opt_in ? Value::of_bool(*p.traits.sms_opt_in) : Value::null();
    case FieldId::kCartValue: return Value::of_number(money(p.cart_value()));
    case FieldId::kCartItems: {
      std::int64_t n = 0;
      for (const auto& i : p.cart) n += i.quantity;
      return Value::of_number(static_cast<double>(n));
    }
    case FieldId::kCartLines: return Value::of_number(static_cast<double>(p.cart.size()));
    case FieldId::kCartUpdated: return time_or_null(p.cart_updated);
    case FieldId::kCartTopName: {
      const auto* t = cart_top(p);
      return t ? str_or_null(p.name(t->name == profile::kNoName ? t->product_id : t->name))
               : Value::null();
    }
    case FieldId::kCartTopCategory: {
      const auto* t = cart_top(p);
      return t ? str_or_null(p.name(t->category)) : Value::null();
    }
    case FieldId::kCartTopPrice: {
      const auto* t = cart_top(p);
      return t ? Value::of_number(money(t->price)) : Value::null();
    }
    case FieldId::kCartTopProductId: {
      const auto* t = cart_top(p);
      return t ? str_or_null(p.name(t->product_id)) : Value::null();
    }
    case FieldId::kConsentSms: return Value::of_bool(p.sms_consent);
    case FieldId::kSegment: return str_or_null(p.name(p.segment));
    // As of the evaluation time, not of the last order: a timer that fires 90
    // days after it must see how P(alive) fell since (win-back).
    case FieldId::kClv: {
      const models::ModelSet* m = models::active_models();
      return Value::of_number(m && m->clv ? models::clv_at(*m->clv, p, c.now) : p.clv);
    }
    case FieldId::kPAlive: {
      const models::ModelSet* m = models::active_models();
      return Value::of_number(m && m->clv ? models::p_alive_at(*m->clv, p, c.now) : p.p_alive);
    }
    case FieldId::kExpectedPurchases90d: {
      const models::ModelSet* m = models::active_models();
      return Value::of_number(m && m->clv ? models::expected_purchases_90d_at(*m->clv, p, c.now)
                                          : p.expected_purchases_90d);
    }
    case FieldId::kNow: return time_or_null(c.now);
  }
  return Value::null();
}

Value call_function(FuncId id, const Value* a, const EvalContext& c) {
  const CustomerProfile& p = *c.profile;
  auto str_arg = [&](int i) -> std::string_view {
    return a[i].kind == ValueKind::kString ? a[i].str : std::string_view();
  };
  switch (id) {
    case FuncId::kDaysSince:
      if (a[0].kind != ValueKind::kTime || a[0].time == 0) return Value::null();
      return Value::of_number(days_between(a[0].time, c.now));
    case FuncId::kIsBirthdayToday: {
      const Value d = days_since_birthday(p, c.now);
      return Value::of_bool(d.kind == ValueKind::kNumber && d.number == 0);
    }
    case FuncId::kDaysFromBirthday: return days_from_birthday(p, c.now);
    case FuncId::kDaysSinceBirthday: return days_since_birthday(p, c.now);
    case FuncId::kAffinity:
      return Value::of_number(decayed_affinity(p.category(str_arg(0)), c.now));
    case FuncId::kBrandAffinity: {
      const profile::BrandStat* s = nullptr;
      const profile::NameId brand = p.names->find(str_arg(0));
      for (const auto& b : p.brands)
        if (brand != profile::kNoName && b.name == brand) s = &b;
      return Value::of_number(decayed_affinity(s, c.now));
    }
    case FuncId::kBoughtWithin: {
      const auto* s = p.category(str_arg(0));
      if (!s || s->last == 0 || a[1].kind != ValueKind::kNumber) return Value::of_bool(false);
      return Value::of_bool(days_between(s->last, c.now) <= a[1].number);
    }
    // The live basket model's best consequent of the customer's cart and recent
    // purchases, and what kind of name it is (the model's item key: product,
    // name or category); null without a model or a match. Both read the same
    // snapshot and profile, so a text and an offer of one action name the same
    // basket rule.
    case FuncId::kTopBasketRule:
    case FuncId::kTopBasketRuleKey: {
      std::uint32_t item = 0;
      const models::BasketModel* b = top_basket_consequent(p, item);
      if (!b) return Value::null();
      return Value::of_string(id == FuncId::kTopBasketRule ? std::string_view(b->item(item))
                                                           : std::string_view(b->item_key));
    }
    case FuncId::kSizeOf: {
      const auto* s = size_record(p, str_arg(0));
      return s ? str_or_null(p.name(s->size)) : Value::null();
    }
    case FuncId::kSizeAgeDays: {
      const auto* s = size_record(p, str_arg(0));
      return s && s->when ? Value::of_number(days_between(s->when, c.now)) : Value::null();
    }
    case FuncId::kNextSize: {
      const auto* s = size_record(p, str_arg(0));
      return s ? str_or_null(next_size_of(p.name(s->size))) : Value::null();
    }
    case FuncId::kContains:
      if (a[0].kind != ValueKind::kString || a[1].kind != ValueKind::kString)
        return Value::of_bool(false);
      return Value::of_bool(a[0].str.find(a[1].str) != std::string_view::npos);
    case FuncId::kMin:
    case FuncId::kMax:
      if (a[0].kind != ValueKind::kNumber || a[1].kind != ValueKind::kNumber) return Value::null();
      return Value::of_number(id == FuncId::kMin ? std::min(a[0].number, a[1].number)
                                                 : std::max(a[0].number, a[1].number));
    case FuncId::kAbs:
      return a[0].kind == ValueKind::kNumber ? Value::of_number(std::fabs(a[0].number))
                                             : Value::null();
  }
  return Value::null();
}

bool values_equal(const Value& x, const Value& y) {
  if (x.kind != y.kind) return false;
  switch (x.kind) {
    case ValueKind::kNull: return true;
    case ValueKind::kBool: return x.boolean == y.boolean;
    case ValueKind::kNumber: return x.number == y.number;
    case ValueKind::kString: return x.str == y.str;
    case ValueKind::kTime: return x.time == y.time;
  }
  return false;
}

// -1/0/1, or 2 when the two cannot be ordered (null, mixed kinds).
int compare(const Value& x, const Value& y) {
  if (x.kind != y.kind || x.kind == ValueKind::kNull || x.kind == ValueKind::kBool) return 2;
  switch (x.kind) {
    case ValueKind::kNumber: return x.number < y.number ? -1 : x.number > y.number ? 1 : 0;
    case ValueKind::kTime: return x.time < y.time ? -1 : x.time > y.time ? 1 : 0;
    case ValueKind::kString: {
      const int r = x.str.compare(y.str);
      return r < 0 ? -1 : r > 0 ? 1 : 0;
    }
    default: return 2;
  }
}

Value arith(OpCode op, const Value& x, const Value& y) {
  // time ± duration (days) and time - time (days) keep `now - 30d` meaningful.
  if (x.kind == ValueKind::kTime && y.kind == ValueKind::kNumber &&
      (op == OpCode::kAdd || op == OpCode::kSub)) {
    const auto delta = static_cast<TimeUs>(std::llround(y.number * static_cast<double>(kUsPerDay)));
    return Value::of_time(op == OpCode::kAdd ? x.time + delta : x.time - delta);
  }
  if (x.kind == ValueKind::kTime && y.kind == ValueKind::kTime && op == OpCode::kSub)
    return Value::of_number(days_between(y.time, x.time));
  if (x.kind != ValueKind::kNumber || y.kind != ValueKind::kNumber) return Value::null();
  switch (op) {
    case OpCode::kAdd: return Value::of_number(x.number + y.number);
    case OpCode::kSub: return Value::of_number(x.number - y.number);
    case OpCode::kMul: return Value::of_number(x.number * y.number);
    case OpCode::kDiv: return y.number == 0 ? Value::null() : Value::of_number(x.number / y.number);
    case OpCode::kMod:
      return y.number == 0 ? Value::null() : Value::of_number(std::fmod(x.number, y.number));
    default: return Value::null();
  }
}

}  // namespace

Value Program::run(const EvalContext& ctx) const noexcept {
  Value stack[kMaxStack];
  std::size_t sp = 0;
  const std::size_t n = code_.size();
  for (std::size_t pc = 0; pc < n; ++pc) {
    const Instr& in = code_[pc];
    switch (in.op) {
      case OpCode::kConst: stack[sp++] = consts_[in.arg]; break;
      case OpCode::kField: stack[sp++] = load_field(static_cast<FieldId>(in.arg), ctx); break;
      case OpCode::kCall: {
        const auto& f = kFuncs[in.target];
        sp -= f.arity;
        stack[sp] = call_function(f.id, &stack[sp], ctx);
        ++sp;
        break;
      }
      case OpCode::kNot: stack[sp - 1] = Value::of_bool(!stack[sp - 1].truthy()); break;
      case OpCode::kNeg:
        stack[sp - 1] = stack[sp - 1].kind == ValueKind::kNumber
                            ? Value::of_number(-stack[sp - 1].number)
                            : Value::null();
        break;
      case OpCode::kAdd:
      case OpCode::kSub:
      case OpCode::kMul:
      case OpCode::kDiv:
      case OpCode::kMod:
        --sp;
        stack[sp - 1] = arith(in.op, stack[sp - 1], stack[sp]);
        break;
      case OpCode::kEq:
      case OpCode::kNe: {
        --sp;
        const bool eq = values_equal(stack[sp - 1], stack[sp]);
        stack[sp - 1] = Value::of_bool(in.op == OpCode::kEq ? eq : !eq);
        break;
      }
      case OpCode::kLt:
      case OpCode::kLe:
      case OpCode::kGt:
      case OpCode::kGe: {
        --sp;
        const int r = compare(stack[sp - 1], stack[sp]);
        bool b = false;
        if (r != 2) {
          b = in.op == OpCode::kLt   ? r < 0
              : in.op == OpCode::kLe ? r <= 0
              : in.op == OpCode::kGt ? r > 0
                                     : r >= 0;
        }
        stack[sp - 1] = Value::of_bool(b);
        break;
      }
      case OpCode::kIn: {
        bool found = false;
        for (const auto& v : lists_[in.arg])
          if (values_equal(stack[sp - 1], v)) {
            found = true;
            break;
          }
        stack[sp - 1] = Value::of_bool(found);
        break;
      }
      case OpCode::kAndJump:
        if (!stack[sp - 1].truthy()) {
          stack[sp - 1] = Value::of_bool(false);
          pc = static_cast<std::size_t>(in.target) - 1;
        } else {
          --sp;
        }
        break;
      case OpCode::kOrJump:
        if (stack[sp - 1].truthy()) {
          stack[sp - 1] = Value::of_bool(true);
          pc = static_cast<std::size_t>(in.target) - 1;
        } else {
          --sp;
        }
        break;
      case OpCode::kToBool: stack[sp - 1] = Value::of_bool(stack[sp - 1].truthy()); break;
    }
  }
  return sp ? stack[sp - 1] : Value::null();
}

std::string Program::disassemble() const {
  static constexpr std::string_view kNames[] = {
      "const", "field", "call", "not", "neg", "add", "sub", "mul",      "div",     "mod",
      "eq",    "ne",    "lt",   "le",  "gt",  "ge",  "in",  "and_jump", "or_jump", "to_bool"};
  std::string s;
  for (std::size_t i = 0; i < code_.size(); ++i) {
    const auto& in = code_[i];
    s += fmt::format("{:3} {}", i, kNames[static_cast<int>(in.op)]);
    if (in.op == OpCode::kField) {
      for (const auto& f : kFields)
        if (static_cast<std::uint16_t>(f.id) == in.arg) {
          s += fmt::format(" {}", f.path);
          break;
        }
    } else if (in.op == OpCode::kCall) {
      s += fmt::format(" {}", kFuncs[in.target].name);
    } else if (in.op == OpCode::kConst) {
      std::string v;
      append_value_text(v, consts_[in.arg]);
      s += fmt::format(" {}", consts_[in.arg].kind == ValueKind::kNull ? "null" : v);
    } else if (in.op == OpCode::kAndJump || in.op == OpCode::kOrJump) {
      s += fmt::format(" -> {}", in.target);
    }
    s.push_back('\n');
  }
  return s;
}

class ExpressionCompiler {
 public:
  explicit ExpressionCompiler(Program& prog) : p_(prog) {}

  StaticType emit(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kNumber: push_const(Value::of_number(e.number)); return StaticType::kNumber;
      case ExprKind::kString: push_const(Value::of_string(own(e.text))); return StaticType::kString;
      case ExprKind::kBool: push_const(Value::of_bool(e.boolean)); return StaticType::kBool;
      case ExprKind::kNull: push_const(Value::null()); return StaticType::kNull;
      case ExprKind::kPath: {
        const FieldDef& f = resolve_field(e);
        add({OpCode::kField, static_cast<std::uint16_t>(f.id), 0}, +1);
        return f.type;
      }
      case ExprKind::kCall: return emit_call(e);
      case ExprKind::kList: throw ExpressionError{e.pos, "a list is only allowed after 'in'"};
      case ExprKind::kUnary: {
        const StaticType t = emit(*e.args[0]);
        if (e.unary == UnaryOp::kNeg) {
          require(t, StaticType::kNumber, *e.args[0], "'-'");
          add({OpCode::kNeg, 0, 0}, 0);
          return StaticType::kNumber;
        }
        add({OpCode::kNot, 0, 0}, 0);
        return StaticType::kBool;
      }
      case ExprKind::kBinary: return emit_binary(e);
    }
    throw ExpressionError{e.pos, "unsupported expression"};
  }

  void finish(StaticType t) { p_.type_ = t; }

 private:
  void add(Instr in, int stack_delta) {
    if (p_.code_.size() >= Program::kMaxCode)
      throw ExpressionError{{1, 1}, "expression is too long"};
    p_.code_.push_back(in);
    depth_ += stack_delta;
    if (depth_ > static_cast<int>(Program::kMaxStack))
      throw ExpressionError{
          {1, 1}, fmt::format("expression nests deeper than {} values", Program::kMaxStack)};
    p_.max_stack_ = std::max(p_.max_stack_, static_cast<std::size_t>(std::max(depth_, 0)));
  }
  std::string_view own(const std::string& s) {
    p_.strings_.push_back(std::make_unique<std::string>(s));
    return *p_.strings_.back();
  }
  void push_const(Value v) {
    p_.consts_.push_back(v);
    add({OpCode::kConst, static_cast<std::uint16_t>(p_.consts_.size() - 1), 0}, +1);
  }
  static void require(StaticType have, StaticType want, const Expr& at, std::string_view what) {
    if (!fits(have, want))
      throw ExpressionError{at.pos, fmt::format("{} needs a {} here, but {} is a {}", what,
                                                type_name(want), to_string(at), type_name(have))};
  }

  static const FieldDef& resolve_field(const Expr& e) {
    for (const auto& f : kFields)
      if (f.path == e.text) return f;
    for (const auto& f : kFuncs)
      if (f.name == e.text)
        throw ExpressionError{e.pos,
                              fmt::format("'{}' is a function: write {}", e.text, f.signature)};
    std::vector<std::string_view> names;
    const auto dot = e.text.find('.');
    const std::string_view root = std::string_view(e.text).substr(0, dot);
    bool known_root = false;
    for (const auto& f : kFields) {
      names.push_back(f.path);
      if (dot != std::string::npos && f.path.substr(0, f.path.find('.')) == root) known_root = true;
    }
    if (known_root)
      return fail_field(e,
                        fmt::format("unknown field '{}'{}", e.text, did_you_mean(e.text, names)));
    return fail_field(e, fmt::format("unknown name '{}'{}", e.text, did_you_mean(e.text, names)));
  }
  [[noreturn]] static const FieldDef& fail_field(const Expr& e, std::string msg) {
    throw ExpressionError{e.pos, std::move(msg)};
  }

  StaticType emit_call(const Expr& e) {
    if (e.text == "count")
      throw ExpressionError{
          e.pos,
          "count(event, days) is not available: profiles keep running totals, not event "
          "histories; use profile.orders, profile.swipes, bought_within(category, days) "
          "or days_since(profile.lastOrder)"};
    const FuncDef* f = nullptr;
    std::size_t index = 0;
    for (std::size_t i = 0; i < std::size(kFuncs); ++i)
      if (kFuncs[i].name == e.text) {
        f = &kFuncs[i];
        index = i;
      }
    if (!f) {
      std::vector<std::string_view> names;
      for (const auto& k : kFuncs) names.push_back(k.name);
      throw ExpressionError{
          e.pos, fmt::format("unknown function '{}'{}", e.text, did_you_mean(e.text, names))};
    }
    if (e.args.size() != f->arity)
      throw ExpressionError{e.pos, fmt::format("{} takes {} argument{}, not {}", f->signature,
                                               f->arity, f->arity == 1 ? "" : "s", e.args.size())};
    for (std::size_t i = 0; i < e.args.size(); ++i) {
      const StaticType t = emit(*e.args[i]);
      require(t, f->args[i], *e.args[i], fmt::format("argument {} of {}", i + 1, f->signature));
    }
    add({OpCode::kCall, 0, static_cast<std::uint16_t>(index)}, 1 - static_cast<int>(f->arity));
    return f->result;
  }

  // `event.name == "Order Complted"` can never be true: catch the typo at load.
  static void check_literal_against(const Expr& path, const Expr& lit) {
    if (path.kind != ExprKind::kPath || lit.kind != ExprKind::kString) return;
    std::vector<std::string_view> allowed;
    if (path.text == "event.name")
      allowed.assign(std::begin(kEventNames), std::end(kEventNames));
    else if (path.text == "event.channel")
      allowed.assign(std::begin(kChannels), std::end(kChannels));
    else if (path.text == "event.type")
      allowed.assign(std::begin(kEventTypes), std::end(kEventTypes));
    else
      return;
    if (std::find(allowed.begin(), allowed.end(), lit.text) != allowed.end()) return;
    throw ExpressionError{lit.pos, fmt::format("{} is never \"{}\"{}", path.text, lit.text,
                                               did_you_mean(lit.text, allowed))};
  }

  StaticType emit_binary(const Expr& e) {
    const Expr& l = *e.args[0];
    const Expr& r = *e.args[1];
    switch (e.binary) {
      case BinaryOp::kAnd:
      case BinaryOp::kOr: {
        emit(l);
        const std::size_t jump_at = p_.code_.size();
        add({e.binary == BinaryOp::kAnd ? OpCode::kAndJump : OpCode::kOrJump, 0, 0}, -1);
        emit(r);
        add({OpCode::kToBool, 0, 0}, 0);
        p_.code_[jump_at].target = static_cast<std::uint16_t>(p_.code_.size());
        return StaticType::kBool;
      }
      case BinaryOp::kIn: {
        const StaticType lt = emit(l);
        std::vector<Value> items;
        for (const auto& item : r.args) {
          switch (item->kind) {
            case ExprKind::kNumber: items.push_back(Value::of_number(item->number)); break;
            case ExprKind::kString:
              check_literal_against(l, *item);
              if (lt != StaticType::kAny && lt != StaticType::kString && lt != StaticType::kNull)
                throw ExpressionError{item->pos, fmt::format("{} is a {}, the list holds text",
                                                             to_string(l), type_name(lt))};
              items.push_back(Value::of_string(own(item->text)));
              break;
            case ExprKind::kBool: items.push_back(Value::of_bool(item->boolean)); break;
            case ExprKind::kUnary:
              if (item->unary == UnaryOp::kNeg && item->args[0]->kind == ExprKind::kNumber) {
                items.push_back(Value::of_number(-item->args[0]->number));
                break;
              }
              [[fallthrough]];
            default:
              throw ExpressionError{item->pos,
                                    "list items must be literal numbers, texts or true/false"};
          }
        }
        p_.lists_.push_back(std::move(items));
        add({OpCode::kIn, static_cast<std::uint16_t>(p_.lists_.size() - 1), 0}, 0);
        return StaticType::kBool;
      }
      default: break;
    }
    check_literal_against(l, r);
    check_literal_against(r, l);
    const StaticType lt = emit(l);
    const StaticType rt = emit(r);
    const std::string_view op = binary_op_name(e.binary);
    switch (e.binary) {
      case BinaryOp::kAdd:
      case BinaryOp::kSub:
        add({e.binary == BinaryOp::kAdd ? OpCode::kAdd : OpCode::kSub, 0, 0}, -1);
        if (lt == StaticType::kTime && fits(rt, StaticType::kNumber)) return StaticType::kTime;
        if (lt == StaticType::kTime && rt == StaticType::kTime && e.binary == BinaryOp::kSub)
          return StaticType::kNumber;
        require(lt, StaticType::kNumber, l, fmt::format("'{}'", op));
        require(rt, StaticType::kNumber, r, fmt::format("'{}'", op));
        return StaticType::kNumber;
      case BinaryOp::kMul:
      case BinaryOp::kDiv:
      case BinaryOp::kMod:
        require(lt, StaticType::kNumber, l, fmt::format("'{}'", op));
        require(rt, StaticType::kNumber, r, fmt::format("'{}'", op));
        add({e.binary == BinaryOp::kMul   ? OpCode::kMul
             : e.binary == BinaryOp::kDiv ? OpCode::kDiv
                                          : OpCode::kMod,
             0, 0},
            -1);
        return StaticType::kNumber;
      default: break;
    }
    // Comparisons: both sides of one kind (null and unknown fit anything).
    const bool lfree = lt == StaticType::kAny || lt == StaticType::kNull;
    const bool rfree = rt == StaticType::kAny || rt == StaticType::kNull;
    if (!lfree && !rfree && lt != rt)
      throw ExpressionError{e.pos, fmt::format("cannot compare {} ({}) with {} ({})", to_string(l),
                                               type_name(lt), to_string(r), type_name(rt))};
    OpCode code = OpCode::kEq;
    switch (e.binary) {
      case BinaryOp::kEq: code = OpCode::kEq; break;
      case BinaryOp::kNe: code = OpCode::kNe; break;
      case BinaryOp::kLt: code = OpCode::kLt; break;
      case BinaryOp::kLe: code = OpCode::kLe; break;
      case BinaryOp::kGt: code = OpCode::kGt; break;
      default: code = OpCode::kGe; break;
    }
    if ((code != OpCode::kEq && code != OpCode::kNe) &&
        (lt == StaticType::kBool || rt == StaticType::kBool))
      throw ExpressionError{e.pos, fmt::format("'{}' does not order true/false values", op)};
    add({code, 0, 0}, -1);
    return StaticType::kBool;
  }

  Program& p_;
  int depth_ = 0;
};

Program compile_expression(const Expr& e) {
  Program prog;
  ExpressionCompiler c(prog);
  c.finish(c.emit(e));
  return prog;
}

Program compile_expression(std::string_view src) {
  return compile_expression(*parse_expression(src));
}

Program compile_condition(std::string_view src) {
  auto ast = parse_expression(src);
  Program prog = compile_expression(*ast);
  const StaticType t = prog.type();
  if (t != StaticType::kBool && t != StaticType::kAny)
    throw ExpressionError{ast->pos, fmt::format("a condition must be true or false, but {} is a {}",
                                                to_string(*ast), type_name(t))};
  return prog;
}

void append_value_text(std::string& out, const Value& v) {
  switch (v.kind) {
    case ValueKind::kNull: break;
    case ValueKind::kBool: out += v.boolean ? "true" : "false"; break;
    case ValueKind::kNumber:
      if (std::isfinite(v.number) && v.number == std::floor(v.number) && std::fabs(v.number) < 1e15)
        out += fmt::format("{}", static_cast<long long>(v.number));
      else
        out += fmt::format("{:.2f}", v.number);
      break;
    case ValueKind::kString: out.append(v.str); break;
    case ValueKind::kTime: out += format_iso8601(v.time); break;
  }
}

bool Template::has_placeholders() const {
  for (const auto& p : pieces_)
    if (!p.expr.empty()) return true;
  return false;
}

void Template::render(const EvalContext& ctx, std::string& out) const {
  for (const auto& p : pieces_) {
    out += p.literal;
    if (p.expr.empty()) continue;
    const std::size_t before = out.size();
    append_value_text(out, p.expr.run(ctx));
    if (out.size() == before) out += p.fallback;
  }
}

std::string Template::render(const EvalContext& ctx) const {
  std::string out;
  render(ctx, out);
  return out;
}

Template compile_template(std::string_view text) {
  Template t;
  Template::Piece cur;
  int line = 1, col = 1;
  auto step = [&](char c) {
    if (c == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {
      cur.literal.push_back(c);
      step(c), step(c);
      i += 2;
      continue;
    }
    if (c == '}')
      throw ExpressionError{{line, col}, "'}' without '{' (write '}}' for a literal brace)"};
    if (c != '{') {
      cur.literal.push_back(c);
      step(c);
      ++i;
      continue;
    }
    // Find the closing brace and a top-level single '|' outside quotes.
    const SourcePos open{line, col};
    std::size_t j = i + 1, bar = std::string_view::npos;
    char quote = 0;
    for (; j < text.size(); ++j) {
      const char d = text[j];
      if (quote) {
        if (d == '\\')
          ++j;
        else if (d == quote)
          quote = 0;
        continue;
      }
      if (d == '"' || d == '\'')
        quote = d;
      else if (d == '}')
        break;
      else if (d == '|' && bar == std::string_view::npos) {
        if (j + 1 < text.size() && text[j + 1] == '|')
          ++j;
        else
          bar = j;
      }
    }
    if (j >= text.size()) throw ExpressionError{open, "'{' without a closing '}'"};
    const std::string_view inner =
        text.substr(i + 1, (bar == std::string_view::npos ? j : bar) - i - 1);
    try {
      cur.expr = compile_expression(inner);
    } catch (ExpressionError& e) {
      if (e.pos.line == 1) e.pos.col += open.col;
      e.pos.line += open.line - 1;
      throw;
    }
    if (bar != std::string_view::npos)
      cur.fallback = std::string(text.substr(bar + 1, j - bar - 1));
    t.pieces_.push_back(std::move(cur));
    cur = Template::Piece{};
    for (std::size_t k = i; k <= j; ++k) step(text[k]);
    i = j + 1;
  }
  if (!cur.literal.empty()) t.pieces_.push_back(std::move(cur));
  return t;
}

std::vector<std::string_view> known_field_paths() {
  std::vector<std::string_view> v;
  for (const auto& f : kFields) v.push_back(f.path);
  return v;
}

std::vector<std::string_view> known_function_names() {
  std::vector<std::string_view> v;
  for (const auto& f : kFuncs) v.push_back(f.name);
  return v;
}

std::vector<std::string_view> known_event_names() {
  return {std::begin(kEventNames), std::end(kEventNames)};
}

}  // namespace storepulse::rules
