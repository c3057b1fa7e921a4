#include "storepulse/profile/profile.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "storepulse/common/affinity.hpp"
#include "storepulse/common/bytes.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::profile {

using protocol::EventName;
using protocol::EventType;

namespace {

// Adds spend to a bounded stat list; when full, the weakest affinity is replaced,
// so memory per profile stays fixed however many categories a shopper touches.
// A name the full dictionary refused is not recorded (as a list at its cap).
template <class Stat>
void add_stat(CustomerProfile& p, CompactVec<Stat>& stats, std::size_t cap,
              std::string_view name_text, Money spend, TimeUs when) {
  const NameId name = p.names->intern(name_text);
  if (name == kNoName) return;
  auto it = std::find_if(stats.begin(), stats.end(), [&](const auto& s) { return s.name == name; });
  if (it == stats.end()) {
    if (stats.size() >= cap) {
      it = std::min_element(stats.begin(), stats.end(),
                            [](const auto& a, const auto& b) { return a.affinity < b.affinity; });
      *it = Stat{};
    } else {
      stats.emplace_back();
      it = stats.end() - 1;
    }
    it->name = name;
  }
  it->affinity = decay_affinity(it->affinity, it->last, when) + static_cast<double>(spend) / 100.0;
  it->spend += spend;
  it->last = std::max(it->last, when);
}

CategoryStat* find_stat(const CustomerProfile& p, CompactVec<CategoryStat>& stats,
                        std::string_view name_text) {
  const NameId name = p.names->find(name_text);
  if (name == kNoName) return nullptr;
  for (auto& s : stats)
    if (s.name == name) return &s;
  return nullptr;
}

std::int64_t day_number(TimeUs t) {
  return t >= 0 ? t / kUsPerDay : -((-t + kUsPerDay - 1) / kUsPerDay);
}

// The live models' inputs for one order (before first_order / last_order move).
void record_order_inputs(CustomerProfile& p, const protocol::Event& ev) {
  const std::int64_t d = day_number(ev.timestamp);
  if (p.first_order == 0) {
    p.purchase_days = 1;
  } else {
    if (p.purchase_days == 0) p.purchase_days = 1;  // a profile from before these inputs existed
    const std::int64_t first = day_number(p.first_order), last = day_number(p.last_order);
    // Same-day orders are one purchase occasion, as in the CDNOW reference. An
    // order older than the last one but on a new day (late delivery of a
    // journal from a till) is counted as a new occasion.
    if (d != first && d != last) ++p.purchase_days;
    if (d != first) p.repeat_spend += ev.total;
    if (ev.timestamp >= p.last_order) {
      const double gap =
          static_cast<double>(ev.timestamp - p.last_order) / static_cast<double>(kUsPerDay);
      ++p.gap_count;
      const double delta = gap - p.gap_mean_days;
      p.gap_mean_days += delta / p.gap_count;
      p.gap_m2 += delta * (gap - p.gap_mean_days);
    }
  }
  const TimeUs in_day = ((ev.timestamp % kUsPerDay) + kUsPerDay) % kUsPerDay;
  const double hour = static_cast<double>(in_day) / (3600.0 * static_cast<double>(kUsPerSecond));
  p.hour_sum += hour;
  p.hour_sq_sum += hour * hour;
  for (const auto& prod : ev.products) {
    p.units += prod.quantity;
    ++p.lines;
    if (!prod.promo.empty()) ++p.promo_lines;
    if (auto* c = find_stat(p, p.categories, prod.category)) {
      ++c->lines;
      if (prod.price > 0) {
        ++c->priced_lines;
        c->log_price_sum += std::log(static_cast<double>(prod.price));
      }
    }
    std::string_view key_text =
        prod.product_id.empty() ? std::string_view(prod.sku) : prod.product_id;
    const NameId key = p.names->intern(key_text);
    if (key == kNoName) continue;
    auto& recent = p.recent_products;
    auto it = std::find(recent.begin(), recent.end(), key);
    if (it != recent.end())
      recent.erase(it);
    else if (recent.size() >= CustomerProfile::kMaxRecentProducts)
      recent.erase(recent.begin());
    recent.push_back(key);
  }
  if (const NameId store = p.names->intern(ev.store_id); store != kNoName) {
    auto it = std::find_if(p.stores.begin(), p.stores.end(),
                           [&](const auto& s) { return s.store_id == store; });
    if (it != p.stores.end()) {
      ++it->orders;
    } else if (p.stores.size() < CustomerProfile::kMaxStores) {
      p.stores.push_back(StoreOrders{store, 1});
    }
  }
}

void merge_traits(protocol::Traits& into, const protocol::Traits& from) {
  auto take = [](std::string& a, const std::string& b) {
    if (!b.empty()) a = b;
  };
  take(into.first_name, from.first_name);
  take(into.last_name, from.last_name);
  take(into.birthday, from.birthday);
  take(into.gender, from.gender);
  take(into.phone, from.phone);
  take(into.email, from.email);
  take(into.postal_code, from.postal_code);
  take(into.home_store, from.home_store);
  if (from.sms_opt_in) into.sms_opt_in = from.sms_opt_in;
}

void apply_traits(CustomerProfile& p, const protocol::Traits& t) {
  merge_traits(p.traits, t);
  if (!t.birthday.empty()) p.birthday_mmdd = parse_birthday_mmdd(t.birthday);
  if (t.sms_opt_in) p.sms_consent = *t.sms_opt_in;
}

// An item whose id the full name table refused is not added (as a full cart);
// its name and category, if refused, are left empty.
void cart_add(CustomerProfile& p, const protocol::Product& prod) {
  std::string_view key_text =
      prod.product_id.empty() ? std::string_view(prod.sku) : prod.product_id;
  const NameId key = p.names->intern(key_text);
  if (key == kNoName) return;
  for (auto& item : p.cart) {
    if (item.product_id == key) {
      item.quantity += prod.quantity;
      if (prod.price) item.price = prod.price;
      return;
    }
  }
  if (p.cart.size() >= CustomerProfile::kMaxCart) return;
  p.cart.push_back(CartItem{key, p.names->intern(prod.name), p.names->intern(prod.category),
                            prod.quantity, prod.price});
}

void cart_remove(CustomerProfile& p, const protocol::Product& prod) {
  std::string_view key_text =
      prod.product_id.empty() ? std::string_view(prod.sku) : prod.product_id;
  const NameId key = p.names->find(key_text);
  if (key == kNoName) return;
  for (auto it = p.cart.begin(); it != p.cart.end(); ++it) {
    if (it->product_id == key) {
      it->quantity -= prod.quantity;
      if (it->quantity <= 0) p.cart.erase(it);
      return;
    }
  }
}

void record_size(CustomerProfile& p, std::string_view category_text, std::string_view size_text,
                 TimeUs when) {
  if (size_text.empty()) return;
  const NameId size = p.names->intern(size_text);
  if (size == kNoName) return;
  // An empty category is a name too (sizes of uncategorised products).
  const NameId category = p.names->intern(category_text);
  if (category == kNoName && !category_text.empty()) return;
  for (auto& s : p.sizes) {
    if (s.category == category) {
      if (when >= s.when) {
        s.size = size;
        s.when = when;
      }
      return;
    }
  }
  if (p.sizes.size() >= CustomerProfile::kMaxSizes) {
    auto oldest = std::min_element(p.sizes.begin(), p.sizes.end(),
                                   [](const auto& a, const auto& b) { return a.when < b.when; });
    *oldest = SizeRecord{category, size, when};
    return;
  }
  p.sizes.push_back(SizeRecord{category, size, when});
}

}  // namespace

Money CustomerProfile::cart_value() const {
  Money v = 0;
  for (const auto& i : cart) v += i.price * i.quantity;
  return v;
}

double CustomerProfile::discount_share() const {
  const Money gross = monetary + discount_total;
  return gross > 0 ? static_cast<double>(discount_total) / static_cast<double>(gross) : 0.0;
}

const CategoryStat* CustomerProfile::category(std::string_view name_text) const {
  const NameId id = names->find(name_text);
  if (id == kNoName) return nullptr;
  for (const auto& c : categories)
    if (c.name == id) return &c;
  return nullptr;
}

void apply_event(CustomerProfile& p, const protocol::Event& ev) {
  if (!ev.user_id.empty() && ev.user_id == p.user_id) p.member = true;
  if (p.first_seen == 0 || ev.timestamp < p.first_seen) p.first_seen = ev.timestamp;
  p.last_seen = std::max(p.last_seen, ev.timestamp);
  if (!ev.traits.empty()) apply_traits(p, ev.traits);

  switch (ev.name) {
    case EventName::kCardSwiped: ++p.swipes; break;
    case EventName::kOrderCompleted: {
      ++p.orders;
      if (ev.channel == protocol::Channel::kPos)
        ++p.orders_pos;
      else if (ev.channel == protocol::Channel::kWeb || ev.channel == protocol::Channel::kApp)
        ++p.orders_web;
      p.monetary += ev.total;
      p.discount_total += ev.discount;
      p.points += ev.total / 100;
      for (const auto& prod : ev.products) {
        const Money line = prod.price * prod.quantity;
        add_stat(p, p.categories, CustomerProfile::kMaxCategories, prod.category, line,
                 ev.timestamp);
        add_stat(p, p.brands, CustomerProfile::kMaxBrands, prod.brand, line, ev.timestamp);
        record_size(p, prod.category, prod.size, ev.timestamp);
      }
      record_order_inputs(p, ev);  // counted in p.orders already; first/last order not moved yet
      if (p.first_order == 0 || ev.timestamp < p.first_order) p.first_order = ev.timestamp;
      p.last_order = std::max(p.last_order, ev.timestamp);
      // A purchase in any channel settles the online cart: its items are no longer waiting.
      // The block goes too: most profiles spend most of their life with an empty cart.
      p.cart.clear();
      p.cart.shrink_to_fit();
      p.cart_updated = ev.timestamp;
      break;
    }
    case EventName::kOrderRefunded:
      ++p.refunds;
      p.monetary -= ev.total;
      p.points = std::max<std::int64_t>(0, p.points - ev.total / 100);
      for (const auto& prod : ev.products)
        add_stat(p, p.categories, CustomerProfile::kMaxCategories, prod.category,
                 -prod.price * prod.quantity, ev.timestamp);
      break;
    case EventName::kProductAdded:
      for (const auto& prod : ev.products) cart_add(p, prod);
      p.cart_updated = ev.timestamp;
      break;
    case EventName::kProductRemoved:
      for (const auto& prod : ev.products) cart_remove(p, prod);
      p.cart_updated = ev.timestamp;
      break;
    case EventName::kProductViewed: ++p.web_views; break;
    default: break;
  }
  if (ev.type == EventType::kPage) ++p.web_views;
}

void merge_profile(CustomerProfile& p, const CustomerProfile& o) {
  if (o.first_seen && (p.first_seen == 0 || o.first_seen < p.first_seen))
    p.first_seen = o.first_seen;
  p.last_seen = std::max(p.last_seen, o.last_seen);
  if (o.first_order && (p.first_order == 0 || o.first_order < p.first_order))
    p.first_order = o.first_order;
  p.last_order = std::max(p.last_order, o.last_order);
  // The member's own traits win; the visitor's fill the gaps.
  protocol::Traits t = o.traits;
  merge_traits(t, p.traits);
  p.traits = t;
  if (!p.birthday_mmdd) p.birthday_mmdd = o.birthday_mmdd;
  if (p.traits.sms_opt_in) p.sms_consent = *p.traits.sms_opt_in;
  p.orders += o.orders;
  p.orders_pos += o.orders_pos;
  p.orders_web += o.orders_web;
  p.refunds += o.refunds;
  p.swipes += o.swipes;
  p.web_views += o.web_views;
  p.monetary += o.monetary;
  p.discount_total += o.discount_total;
  p.points += o.points;
  // `o` may come from another table (a profile sent by another shard): names
  // go across as text.
  for (const auto& c : o.categories) {
    add_stat(p, p.categories, CustomerProfile::kMaxCategories, o.name(c.name), c.spend, c.last);
    if (auto* mine = find_stat(p, p.categories, o.name(c.name))) {
      mine->lines += c.lines;
      mine->priced_lines += c.priced_lines;
      mine->log_price_sum += c.log_price_sum;
    }
  }
  // Model inputs: sums add up; the visitor's purchase days count as extra
  // occasions (same-day overlaps with the member's own days are not known).
  p.purchase_days += o.purchase_days;
  p.repeat_spend += o.repeat_spend;
  p.units += o.units;
  p.lines += o.lines;
  p.promo_lines += o.promo_lines;
  p.hour_sum += o.hour_sum;
  p.hour_sq_sum += o.hour_sq_sum;
  if (p.gap_count == 0) {
    p.gap_count = o.gap_count;
    p.gap_mean_days = o.gap_mean_days;
    p.gap_m2 = o.gap_m2;
  }
  for (const auto& st : o.stores) {
    const NameId store = p.names->intern(o.name(st.store_id));
    if (store == kNoName) continue;
    auto it = std::find_if(p.stores.begin(), p.stores.end(),
                           [&](const auto& x) { return x.store_id == store; });
    if (it != p.stores.end())
      it->orders += st.orders;
    else if (p.stores.size() < CustomerProfile::kMaxStores)
      p.stores.push_back(StoreOrders{store, st.orders});
  }
  for (const auto& r_other : o.recent_products) {
    const NameId r = p.names->intern(o.name(r_other));
    if (r == kNoName) continue;
    if (std::find(p.recent_products.begin(), p.recent_products.end(), r) != p.recent_products.end())
      continue;
    if (p.recent_products.size() >= CustomerProfile::kMaxRecentProducts) continue;
    p.recent_products.insert(p.recent_products.begin(), r);  // older than the member's own
  }
  for (const auto& b : o.brands)
    add_stat(p, p.brands, CustomerProfile::kMaxBrands, o.name(b.name), b.spend, b.last);
  if (o.cart_updated > p.cart_updated) {
    p.cart.clear();
    for (const auto& c : o.cart) {
      const NameId id = p.names->intern(o.name(c.product_id));
      if (id == kNoName) continue;
      p.cart.push_back(CartItem{id, p.names->intern(o.name(c.name)),
                                p.names->intern(o.name(c.category)), c.quantity, c.price});
    }
    p.cart_updated = o.cart_updated;
  }
  // Guardrails follow the person: contacts the visitor received count for the
  // member (cooldowns, caps), and timers the visitor armed keep running.
  auto rule_name = [&](NameId id) { return p.names->intern_guardrail(o.name(id)); };
  for (const auto& c : o.contacts) {
    if (p.contacts.size() >= CustomerProfile::kMaxContacts) p.contacts.erase(p.contacts.begin());
    p.contacts.push_back(ContactRecord{rule_name(c.rule), rule_name(c.channel), c.when});
  }
  std::stable_sort(p.contacts.begin(), p.contacts.end(),
                   [](const auto& a, const auto& b) { return a.when < b.when; });
  for (const auto& t_other : o.timers) {
    const PendingTimer t{rule_name(t_other.rule), t_other.fire_at};
    const bool have = std::any_of(p.timers.begin(), p.timers.end(),
                                  [&](const auto& x) { return x.rule == t.rule; });
    if (!have && p.timers.size() < CustomerProfile::kMaxTimers) p.timers.push_back(t);
  }
  // Attribution follows the person too: an order by the member credits a rule
  // that contacted the visitor (the newer contact of a rule wins).
  for (const auto& e_other : o.exposures) {
    RuleExposure e = e_other;
    e.rule = rule_name(e_other.rule);
    auto it = std::find_if(p.exposures.begin(), p.exposures.end(),
                           [&](const auto& x) { return x.rule == e.rule; });
    if (it != p.exposures.end()) {
      if (e.since > it->since) *it = e;
    } else if (p.exposures.size() < CustomerProfile::kMaxExposures) {
      p.exposures.push_back(e);
    }
  }
  for (const auto& s : o.sizes) record_size(p, o.name(s.category), o.name(s.size), s.when);
}

std::string profile_to_json(const CustomerProfile& p, TimeUs now) {
  using protocol::append_json_string;
  std::string o = "{\"userId\":";
  append_json_string(o, p.user_id);
  o += ",\"linkedIds\":[";
  for (std::size_t i = 0; i < p.links.size(); ++i) {
    if (i) o.push_back(',');
    append_json_string(o, p.links[i].other_id);
  }
  o += "],\"merges\":[";
  for (std::size_t i = 0; i < p.links.size(); ++i) {
    const auto& m = p.links[i];
    if (i) o.push_back(',');
    o += "{\"id\":";
    append_json_string(o, m.other_id);
    o += ",\"via\":";
    append_json_string(o, m.via);
    o += fmt::format(",\"at\":\"{}\",\"absorbed\":{}}}", format_iso8601(m.when),
                     m.absorbed ? "true" : "false");
  }
  o += "],\"traits\":{";
  bool first = true;
  auto trait = [&](std::string_view k, const std::string& v) {
    if (v.empty()) return;
    if (!first) o.push_back(',');
    first = false;
    append_json_string(o, k);
    o.push_back(':');
    append_json_string(o, v);
  };
  const auto& t = p.traits;
  trait("firstName", t.first_name);
  trait("lastName", t.last_name);
  trait("birthday", t.birthday);
  trait("gender", t.gender);
  trait("phone", t.phone);
  trait("email", t.email);
  trait("postalCode", t.postal_code);
  trait("homeStore", t.home_store);
  if (t.sms_opt_in) {
    if (!first) o.push_back(',');
    o += *t.sms_opt_in ? "\"smsOptIn\":true" : "\"smsOptIn\":false";
  }
  o += "},\"consent\":{\"sms\":";
  o += p.sms_consent ? "true" : "false";
  o += "}";
  const long long recency =
      p.last_order ? std::max<long long>(0, (now - p.last_order) / kUsPerDay) : -1;
  o += fmt::format(",\"rfm\":{{\"recencyDays\":{},\"frequency\":{},\"monetary\":{:.2f}}}",
                   recency < 0 ? std::string("null") : std::to_string(recency), p.orders,
                   static_cast<double>(p.monetary) / 100.0);
  o += fmt::format(",\"channels\":{{\"pos\":{},\"web\":{}}}", p.orders_pos, p.orders_web);
  o += ",\"categories\":{";
  for (std::size_t i = 0; i < p.categories.size(); ++i) {
    if (i) o.push_back(',');
    append_json_string(o, p.name(p.categories[i].name));
    o += fmt::format(":{:.2f}", static_cast<double>(p.categories[i].spend) / 100.0);
  }
  o += "},\"brands\":{";
  for (std::size_t i = 0; i < p.brands.size(); ++i) {
    if (i) o.push_back(',');
    append_json_string(o, p.name(p.brands[i].name));
    o += fmt::format(":{:.2f}", static_cast<double>(p.brands[i].spend) / 100.0);
  }
  o += fmt::format("}},\"discountShare\":{:.4f}", p.discount_share());
  o += ",\"cart\":{\"items\":[";
  for (std::size_t i = 0; i < p.cart.size(); ++i) {
    const auto& c = p.cart[i];
    if (i) o.push_back(',');
    o += "{\"productId\":";
    append_json_string(o, p.name(c.product_id));
    o += ",\"name\":";
    append_json_string(o, p.name(c.name));
    o += ",\"category\":";
    append_json_string(o, p.name(c.category));
    o += fmt::format(",\"price\":{:.2f},\"quantity\":{}}}", static_cast<double>(c.price) / 100.0,
                     c.quantity);
  }
  o += fmt::format("],\"value\":{:.2f}}}", static_cast<double>(p.cart_value()) / 100.0);
  o += ",\"sizes\":[";
  for (std::size_t i = 0; i < p.sizes.size(); ++i) {
    if (i) o.push_back(',');
    o += "{\"category\":";
    append_json_string(o, p.name(p.sizes[i].category));
    o += ",\"size\":";
    append_json_string(o, p.name(p.sizes[i].size));
    o += fmt::format(",\"at\":\"{}\"}}", format_iso8601(p.sizes[i].when));
  }
  o += fmt::format("],\"points\":{},\"swipes\":{},\"refunds\":{},\"webViews\":{}", p.points,
                   p.swipes, p.refunds, p.web_views);
  o += ",\"segment\":";
  if (p.segment == kNoName)
    o += "null";
  else
    append_json_string(o, p.name(p.segment));
  o += fmt::format(",\"clv\":{:.2f},\"pAlive\":{:.4f},\"expectedPurchases90d\":{:.4f}", p.clv,
                   p.p_alive, p.expected_purchases_90d);
  if (p.first_seen) o += fmt::format(",\"firstSeen\":\"{}\"", format_iso8601(p.first_seen));
  if (p.last_seen) o += fmt::format(",\"lastSeen\":\"{}\"", format_iso8601(p.last_seen));
  o += ",\"contacts\":[";
  for (std::size_t i = 0; i < p.contacts.size(); ++i) {
    if (i) o.push_back(',');
    o += "{\"rule\":";
    append_json_string(o, p.name(p.contacts[i].rule));
    o += ",\"channel\":";
    append_json_string(o, p.name(p.contacts[i].channel));
    o += fmt::format(",\"at\":\"{}\"}}", format_iso8601(p.contacts[i].when));
  }
  o += "]}";
  return o;
}

namespace {
// 3: live-model inputs (appended after format 2's fields; format 2 still reads,
// with those inputs at zero).
// 4 appends the rules' attribution windows (exposures) to 3; 3 and 2 are still read.
constexpr std::uint32_t kProfileFormat = 4;
constexpr std::uint32_t kProfileFormatV3 = 3;
constexpr std::uint32_t kProfileFormatV2 = 2;

// Names are written as text, not ids: a snapshot outlives the table, and a
// merge payload is read by another shard with its own table.
template <class Stat>
void write_stats(ByteWriter& w, const CustomerProfile& p, const CompactVec<Stat>& v) {
  w.u32(static_cast<std::uint32_t>(v.size()));
  for (const auto& s : v) {
    w.str(p.name(s.name));
    w.i64(s.spend);
    w.f64(s.affinity);
    w.i64(s.last);
  }
}
/// False when the count is over the list's cap (a damaged or foreign record:
/// reading on would take the entries' bytes for the fields after them).
template <class Stat>
[[nodiscard]] bool read_stats(ByteReader& r, CustomerProfile& p, CompactVec<Stat>& v,
                              std::size_t cap) {
  const std::uint32_t n = r.u32();
  if (n > cap) return false;
  v.resize(n);
  for (auto& s : v) {
    s.name = p.names->intern(r.str_view());
    s.spend = r.i64();
    s.affinity = r.f64();
    s.last = r.i64();
  }
  return true;
}
void write_model_inputs(ByteWriter& w, const CustomerProfile& p) {
  w.u32(static_cast<std::uint32_t>(p.categories.size()));
  for (const auto& c : p.categories) {
    w.u32(c.lines);
    w.u32(c.priced_lines);
    w.f64(c.log_price_sum);
  }
  w.u32(p.purchase_days);
  w.i64(p.repeat_spend);
  w.f64(p.units);
  w.u32(p.lines);
  w.u32(p.promo_lines);
  w.f64(p.hour_sum);
  w.f64(p.hour_sq_sum);
  w.u32(p.gap_count);
  w.f64(p.gap_mean_days);
  w.f64(p.gap_m2);
  w.u32(static_cast<std::uint32_t>(p.stores.size()));
  for (const auto& s : p.stores) {
    w.str(p.name(s.store_id));
    w.u32(s.orders);
  }
  w.u32(static_cast<std::uint32_t>(p.recent_products.size()));
  for (const auto& r : p.recent_products) w.str(p.name(r));
  w.f64(p.expected_purchases_90d);
}
bool read_model_inputs(ByteReader& r, CustomerProfile& p) {
  if (r.u32() != p.categories.size()) return false;
  for (auto& c : p.categories) {
    c.lines = r.u32();
    c.priced_lines = r.u32();
    c.log_price_sum = r.f64();
  }
  p.purchase_days = r.u32();
  p.repeat_spend = r.i64();
  p.units = r.f64();
  p.lines = r.u32();
  p.promo_lines = r.u32();
  p.hour_sum = r.f64();
  p.hour_sq_sum = r.f64();
  p.gap_count = r.u32();
  p.gap_mean_days = r.f64();
  p.gap_m2 = r.f64();
  const std::uint32_t ns = r.u32();
  if (ns > CustomerProfile::kMaxStores) return false;
  p.stores.resize(ns);
  for (auto& s : p.stores) {
    s.store_id = p.names->intern(r.str_view());
    s.orders = r.u32();
  }
  const std::uint32_t nr = r.u32();
  if (nr > CustomerProfile::kMaxRecentProducts) return false;
  p.recent_products.resize(nr);
  for (auto& s : p.recent_products) s = p.names->intern(r.str_view());
  p.expected_purchases_90d = r.f64();
  return true;
}
void write_traits(ByteWriter& w, const protocol::Traits& t) {
  w.str(t.first_name);
  w.str(t.last_name);
  w.str(t.birthday);
  w.str(t.gender);
  w.str(t.phone);
  w.str(t.email);
  w.str(t.postal_code);
  w.str(t.home_store);
  w.u8(t.sms_opt_in ? (*t.sms_opt_in ? 2 : 1) : 0);
}
void read_traits(ByteReader& r, protocol::Traits& t) {
  t.first_name = r.str();
  t.last_name = r.str();
  t.birthday = r.str();
  t.gender = r.str();
  t.phone = r.str();
  t.email = r.str();
  t.postal_code = r.str();
  t.home_store = r.str();
  const auto o = r.u8();
  if (o) t.sms_opt_in = (o == 2);
}
}  // namespace

void serialize_profile(const CustomerProfile& p, std::string& out) {
  ByteWriter w(out);
  w.u32(kProfileFormat);
  w.str(p.user_id);
  w.str(p.merged_into);
  w.u8(p.member);
  w.u32(static_cast<std::uint32_t>(p.links.size()));
  for (const auto& l : p.links) {
    w.str(l.other_id);
    w.i64(l.when);
    w.str(l.via);
    w.u8(l.absorbed);
  }
  write_traits(w, p.traits);
  w.u32(static_cast<std::uint32_t>(p.birthday_mmdd));
  w.u8(p.sms_consent);
  for (TimeUs t : {p.first_seen, p.last_seen, p.last_order, p.first_order}) w.i64(t);
  for (std::uint32_t c : {p.orders, p.orders_pos, p.orders_web, p.refunds, p.swipes, p.web_views})
    w.u32(c);
  w.i64(p.monetary);
  w.i64(p.discount_total);
  w.i64(p.points);
  write_stats(w, p, p.categories);
  write_stats(w, p, p.brands);
  w.u32(static_cast<std::uint32_t>(p.cart.size()));
  for (const auto& c : p.cart) {
    w.str(p.name(c.product_id));
    w.str(p.name(c.name));
    w.str(p.name(c.category));
    w.i64(c.price);
    w.u32(static_cast<std::uint32_t>(c.quantity));
  }
  w.i64(p.cart_updated);
  w.u32(static_cast<std::uint32_t>(p.sizes.size()));
  for (const auto& s : p.sizes) {
    w.str(p.name(s.category));
    w.str(p.name(s.size));
    w.i64(s.when);
  }
  w.u32(static_cast<std::uint32_t>(p.contacts.size()));
  for (const auto& c : p.contacts) {
    w.str(p.name(c.rule));
    w.str(p.name(c.channel));
    w.i64(c.when);
  }
  w.u32(static_cast<std::uint32_t>(p.timers.size()));
  for (const auto& t : p.timers) {
    w.str(p.name(t.rule));
    w.i64(t.fire_at);
  }
  w.str(p.name(p.segment));
  w.f64(p.clv);
  w.f64(p.p_alive);
  w.u32(static_cast<std::uint32_t>(p.last_birthday_greeting_year));
  write_model_inputs(w, p);
  w.u32(static_cast<std::uint32_t>(p.exposures.size()));
  for (const auto& e : p.exposures) {
    w.str(p.name(e.rule));
    w.i64(e.since);
    w.i64(e.until);
    w.u8(static_cast<std::uint8_t>((e.holdout ? 1 : 0) | (e.converted ? 2 : 0)));
  }
}

bool deserialize_profile(std::string_view in, CustomerProfile& p) {
  ByteReader r(in);
  const std::uint32_t format = r.u32();
  if (format != kProfileFormat && format != kProfileFormatV3 && format != kProfileFormatV2)
    return false;
  NameTable* names = p.names;  // the caller's table (the shard's) is kept
  p = CustomerProfile{};
  p.names = names;
  p.user_id = r.str();
  p.merged_into = r.str();
  p.member = r.u8() != 0;
  const std::uint32_t nl = r.u32();
  if (nl > CustomerProfile::kMaxLinks * 4) return false;
  p.links.resize(nl);
  for (auto& l : p.links) {
    l.other_id = r.str();
    l.when = r.i64();
    l.via = r.str();
    l.absorbed = r.u8() != 0;
  }
  read_traits(r, p.traits);
  p.birthday_mmdd = static_cast<int>(r.u32());
  p.sms_consent = r.u8() != 0;
  for (TimeUs* t : {&p.first_seen, &p.last_seen, &p.last_order, &p.first_order}) *t = r.i64();
  for (std::uint32_t* c :
       {&p.orders, &p.orders_pos, &p.orders_web, &p.refunds, &p.swipes, &p.web_views})
    *c = r.u32();
  p.monetary = r.i64();
  p.discount_total = r.i64();
  p.points = r.i64();
  if (!read_stats(r, p, p.categories, CustomerProfile::kMaxCategories) ||
      !read_stats(r, p, p.brands, CustomerProfile::kMaxBrands))
    return false;
  const std::uint32_t nc = r.u32();
  if (nc > CustomerProfile::kMaxCart) return false;
  p.cart.resize(nc);
  for (auto& c : p.cart) {
    c.product_id = p.names->intern(r.str_view());
    c.name = p.names->intern(r.str_view());
    c.category = p.names->intern(r.str_view());
    c.price = r.i64();
    c.quantity = static_cast<std::int32_t>(r.u32());
  }
  p.cart_updated = r.i64();
  const std::uint32_t ns = r.u32();
  if (ns > CustomerProfile::kMaxSizes) return false;
  p.sizes.resize(ns);
  for (auto& s : p.sizes) {
    s.category = p.names->intern(r.str_view());
    s.size = p.names->intern(r.str_view());
    s.when = r.i64();
  }
  const std::uint32_t nk = r.u32();
  if (nk > CustomerProfile::kMaxContacts) return false;
  p.contacts.resize(nk);
  for (auto& c : p.contacts) {
    c.rule = p.names->intern_guardrail(r.str_view());
    c.channel = p.names->intern_guardrail(r.str_view());
    c.when = r.i64();
  }
  const std::uint32_t nt = r.u32();
  if (nt > CustomerProfile::kMaxTimers) return false;
  p.timers.resize(nt);
  for (auto& t : p.timers) {
    t.rule = p.names->intern_guardrail(r.str_view());
    t.fire_at = r.i64();
  }
  p.segment = p.names->intern_guardrail(r.str_view());
  p.clv = r.f64();
  p.p_alive = r.f64();
  p.last_birthday_greeting_year = static_cast<int>(r.u32());
  if (format >= 3 && !read_model_inputs(r, p)) return false;
  if (format >= 4) {
    const std::uint32_t ne = r.u32();
    if (ne > CustomerProfile::kMaxExposures) return false;
    p.exposures.resize(ne);
    for (auto& e : p.exposures) {
      e.rule = p.names->intern_guardrail(r.str_view());
      e.since = r.i64();
      e.until = r.i64();
      const auto flags = r.u8();
      e.holdout = (flags & 1) != 0;
      e.converted = (flags & 2) != 0;
    }
  }
  return r.ok() && r.at_end();
}

}  // namespace storepulse::profile
