#include "storepulse/analytics/simulator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <ostream>
#include <random>

namespace storepulse::analytics {

using protocol::Channel;
using protocol::Event;
using protocol::EventName;
using protocol::EventType;
using protocol::Money;
using protocol::Product;

namespace {

constexpr TimeUs kUsPerHour = 3600LL * kUsPerSecond;
constexpr std::string_view kCurrency = "EUR";
// The catalogue and the weekly promotions do not depend on the run's seed, so
// product ids and promo codes mean the same thing in every simulated file.
constexpr std::uint64_t kCatalogSeed = 0x57013e9a15eULL;

// ---- random numbers ----------------------------------------------------------
// std::mt19937_64's sequence is fixed by the standard; the distributions in
// <random> are not, so every sampler below is written out by hand.
class SimRng {
 public:
  explicit SimRng(std::uint64_t seed) : gen_(seed) {}
  std::uint64_t bits() { return gen_(); }
  double uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }  // [0, 1)
  // [0, n): multiply-shift; the bias (n / 2^64) is far below anything we measure.
  int below(int n) {
    return static_cast<int>((static_cast<unsigned __int128>(gen_()) * static_cast<unsigned>(n)) >>
                            64);
  }
  int range(int lo, int hi) { return lo + below(hi - lo + 1); }  // inclusive
  bool chance(double p) { return uniform() < p; }
  double exponential(double mean) { return -mean * std::log1p(-uniform()); }
  double normal(double mu, double sd) {  // Box-Muller, one value per call
    double u1 = 1.0 - uniform();
    double u2 = uniform();
    return mu + sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double lognormal_factor(double sd) { return std::exp(normal(0, sd)); }
  int poisson(double lambda) {  // Knuth; lambdas here are small
    double limit = std::exp(-lambda), p = 1.0;
    int k = 0;
    do {
      ++k;
      p *= uniform();
    } while (p > limit && k < 1000);
    return k - 1;
  }
  template <typename Weights>
  int weighted(const Weights& w) {
    double sum = 0;
    for (double x : w) sum += x;
    double r = uniform() * sum;
    int i = 0;
    for (double x : w) {
      if (r < x) return i;
      r -= x;
      ++i;
    }
    return static_cast<int>(std::size(w)) - 1;
  }

 private:
  std::mt19937_64 gen_;
};

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// ---- catalogue ---------------------------------------------------------------
enum class Group : std::uint8_t { kFresh, kPantry, kNonFood };
enum class SizeKind : std::uint8_t { kNone, kAdult, kShoes, kChild };

struct CategoryDef {
  std::string_view name;
  Group group;
  Money base_price;
  SizeKind sizes;
  std::array<std::string_view, 5> items;
};

constexpr CategoryDef kCategories[] = {
    {"Produce",
     Group::kFresh,
     250,
     SizeKind::kNone,
     {"Apples", "Bananas", "Tomatoes", "Salad Mix", "Carrots"}},
    {"Dairy",
     Group::kFresh,
     220,
     SizeKind::kNone,
     {"Milk", "Yogurt", "Butter", "Cheddar", "Cream"}},
    {"Bakery",
     Group::kFresh,
     280,
     SizeKind::kNone,
     {"Sourdough", "Croissants", "Rye Bread", "Muffins", "Bagels"}},
    {"Beverages",
     Group::kFresh,
     350,
     SizeKind::kNone,
     {"Orange Juice", "Coffee Beans", "Sparkling Water", "Green Tea", "Cola"}},
    {"Pantry",
     Group::kPantry,
     400,
     SizeKind::kNone,
     {"Pasta", "Olive Oil", "Rice", "Cereal", "Tomato Sauce"}},
    {"Frozen",
     Group::kPantry,
     500,
     SizeKind::kNone,
     {"Frozen Peas", "Pizza", "Ice Cream", "Fish Fingers", "Berries"}},
    {"Household",
     Group::kPantry,
     600,
     SizeKind::kNone,
     {"Detergent", "Dish Soap", "Paper Towels", "Bin Bags", "Cleaner"}},
    {"Personal Care",
     Group::kPantry,
     700,
     SizeKind::kNone,
     {"Shampoo", "Toothpaste", "Shower Gel", "Deodorant", "Hand Soap"}},
    {"Women's Clothing",
     Group::kNonFood,
     4500,
     SizeKind::kAdult,
     {"Dress", "Blouse", "Jeans", "Cardigan", "Coat"}},
    {"Men's Clothing",
     Group::kNonFood,
     4500,
     SizeKind::kAdult,
     {"Shirt", "Chinos", "Jumper", "Jacket", "Polo"}},
    {"Children's Clothing",
     Group::kNonFood,
     2200,
     SizeKind::kChild,
     {"Kids Hoodie", "Kids Jeans", "Kids T-Shirt", "Kids Pyjamas", "Kids Raincoat"}},
    {"Shoes",
     Group::kNonFood,
     6500,
     SizeKind::kShoes,
     {"Trainers", "Boots", "Loafers", "Sandals", "Heels"}},
    {"Cosmetics",
     Group::kNonFood,
     2500,
     SizeKind::kNone,
     {"Lipstick", "Mascara", "Foundation", "Eyeshadow", "Blush"}},
    {"Skincare",
     Group::kNonFood,
     3000,
     SizeKind::kNone,
     {"Moisturiser", "Serum", "Cleanser", "Sunscreen", "Night Cream"}},
    {"Home & Kitchen",
     Group::kNonFood,
     3500,
     SizeKind::kNone,
     {"Saucepan", "Towel Set", "Candle", "Knife Set", "Cushion"}},
    {"Electronics",
     Group::kNonFood,
     9000,
     SizeKind::kNone,
     {"Headphones", "Speaker", "Charger", "Smart Watch", "Kettle"}},
    {"Toys",
     Group::kNonFood,
     2500,
     SizeKind::kNone,
     {"Puzzle", "Building Set", "Doll", "Board Game", "Toy Car"}},
    {"Sports",
     Group::kNonFood,
     4000,
     SizeKind::kNone,
     {"Yoga Mat", "Running Top", "Water Bottle", "Dumbbells", "Backpack"}},
};
constexpr int kCategoryCount = static_cast<int>(std::size(kCategories));
constexpr int kBrandsPerCategory = 6;  // two per price tier: budget, mid, premium
constexpr int kProductsPerBrand = 5;
constexpr double kTierPriceFactor[3] = {0.6, 1.0, 1.8};

constexpr std::string_view kBrandStems[18] = {"Nor",  "Vel", "Sun",  "Mar",  "Bel",  "Kin",
                                              "Alba", "Tor", "Lum",  "Oak",  "Fern", "Cobal",
                                              "Ria",  "Sol", "Bram", "Ives", "Juno", "Pell"};
constexpr std::string_view kBrandEnds[6] = {"a", "ex", "ora", "ton", "ine", "wood"};

struct CatalogProduct {
  std::string id;
  std::string name;
  std::string brand;
  int category = 0;
  int brand_index = 0;  // 0..kBrandsPerCategory-1 within the category
  int tier = 0;
  Money price = 0;
};

struct Catalog {
  std::vector<CatalogProduct> products;  // [category][brand][item]
  std::vector<std::string> brand_names;  // [category * kBrandsPerCategory + brand]
  const CatalogProduct& at(int cat, int brand, int item) const {
    return products[(cat * kBrandsPerCategory + brand) * kProductsPerBrand + item];
  }
};

const Catalog& catalog() {
  static const Catalog kCatalog = [] {
    Catalog c;
    SimRng rng(kCatalogSeed);
    for (int cat = 0; cat < kCategoryCount; ++cat) {
      for (int b = 0; b < kBrandsPerCategory; ++b) {
        int i = cat * kBrandsPerCategory + b;
        c.brand_names.push_back(fmt::format("{}{}", kBrandStems[i % 18], kBrandEnds[i / 18]));
      }
    }
    for (int cat = 0; cat < kCategoryCount; ++cat) {
      for (int b = 0; b < kBrandsPerCategory; ++b) {
        for (int item = 0; item < kProductsPerBrand; ++item) {
          CatalogProduct p;
          p.category = cat;
          p.brand_index = b;
          p.tier = b / 2;
          p.brand = c.brand_names[cat * kBrandsPerCategory + b];
          p.id = fmt::format("P{:02d}{}{}", cat, b, item);
          p.name = fmt::format("{} {}", p.brand, kCategories[cat].items[item]);
          double price = static_cast<double>(kCategories[cat].base_price) *
                         kTierPriceFactor[p.tier] * (0.75 + 0.5 * rng.uniform());
          // Shelf prices end in 9 cents, as in real stores.
          p.price = std::max<Money>(49, static_cast<Money>(std::llround(price / 10.0)) * 10 - 1);
          c.products.push_back(std::move(p));
        }
      }
    }
    return c;
  }();
  return kCatalog;
}

int product_index(const CatalogProduct& p) {
  return (p.category * kBrandsPerCategory + p.brand_index) * kProductsPerBrand +
         static_cast<int>(p.id.back() - '0');
}

// Weekly promotions: about one product in five is on promotion in a given week,
// at 10-50 % off. Deterministic in (product, week) so every shopper sees the same.
int promo_percent(int product_idx, std::int64_t week) {
  std::uint64_t h = splitmix64(kCatalogSeed ^ (static_cast<std::uint64_t>(product_idx) << 20) ^
                               static_cast<std::uint64_t>(week));
  if (h % 100 >= 20) return 0;
  constexpr int kPcts[] = {10, 20, 25, 30, 40, 50};
  return kPcts[(h >> 8) % 6];
}

std::int64_t week_of(TimeUs t) {
  // Weeks start on Monday: 1970-01-05 was a Monday (day 4).
  return (t / kUsPerDay - 4) / 7;
}

constexpr std::string_view kCampaigns[] = {"weekly-deals", "black-friday", "new-arrivals",
                                           "autumn-sale", "members-week"};
constexpr std::string_view kFemaleNames[] = {"Anna", "Chloe",  "Emma", "Grace", "Isla", "Kate",
                                             "Maya", "Olivia", "Ruby", "Tara",  "Vera", "Yasmin",
                                             "Zoe",  "Lena",   "Nina", "Priya"};
constexpr std::string_view kMaleNames[] = {"Ben",  "David", "Felix", "Hugo", "Jack",
                                           "Liam", "Noah",  "Paul",  "Sam",  "Umar",
                                           "Will", "Omar",  "Marco", "Oscar"};
constexpr std::string_view kLastNames[] = {
    "Smith",  "Jones",  "Brown",  "Taylor", "Wilson", "Davies", "Evans",  "Thomas", "Roberts",
    "Walker", "Wright", "Hughes", "Green",  "Hall",   "Wood",   "Clarke", "Patel",  "Khan",
    "Murphy", "Novak",  "Rossi",  "Silva",  "Meyer",  "Dubois", "Berg"};
constexpr std::string_view kAdultSizes[] = {"XS", "S", "M", "L", "XL"};

// Children's sizes by age: "2-3Y" for a child aged 2.
std::string child_size_for_age(int age) {
  return fmt::format("{}-{}Y", age, age + 1);
}

// ---- shoppers ------------------------------------------------------------------
struct TypeProfile {
  double trip_gap_days;  // mean days between store trips (supermarket: weekly slot)
  double extra_lines;    // basket lines = base_lines + Poisson(extra_lines)
  int base_lines;
  double tier_pref[3];      // budget, mid, premium
  double promo_seek;        // chance a line is picked from this week's promotions
  double brand_loyalty;     // chance a line is the shopper's favourite brand
  double home_store_share;  // share of trips at the home store
  double web_share;         // share of shoppers who use the web shop
  double web_gap_days;
  double distance_km_lo, distance_km_hi;
  double refund_rate;
};

constexpr TypeProfile kTypeProfiles[kShoppingTypeCount] = {
    // price-sensitive: promotions across many categories, budget brands, shops around
    {4.5, 4.0, 2, {0.75, 0.22, 0.03}, 0.70, 0.05, 0.45, 0.60, 6.0, 2.0, 12.0, 0.05},
    // supermarket-type: a weekly household shop with a large grocery basket
    {7.0, 10.0, 10, {0.30, 0.55, 0.15}, 0.12, 0.30, 0.92, 0.35, 14.0, 1.5, 8.0, 0.02},
    // brand-loyal: few favourite premium brands, small baskets, rarely on promotion
    {11.0, 1.0, 1, {0.03, 0.22, 0.75}, 0.02, 0.85, 0.75, 0.60, 8.0, 3.0, 25.0, 0.04},
    // nearby-resident: lives next to the home store, many small top-up trips
    {1.6, 1.0, 1, {0.35, 0.45, 0.20}, 0.10, 0.20, 0.98, 0.25, 15.0, 0.2, 1.2, 0.01},
};

// Category weights of a pure type, normalised to sum 1.
std::array<double, kCategoryCount> type_category_weights(ShoppingType t) {
  std::array<double, kCategoryCount> w{};
  double sum = 0;
  for (int c = 0; c < kCategoryCount; ++c) {
    Group g = kCategories[c].group;
    double v = 1.0;
    switch (t) {
      case ShoppingType::kPriceSensitive: v = 1.0; break;
      case ShoppingType::kSupermarket:
        v = g == Group::kFresh ? 3.0 : g == Group::kPantry ? 4.0 : 0.12;
        break;
      case ShoppingType::kBrandLoyal: v = g == Group::kNonFood ? 0.4 : 0.15; break;
      case ShoppingType::kNearbyResident:
        v = g == Group::kFresh ? 5.0 : g == Group::kPantry ? 1.2 : 0.08;
        break;
    }
    w[static_cast<std::size_t>(c)] = v;
    sum += v;
  }
  for (auto& v : w) v /= sum;
  return w;
}

// A profile `mix` of the way from `a` to `b` (rates blend geometrically).
TypeProfile blend_profiles(const TypeProfile& a, const TypeProfile& b, double mix) {
  auto lin = [mix](double x, double y) { return (1 - mix) * x + mix * y; };
  TypeProfile p = a;
  p.trip_gap_days = std::exp(lin(std::log(a.trip_gap_days), std::log(b.trip_gap_days)));
  p.extra_lines = lin(a.extra_lines + a.base_lines, b.extra_lines + b.base_lines) - a.base_lines;
  if (p.extra_lines < 0) {
    p.base_lines = std::max(1, a.base_lines + static_cast<int>(std::floor(p.extra_lines)));
    p.extra_lines = lin(a.extra_lines + a.base_lines, b.extra_lines + b.base_lines) - p.base_lines;
  }
  for (int i = 0; i < 3; ++i) p.tier_pref[i] = lin(a.tier_pref[i], b.tier_pref[i]);
  p.promo_seek = lin(a.promo_seek, b.promo_seek);
  p.brand_loyalty = lin(a.brand_loyalty, b.brand_loyalty);
  p.home_store_share = lin(a.home_store_share, b.home_store_share);
  p.refund_rate = lin(a.refund_rate, b.refund_rate);
  return p;
}

struct Shopper {
  int index = 0;
  bool member = true;
  ShoppingType type = ShoppingType::kPriceSensitive;
  TypeProfile profile{};  // the type's profile, blended with another type for mixed shoppers
  double mix = 0;         // how far the behaviour leans to another type (0 = pure)
  SimRng rng{0};
  std::string user_id;
  std::string anonymous_id;
  bool identified = false;
  bool aliased = false;
  bool web_user = false;
  int home_store = 0;
  double distance_km = 0;
  double trip_gap_days = 7;
  double web_gap_days = 10;
  double lines_factor = 1;
  int slot_weekday = 0;  // supermarket-type: the weekly shopping day (0 = Monday)
  double slot_hour = 10;
  std::array<double, kCategoryCount> category_weight{};
  std::array<int, kCategoryCount> favourite_brand{};
  std::string gender;
  std::string adult_size;
  std::string shoe_size;
  int child_age = -1;         // -1: no child
  TimeUs child_birthday = 0;  // the child grows a size on this date every year
  protocol::Traits traits;
  std::int64_t counter = 0;  // events generated (messageId suffix)
  std::int64_t orders = 0;
  std::vector<int> recently_viewed;  // product indexes viewed online, may be bought in store
  int reserved_product = -1;         // reserved online, collected on the next trip
  TimeUs next_trip = 0;
  TimeUs next_web = 0;
};

struct PendingEvent {
  TimeUs t;
  std::uint64_t seq;
  Event ev;
};
struct PendingLater {
  bool operator()(const PendingEvent& a, const PendingEvent& b) const {
    return a.t != b.t ? a.t > b.t : a.seq > b.seq;
  }
};

enum class Process : std::uint8_t { kTrip, kWeb };
struct Wakeup {
  TimeUs t;
  int shopper;
  Process process;
};
struct WakeupLater {
  bool operator()(const Wakeup& a, const Wakeup& b) const {
    if (a.t != b.t) return a.t > b.t;
    if (a.shopper != b.shopper) return a.shopper > b.shopper;
    return a.process > b.process;
  }
};

struct Line {
  int product;  // catalogue index
  std::string size;
  int quantity = 1;
  int promo_pct = 0;
};

}  // namespace

std::string_view shopping_type_name(ShoppingType t) {
  switch (t) {
    case ShoppingType::kPriceSensitive: return "price-sensitive";
    case ShoppingType::kSupermarket: return "supermarket-type";
    case ShoppingType::kBrandLoyal: return "brand-loyal";
    case ShoppingType::kNearbyResident: return "nearby-resident";
  }
  return "price-sensitive";
}

std::optional<ShoppingType> shopping_type_from(std::string_view name) {
  for (int i = 0; i < kShoppingTypeCount; ++i) {
    auto t = static_cast<ShoppingType>(i);
    if (shopping_type_name(t) == name) return t;
  }
  return std::nullopt;
}

TimeUs default_simulation_end() {
  return days_from_civil(2026, 11, 25) * kUsPerDay;
}

struct ShopperSimulator::Impl {
  SimulatorConfig cfg;
  TimeUs start = 0;
  TimeUs end = 0;
  std::vector<Shopper> shoppers;
  std::vector<ShopperTruth> truth;
  std::vector<Wakeup> wakeups;        // min-heap by time
  std::vector<PendingEvent> pending;  // min-heap by time
  std::uint64_t seq = 0;
  SimulatorStats stats;
  TimeUs last_emitted = 0;

  explicit Impl(const SimulatorConfig& c) : cfg(c) {
    cfg.customers = std::max(0, cfg.customers);
    cfg.days = std::max(1, cfg.days);
    cfg.stores = std::clamp(cfg.stores, 1, 99);
    end = cfg.end;
    start = end - static_cast<TimeUs>(cfg.days) * kUsPerDay;
    last_emitted = start;
    int visitors =
        static_cast<int>(std::lround(cfg.customers * std::max(0.0, cfg.anonymous_visitor_share)));
    shoppers.resize(static_cast<std::size_t>(cfg.customers + visitors));
    for (int i = 0; i < cfg.customers + visitors; ++i) init_shopper(i, i < cfg.customers);
    for (const auto& s : shoppers) {
      if (s.member) {
        push_wakeup({s.next_trip, s.index, Process::kTrip});
        truth.push_back(make_truth(s));
      }
      if (s.web_user) push_wakeup({s.next_web, s.index, Process::kWeb});
    }
  }

  std::string store_id(int s) const { return fmt::format("S{:02d}", s + 1); }

  ShopperTruth make_truth(const Shopper& s) const {
    ShopperTruth t;
    t.user_id = s.user_id;
    t.type = s.type;
    t.home_store = store_id(s.home_store);
    t.distance_km = std::round(s.distance_km * 10) / 10;
    t.web_user = s.web_user;
    t.anonymous_id = s.web_user ? s.anonymous_id : "";
    t.birthday = s.traits.birthday;
    if (s.child_age >= 0) {
      // The child's size at the end of the period.
      int age = s.child_age;
      if (s.child_birthday < end) ++age;
      t.child_size = child_size_for_age(age);
    }
    return t;
  }

  void init_shopper(int i, bool member) {
    Shopper& s = shoppers[static_cast<std::size_t>(i)];
    s.index = i;
    s.member = member;
    s.rng = SimRng(splitmix64(cfg.seed * 0x100000001b3ULL + static_cast<std::uint64_t>(i)));
    auto& rng = s.rng;
    s.type = static_cast<ShoppingType>(rng.weighted(cfg.type_share));
    const TypeProfile& tp = kTypeProfiles[static_cast<int>(s.type)];
    s.user_id = member ? fmt::format("M{:06d}", i + 1) : "";
    s.anonymous_id = fmt::format("v{:x}-{:06d}", cfg.seed & 0xffffff, i + 1);
    s.web_user = member ? rng.chance(tp.web_share) : true;
    s.home_store = rng.below(cfg.stores);
    s.distance_km = tp.distance_km_lo + (tp.distance_km_hi - tp.distance_km_lo) * rng.uniform();
    s.slot_weekday = rng.below(7);
    constexpr double kSlots[] = {9.5, 10.5, 11.5, 17.5, 18.5, 19.5};
    s.slot_hour = kSlots[rng.below(6)];

    s.gender = rng.chance(0.55) ? "female" : (rng.chance(0.95) ? "male" : "other");

    // Real shoppers are not pure types: about a third lean part-way towards
    // another type, which blurs the clusters the way real data does.
    int other = static_cast<int>(s.type);
    if (rng.chance(0.35)) {
      other =
          (static_cast<int>(s.type) + 1 + rng.below(kShoppingTypeCount - 1)) % kShoppingTypeCount;
      s.mix = 0.15 + 0.3 * rng.uniform();
    }
    s.profile = blend_profiles(tp, kTypeProfiles[other], s.mix);
    // Individual variation around the (blended) type.
    s.trip_gap_days = s.profile.trip_gap_days * rng.lognormal_factor(0.3);
    s.web_gap_days = tp.web_gap_days * rng.lognormal_factor(0.3);
    s.lines_factor = rng.lognormal_factor(0.25);
    auto own_w = type_category_weights(s.type);
    auto other_w = type_category_weights(static_cast<ShoppingType>(other));
    for (int c = 0; c < kCategoryCount; ++c) {
      auto cc = static_cast<std::size_t>(c);
      s.category_weight[cc] =
          ((1 - s.mix) * own_w[cc] + s.mix * other_w[cc]) * rng.lognormal_factor(0.3);
      // A favourite brand per category; brand-loyal shoppers favour a premium one.
      s.favourite_brand[cc] =
          s.type == ShoppingType::kBrandLoyal ? 4 + rng.below(2) : rng.below(kBrandsPerCategory);
    }
    if (s.type == ShoppingType::kBrandLoyal) {
      // Two or three favourite non-food categories carry most of the spend.
      int n = 2 + rng.below(2);
      for (int k = 0; k < n; ++k) {
        int c = 8 + rng.below(kCategoryCount - 8);
        s.category_weight[static_cast<std::size_t>(c)] += (1 - s.mix) * 0.6;
      }
    }
    // Shoppers mostly buy clothes and cosmetics for themselves (the cross-sell
    // rule looks for women who buy clothing but no cosmetics).
    if (s.gender == "male") {
      for (int c : {8, 12, 13}) s.category_weight[static_cast<std::size_t>(c)] *= 0.25;
    } else if (s.gender == "female") {
      s.category_weight[9] *= 0.3;
    }
    s.adult_size = std::string(kAdultSizes[rng.below(5)]);
    s.shoe_size = std::to_string(36 + rng.below(10));
    if (rng.chance(0.3)) {
      s.child_age = 2 + rng.below(9);
      s.child_birthday = start + static_cast<TimeUs>(rng.uniform() * 365.0 * kUsPerDay);
      s.category_weight[10] += s.type == ShoppingType::kBrandLoyal ? 1.5 : 0.5;
    }

    // Traits: birthdays spread evenly over the year.
    auto& t = s.traits;
    bool female = s.gender == "female" || (s.gender == "other" && rng.chance(0.5));
    t.gender = s.gender;
    t.first_name =
        female ? std::string(kFemaleNames[rng.below(static_cast<int>(std::size(kFemaleNames)))])
               : std::string(kMaleNames[rng.below(static_cast<int>(std::size(kMaleNames)))]);
    t.last_name = std::string(kLastNames[rng.below(static_cast<int>(std::size(kLastNames)))]);
    int year = 1946 + rng.below(60);
    int doy = rng.below(365);
    int by;
    unsigned bm, bd;
    civil_from_days(days_from_civil(year, 1, 1) + doy, by, bm, bd);
    t.birthday = fmt::format("{:04d}-{:02d}-{:02d}", by, bm, bd);
    // Unique per member: identity linking by phone must never merge two members.
    t.phone = fmt::format("+447{:09d}", 700000000 + i);
    std::string local = t.first_name + "." + t.last_name;
    std::transform(local.begin(), local.end(), local.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    t.email = fmt::format("{}{}@example.com", local, i + 1);
    // Postal code: the home store's district, then the distance ring (2.5 km steps).
    t.postal_code = fmt::format("{:02d}{:d}{:02d}", s.home_store + 10,
                                std::min(9, static_cast<int>(s.distance_km / 2.5)), rng.below(100));
    t.home_store = store_id(s.home_store);
    t.sms_opt_in = rng.chance(0.7);

    // Start mid-cycle, as if the shopper had been shopping before the period began.
    if (s.type == ShoppingType::kSupermarket) {
      s.next_trip = next_slot(s, start);
    } else {
      s.next_trip = at_hour(s, start + static_cast<TimeUs>(rng.uniform() * s.trip_gap_days *
                                                           static_cast<double>(kUsPerDay)));
    }
    s.next_web =
        start +
        static_cast<TimeUs>(rng.uniform() * s.web_gap_days * static_cast<double>(kUsPerDay)) +
        static_cast<TimeUs>((8 + 14 * rng.uniform()) * static_cast<double>(kUsPerHour));
  }

  // Local hour of a visit, by type (store time zone = UTC in the simulation).
  double trip_hour(Shopper& s) {
    auto& rng = s.rng;
    switch (s.type) {
      case ShoppingType::kPriceSensitive: return 10 + 10 * rng.uniform();
      case ShoppingType::kSupermarket: return std::clamp(rng.normal(s.slot_hour, 0.4), 8.0, 21.5);
      case ShoppingType::kBrandLoyal: return 12 + 6 * rng.uniform();
      case ShoppingType::kNearbyResident: return 7 + 15 * rng.uniform();
    }
    return 12;
  }

  TimeUs at_hour(Shopper& s, TimeUs day_time) {
    TimeUs day = day_time / kUsPerDay * kUsPerDay;
    return day + static_cast<TimeUs>(trip_hour(s) * static_cast<double>(kUsPerHour));
  }

  // The supermarket shopper's next weekly slot strictly after `after` (+3 days
  // so that a top-up trip does not replace the weekly shop).
  TimeUs next_slot(Shopper& s, TimeUs after) {
    std::int64_t day = after / kUsPerDay + 1;
    while (((day - 4) % 7 + 7) % 7 != s.slot_weekday) ++day;
    return at_hour(s, day * kUsPerDay);
  }

  void schedule_next_trip(Shopper& s, TimeUs now) {
    auto& rng = s.rng;
    TimeUs next;
    if (s.type == ShoppingType::kSupermarket) {
      next = next_slot(s, now + 3 * kUsPerDay);
      if (rng.chance(0.08)) next += 7 * kUsPerDay;  // missed a week
    } else {
      double gap = std::max(0.3, rng.exponential(s.trip_gap_days));
      next = at_hour(s, now + static_cast<TimeUs>(gap * static_cast<double>(kUsPerDay)));
      if (next <= now + kUsPerHour) next = at_hour(s, now + kUsPerDay);
    }
    s.next_trip = next;
  }

  void push_wakeup(Wakeup w) {
    if (w.t >= end) return;
    wakeups.push_back(w);
    std::push_heap(wakeups.begin(), wakeups.end(), WakeupLater{});
  }

  Event base_event(Shopper& s, TimeUs t, EventType type, EventName name, Channel ch) {
    Event ev;
    ev.type = type;
    ev.name = name;
    ev.channel = ch;
    ev.timestamp = t;
    ev.message_id = fmt::format("sim-{}-{}-{}", cfg.seed, s.index + 1, ++s.counter);
    return ev;
  }

  void emit(Event ev) {
    // Whole seconds read better and lose nothing; flooring keeps the order
    // guarantee of next() because wake-ups are compared against floored times.
    ev.timestamp = ev.timestamp / kUsPerSecond * kUsPerSecond;
    if (ev.timestamp >= end) return;  // after the simulated period: never happened
    TimeUs t = ev.timestamp;
    pending.push_back(PendingEvent{t, seq++, std::move(ev)});
    std::push_heap(pending.begin(), pending.end(), PendingLater{});
  }

  // Web events carry the visitor id always and the member id once logged in.
  void set_web_ids(Shopper& s, Event& ev) {
    ev.anonymous_id = s.anonymous_id;
    if (s.aliased) ev.user_id = s.user_id;
  }

  void emit_identify(Shopper& s, TimeUs t, Channel ch) {
    Event ev = base_event(s, t, EventType::kIdentify, EventName::kNone, ch);
    ev.user_id = s.user_id;
    if (ch == Channel::kWeb) ev.anonymous_id = s.anonymous_id;
    ev.traits = s.traits;
    emit(std::move(ev));
    s.identified = true;
  }

  Product to_product(const Line& l, TimeUs t) const {
    const CatalogProduct& cp = catalog().products[static_cast<std::size_t>(l.product)];
    Product p;
    p.product_id = cp.id;
    p.sku = l.size.empty() ? cp.id : fmt::format("{}-{}", cp.id, l.size);
    p.name = cp.name;
    p.category = std::string(kCategories[cp.category].name);
    p.brand = cp.brand;
    p.size = l.size;
    p.price = cp.price;
    p.quantity = l.quantity;
    if (l.promo_pct > 0) p.promo = fmt::format("W{}-{}OFF", week_of(t) % 100, l.promo_pct);
    return p;
  }

  std::string size_for(Shopper& s, int category, TimeUs t) {
    switch (kCategories[category].sizes) {
      case SizeKind::kNone: return "";
      case SizeKind::kAdult: return s.adult_size;
      case SizeKind::kShoes: return s.shoe_size;
      case SizeKind::kChild: {
        int age = s.child_age >= 0 ? s.child_age : 2 + s.rng.below(9);  // a gift
        if (s.child_age >= 0 && t >= s.child_birthday) ++age;
        return child_size_for_age(age);
      }
    }
    return "";
  }

  Line pick_line(Shopper& s, TimeUs t) {
    auto& rng = s.rng;
    const TypeProfile& tp = s.profile;
    const Catalog& cat = catalog();
    int c = rng.weighted(s.category_weight);
    int product = -1;
    std::int64_t week = week_of(t);
    if (rng.chance(tp.promo_seek)) {
      // Look for this week's promotions in the category, cheapest tiers first.
      int best = -1;
      for (int tries = 0; tries < 12 && best < 0; ++tries) {
        int b = rng.below(kBrandsPerCategory);
        if (s.type == ShoppingType::kPriceSensitive && b >= 4 && rng.chance(0.8)) continue;
        int idx = product_index(cat.at(c, b, rng.below(kProductsPerBrand)));
        if (promo_percent(idx, week) > 0) best = idx;
      }
      product = best;
    }
    if (product < 0) {
      int brand;
      if (rng.chance(tp.brand_loyalty)) {
        brand = s.favourite_brand[static_cast<std::size_t>(c)];
      } else {
        int tier = rng.weighted(tp.tier_pref);
        brand = tier * 2 + rng.below(2);
      }
      product = product_index(cat.at(c, brand, rng.below(kProductsPerBrand)));
    }
    Line l;
    l.product = product;
    l.size = size_for(s, c, t);
    Group g = kCategories[c].group;
    if (g != Group::kNonFood && s.type == ShoppingType::kSupermarket)
      l.quantity = 1 + rng.below(3);
    else if (g != Group::kNonFood && rng.chance(0.2))
      l.quantity = 2;
    l.promo_pct = promo_percent(product, week);
    return l;
  }

  int basket_lines(Shopper& s) {
    const TypeProfile& tp = s.profile;
    double extra = tp.extra_lines * s.lines_factor;
    return tp.base_lines + s.rng.poisson(extra);
  }

  // Order Completed (+ maybe a later Order Refunded) for `lines`.
  void emit_order(Shopper& s, TimeUs t, Channel ch, int store, const std::string& terminal,
                  const std::vector<Line>& lines) {
    Event ev = base_event(s, t, EventType::kTrack, EventName::kOrderCompleted, ch);
    if (ch == Channel::kWeb)
      set_web_ids(s, ev);
    else
      ev.user_id = s.user_id;
    if (store >= 0) ev.store_id = store_id(store);
    ev.terminal_id = terminal;
    ev.order_id = fmt::format("O{}-{}-{}", cfg.seed, s.index + 1, ++s.orders);
    ev.currency = std::string(kCurrency);
    Money gross = 0, discount = 0;
    std::vector<Money> line_discount;
    for (const auto& l : lines) {
      Product p = to_product(l, t);
      Money v = p.price * p.quantity;
      Money d = v * l.promo_pct / 100;
      gross += v;
      discount += d;
      line_discount.push_back(d);
      ev.products.push_back(std::move(p));
    }
    ev.discount = discount;
    ev.total = gross - discount;
    ev.has_total = true;
    const TypeProfile& tp = s.profile;
    if (!lines.empty() && s.rng.chance(tp.refund_rate)) {
      // A refund of one line some days later.
      std::size_t k = static_cast<std::size_t>(s.rng.below(static_cast<int>(lines.size())));
      TimeUs rt =
          t + static_cast<TimeUs>((1 + 13 * s.rng.uniform()) * static_cast<double>(kUsPerDay));
      Event rf = base_event(s, rt, EventType::kTrack, EventName::kOrderRefunded, ch);
      rf.user_id = s.user_id;
      if (ch == Channel::kWeb) rf.anonymous_id = s.anonymous_id;
      rf.store_id = ev.store_id;
      rf.order_id = ev.order_id;
      rf.currency = ev.currency;
      rf.products.push_back(ev.products[k]);
      rf.discount = line_discount[k];
      rf.total = rf.products[0].price * rf.products[0].quantity - line_discount[k];
      rf.has_total = true;
      emit(std::move(rf));
    }
    emit(std::move(ev));
  }

  void store_trip(Shopper& s, TimeUs t) {
    auto& rng = s.rng;
    const TypeProfile& tp = s.profile;
    int store = rng.chance(tp.home_store_share) || cfg.stores == 1
                    ? s.home_store
                    : (s.home_store + 1 + rng.below(cfg.stores - 1)) % cfg.stores;
    std::string terminal = fmt::format("{}-T{}", store_id(store), 1 + rng.below(4));
    // Enrolment at the till: the member's record arrives just before the first swipe.
    if (!s.identified) emit_identify(s, t, Channel::kPos);
    t += 2 * kUsPerSecond;
    Event swipe = base_event(s, t, EventType::kTrack, EventName::kCardSwiped, Channel::kPos);
    swipe.user_id = s.user_id;
    swipe.store_id = store_id(store);
    swipe.terminal_id = terminal;
    emit(std::move(swipe));

    std::vector<Line> lines;
    int n = basket_lines(s);
    for (int i = 0; i < n; ++i) lines.push_back(pick_line(s, t));
    // Browse online, buy in store: a product viewed on the web may end up in the basket.
    if (!s.recently_viewed.empty() && rng.chance(0.3)) {
      Line l;
      l.product = s.recently_viewed.back();
      const CatalogProduct& cp = catalog().products[static_cast<std::size_t>(l.product)];
      l.size = size_for(s, cp.category, t);
      l.promo_pct = promo_percent(l.product, week_of(t));
      lines.push_back(std::move(l));
      s.recently_viewed.clear();
    }
    if (s.reserved_product >= 0) {
      Line l;
      l.product = s.reserved_product;
      const CatalogProduct& cp = catalog().products[static_cast<std::size_t>(l.product)];
      l.size = size_for(s, cp.category, t);
      l.promo_pct = promo_percent(l.product, week_of(t));
      lines.push_back(std::move(l));
      s.reserved_product = -1;
    }
    TimeUs checkout = t +
                      static_cast<TimeUs>((20 + 10 * static_cast<double>(lines.size())) *
                                          rng.uniform() * kUsPerSecond) +
                      20 * kUsPerSecond;
    emit_order(s, checkout, Channel::kPos, store, terminal, lines);
  }

  void web_session(Shopper& s, TimeUs t) {
    auto& rng = s.rng;
    const Catalog& cat = catalog();
    TimeUs now = t;
    auto step = [&] {
      now += static_cast<TimeUs>((5 + 55 * rng.uniform()) * kUsPerSecond);
      return now;
    };
    auto web_event = [&](EventType type, EventName name) {
      Event ev = base_event(s, step(), type, name, Channel::kWeb);
      set_web_ids(s, ev);
      return ev;
    };
    auto login = [&] {
      if (!s.member || s.aliased) return;
      Event al = base_event(s, step(), EventType::kAlias, EventName::kNone, Channel::kWeb);
      al.user_id = s.user_id;
      al.previous_id = s.anonymous_id;
      emit(std::move(al));
      s.aliased = true;
      if (!s.identified) emit_identify(s, step(), Channel::kWeb);
    };
    if (s.member && !s.aliased && rng.chance(0.35)) login();

    Event home = web_event(EventType::kPage, EventName::kNone);
    home.url = std::string_view("/");  // a char-literal assign trips GCC 12's -Wrestrict
    emit(std::move(home));

    std::string campaign;
    bool price_minded = !s.member || s.type == ShoppingType::kPriceSensitive;
    if (rng.chance(0.35)) {
      campaign = std::string(kCampaigns[rng.below(static_cast<int>(std::size(kCampaigns)))]);
      Event pv = web_event(EventType::kTrack, EventName::kPromotionViewed);
      pv.campaign = campaign;
      pv.promotion_id = "promo-" + campaign;
      emit(std::move(pv));
      if (rng.chance(price_minded ? 0.6 : 0.15)) {
        Event pc = web_event(EventType::kTrack, EventName::kPromotionClicked);
        pc.campaign = campaign;
        pc.promotion_id = "promo-" + campaign;
        emit(std::move(pc));
      } else {
        campaign.clear();
      }
    }

    // Browse one category, view a few products.
    int c = s.member ? rng.weighted(s.category_weight) : rng.below(kCategoryCount);
    Event cp = web_event(EventType::kPage, EventName::kNone);
    std::string slug(kCategories[c].name);
    std::transform(slug.begin(), slug.end(), slug.begin(), [](unsigned char ch) {
      return std::isalnum(ch) ? static_cast<char>(std::tolower(ch)) : '-';
    });
    cp.url = "/c/" + slug;
    cp.campaign = campaign;
    emit(std::move(cp));
    std::vector<Line> viewed;
    int views = 1 + rng.poisson(2.0);
    for (int i = 0; i < views; ++i) {
      Line l;
      if (s.member) {
        l = pick_line(s, now);
        // Stay in the browsed category most of the time.
        if (rng.chance(0.7)) {
          const CatalogProduct& p = cat.products[static_cast<std::size_t>(l.product)];
          l.product = product_index(cat.at(c, p.brand_index, rng.below(kProductsPerBrand)));
          l.size = size_for(s, c, now);
          l.promo_pct = promo_percent(l.product, week_of(now));
        }
      } else {
        l.product =
            product_index(cat.at(c, rng.below(kBrandsPerCategory), rng.below(kProductsPerBrand)));
        l.size = size_for(s, c, now);
        l.promo_pct = promo_percent(l.product, week_of(now));
      }
      Event pv = web_event(EventType::kTrack, EventName::kProductViewed);
      pv.products.push_back(to_product(l, now));
      pv.url = "/p/" + pv.products[0].product_id;
      pv.campaign = campaign;
      emit(std::move(pv));
      viewed.push_back(std::move(l));
    }
    if (s.member) {
      s.recently_viewed.push_back(viewed.back().product);
      if (s.recently_viewed.size() > 4) s.recently_viewed.erase(s.recently_viewed.begin());
    }

    // Outcome: browse only, or a cart that is bought, abandoned or reserved for pickup.
    enum Outcome { kBrowse, kBuy, kAbandon, kReserve };
    std::array<double, 4> w = {0.45, 0.22, 0.25, 0.08};
    if (!s.member) w = {0.6, 0.0, 0.4, 0.0};  // visitors never log in
    auto outcome = static_cast<Outcome>(rng.weighted(w));
    if (outcome == kBrowse) return;

    if (outcome == kReserve) {
      login();
      const Line& l = viewed[static_cast<std::size_t>(rng.below(static_cast<int>(viewed.size())))];
      Event rs = web_event(EventType::kTrack, EventName::kProductReserved);
      rs.products.push_back(to_product(l, now));
      rs.store_id = store_id(s.home_store);
      emit(std::move(rs));
      s.reserved_product = l.product;
      // Collected in store within a few days, instead of the next regular trip if sooner.
      TimeUs pickup = at_hour(s, now + (1 + rng.below(3)) * kUsPerDay);
      if (pickup < s.next_trip) {
        s.next_trip = pickup;
        push_wakeup({pickup, s.index, Process::kTrip});
      }
      return;
    }

    std::vector<Line> cart;
    for (const auto& l : viewed) {
      if (!cart.empty() && !rng.chance(0.5)) continue;
      Event add = web_event(EventType::kTrack, EventName::kProductAdded);
      add.products.push_back(to_product(l, now));
      emit(std::move(add));
      cart.push_back(l);
    }
    if (cart.size() > 1 && rng.chance(0.2)) {
      Event rm = web_event(EventType::kTrack, EventName::kProductRemoved);
      rm.products.push_back(to_product(cart.back(), now));
      emit(std::move(rm));
      cart.pop_back();
    }
    Event cv = web_event(EventType::kTrack, EventName::kCartViewed);
    for (const auto& l : cart) cv.products.push_back(to_product(l, now));
    emit(std::move(cv));
    if (outcome == kAbandon) {
      if (rng.chance(0.3)) {
        Event cs = web_event(EventType::kTrack, EventName::kCheckoutStarted);
        for (const auto& l : cart) cs.products.push_back(to_product(l, now));
        emit(std::move(cs));
      }
      ++pending_abandoned;
      return;
    }
    login();  // checkout needs the member's login
    Event cs = web_event(EventType::kTrack, EventName::kCheckoutStarted);
    for (const auto& l : cart) cs.products.push_back(to_product(l, now));
    emit(std::move(cs));
    emit_order(s, step(), Channel::kWeb, -1, "", cart);
  }

  std::int64_t pending_abandoned = 0;

  void run_wakeup(const Wakeup& w) {
    Shopper& s = shoppers[static_cast<std::size_t>(w.shopper)];
    if (w.process == Process::kTrip) {
      if (w.t != s.next_trip) return;  // superseded by an earlier pickup trip
      store_trip(s, w.t);
      schedule_next_trip(s, w.t);
      push_wakeup({s.next_trip, s.index, Process::kTrip});
    } else {
      web_session(s, w.t);
      double gap = std::max(0.2, s.rng.exponential(s.web_gap_days));
      TimeUs day = (w.t + static_cast<TimeUs>(gap * static_cast<double>(kUsPerDay))) / kUsPerDay;
      TimeUs next = day * kUsPerDay + static_cast<TimeUs>((7 + 16 * s.rng.uniform()) *
                                                          static_cast<double>(kUsPerHour));
      if (next <= w.t) next = w.t + kUsPerDay;
      s.next_web = next;
      push_wakeup({next, s.index, Process::kWeb});
    }
  }

  bool next(Event& out) {
    for (;;) {
      // A pending event can go out once no session that starts earlier is left:
      // sessions only produce events at or after their start.
      if (!pending.empty() && (wakeups.empty() || pending.front().t < wakeups.front().t)) {
        std::pop_heap(pending.begin(), pending.end(), PendingLater{});
        out = std::move(pending.back().ev);
        pending.pop_back();
        count(out);
        return true;
      }
      if (wakeups.empty()) return false;
      std::pop_heap(wakeups.begin(), wakeups.end(), WakeupLater{});
      Wakeup w = wakeups.back();
      wakeups.pop_back();
      run_wakeup(w);
    }
  }

  void count(const Event& ev) {
    ++stats.events;
    last_emitted = ev.timestamp;
    stats.abandoned_carts = pending_abandoned;
    if (ev.name == EventName::kOrderCompleted) {
      ++stats.orders;
      if (ev.channel == Channel::kWeb) ++stats.web_orders;
      stats.revenue += ev.total;
    } else if (ev.name == EventName::kOrderRefunded) {
      ++stats.refunds;
      stats.refunded += ev.total;
    }
  }
};

ShopperSimulator::ShopperSimulator(const SimulatorConfig& config)
    : impl_(std::make_unique<Impl>(config)) {}
ShopperSimulator::~ShopperSimulator() = default;
ShopperSimulator::ShopperSimulator(ShopperSimulator&&) noexcept = default;
ShopperSimulator& ShopperSimulator::operator=(ShopperSimulator&&) noexcept = default;

bool ShopperSimulator::next(Event& out) {
  return impl_->next(out);
}
const std::vector<ShopperTruth>& ShopperSimulator::truth() const {
  return impl_->truth;
}
const SimulatorStats& ShopperSimulator::stats() const {
  return impl_->stats;
}
double ShopperSimulator::progress() const {
  double span = static_cast<double>(impl_->end - impl_->start);
  return std::clamp(static_cast<double>(impl_->last_emitted - impl_->start) / span, 0.0, 1.0);
}
TimeUs ShopperSimulator::start_time() const {
  return impl_->start;
}
TimeUs ShopperSimulator::end_time() const {
  return impl_->end;
}

void write_truth_csv(const std::vector<ShopperTruth>& truth, std::ostream& out) {
  out << "userId,type,homeStore,distanceKm,webUser,anonymousId,birthday,childSize\n";
  for (const auto& t : truth) {
    out << t.user_id << ',' << shopping_type_name(t.type) << ',' << t.home_store << ','
        << fmt::format("{:.1f}", t.distance_km) << ',' << (t.web_user ? "true" : "false") << ','
        << t.anonymous_id << ',' << t.birthday << ',' << t.child_size << '\n';
  }
}

}  // namespace storepulse::analytics
