#pragma once
// What each field and function of the catalogue (catalogue.hpp) reads or
// computes per evaluation: no allocation, no exceptions, no clock.
//
// Included by the VM (vm.cpp) only, with internal linkage: load_field and
// call_function have one call site each and are inlined into Program::run, as
// when everything shared one file (a translation unit of their own would add
// a call per field load and function call; the build has no link-time
// optimisation).
#include <algorithm>
#include <array>
#include <cmath>
#include <span>

#include "rules/catalogue.hpp"
#include "storepulse/common/affinity.hpp"
#include "storepulse/common/calendar.hpp"
#include "storepulse/models/live_models.hpp"

namespace storepulse::rules::catalogue {

using profile::CustomerProfile;
using protocol::Event;

namespace {

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

// Affinity decays with the profile's half-life (common/affinity.hpp) up to
// `now`, so an old passion counts less than a fresh one even if no order
// updated it since.
template <class Stat>
double decayed_affinity(const Stat* s, TimeUs now) {
  return s ? decay_affinity(s->affinity, s->last, now) : 0;
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

}  // namespace

}  // namespace storepulse::rules::catalogue
