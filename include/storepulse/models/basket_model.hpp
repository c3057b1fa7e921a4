#pragma once
// The basket model: association rules (antecedent item set -> one consequent,
// with support, confidence, lift) mined by analytics (basket_rules.hpp), and
// the live lookup "given these items (recent purchases, cart), the best
// consequents the customer does not already hold".
//
// The lookup runs on shard workers per event: it allocates nothing. Rules are
// indexed by each antecedent item at load, so only rules that mention a held
// item are looked at; held items and results live in caller-provided bounded
// arrays.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "storepulse/common/status.hpp"
#include "storepulse/models/model_file.hpp"

namespace storepulse::profile {
struct CustomerProfile;
}

namespace storepulse::models {

struct BasketModelRule {
  std::vector<std::uint32_t> lhs;  // item ids
  std::uint32_t rhs = 0;
  double support = 0;
  double confidence = 0;
  double lift = 0;
  std::uint64_t count = 0;
};

/// One suggested item: the consequent and the rule that suggested it.
struct BasketSuggestion {
  std::uint32_t item = 0;
  std::uint32_t rule = 0;  // index into BasketModel::rules()
  double confidence = 0;
  double lift = 0;
};

class BasketModel {
 public:
  /// What an item is in this model: "product" (productId, else sku), "name" or "category".
  std::string item_key = "product";
  ModelMeta meta;
  double min_support = 0;
  double min_confidence = 0;

  /// Adds an item name (or returns its id).
  std::uint32_t intern(std::string_view item);
  /// Adds a rule; call build_index() after the last.
  void add_rule(BasketModelRule rule);
  /// Precomputes the per-item rule lists the lookup walks.
  void build_index();

  std::size_t item_count() const { return items_.size(); }
  const std::string& item(std::uint32_t id) const { return items_[id]; }
  const std::vector<BasketModelRule>& rules() const { return rules_; }
  /// Item id, or -1 when the model never saw the item. No allocation.
  std::int64_t find(std::string_view item) const;

  /// Up to out.size() best consequents whose whole antecedent is in `held` and
  /// which are not held themselves, by confidence then lift (each consequent
  /// once). Returns how many were written. Allocation-free; `held` beyond
  /// kMaxHeld items is ignored.
  static constexpr std::size_t kMaxHeld = 64;
  std::size_t suggest(std::span<const std::string_view> held,
                      std::span<BasketSuggestion> out) const;

  /// The customer's held items under this model's item key: cart first, then
  /// recent purchases (product models), or cart and bought categories (category
  /// models). Returns how many views were written into `out`.
  std::size_t held_items(const profile::CustomerProfile& p, std::span<std::string_view> out) const;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::vector<std::string> items_;
  std::unordered_map<std::string, std::uint32_t, Hash, std::equal_to<>> ids_;
  std::vector<BasketModelRule> rules_;
  std::vector<std::vector<std::uint32_t>> rules_by_item_;  // rule indices whose lhs holds the item
};

std::string basket_model_json(const BasketModel& m);
Result<BasketModel> parse_basket_model_json(std::string_view json);

}  // namespace storepulse::models
