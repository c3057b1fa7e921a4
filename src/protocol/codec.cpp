#include "storepulse/protocol/codec.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

namespace storepulse::protocol {

namespace dom = simdjson::dom;

namespace {

struct NameEntry {
  std::string_view name;
  EventName id;
};
constexpr NameEntry kEventNames[] = {
    {"Card Swiped", EventName::kCardSwiped},
    {"Order Completed", EventName::kOrderCompleted},
    {"Order Refunded", EventName::kOrderRefunded},
    {"Product Viewed", EventName::kProductViewed},
    {"Product Added", EventName::kProductAdded},
    {"Product Removed", EventName::kProductRemoved},
    {"Cart Viewed", EventName::kCartViewed},
    {"Checkout Started", EventName::kCheckoutStarted},
    {"Promotion Viewed", EventName::kPromotionViewed},
    {"Promotion Clicked", EventName::kPromotionClicked},
    {"Product Reserved", EventName::kProductReserved},
};

Status bad_field(std::string_view field, std::string_view what) {
  return Status(ErrorCode::kBadField, fmt::format("{}: {}", field, what));
}

constexpr double kMaxMoney = 1e10;  // 100 million in currency units, in cents

// A field's dotted path for error details, e.g. "properties.products[0]" +
// "price". Kept as two parts and joined only when an error names it: building
// it for every field read was a heap allocation per product field.
struct FieldPath {
  std::string_view prefix;  // empty: `name` is the whole path
  std::string_view name;
  std::size_t index = kNoIndex;  // an array element: prefix[index].name
  static constexpr std::size_t kNoIndex = ~std::size_t{0};
  FieldPath(const char* whole) : name(whole) {}  // NOLINT: string literals are paths
  FieldPath(std::string_view p, std::string_view n) : prefix(p), name(n) {}
  FieldPath(std::string_view p, std::size_t i, std::string_view n) : prefix(p), name(n), index(i) {}
  std::string str() const {
    if (index != kNoIndex)
      return name.empty() ? fmt::format("{}[{}]", prefix, index)
                          : fmt::format("{}[{}].{}", prefix, index, name);
    return prefix.empty() ? std::string(name) : fmt::format("{}.{}", prefix, name);
  }
};

Status bad_path(const FieldPath& path, std::string_view what) {
  return bad_field(path.str(), what);
}

// Deepest nesting a message may have. Segment events need 4 (event → properties
// → products → product); the slack is for unknown fields senders add.
constexpr std::size_t kMaxJsonDepth = 32;

// ---- one walk over the parsed document --------------------------------------
// Every object the decoder reads has a fixed set of known keys. One walk over
// the DOM (walk_root) checks what the grammar does not (no repeated key in any
// object, the nesting depth) and, for each object the decoder reads, records
// where each known key's value is, so a field read is an array index. Until
// 2026-12-07 these were two walks, a generic duplicate-key walk over the whole
// tree and then a table per object searched key by key for every field read:
// together a third of the in-process pipeline's CPU.

// The known keys of one kind of object; a key's index is its position.
template <std::size_t N>
class KeySet {
 public:
  static_assert(N <= 32, "a Fields presence mask holds 32 keys");
  constexpr explicit KeySet(std::array<std::string_view, N> names) : names_(names) {
    for (std::size_t i = 0; i < N; ++i) {
      std::size_t h = hash(names_[i]);
      while (table_[h] != 0) h = (h + 1) & kMask;
      table_[h] = static_cast<std::uint8_t>(i + 1);
    }
  }
  /// The key's index, or -1 for a key the decoder does not read.
  int find(std::string_view k) const {
    if (k.empty()) return -1;
    for (std::size_t h = hash(k);; h = (h + 1) & kMask) {
      const std::uint8_t e = table_[h];
      if (e == 0) return -1;
      if (names_[e - 1] == k) return e - 1;
    }
  }

 private:
  static constexpr std::size_t kMask = 63;  // 64 buckets for at most 32 keys
  static constexpr std::size_t hash(std::string_view k) {
    return (k.size() * 31 + static_cast<unsigned char>(k.front()) * 7 +
            static_cast<unsigned char>(k[k.size() / 2]) * 3 +
            static_cast<unsigned char>(k.back())) &
           kMask;
  }
  std::array<std::string_view, N> names_;
  std::array<std::uint8_t, kMask + 1> table_{};  // 0 = empty, else index + 1
};

// Each kind's keys: the enum gives the index, the KeySet the spelling, in the same order.
namespace rk {  // the message itself
enum : int {
  kMessageId,
  kType,
  kUserId,
  kAnonymousId,
  kPreviousId,
  kTimestamp,
  kEvent,
  kContext,
  kTraits,
  kProperties,
  kLimit,
  kCount
};
}
constexpr KeySet<rk::kCount> kRootKeys({"messageId", "type", "userId", "anonymousId", "previousId",
                                        "timestamp", "event", "context", "traits", "properties",
                                        "limit"});
namespace ck {  // context
enum : int { kChannel, kStoreId, kTerminalId, kTimezone, kCampaign, kProductId, kCount };
}
constexpr KeySet<ck::kCount> kContextKeys({"channel", "storeId", "terminalId", "timezone",
                                           "campaign", "productId"});
namespace gk {  // context.campaign as an object
enum : int { kName, kCount };
}
constexpr KeySet<gk::kCount> kCampaignKeys({"name"});
namespace tk {  // traits
enum : int {
  kFirstName,
  kLastName,
  kBirthday,
  kGender,
  kPhone,
  kEmail,
  kPostalCode,
  kHomeStore,
  kSmsOptIn,
  kCount
};
}
constexpr KeySet<tk::kCount> kTraitsKeys({"firstName", "lastName", "birthday", "gender", "phone",
                                          "email", "postalCode", "homeStore", "smsOptIn"});
namespace pk {  // properties (with a single product's fields, as Product Viewed sends them)
enum : int {
  kOrderId,
  kOrderIdSnake,
  kCurrency,
  kPromotionId,
  kUrl,
  kTotal,
  kRevenue,
  kSubtotal,
  kDiscount,
  kTax,
  kShipping,
  kProducts,
  kProductId,
  kProductIdSnake,
  kSku,
  kName,
  kCategory,
  kBrand,
  kSize,
  kPrice,
  kQuantity,
  kCount
};
}
constexpr KeySet<pk::kCount> kPropertiesKeys(
    {"orderId",  "order_id", "currency", "promotionId", "url",      "total",     "revenue",
     "subtotal", "discount", "tax",      "shipping",    "products", "productId", "product_id",
     "sku",      "name",     "category", "brand",       "size",     "price",     "quantity"});
namespace lk {  // one element of properties.products
enum : int {
  kProductId,
  kProductIdSnake,
  kSku,
  kName,
  kCategory,
  kBrand,
  kSize,
  kPromo,
  kPrice,
  kQuantity,
  kCount
};
}
constexpr KeySet<lk::kCount> kProductKeys({"productId", "product_id", "sku", "name", "category",
                                           "brand", "size", "promo", "price", "quantity"});

// Where the known keys of one object are. A key that was sent is present,
// null included (lookup() treats null as absent).
template <std::size_t N>
struct Fields {
  std::uint32_t present = 0;
  dom::element value[N];
  bool find(int key, dom::element& out) const {
    if (((present >> key) & 1u) == 0) return false;
    out = value[key];
    return true;
  }
};

struct ProductFields {
  bool object = false;  // false: the element is not an object (decoding says so)
  Fields<lk::kCount> f;
};

// The objects of one message, as the walk found them; reused (no allocation once warm).
struct Shape {
  Fields<rk::kCount> root;
  bool context = false;  // context is an object
  Fields<ck::kCount> ctx;
  bool campaign = false;  // context.campaign is an object
  Fields<gk::kCount> camp;
  bool traits = false;
  Fields<tk::kCount> tr;
  bool properties = false;
  Fields<pk::kCount> props;
  std::vector<ProductFields> products;  // properties.products, up to max_products
  std::size_t max_products = 0;
};

// Prefixes `outer` to the path of a nested duplicate ("products" + "[0].price").
std::string join_path(std::string_view outer, const std::string& inner) {
  std::string out(outer);
  if (!inner.empty() && inner.front() != '[') out.push_back('.');
  out += inner;
  return out;
}

// Repeated keys among the keys of an object the decoder does not know: a fixed
// array and a quadratic scan, no allocation; past kSmall keys (unknown fields,
// up to the message limit) they are sorted instead, so 10,000 keys cannot cost
// 10^8 comparisons.
class KeyDupCheck {
 public:
  /// False when `k` was added before.
  bool add(std::string_view k) {
    if (n_ < kSmall) {
      for (std::size_t i = 0; i < n_; ++i)
        if (small_[i] == k) return false;
      small_[n_++] = k;
      return true;
    }
    if (large_.empty()) large_.assign(small_, small_ + kSmall);
    large_.push_back(k);
    ++n_;
    return true;
  }
  /// After the last add: a repeated key among the large set, or empty.
  std::optional<std::string_view> repeated() {
    if (large_.empty()) return std::nullopt;
    std::sort(large_.begin(), large_.end());
    auto dup = std::adjacent_find(large_.begin(), large_.end());
    if (dup == large_.end()) return std::nullopt;
    return *dup;
  }

 private:
  static constexpr std::size_t kSmall = 16;
  std::string_view small_[kSmall];
  std::vector<std::string_view> large_;
  std::size_t n_ = 0;
};

// Walks a value the decoder does not read; on the first repeated key in any
// object returns false with its dotted path in `path`; `too_deep` when nesting
// passes the cap.
bool unique_keys(dom::element e, std::size_t depth, std::string& path, bool& too_deep) {
  if (depth > kMaxJsonDepth) {
    too_deep = true;
    return false;
  }
  dom::object obj;
  dom::array arr;
  if (e.get_object().get(obj) == simdjson::SUCCESS) {
    KeyDupCheck keys;
    for (auto field : obj)
      if (!keys.add(field.key)) {
        path.assign(field.key);
        return false;
      }
    if (auto dup = keys.repeated()) {
      path.assign(*dup);
      return false;
    }
    for (auto field : obj) {
      if (!unique_keys(field.value, depth + 1, path, too_deep)) {
        if (!too_deep) path = join_path(field.key, path);
        return false;
      }
    }
  } else if (e.get_array().get(arr) == simdjson::SUCCESS) {
    std::size_t i = 0;
    for (auto item : arr) {
      if (!unique_keys(item, depth + 1, path, too_deep)) {
        if (!too_deep) path = join_path(fmt::format("[{}]", i), path);
        return false;
      }
      ++i;
    }
  }
  return true;
}

struct Walk {
  Shape& shape;
  std::string& path;
  bool& too_deep;
};

// One object of a known kind at `depth`: records its known keys in `f` and
// refuses a repeated key; then, in document order, hands each value of a known
// key to `child(index, value, depth + 1)` and checks every other value with
// unique_keys. The same checks, in the same order, as unique_keys on it.
template <std::size_t N, class Child>
bool walk_known(dom::object obj, const KeySet<N>& keys, Fields<N>& f, std::size_t depth, Walk& w,
                Child&& child) {
  f.present = 0;
  KeyDupCheck unknown;
  // The fields whose values are objects or arrays, for the second step (the
  // others hold no keys): most objects have none or one or two.
  struct Nested {
    std::string_view key;
    dom::element value;
    int id;
  };
  constexpr std::size_t kKeep = 8;
  Nested nested[kKeep];
  std::size_t n_nested = 0;
  for (dom::key_value_pair kv : obj) {
    const int id = keys.find(kv.key);
    if (id >= 0) {
      if ((f.present >> id) & 1u) {
        w.path.assign(kv.key);
        return false;
      }
      f.present |= 1u << id;
      f.value[id] = kv.value;
    } else if (!unknown.add(kv.key)) {
      w.path.assign(kv.key);
      return false;
    }
    const dom::element_type t = kv.value.type();
    if (t == dom::element_type::OBJECT || t == dom::element_type::ARRAY) {
      if (n_nested < kKeep) nested[n_nested] = {kv.key, kv.value, id};
      ++n_nested;
    }
  }
  if (auto dup = unknown.repeated()) {
    w.path.assign(*dup);
    return false;
  }
  auto visit = [&](std::string_view key, dom::element value, int id) {
    const bool ok =
        id >= 0 ? child(id, value, depth + 1) : unique_keys(value, depth + 1, w.path, w.too_deep);
    if (!ok && !w.too_deep) w.path = join_path(key, w.path);
    return ok;
  };
  if (n_nested <= kKeep) {
    for (std::size_t i = 0; i < n_nested; ++i)
      if (!visit(nested[i].key, nested[i].value, nested[i].id)) return false;
  } else {
    for (dom::key_value_pair kv : obj)
      if (!visit(kv.key, kv.value, keys.find(kv.key))) return false;
  }
  return true;
}

// A known key whose value the decoder reads as a scalar: an object or array
// there is refused by decoding, but its keys are checked first, as anywhere.
bool walk_scalar(dom::element v, std::size_t depth, Walk& w) {
  const dom::element_type t = v.type();
  if (t != dom::element_type::OBJECT && t != dom::element_type::ARRAY) return true;
  return unique_keys(v, depth, w.path, w.too_deep);
}

bool walk_products(dom::element v, std::size_t depth, Walk& w) {
  dom::array arr;
  if (v.get_array().get(arr)) return walk_scalar(v, depth, w);
  auto& products = w.shape.products;
  std::size_t i = 0;
  for (dom::element item : arr) {
    dom::object o;
    bool ok;
    // Past max_products decoding refuses the array; its items are still checked.
    if (i < w.shape.max_products && item.get_object().get(o) == simdjson::SUCCESS) {
      ProductFields& pf = products.emplace_back();
      pf.object = true;
      ok = walk_known(o, kProductKeys, pf.f, depth + 1, w,
                      [&](int, dom::element val, std::size_t d) { return walk_scalar(val, d, w); });
    } else {
      if (i < w.shape.max_products) products.emplace_back().object = false;
      ok = unique_keys(item, depth + 1, w.path, w.too_deep);
    }
    if (!ok) {
      if (!w.too_deep) w.path = join_path(fmt::format("[{}]", i), w.path);
      return false;
    }
    ++i;
  }
  return true;
}

bool walk_root(dom::element root, Shape& sh, std::string& path, bool& too_deep) {
  Walk w{sh, path, too_deep};
  sh.context = sh.campaign = sh.traits = sh.properties = false;
  sh.products.clear();
  dom::object obj;
  if (root.get_object().get(obj)) {
    sh.root.present = 0;
    return unique_keys(root, 1, path, too_deep);
  }
  return walk_known(obj, kRootKeys, sh.root, 1, w, [&](int id, dom::element v, std::size_t d) {
    dom::object o;
    switch (id) {
      case rk::kContext:
        if (v.get_object().get(o)) return walk_scalar(v, d, w);
        sh.context = true;
        return walk_known(
            o, kContextKeys, sh.ctx, d, w, [&](int cid, dom::element cv, std::size_t cd) {
              dom::object co;
              if (cid != ck::kCampaign || cv.get_object().get(co)) return walk_scalar(cv, cd, w);
              sh.campaign = true;
              return walk_known(
                  co, kCampaignKeys, sh.camp, cd, w,
                  [&](int, dom::element gv, std::size_t gd) { return walk_scalar(gv, gd, w); });
            });
      case rk::kTraits:
        if (v.get_object().get(o)) return walk_scalar(v, d, w);
        sh.traits = true;
        return walk_known(o, kTraitsKeys, sh.tr, d, w, [&](int, dom::element tv, std::size_t td) {
          return walk_scalar(tv, td, w);
        });
      case rk::kProperties:
        if (v.get_object().get(o)) return walk_scalar(v, d, w);
        sh.properties = true;
        return walk_known(
            o, kPropertiesKeys, sh.props, d, w, [&](int pid, dom::element pv, std::size_t pd) {
              return pid == pk::kProducts ? walk_products(pv, pd, w) : walk_scalar(pv, pd, w);
            });
      default: return walk_scalar(v, d, w);
    }
  });
}

// Null counts as absent. Returns false when absent.
template <std::size_t N>
bool lookup(const Fields<N>& obj, int key, dom::element& out) {
  return obj.find(key, out) && !out.is_null();
}

// Reads an optional string field as a view into the parser's buffer (valid
// until the next decode); a non-string or over-long value is an error.
template <std::size_t N>
Status read_view(const Fields<N>& obj, int key, const FieldPath& path, std::string_view& out,
                 std::size_t max_len) {
  dom::element field;
  if (!lookup(obj, key, field)) return Status::ok();
  if (field.get_string().get(out)) return bad_path(path, "expected a string");
  if (out.size() > max_len) return bad_path(path, fmt::format("longer than {} bytes", max_len));
  return Status::ok();
}

// Reads an optional string field into `out`.
template <std::size_t N>
Status read_string(const Fields<N>& obj, int key, const FieldPath& path, std::string& out,
                   std::size_t max_len) {
  std::string_view sv;
  Status s = read_view(obj, key, path, sv, max_len);
  if (s) out.assign(sv);
  return s;
}

// Reads an optional number (in currency units) into cents.
template <std::size_t N>
Status read_money(const Fields<N>& obj, int key, const FieldPath& path, Money& out, bool& present) {
  present = false;
  dom::element field;
  if (!lookup(obj, key, field)) return Status::ok();
  double v;
  if (field.get_double().get(v)) return bad_path(path, "expected a number");
  if (!std::isfinite(v) || std::fabs(v * 100) > kMaxMoney) return bad_path(path, "out of range");
  if (v < 0) return bad_path(path, "must not be negative");
  out = static_cast<Money>(std::llround(v * 100));
  present = true;
  return Status::ok();
}

// Product `i` of properties.products; error paths are "properties.products[i].<field>".
Status read_product(const ProductFields& pf, std::size_t i, const DecodeLimits& lim, Product& p,
                    bool& priced) {
  constexpr std::string_view kArr = "properties.products";
  if (!pf.object) return bad_path(FieldPath{kArr, i, ""}, "expected an object");
  const auto& obj = pf.f;
  Status s;
  if (!(s = read_string(obj, lk::kProductId, {kArr, i, "productId"}, p.product_id, lim.max_string)))
    return s;
  // Segment's spec spells it product_id; productId wins when both are sent.
  if (p.product_id.empty() && !(s = read_string(obj, lk::kProductIdSnake, {kArr, i, "product_id"},
                                                p.product_id, lim.max_string)))
    return s;
  if (!(s = read_string(obj, lk::kSku, {kArr, i, "sku"}, p.sku, lim.max_string))) return s;
  if (!(s = read_string(obj, lk::kName, {kArr, i, "name"}, p.name, lim.max_string))) return s;
  if (!(s = read_string(obj, lk::kCategory, {kArr, i, "category"}, p.category, lim.max_string)))
    return s;
  if (!(s = read_string(obj, lk::kBrand, {kArr, i, "brand"}, p.brand, lim.max_string))) return s;
  if (!(s = read_string(obj, lk::kSize, {kArr, i, "size"}, p.size, lim.max_string))) return s;
  if (!(s = read_string(obj, lk::kPromo, {kArr, i, "promo"}, p.promo, lim.max_string))) return s;
  if (!(s = read_money(obj, lk::kPrice, {kArr, i, "price"}, p.price, priced))) return s;
  dom::element q;
  if (lookup(obj, lk::kQuantity, q)) {
    double qd;
    if (q.get_double().get(qd))
      return bad_path(FieldPath{kArr, i, "quantity"}, "expected a number");
    if (qd != std::floor(qd) || qd < 1 || qd > 100000)
      return bad_path(FieldPath{kArr, i, "quantity"}, "must be a whole number from 1 to 100000");
    p.quantity = static_cast<std::int32_t>(qd);
  }
  if (p.product_id.empty() && p.sku.empty() && p.name.empty())
    return bad_path(FieldPath{kArr, i, ""}, "needs productId, sku or name");
  return Status::ok();
}

Status read_traits_object(const Fields<tk::kCount>& t_obj, const DecodeLimits& lim, Traits& t) {
  Status s;
  if (!(s = read_string(t_obj, tk::kFirstName, "traits.firstName", t.first_name, lim.max_string)))
    return s;
  if (!(s = read_string(t_obj, tk::kLastName, "traits.lastName", t.last_name, lim.max_string)))
    return s;
  if (!(s = read_string(t_obj, tk::kBirthday, "traits.birthday", t.birthday, lim.max_string)))
    return s;
  // A date, or a date-time as JavaScript's Date serializes one (Segment's SDKs:
  // "1990-11-26T00:00:00.000Z"). A birthday set as local midnight east of UTC
  // arrives as the evening before ("1990-11-25T22:00:00.000Z" from UTC+2): the
  // date is that of the nearest midnight, right for every offset within ±12 h.
  if (t.birthday.size() > 10) {
    if (auto at = parse_iso8601(t.birthday)) {
      constexpr TimeUs kHalfDay = 12LL * 3600 * 1'000'000;
      const std::int64_t day =
          (*at + kHalfDay) / 86'400'000'000LL - ((*at + kHalfDay) % 86'400'000'000LL < 0 ? 1 : 0);
      int y;
      unsigned m, d;
      civil_from_days(day, y, m, d);
      if (y >= 0 && y <= 9999) t.birthday = fmt::format("{:04}-{:02}-{:02}", y, m, d);
    }
  }
  if (!t.birthday.empty() && parse_birthday_mmdd(t.birthday) == 0)
    return bad_field("traits.birthday",
                     "expected a date YYYY-MM-DD (or an ISO-8601 date-time; its date is used)");
  if (!(s = read_string(t_obj, tk::kGender, "traits.gender", t.gender, lim.max_string))) return s;
  if (!(s = read_string(t_obj, tk::kPhone, "traits.phone", t.phone, lim.max_string))) return s;
  if (!(s = read_string(t_obj, tk::kEmail, "traits.email", t.email, lim.max_string))) return s;
  if (!(s = read_string(t_obj, tk::kPostalCode, "traits.postalCode", t.postal_code,
                        lim.max_string)))
    return s;
  if (!(s = read_string(t_obj, tk::kHomeStore, "traits.homeStore", t.home_store, lim.max_string)))
    return s;
  dom::element opt;
  if (lookup(t_obj, tk::kSmsOptIn, opt)) {
    bool b;
    if (opt.get_bool().get(b)) return bad_field("traits.smsOptIn", "expected true or false");
    t.sms_opt_in = b;
  }
  return Status::ok();
}

// Ids become map keys, log fields and journal keys: control characters in them
// would split log lines and make look-alike customers.
Status check_id(std::string_view path, std::string_view id) {
  for (unsigned char c : id)
    if (c < 0x20 || c == 0x7f) return bad_field(path, "must not contain control characters");
  return Status::ok();
}

}  // namespace

std::string_view event_type_name(EventType t) {
  switch (t) {
    case EventType::kTrack: return "track";
    case EventType::kIdentify: return "identify";
    case EventType::kPage: return "page";
    case EventType::kAlias: return "alias";
  }
  return "track";
}

std::string_view event_name_str(EventName n) {
  for (const auto& e : kEventNames)
    if (e.id == n) return e.name;
  return "";
}

std::optional<EventName> event_name_from(std::string_view s) {
  for (const auto& e : kEventNames)
    if (e.name == s) return e.id;
  return std::nullopt;
}

std::string_view channel_name(Channel c) {
  switch (c) {
    case Channel::kPos: return "pos";
    case Channel::kWeb: return "web";
    case Channel::kApp: return "app";
    case Channel::kUnknown: return "unknown";
  }
  return "unknown";
}

std::optional<Channel> channel_from(std::string_view s) {
  if (s == "pos") return Channel::kPos;
  if (s == "web") return Channel::kWeb;
  if (s == "app") return Channel::kApp;
  return std::nullopt;
}

std::size_t decode_padding() {
  return simdjson::SIMDJSON_PADDING;
}

struct EventDecoder::Parser {
  // A message must be one unambiguous JSON document: full RFC 8259 grammar,
  // nothing after the value, nesting depth, no repeated keys. The DOM parse
  // checks the grammar, one walk over the DOM (walk_root) the rest, and the
  // fields are then read from that same DOM through the walk's Shape. (Until
  // 2026-11-27 they were read by a second, on-demand pass over the text, which
  // cost about as much as the DOM parse again.)
  simdjson::dom::parser validator{1 << 20};
  Shape shape;
};

EventDecoder::EventDecoder(DecodeLimits limits) : limits_(limits), parser_(new Parser) {}
EventDecoder::~EventDecoder() {
  delete parser_;
}

Status EventDecoder::decode(std::string_view json, TimeUs now, Event& out) {
  return decode_impl(json, now, out, nullptr, nullptr);
}

Result<MessageKind> EventDecoder::decode_message(std::string_view json, TimeUs now, Event& ev,
                                                 RecommendRequest& req) {
  MessageKind kind = MessageKind::kEvent;
  Status s = decode_impl(json, now, ev, &req, &kind);
  if (!s) return s;
  return kind;
}

Status EventDecoder::decode_impl(std::string_view json, TimeUs now, Event& out,
                                 RecommendRequest* req, MessageKind* kind) {
  out.clear();  // keeps the strings' capacity: a reused Event allocates nothing once warm
  total_mismatch_ = false;
  const auto& lim = limits_;
  if (json.size() > parser_->validator.max_capacity())
    return Status(ErrorCode::kTooLarge, "message larger than the parser capacity");
  simdjson::dom::element root;
  {
    // The caller guarantees the padding, so no copy (realloc_if_needed = false).
    const auto err = parser_->validator.parse(json.data(), json.size(), false).get(root);
    if (err == simdjson::DEPTH_ERROR)
      return Status(ErrorCode::kBadJson,
                    fmt::format("nested too deep (more than {} levels)", kMaxJsonDepth));
    if (err)
      return Status(ErrorCode::kBadJson,
                    fmt::format("not valid JSON: {}", simdjson::error_message(err)));
    std::string dup;
    bool too_deep = false;
    parser_->shape.max_products = lim.max_products;
    if (!walk_root(root, parser_->shape, dup, too_deep)) {
      if (too_deep)
        return Status(ErrorCode::kBadJson,
                      fmt::format("nested too deep (more than {} levels)", kMaxJsonDepth));
      // Name the message in the error when its id itself is not the repeated key.
      std::string_view mid;
      if (dup != "messageId" && root.is_object() && !root["messageId"].get_string().get(mid) &&
          mid.size() <= 128)
        out.message_id.assign(mid);
      return bad_field(dup, "duplicate key");
    }
  }
  dom::object root_obj;
  if (root.get_object().get(root_obj)) return Status(ErrorCode::kBadJson, "expected a JSON object");
  const Shape& sh = parser_->shape;
  const auto& obj = sh.root;

  Status s;
  // messageId first, so that later errors can name it.
  if (!(s = read_string(obj, rk::kMessageId, "messageId", out.message_id, 128))) return s;

  std::string_view type;
  if (!(s = read_view(obj, rk::kType, "type", type, 32))) return s;
  if (type.empty()) return bad_field("type", "missing (track, identify, page, alias or recommend)");

  if (type == "recommend") {
    if (!req)
      return Status(ErrorCode::kUnknownEvent, "type: recommend is only accepted on /v1/web");
    if (!(s = read_string(obj, rk::kUserId, "userId", req->user_id, 128))) return s;
    if (!(s = read_string(obj, rk::kAnonymousId, "anonymousId", req->anonymous_id, 128))) return s;
    dom::element lf;
    if (obj.find(rk::kLimit, lf)) {
      std::int64_t l;
      if (lf.get_int64().get(l) || l < 1 || l > 50)
        return bad_field("limit", "expected a whole number from 1 to 50");
      req->limit = static_cast<int>(l);
    }
    dom::element ctx;
    if (obj.find(rk::kContext, ctx)) {
      if (!sh.context) return bad_field("context", "expected an object");
      if (!(s = read_string(sh.ctx, ck::kProductId, "context.productId", req->product_id, 128)))
        return s;
    }
    if (req->user_id.empty() && req->anonymous_id.empty())
      return bad_field("userId", "recommend needs userId or anonymousId");
    *kind = MessageKind::kRecommend;
    return Status::ok();
  }

  if (type == "track")
    out.type = EventType::kTrack;
  else if (type == "identify")
    out.type = EventType::kIdentify;
  else if (type == "page")
    out.type = EventType::kPage;
  else if (type == "alias")
    out.type = EventType::kAlias;
  else
    return Status(ErrorCode::kUnknownEvent,
                  fmt::format("type: unknown type '{}' (track, identify, page, alias)", type));

  if (out.message_id.empty()) return bad_field("messageId", "missing");
  if (!(s = read_string(obj, rk::kUserId, "userId", out.user_id, 128))) return s;
  if (!(s = read_string(obj, rk::kAnonymousId, "anonymousId", out.anonymous_id, 128))) return s;
  if (!(s = read_string(obj, rk::kPreviousId, "previousId", out.previous_id, 128))) return s;
  if (!(s = check_id("messageId", out.message_id)) || !(s = check_id("userId", out.user_id)) ||
      !(s = check_id("anonymousId", out.anonymous_id)) ||
      !(s = check_id("previousId", out.previous_id)))
    return s;
  if (out.type == EventType::kAlias) {
    if (out.user_id.empty()) return bad_field("userId", "alias needs userId");
    if (out.previous_id.empty()) return bad_field("previousId", "alias needs previousId");
    if (out.previous_id == out.user_id) return bad_field("previousId", "must differ from userId");
  } else if (out.user_id.empty() && out.anonymous_id.empty()) {
    return bad_field("userId", "needs userId or anonymousId");
  }

  std::string_view ts;
  if (!(s = read_view(obj, rk::kTimestamp, "timestamp", ts, 64))) return s;
  if (ts.empty()) {
    out.timestamp = now;
  } else {
    auto t = parse_iso8601(ts);
    if (!t) return bad_field("timestamp", "expected an ISO-8601 time such as 2026-11-26T10:00:00Z");
    if (*t > now + lim.max_future_us) return bad_field("timestamp", "too far in the future");
    if (*t < now - lim.max_past_us) return bad_field("timestamp", "too far in the past");
    out.timestamp = *t;
  }

  if (out.type == EventType::kTrack) {
    std::string_view name;
    if (!(s = read_view(obj, rk::kEvent, "event", name, 128))) return s;
    if (name.empty()) return bad_field("event", "missing for type track");
    auto n = event_name_from(name);
    if (!n) return Status(ErrorCode::kUnknownEvent, fmt::format("event: unknown event '{}'", name));
    out.name = *n;
  }

  // context
  if (dom::element ctx; lookup(obj, rk::kContext, ctx)) {
    if (!sh.context) return bad_field("context", "expected an object");
    const auto& c = sh.ctx;
    std::string_view ch;
    if (!(s = read_view(c, ck::kChannel, "context.channel", ch, 16))) return s;
    if (!ch.empty()) {
      auto cv = channel_from(ch);
      if (!cv) return bad_field("context.channel", "expected pos, web or app");
      out.channel = *cv;
    }
    if (!(s = read_string(c, ck::kStoreId, "context.storeId", out.store_id, 64))) return s;
    if (!(s = read_string(c, ck::kTerminalId, "context.terminalId", out.terminal_id, 64))) return s;
    if (!(s = read_string(c, ck::kTimezone, "context.timezone", out.timezone, 64))) return s;
    if (dom::element camp; lookup(c, ck::kCampaign, camp)) {
      // Segment sends campaign as an object {name, source, medium}; accept a string too.
      const dom::element_type jt = camp.type();
      if (jt == dom::element_type::STRING) {
        std::string_view sv;
        if (camp.get_string().get(sv) || sv.size() > 128)
          return bad_field("context.campaign", "expected a short string");
        out.campaign.assign(sv);
      } else if (jt == dom::element_type::OBJECT) {
        if (!sh.campaign) return bad_field("context.campaign", "expected an object");
        if (!(s = read_string(sh.camp, gk::kName, "context.campaign.name", out.campaign, 128)))
          return s;
      } else {
        return bad_field("context.campaign", "expected a string or an object");
      }
    }
  }

  // traits (identify; also accepted on any event)
  if (dom::element tf; lookup(obj, rk::kTraits, tf)) {
    if (!sh.traits) return bad_field("traits", "expected an object");
    if (!(s = read_traits_object(sh.tr, lim, out.traits))) return s;
  }

  // properties
  Money tax = 0, shipping = 0;
  bool all_priced = true;  // every product states its price: the total can be checked
  if (dom::element pf; lookup(obj, rk::kProperties, pf)) {
    if (!sh.properties) return bad_field("properties", "expected an object");
    const auto& p = sh.props;
    if (!(s = read_string(p, pk::kOrderId, "properties.orderId", out.order_id, 128))) return s;
    if (out.order_id.empty() &&
        !(s = read_string(p, pk::kOrderIdSnake, "properties.order_id", out.order_id, 128)))
      return s;
    if (!(s = read_string(p, pk::kCurrency, "properties.currency", out.currency, 8))) return s;
    if (!(s = read_string(p, pk::kPromotionId, "properties.promotionId", out.promotion_id, 128)))
      return s;
    if (!(s = read_string(p, pk::kUrl, "properties.url", out.url, lim.max_string))) return s;
    bool present = false;
    if (!(s = read_money(p, pk::kTotal, "properties.total", out.total, out.has_total))) return s;
    // Segment's revenue (else subtotal) stands in for a total that was not sent;
    // the spec has it without tax and shipping, which are added back below.
    Money revenue = 0;
    bool has_revenue = false;
    if (!out.has_total &&
        !(s = read_money(p, pk::kRevenue, "properties.revenue", revenue, has_revenue)))
      return s;
    if (!out.has_total && !has_revenue &&
        !(s = read_money(p, pk::kSubtotal, "properties.subtotal", revenue, has_revenue)))
      return s;
    if (!(s = read_money(p, pk::kDiscount, "properties.discount", out.discount, present))) return s;
    // Segment's tax and shipping: not stored, only part of what a total may add up to.
    if (!(s = read_money(p, pk::kTax, "properties.tax", tax, present))) return s;
    if (!(s = read_money(p, pk::kShipping, "properties.shipping", shipping, present))) return s;
    if (has_revenue) {
      out.total = revenue + tax + shipping;  // each at most kMaxMoney: no overflow
      out.has_total = true;
    }

    dom::element prods;
    if (lookup(p, pk::kProducts, prods)) {
      dom::array arr;
      if (prods.get_array().get(arr)) return bad_field("properties.products", "expected an array");
      if (arr.size() > lim.max_products)
        return bad_field("properties.products",
                         fmt::format("more than {} products", lim.max_products));
      // The walk recorded every item (there are at most max_products).
      out.products.reserve(sh.products.size());
      for (std::size_t i = 0; i < sh.products.size(); ++i) {
        Product& prod = out.products.emplace_back();
        bool priced = false;
        if (!(s = read_product(sh.products[i], i, lim, prod, priced))) return s;
        all_priced &= priced;
      }
    } else if (out.name == EventName::kProductViewed || out.name == EventName::kProductAdded ||
               out.name == EventName::kProductRemoved || out.name == EventName::kProductReserved) {
      // Single-product events carry the product's fields in properties itself.
      Product prod;
      if (!(s = read_string(p, pk::kProductId, "properties.productId", prod.product_id, 128)))
        return s;
      if (prod.product_id.empty() &&
          !(s = read_string(p, pk::kProductIdSnake, "properties.product_id", prod.product_id, 128)))
        return s;
      if (!(s = read_string(p, pk::kSku, "properties.sku", prod.sku, 128))) return s;
      if (!(s = read_string(p, pk::kName, "properties.name", prod.name, lim.max_string))) return s;
      if (!(s = read_string(p, pk::kCategory, "properties.category", prod.category,
                            lim.max_string)))
        return s;
      if (!(s = read_string(p, pk::kBrand, "properties.brand", prod.brand, lim.max_string)))
        return s;
      if (!(s = read_string(p, pk::kSize, "properties.size", prod.size, 64))) return s;
      if (!(s = read_money(p, pk::kPrice, "properties.price", prod.price, present))) return s;
      all_priced = present;
      if (dom::element q; lookup(p, pk::kQuantity, q)) {
        double qd;
        if (q.get_double().get(qd) || qd != std::floor(qd) || qd < 1 || qd > 100000)
          return bad_field("properties.quantity", "must be a whole number from 1 to 100000");
        prod.quantity = static_cast<std::int32_t>(qd);
      }
      if (!prod.product_id.empty() || !prod.sku.empty() || !prod.name.empty())
        out.products.push_back(std::move(prod));
    }
  }

  // Per-event requirements.
  switch (out.name) {
    case EventName::kOrderCompleted:
    case EventName::kOrderRefunded: {
      // Σ price × quantity, stopped at the money cap: 1000s of lines at the
      // largest price and quantity would overflow the profile's totals.
      Money value = 0;
      for (const auto& prod : out.products) {
        value += prod.price * prod.quantity;  // each line ≤ 1e10 × 1e5: no overflow
        if (static_cast<double>(value) > kMaxMoney)
          return bad_field("properties.products", "order value out of range");
      }
      if (!out.has_total) {
        if (out.products.empty())
          return bad_field("properties.total", "missing (and no products to sum)");
        out.total = value - out.discount;
        if (out.total < 0)
          return bad_field("properties.discount", "larger than the products' value");
        out.has_total = true;
      } else if (out.name == EventName::kOrderCompleted && !out.products.empty() && all_priced) {
        // A stated total is compared with its lines: total = Σ price × quantity −
        // discount + tax + shipping, within max(5 cents, 1 %) for rounding. Refunds
        // are exempt: a partial or goodwill refund legitimately differs.
        const Money expected = value - out.discount + tax + shipping;
        if (expected < 0)
          return bad_field("properties.discount", "larger than the products' value");
        // Past that the stated total is still the truth (a gift card, a deposit,
        // a till's own rounding): accepted, and flagged for the caller's metric.
        const Money slack = std::max<Money>(5, expected / 100);
        if (out.total > expected + slack || out.total < expected - slack) total_mismatch_ = true;
      }
      break;
    }
    case EventName::kProductViewed:
    case EventName::kProductAdded:
    case EventName::kProductRemoved:
    case EventName::kProductReserved:
      if (out.products.empty()) return bad_field("properties.productId", "missing");
      break;
    default: break;
  }

  return Status::ok();
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void append_ack(std::string& out, std::string_view message_id) {
  out += R"({"type":"ack","messageId":)";
  append_json_string(out, message_id);
  out.push_back('}');
}

std::string encode_ack(std::string_view message_id) {
  std::string out;
  // One block: the ids of real senders need no escaping (escaped ones grow it).
  out.reserve(30 + message_id.size());
  append_ack(out, message_id);
  return out;
}

std::string encode_actions(std::string_view message_id, const std::vector<Action>& actions) {
  std::string out = R"({"type":"actions","messageId":)";
  append_json_string(out, message_id);
  out += R"(,"actions":[)";
  bool first = true;
  for (const auto& a : actions) {
    if (!first) out.push_back(',');
    first = false;
    out += R"({"rule":)";
    append_json_string(out, a.rule);
    out += R"(,"channel":)";
    append_json_string(out, a.channel);
    out += R"(,"text":)";
    append_json_string(out, a.text);
    if (!a.offer_json.empty()) {
      out += R"(,"offer":)";
      out += a.offer_json;
    }
    out.push_back('}');
  }
  out += "]}";
  return out;
}

std::string encode_error(std::string_view message_id, ErrorCode code, std::string_view detail) {
  std::string out = R"({"type":"error","messageId":)";
  if (message_id.empty())
    out += "null";
  else
    append_json_string(out, message_id);
  out += R"(,"code":)";
  append_json_string(out, error_code_name(code));
  out += R"(,"detail":)";
  append_json_string(out, detail);
  out.push_back('}');
  return out;
}

namespace {
void money_field(std::string& out, std::string_view key, Money m) {
  out += fmt::format(",\"{}\":{}.{:02d}", key, m / 100, m % 100);
}
void str_field(std::string& out, std::string_view key, std::string_view v, bool& first) {
  if (v.empty()) return;
  if (!first) out.push_back(',');
  first = false;
  append_json_string(out, key);
  out.push_back(':');
  append_json_string(out, v);
}
}  // namespace

std::string encode_event(const Event& ev) {
  std::string out = "{";
  bool first = true;
  str_field(out, "type", event_type_name(ev.type), first);
  str_field(out, "messageId", ev.message_id, first);
  str_field(out, "timestamp", format_iso8601(ev.timestamp), first);
  str_field(out, "userId", ev.user_id, first);
  str_field(out, "anonymousId", ev.anonymous_id, first);
  str_field(out, "previousId", ev.previous_id, first);
  if (ev.type == EventType::kTrack) str_field(out, "event", event_name_str(ev.name), first);
  out += ",\"context\":{";
  bool cfirst = true;
  if (ev.channel != Channel::kUnknown) str_field(out, "channel", channel_name(ev.channel), cfirst);
  str_field(out, "storeId", ev.store_id, cfirst);
  str_field(out, "terminalId", ev.terminal_id, cfirst);
  str_field(out, "campaign", ev.campaign, cfirst);
  str_field(out, "timezone", ev.timezone, cfirst);
  out.push_back('}');
  if (!ev.traits.empty()) {
    const auto& t = ev.traits;
    out += ",\"traits\":{";
    bool tfirst = true;
    str_field(out, "firstName", t.first_name, tfirst);
    str_field(out, "lastName", t.last_name, tfirst);
    str_field(out, "birthday", t.birthday, tfirst);
    str_field(out, "gender", t.gender, tfirst);
    str_field(out, "phone", t.phone, tfirst);
    str_field(out, "email", t.email, tfirst);
    str_field(out, "postalCode", t.postal_code, tfirst);
    str_field(out, "homeStore", t.home_store, tfirst);
    if (t.sms_opt_in) {
      if (!tfirst) out.push_back(',');
      out += *t.sms_opt_in ? "\"smsOptIn\":true" : "\"smsOptIn\":false";
    }
    out.push_back('}');
  }
  if (ev.type == EventType::kTrack || ev.type == EventType::kPage) {
    out += ",\"properties\":{";
    bool pfirst = true;
    str_field(out, "orderId", ev.order_id, pfirst);
    str_field(out, "currency", ev.currency, pfirst);
    str_field(out, "promotionId", ev.promotion_id, pfirst);
    str_field(out, "url", ev.url, pfirst);
    std::string tail;
    if (ev.has_total) {
      money_field(tail, "total", ev.total);
      money_field(tail, "discount", ev.discount);
    }
    if (!ev.products.empty()) {
      tail += ",\"products\":[";
      bool f = true;
      for (const auto& p : ev.products) {
        if (!f) tail.push_back(',');
        f = false;
        tail.push_back('{');
        bool pf = true;
        str_field(tail, "productId", p.product_id, pf);
        str_field(tail, "sku", p.sku, pf);
        str_field(tail, "name", p.name, pf);
        str_field(tail, "category", p.category, pf);
        str_field(tail, "brand", p.brand, pf);
        str_field(tail, "size", p.size, pf);
        str_field(tail, "promo", p.promo, pf);
        if (pf)
          tail += "\"quantity\":" + std::to_string(p.quantity);
        else
          tail += ",\"quantity\":" + std::to_string(p.quantity);
        money_field(tail, "price", p.price);
        tail.push_back('}');
      }
      tail.push_back(']');
    }
    if (pfirst && !tail.empty()) tail.erase(0, 1);  // no leading comma
    out += tail;
    out.push_back('}');
  }
  out.push_back('}');
  return out;
}

}  // namespace storepulse::protocol
