#include "storepulse/models/basket_model.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "model_json.hpp"
#include "storepulse/profile/profile.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::models {

std::uint32_t BasketModel::intern(std::string_view item) {
  auto it = ids_.find(item);
  if (it != ids_.end()) return it->second;
  const auto id = static_cast<std::uint32_t>(items_.size());
  items_.emplace_back(item);
  ids_.emplace(items_.back(), id);
  return id;
}

void BasketModel::add_rule(BasketModelRule rule) {
  rules_.push_back(std::move(rule));
}

void BasketModel::build_index() {
  rules_by_item_.assign(items_.size(), {});
  // Each rule is listed under its first antecedent item only: every antecedent
  // item must be held anyway, so the rule is reached exactly once.
  for (std::uint32_t i = 0; i < rules_.size(); ++i)
    if (!rules_[i].lhs.empty()) rules_by_item_[rules_[i].lhs.front()].push_back(i);
  // Best rules first within a list, so the lookup's top-K fills with good ones early.
  for (auto& list : rules_by_item_)
    std::stable_sort(list.begin(), list.end(), [&](std::uint32_t a, std::uint32_t b) {
      return rules_[a].confidence != rules_[b].confidence
                 ? rules_[a].confidence > rules_[b].confidence
                 : rules_[a].lift > rules_[b].lift;
    });
}

std::int64_t BasketModel::find(std::string_view item) const {
  auto it = ids_.find(item);
  return it == ids_.end() ? -1 : static_cast<std::int64_t>(it->second);
}

namespace {
bool better(const BasketSuggestion& a, const BasketSuggestion& b) {
  return a.confidence != b.confidence ? a.confidence > b.confidence
         : a.lift != b.lift           ? a.lift > b.lift
                                      : a.item < b.item;
}
}  // namespace

std::size_t BasketModel::suggest(std::span<const std::string_view> held,
                                 std::span<BasketSuggestion> out) const {
  if (out.empty() || rules_by_item_.empty()) return 0;
  std::array<std::uint32_t, kMaxHeld> ids;
  std::size_t n_ids = 0;
  auto is_held = [&](std::uint32_t id) {
    for (std::size_t i = 0; i < n_ids; ++i)
      if (ids[i] == id) return true;
    return false;
  };
  for (std::string_view h : held) {
    if (n_ids >= ids.size()) break;
    const std::int64_t id = find(h);
    if (id >= 0 && !is_held(static_cast<std::uint32_t>(id)))
      ids[n_ids++] = static_cast<std::uint32_t>(id);
  }
  std::size_t n_out = 0;
  for (std::size_t h = 0; h < n_ids; ++h) {
    for (std::uint32_t ri : rules_by_item_[ids[h]]) {
      const BasketModelRule& r = rules_[ri];
      if (is_held(r.rhs)) continue;
      bool all = true;
      for (std::uint32_t l : r.lhs)
        if (!is_held(l)) {
          all = false;
          break;
        }
      if (!all) continue;
      const BasketSuggestion cand{r.rhs, ri, r.confidence, r.lift};
      std::size_t slot = n_out;
      for (std::size_t k = 0; k < n_out; ++k)
        if (out[k].item == r.rhs) slot = k;
      if (slot < n_out) {
        if (better(cand, out[slot])) out[slot] = cand;
      } else if (n_out < out.size()) {
        out[n_out++] = cand;
      } else {
        std::size_t worst = 0;
        for (std::size_t k = 1; k < n_out; ++k)
          if (better(out[worst], out[k])) worst = k;
        if (better(cand, out[worst])) out[worst] = cand;
      }
    }
  }
  std::sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n_out), better);
  return n_out;
}

std::size_t BasketModel::held_items(const profile::CustomerProfile& p,
                                    std::span<std::string_view> out) const {
  std::size_t n = 0;
  auto add = [&](std::string_view s) {
    if (!s.empty() && n < out.size()) out[n++] = s;
  };
  if (item_key == "category") {
    for (const auto& c : p.cart) add(p.name(c.category));
    for (const auto& c : p.categories) add(p.name(c.name));
  } else if (item_key == "name") {
    for (const auto& c : p.cart) add(p.name(c.name));
  } else {
    for (const auto& c : p.cart) add(p.name(c.product_id));
    for (auto it = p.recent_products.rbegin(); it != p.recent_products.rend(); ++it)
      add(p.name(*it));
  }
  return n;
}

// ---- model file --------------------------------------------------------------

std::string basket_model_json(const BasketModel& m) {
  std::string s = "{";
  s += meta_json_fields(kBasketsFormat, m.meta);
  s += ",\"item_key\":";
  protocol::append_json_string(s, m.item_key);
  s += fmt::format(",\"min_support\":{},\"min_confidence\":{},\"rules\":[", m.min_support,
                   m.min_confidence);
  for (std::size_t i = 0; i < m.rules().size(); ++i) {
    const auto& r = m.rules()[i];
    s += i ? ",\n  " : "\n  ";
    s += "{\"lhs\":[";
    for (std::size_t k = 0; k < r.lhs.size(); ++k) {
      if (k) s.push_back(',');
      protocol::append_json_string(s, m.item(r.lhs[k]));
    }
    s += "],\"rhs\":";
    protocol::append_json_string(s, m.item(r.rhs));
    s += fmt::format(",\"support\":{:.6g},\"confidence\":{:.6g},\"lift\":{:.6g},\"count\":{}}}",
                     r.support, r.confidence, r.lift, r.count);
  }
  s += "\n]}\n";
  return s;
}

Result<BasketModel> parse_basket_model_json(std::string_view json) {
  namespace dom = simdjson::dom;
  dom::parser parser;
  dom::element root;
  simdjson::padded_string padded(json);
  BasketModel m;
  if (Status s =
          detail::parse_model_header(parser, padded, "basket model", kBasketsFormat, root, m.meta);
      !s)
    return s;
  auto bad = [](std::string_view what) {
    return Status(ErrorCode::kBadField, fmt::format("basket model: {}", what));
  };
  std::string_view sv;
  std::uint64_t u = 0;
  if (!root["item_key"].get(sv)) {
    if (sv != "product" && sv != "name" && sv != "category")
      return bad(fmt::format("item_key \"{}\": expected product, name or category", sv));
    m.item_key = std::string(sv);
  }
  double d = 0;
  if (!root["min_support"].get(d)) m.min_support = d;
  if (!root["min_confidence"].get(d)) m.min_confidence = d;
  dom::array rules;
  if (root["rules"].get(rules)) return bad("rules: expected an array");
  std::size_t i = 0;
  for (auto r : rules) {
    BasketModelRule rule;
    dom::array lhs;
    if (r["lhs"].get(lhs)) return bad(fmt::format("rules[{}].lhs: expected an array of items", i));
    for (auto item : lhs) {
      if (item.get(sv) || sv.empty())
        return bad(fmt::format("rules[{}].lhs: expected item strings", i));
      rule.lhs.push_back(m.intern(sv));
    }
    if (r["rhs"].get(sv) || sv.empty())
      return bad(fmt::format("rules[{}].rhs: expected an item string", i));
    rule.rhs = m.intern(sv);
    if (r["confidence"].get(rule.confidence) || !(rule.confidence >= 0 && rule.confidence <= 1))
      return bad(fmt::format("rules[{}].confidence: expected 0..1", i));
    if (r["lift"].get(rule.lift) || !std::isfinite(rule.lift) || rule.lift < 0)
      return bad(fmt::format("rules[{}].lift: expected a non-negative number", i));
    if (!r["support"].get(d)) rule.support = d;
    if (!r["count"].get(u)) rule.count = u;
    m.add_rule(std::move(rule));
    ++i;
  }
  m.build_index();
  return m;
}

}  // namespace storepulse::models
