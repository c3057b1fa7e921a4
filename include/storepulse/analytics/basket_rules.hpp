#pragma once
// Association rules (market-basket analysis) with the same semantics as
// R arules::apriori: single-item right-hand side, rule support = support of
// LHS ∪ RHS, min/max length counted over LHS + RHS, empty LHS allowed when
// min_len <= 1. Frequent itemsets are mined exactly (Eclat on vertical
// bitsets: for ~10^4 baskets x a few hundred items an AND + popcount over the
// basket bitmaps beats building an FP-tree, and gives the identical itemsets).
#include <cstdint>
#include <string>
#include <vector>

#include "storepulse/analytics/report_table.hpp"
#include "storepulse/models/basket_model.hpp"
#include "storepulse/protocol/event.hpp"

namespace storepulse::analytics {

/// Baskets as item ids into `items`; items within a basket are distinct.
struct BasketSet {
  std::vector<std::string> items;
  std::vector<std::vector<std::uint32_t>> baskets;
};

BasketSet make_basket_set(const std::vector<std::vector<std::string>>& baskets);

enum class BasketItemKey { kProductId, kName, kCategory };

/// Each `Order Completed` is a basket of its products (productId, else sku, else name,
/// or the chosen key).
BasketSet baskets_from_events(const std::vector<protocol::Event>& events,
                              BasketItemKey key = BasketItemKey::kProductId);

struct BasketRuleOptions {
  double min_support = 0.1;  // arules defaults
  double min_confidence = 0.8;
  double min_lift = 0.0;
  int min_len = 1;
  int max_len = 10;
};

struct BasketRule {
  std::vector<std::uint32_t> lhs;  // item ids, ascending by item name
  std::uint32_t rhs = 0;
  std::uint64_t count = 0;  // baskets containing LHS ∪ RHS
  double support = 0;
  double confidence = 0;
  double lift = 0;
};

struct BasketRuleResult {
  std::size_t transactions = 0;
  std::uint64_t min_count = 0;  // support threshold as a basket count
  std::size_t frequent_itemsets = 0;
  std::vector<BasketRule> rules;  // sorted by lift, then confidence, then support (desc)
};

BasketRuleResult mine_basket_rules(const BasketSet& data, const BasketRuleOptions& opts);

/// "{a,b} => {c}" with item names.
std::string format_rule_lhs(const BasketSet& data, const BasketRule& r);

Report basket_report(const BasketSet& data, const BasketRuleResult& res,
                     const BasketRuleOptions& opts);

/// The engine's basket model (cross-sell, recommendations) from mined rules;
/// `item_key` says what an item is ("product", "name" or "category").
models::BasketModel to_basket_model(const BasketSet& data, const BasketRuleResult& res,
                                    const BasketRuleOptions& opts,
                                    std::string item_key = "product");

/// Its model file (models::basket_model_json of to_basket_model).
std::string basket_model_json(const BasketSet& data, const BasketRuleResult& res,
                              const BasketRuleOptions& opts, std::string item_key = "product");

}  // namespace storepulse::analytics
