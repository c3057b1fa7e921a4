#include "storepulse/analytics/basket_rules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "storepulse/protocol/codec.hpp"

namespace storepulse::analytics {

BasketSet make_basket_set(const std::vector<std::vector<std::string>>& baskets) {
  BasketSet s;
  std::unordered_map<std::string, std::uint32_t> index;
  for (const auto& b : baskets) {
    std::vector<std::uint32_t> ids;
    for (const auto& item : b) {
      auto [it, ins] = index.try_emplace(item, static_cast<std::uint32_t>(s.items.size()));
      if (ins) s.items.push_back(item);
      ids.push_back(it->second);
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    s.baskets.push_back(std::move(ids));
  }
  return s;
}

BasketSet baskets_from_events(const std::vector<protocol::Event>& events, BasketItemKey key) {
  std::vector<std::vector<std::string>> raw;
  for (const auto& ev : events) {
    if (ev.type != protocol::EventType::kTrack || ev.name != protocol::EventName::kOrderCompleted)
      continue;
    std::vector<std::string> b;
    for (const auto& p : ev.products) {
      const std::string* k = nullptr;
      switch (key) {
        case BasketItemKey::kProductId:
          k = !p.product_id.empty() ? &p.product_id : !p.sku.empty() ? &p.sku : &p.name;
          break;
        case BasketItemKey::kName: k = !p.name.empty() ? &p.name : &p.product_id; break;
        case BasketItemKey::kCategory: k = &p.category; break;
      }
      if (!k->empty()) b.push_back(*k);
    }
    if (!b.empty()) raw.push_back(std::move(b));
  }
  return make_basket_set(raw);
}

namespace {

using Bits = std::vector<std::uint64_t>;

// Itemset key: the sorted ranks packed as bytes-of-uint16 in a string, so the
// support table is one flat hash map (13,492 itemsets on Groceries at 0.001).
std::string key_of(const std::vector<std::uint16_t>& ranks) {
  return std::string(reinterpret_cast<const char*>(ranks.data()), ranks.size() * 2);
}

struct Miner {
  std::size_t words;
  std::uint64_t min_count;
  int max_len;
  std::unordered_map<std::string, std::uint64_t> support;
  std::vector<std::vector<std::uint16_t>> itemsets;  // every frequent itemset (ranks, ascending)

  static std::uint64_t popcount_and(const Bits& a, const Bits& b, Bits& out) {
    std::uint64_t n = 0;
    for (std::size_t w = 0; w < a.size(); ++w) {
      out[w] = a[w] & b[w];
      n += static_cast<std::uint64_t>(std::popcount(out[w]));
    }
    return n;
  }

  // Depth-first Eclat: `cands` are the frequent extensions of `prefix`, each
  // with the bitmap of baskets containing prefix + item.
  void grow(std::vector<std::uint16_t>& prefix, std::vector<std::pair<std::uint16_t, Bits>>& cands,
            const std::vector<std::uint64_t>& counts) {
    for (std::size_t i = 0; i < cands.size(); ++i) {
      prefix.push_back(cands[i].first);
      support.emplace(key_of(prefix), counts[i]);
      itemsets.push_back(prefix);
      if (static_cast<int>(prefix.size()) < max_len) {
        std::vector<std::pair<std::uint16_t, Bits>> next;
        std::vector<std::uint64_t> next_counts;
        Bits tmp(words);
        for (std::size_t j = i + 1; j < cands.size(); ++j) {
          std::uint64_t c = popcount_and(cands[i].second, cands[j].second, tmp);
          if (c >= min_count) {
            next.emplace_back(cands[j].first, tmp);
            next_counts.push_back(c);
          }
        }
        if (!next.empty()) grow(prefix, next, next_counts);
      }
      prefix.pop_back();
    }
  }
};

}  // namespace

BasketRuleResult mine_basket_rules(const BasketSet& data, const BasketRuleOptions& opts) {
  BasketRuleResult res;
  const std::size_t n = data.baskets.size();
  res.transactions = n;
  if (n == 0) return res;
  // arules compares support counts against ceil(min_support * n); the epsilon
  // keeps 0.006 * 9835 = 59.01 at 60 and exact products (e.g. 0.5 * 10) exact.
  res.min_count =
      static_cast<std::uint64_t>(std::ceil(opts.min_support * static_cast<double>(n) - 1e-9));
  if (res.min_count < 1) res.min_count = 1;

  std::vector<std::uint64_t> item_count(data.items.size(), 0);
  for (const auto& b : data.baskets)
    for (auto i : b) ++item_count[i];
  // Frequent items ranked by ascending count: rare items first keeps the
  // candidate lists of the deep branches short.
  std::vector<std::uint32_t> freq;
  for (std::uint32_t i = 0; i < data.items.size(); ++i)
    if (item_count[i] >= res.min_count) freq.push_back(i);
  std::sort(freq.begin(), freq.end(), [&](std::uint32_t a, std::uint32_t b) {
    return item_count[a] != item_count[b] ? item_count[a] < item_count[b] : a < b;
  });
  if (freq.size() > 65535) freq.resize(65535);  // ranks are uint16
  std::vector<int> rank_of(data.items.size(), -1);
  for (std::size_t r = 0; r < freq.size(); ++r) rank_of[freq[r]] = static_cast<int>(r);

  Miner m;
  m.words = (n + 63) / 64;
  m.min_count = res.min_count;
  m.max_len = std::max(1, opts.max_len);
  std::vector<std::pair<std::uint16_t, Bits>> cands(freq.size());
  std::vector<std::uint64_t> counts(freq.size());
  for (std::size_t r = 0; r < freq.size(); ++r) {
    cands[r].first = static_cast<std::uint16_t>(r);
    cands[r].second.assign(m.words, 0);
    counts[r] = item_count[freq[r]];
  }
  for (std::size_t t = 0; t < n; ++t)
    for (auto i : data.baskets[t])
      if (rank_of[i] >= 0)
        cands[static_cast<std::size_t>(rank_of[i])].second[t / 64] |= 1ULL << (t % 64);
  std::vector<std::uint16_t> prefix;
  m.grow(prefix, cands, counts);
  res.frequent_itemsets = m.itemsets.size();

  const double dn = static_cast<double>(n);
  std::vector<std::uint16_t> lhs;
  for (const auto& s : m.itemsets) {
    const int len = static_cast<int>(s.size());
    if (len < opts.min_len || len > opts.max_len) continue;
    const std::uint64_t cs = m.support.at(key_of(s));
    for (std::size_t j = 0; j < s.size(); ++j) {
      lhs.clear();
      for (std::size_t k = 0; k < s.size(); ++k)
        if (k != j) lhs.push_back(s[k]);
      const std::uint64_t cl = lhs.empty() ? n : m.support.at(key_of(lhs));
      const double conf = static_cast<double>(cs) / static_cast<double>(cl);
      if (conf < opts.min_confidence - 1e-12) continue;
      const double rhs_supp = static_cast<double>(item_count[freq[s[j]]]) / dn;
      const double lift = conf / rhs_supp;
      if (lift < opts.min_lift - 1e-12) continue;
      BasketRule r;
      for (auto x : lhs) r.lhs.push_back(freq[x]);
      std::sort(r.lhs.begin(), r.lhs.end(),
                [&](std::uint32_t a, std::uint32_t b) { return data.items[a] < data.items[b]; });
      r.rhs = freq[s[j]];
      r.count = cs;
      r.support = static_cast<double>(cs) / dn;
      r.confidence = conf;
      r.lift = lift;
      res.rules.push_back(std::move(r));
    }
  }
  std::sort(res.rules.begin(), res.rules.end(), [&](const BasketRule& a, const BasketRule& b) {
    if (a.lift != b.lift) return a.lift > b.lift;
    if (a.confidence != b.confidence) return a.confidence > b.confidence;
    if (a.support != b.support) return a.support > b.support;
    if (a.lhs.size() != b.lhs.size()) return a.lhs.size() < b.lhs.size();
    return data.items[a.rhs] < data.items[b.rhs];
  });
  return res;
}

std::string format_rule_lhs(const BasketSet& data, const BasketRule& r) {
  std::string s = "{";
  for (std::size_t i = 0; i < r.lhs.size(); ++i) {
    if (i) s += ",";
    s += data.items[r.lhs[i]];
  }
  return s + "}";
}

Report basket_report(const BasketSet& data, const BasketRuleResult& res,
                     const BasketRuleOptions& opts) {
  Report rep;
  rep.analysis = "baskets";
  rep.figures = {{"transactions", std::to_string(res.transactions)},
                 {"items", std::to_string(data.items.size())},
                 {"min_support", fmt_fixed(opts.min_support, 6)},
                 {"min_count", std::to_string(res.min_count)},
                 {"min_confidence", fmt_fixed(opts.min_confidence, 4)},
                 {"min_lift", fmt_fixed(opts.min_lift, 4)},
                 {"min_len", std::to_string(opts.min_len)},
                 {"max_len", std::to_string(opts.max_len)},
                 {"frequent_itemsets", std::to_string(res.frequent_itemsets)},
                 {"rules", std::to_string(res.rules.size())}};
  ReportTable t;
  t.name = "rules";
  t.csv_file = "rules.csv";
  t.title = "Association rules (by lift)";
  t.columns = {"lhs", "rhs", "support", "confidence", "lift", "count"};
  t.numeric = {false, false, true, true, true, true};
  for (const auto& r : res.rules)
    t.rows.push_back({format_rule_lhs(data, r), "{" + data.items[r.rhs] + "}",
                      fmt_fixed(r.support, 6), fmt_fixed(r.confidence, 6), fmt_fixed(r.lift, 6),
                      std::to_string(r.count)});
  rep.tables.push_back(std::move(t));
  return rep;
}

models::BasketModel to_basket_model(const BasketSet& data, const BasketRuleResult& res,
                                    const BasketRuleOptions& opts, std::string item_key) {
  models::BasketModel m;
  m.item_key = std::move(item_key);
  m.min_support = opts.min_support;
  m.min_confidence = opts.min_confidence;
  m.meta.subjects = res.transactions;
  for (const auto& r : res.rules) {
    if (r.lhs.empty()) continue;  // {} => {x} is popularity, not a cross-sell
    models::BasketModelRule mr;
    for (auto l : r.lhs) mr.lhs.push_back(m.intern(data.items[l]));
    mr.rhs = m.intern(data.items[r.rhs]);
    mr.support = r.support;
    mr.confidence = r.confidence;
    mr.lift = r.lift;
    mr.count = r.count;
    m.add_rule(std::move(mr));
  }
  m.build_index();
  return m;
}

std::string basket_model_json(const BasketSet& data, const BasketRuleResult& res,
                              const BasketRuleOptions& opts, std::string item_key) {
  return models::basket_model_json(to_basket_model(data, res, opts, std::move(item_key)));
}

}  // namespace storepulse::analytics
