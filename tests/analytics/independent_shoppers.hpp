#pragma once
// A second shopper generator, written for the segment tests without looking at
// `storepulse simulate` (src/analytics/simulator.cpp): the four shopping types
// of the retail brief with feature distributions of its own (gamma visit gaps,
// a regular weekly big shop, negative-binomial baskets, log-normal price tiers,
// unequal type shares), so a choice of k that only works on the simulator's
// shapes fails here. Its own random numbers (splitmix64, Box-Muller,
// Marsaglia-Tsang), so the events are the same with every standard library.
#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "storepulse/common/time.hpp"
#include "storepulse/protocol/event.hpp"

namespace storepulse::analytics::testing {

class IndependentShoppers {
 public:
  enum Type { kPriceSensitive = 0, kSupermarket = 1, kBrandLoyal = 2, kNearbyResident = 3 };
  static constexpr std::array<const char*, 4> kTypeNames = {"price-sensitive", "supermarket-type",
                                                            "brand-loyal", "nearby-resident"};

  struct Output {
    std::vector<protocol::Event> events;  // orders, in time order per member
    std::map<std::string, int> truth;     // userId -> Type
  };

  /// `paired`: the four types in two pairs that share most habits — the
  /// everyday shoppers (supermarket-type, nearby-resident: groceries at the
  /// home store) and the occasional ones (price-sensitive, brand-loyal:
  /// clothes, beauty, electronics at several stores) — each type still apart
  /// from its partner on its own signature. The mean silhouette merges one
  /// pair on this shape (k = 3).
  explicit IndependentShoppers(std::uint64_t seed, bool paired = false)
      : state_(seed * 0x9e3779b97f4a7c15ULL + 7), paired_(paired) {}

  Output generate(int members, int days = 182) {
    Output out;
    const TimeUs start = *parse_iso8601("2025-03-03T00:00:00Z");
    // Unequal shares: 30 % price-sensitive, 25 % nearby, 25 % supermarket, 20 % brand-loyal.
    for (int m = 0; m < members; ++m) {
      const double u = uniform();
      const int type = u < 0.30   ? kPriceSensitive
                       : u < 0.55 ? kNearbyResident
                       : u < 0.80 ? kSupermarket
                                  : kBrandLoyal;
      const std::string id = "I" + std::to_string(100000 + m);
      out.truth[id] = type;
      member(out.events, id, type, start, days);
    }
    return out;
  }

 private:
  struct Category {
    const char* name;
    double ref_cents;
    bool everyday;
  };
  static constexpr std::array<Category, 14> kCategories = {{
      {"Produce", 250, true},
      {"Dairy", 180, true},
      {"Bakery", 220, true},
      {"Beverages", 300, true},
      {"Pantry", 350, true},
      {"Frozen", 450, true},
      {"Household", 600, true},
      {"Apparel", 3500, false},
      {"Footwear", 5500, false},
      {"Beauty", 2200, false},
      {"Electronics", 9000, false},
      {"Home Decor", 2800, false},
      {"Toys", 1800, false},
      {"Sports", 4000, false},
  }};
  static constexpr int kBrandsPerCategory = 6;
  static constexpr int kStores = 8;

  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  int below(int n) { return static_cast<int>(uniform() * n); }
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double gamma(double shape, double mean) {  // Marsaglia-Tsang, scale = mean / shape
    if (shape < 1) return gamma(shape + 1, mean) * std::pow(uniform(), 1.0 / shape);
    const double d = shape - 1.0 / 3, c = 1 / std::sqrt(9 * d);
    for (;;) {
      double x = normal(), v = 1 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      const double u = uniform();
      if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v * mean / shape;
    }
  }
  int poisson(double mean) {  // Knuth for small means, normal approximation above
    if (mean > 40)
      return std::max(0, static_cast<int>(std::lround(mean + std::sqrt(mean) * normal())));
    const double limit = std::exp(-mean);
    int k = 0;
    for (double p = uniform(); p > limit; p *= uniform()) ++k;
    return k;
  }
  int neg_binomial(double mean, double shape) { return poisson(gamma(shape, mean)); }

  int pick_category(int type, const std::array<int, 2>& favourite) {
    switch (type) {
      case kPriceSensitive: return below(14);  // everything, wherever it is cheap
      case kSupermarket: return uniform() < 0.9 ? below(7) : 7 + below(7);
      case kBrandLoyal:
        return uniform() < 0.85 ? favourite[static_cast<std::size_t>(below(2))] : 7 + below(7);
      default: return uniform() < 0.88 ? below(4) : below(14);  // fresh food, a few other things
    }
  }

  void member(std::vector<protocol::Event>& events, const std::string& id, int type, TimeUs start,
              int days) {
    // Per-member traits around the type's centre.
    const bool pair = paired_;
    const double gap_mean = type == kPriceSensitive
                                ? (pair ? 12.0 : 6.5) * std::exp(0.25 * normal())
                            : type == kSupermarket ? 7.0 * std::exp(0.06 * normal())
                            : type == kBrandLoyal ? (pair ? 12.0 : 17.0) * std::exp(0.25 * normal())
                                                  : (pair ? 4.0 : 1.9) * std::exp(0.2 * normal());
    const double units_mean =
        type == kPriceSensitive ? (pair ? 2.0 : 7.0) * std::exp(0.2 * normal())
        : type == kSupermarket  ? (pair ? 14.0 : 30.0) * std::exp(0.15 * normal())
        : type == kBrandLoyal   ? (pair ? 2.0 : 1.6)
                                : (pair ? 5.0 : 2.6);
    const double price_tier = type == kPriceSensitive ? std::exp(std::log(0.7) + 0.08 * normal())
                              : type == kSupermarket  ? std::exp(0.08 * normal())
                              : type == kBrandLoyal   ? std::exp(std::log(1.5) + 0.1 * normal())
                                                      : std::exp(std::log(1.05) + 0.08 * normal());
    const double promo_p = type == kPriceSensitive ? 0.55
                           : type == kSupermarket  ? 0.15
                           : type == kBrandLoyal   ? 0.03
                                                   : 0.10;
    const double home_p = type == kPriceSensitive ? (pair ? 0.5 : 0.45)
                          : type == kSupermarket  ? (pair ? 0.95 : 0.9)
                          : type == kBrandLoyal   ? (pair ? 0.5 : 0.6)
                                                  : 0.97;
    const int home = below(kStores);
    const std::array<int, 2> favourite = {7 + below(7), 7 + below(7)};
    std::array<int, 14> brand{};
    for (auto& b : brand) b = below(kBrandsPerCategory);
    const double weekend_hour = 9.5 + uniform();

    double day = uniform() * std::min(7.0, gap_mean);
    int n = 0;
    while (day < days) {
      protocol::Event ev;
      ev.type = protocol::EventType::kTrack;
      ev.name = protocol::EventName::kOrderCompleted;
      ev.user_id = id;
      ev.message_id = id + "-" + std::to_string(n++);
      ev.channel = protocol::Channel::kPos;
      ev.store_id = "S" + std::to_string(uniform() < home_p ? home : below(kStores));
      double hour = type == kPriceSensitive ? (pair ? 14 + 2.5 * normal() : 17 + 3 * normal())
                    : type == kSupermarket
                        ? (pair ? 8 + 12 * uniform() : weekend_hour + 0.5 * normal())
                    : type == kBrandLoyal ? 14 + 2.5 * normal()
                                          : 7 + 15 * uniform();
      hour = std::min(23.5, std::max(6.0, hour));
      ev.timestamp = start + static_cast<TimeUs>(std::floor(day)) * kUsPerDay +
                     static_cast<TimeUs>(hour * 3600.0 * static_cast<double>(kUsPerSecond));
      int units =
          type == kSupermarket
              ? std::max(8, static_cast<int>(std::lround(units_mean * std::exp(0.2 * normal()))))
              : 1 + neg_binomial(units_mean - 1 + 1e-9, 2.0);
      protocol::Money gross = 0, discount = 0;
      while (units > 0) {
        const int q = std::min(units, 1 + below(type == kSupermarket ? 4 : 2));
        units -= q;
        const int c = pick_category(type, favourite);
        const auto& cat = kCategories[static_cast<std::size_t>(c)];
        protocol::Product p;
        p.category = cat.name;
        const bool loyal = type == kBrandLoyal ? uniform() < 0.9 : false;
        const int b = loyal ? brand[static_cast<std::size_t>(c)] : below(kBrandsPerCategory);
        p.brand = std::string(cat.name) + " brand " + std::to_string(b);
        p.product_id = p.brand + " item " + std::to_string(below(20));
        p.price = static_cast<protocol::Money>(
            std::llround(cat.ref_cents * price_tier * std::exp(0.1 * normal())));
        p.quantity = q;
        const protocol::Money line = p.price * q;
        gross += line;
        if (uniform() < promo_p) {
          p.promo = "P" + std::to_string(below(30));
          discount += static_cast<protocol::Money>(
              std::llround(static_cast<double>(line) * (type == kPriceSensitive ? 0.25 : 0.15)));
        }
        ev.products.push_back(std::move(p));
      }
      ev.discount = discount;
      ev.total = gross - discount;
      ev.has_total = true;
      events.push_back(std::move(ev));
      // the next visit
      day += type == kSupermarket      ? std::max(3.0, gap_mean + (pair ? 2.0 : 0.7) * normal())
             : type == kNearbyResident ? std::max(0.6, gamma(2.5, gap_mean))
             : type == kBrandLoyal     ? std::max(1.0, gamma(1.0, gap_mean))
                                       : std::max(1.0, gamma(1.5, gap_mean));
    }
  }

  std::uint64_t state_;
  bool paired_ = false;
};

}  // namespace storepulse::analytics::testing
