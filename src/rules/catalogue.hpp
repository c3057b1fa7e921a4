#pragma once
// The names an expression can use, private to the rule language: every field
// path and function with its static type (the compiler resolves names and
// checks types against these tables; what each reads or computes at run time
// is catalogue_eval.hpp). Event names, channels and types a literal may be
// compared with, for load-time typo checks.
#include <cstdint>
#include <string_view>

#include "storepulse/rules/compiler.hpp"

namespace storepulse::rules::catalogue {

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

inline constexpr StaticType kNum = StaticType::kNumber, kStr = StaticType::kString,
                            kTim = StaticType::kTime, kBoo = StaticType::kBool;

// Segment names the same things `properties.*`; both spellings resolve to one field.
inline constexpr FieldDef kFields[] = {
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

inline constexpr StaticType kAnyT = StaticType::kAny;
inline constexpr FuncDef kFuncs[] = {
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

inline constexpr std::string_view kEventNames[] = {
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
inline constexpr std::string_view kChannels[] = {"pos", "web", "app", "unknown"};
inline constexpr std::string_view kEventTypes[] = {"track", "identify", "page", "alias"};

/// Days from `from` to `to`, fractional (durations in expressions are days).
inline double days_between(TimeUs from, TimeUs to) {
  return static_cast<double>(to - from) / static_cast<double>(kUsPerDay);
}

}  // namespace storepulse::rules::catalogue
