#pragma once
// Synthetic store + web shoppers with known (hidden) shopping types.
//
// Used by `storepulse simulate`, by the analytics tests (the truth is what the
// segmentation must recover) and, later, by the load generator. Every random
// draw comes from std::mt19937_64 (whose output the standard fixes) through
// hand-written sampling functions, so a seed gives byte-identical events on any
// standard library. Event times are derived from `SimulatorConfig::end`, never
// from the wall clock.
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/common/time.hpp"
#include "storepulse/protocol/event.hpp"

namespace storepulse::analytics {

/// The hidden shopping types of RETAIL.md "Shopping types".
enum class ShoppingType : std::uint8_t {
  kPriceSensitive,
  kSupermarket,
  kBrandLoyal,
  kNearbyResident
};
inline constexpr int kShoppingTypeCount = 4;

/// "price-sensitive", "supermarket-type", "brand-loyal", "nearby-resident".
std::string_view shopping_type_name(ShoppingType t);
std::optional<ShoppingType> shopping_type_from(std::string_view name);

/// 2026-11-25T00:00:00Z: the default end of the simulated period.
TimeUs default_simulation_end();

struct SimulatorConfig {
  int customers = 1000;  // members (card holders); each has a hidden type
  int days = 90;         // simulated period is [end - days, end)
  std::uint64_t seed = 1;
  TimeUs end = default_simulation_end();
  int stores = 6;
  /// Web visitors who browse but never become members, as a share of `customers`.
  double anonymous_visitor_share = 0.2;
  /// Share of members of each type (price-sensitive, supermarket, brand-loyal, nearby).
  double type_share[kShoppingTypeCount] = {0.25, 0.25, 0.25, 0.25};
};

/// What the simulator knows about a member and the events do not say directly.
struct ShopperTruth {
  std::string user_id;
  ShoppingType type = ShoppingType::kPriceSensitive;
  std::string home_store;
  double distance_km = 0;    // home to home store
  bool web_user = false;     // browses the web shop
  std::string anonymous_id;  // web visitor id aliased to the member ("" if none)
  std::string birthday;      // YYYY-MM-DD
  std::string child_size;    // children's clothing size at the end ("" if no child)
};

struct SimulatorStats {
  std::int64_t events = 0;
  std::int64_t orders = 0;  // Order Completed, all channels
  std::int64_t web_orders = 0;
  std::int64_t refunds = 0;
  std::int64_t abandoned_carts = 0;
  protocol::Money revenue = 0;  // sum of Order Completed totals
  protocol::Money refunded = 0;
};

/// Generates events in timestamp order, one at a time, with bounded look-ahead
/// (only the sessions in progress are buffered), so a load generator can pace it.
/// Single-threaded: one thread owns a simulator.
class ShopperSimulator {
 public:
  explicit ShopperSimulator(const SimulatorConfig& config);
  ~ShopperSimulator();
  ShopperSimulator(ShopperSimulator&&) noexcept;
  ShopperSimulator& operator=(ShopperSimulator&&) noexcept;

  /// Fills `out` with the next event (non-decreasing timestamps); false when done.
  bool next(protocol::Event& out);

  /// One row per member, in user-id order. Complete from construction on.
  const std::vector<ShopperTruth>& truth() const;
  /// Counts over the events returned so far.
  const SimulatorStats& stats() const;
  /// Share of the simulated period already emitted, 0..1 (for progress bars).
  double progress() const;
  TimeUs start_time() const;
  TimeUs end_time() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// `userId,type,homeStore,distanceKm,webUser,anonymousId,birthday,childSize` with a header.
void write_truth_csv(const std::vector<ShopperTruth>& truth, std::ostream& out);

}  // namespace storepulse::analytics
