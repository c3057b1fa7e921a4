// Reads served by a shard: GET /v1/profiles/{id}, web recommendations, and the
// product popularity they use.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>

#include "engine/core.hpp"
#include "engine/shard.hpp"
#include "storepulse/common/bytes.hpp"
#include "storepulse/engine/engine.hpp"
#include "storepulse/protocol/event_binary.hpp"
#include "storepulse/store/memory_log.hpp"
#include "storepulse/store/snapshot.hpp"

namespace storepulse::engine {

namespace {
constexpr std::size_t kMaxCategories = 2000, kMaxProducts = 5000;
}  // namespace

void Shard::record_popularity(const protocol::Event& ev) {
  if (ev.name != protocol::EventName::kOrderCompleted) return;
  popularity_dirty_ = true;
  for (const auto& prod : ev.products) {
    if (prod.category.empty() || prod.product_id.empty()) continue;
    auto cit = popularity_.find(prod.category);
    if (cit == popularity_.end()) {
      if (popularity_.size() >= kMaxCategories) continue;
      cit = popularity_.emplace(prod.category, std::unordered_map<std::string, std::uint32_t>{})
                .first;
    }
    auto pit = cit->second.find(prod.product_id);
    if (pit == cit->second.end()) {
      if (cit->second.size() >= kMaxProducts) continue;
      pit = cit->second.emplace(prod.product_id, 0).first;
      if (product_names_.size() < kMaxCategories * 10) product_names_[prod.product_id] = prod.name;
    }
    pit->second += static_cast<std::uint32_t>(prod.quantity);
  }
}

void Shard::publish_popularity(bool force) {
  if (!popularity_dirty_) return;
  const std::int64_t now = mono_ns();
  if (!force && now - popularity_pub_ns_ < 1'000'000'000) return;
  popularity_dirty_ = false;
  popularity_pub_ns_ = now;
  auto v = std::make_shared<PopularityView>();
  for (const auto& [cat, products] : popularity_) {
    auto& top = v->top[cat];
    top.assign(products.begin(), products.end());
    const std::size_t keep = std::min(top.size(), PopularityView::kTopPerCategory);
    std::partial_sort(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(keep), top.end(),
                      [](const auto& a, const auto& b) {
                        return a.second != b.second ? a.second > b.second : a.first < b.first;
                      });
    top.resize(keep);
    for (const auto& [pid, _] : top)
      if (auto it = product_names_.find(pid); it != product_names_.end())
        v->names.emplace(pid, it->second);
  }
  published_popularity_.store(std::move(v), std::memory_order_release);
}

void Shard::handle_query(Work& w) {
  auto* p = find(w.target);
  if (!p) {
    std::string body = R"({"error":"not_found","detail":)";
    protocol::append_json_string(body, "no profile for " + w.target);
    body += "}";
    w.profile_done(404, std::move(body));
    return;
  }
  if (!p->merged_into.empty()) {
    engine_.query_profile(p->merged_into, std::move(w.profile_done));
    return;
  }
  const TimeUs now = wall_clock_us();
  // CLV figures as of now: the stored ones are as of the last order, and
  // P(alive) falls while a customer stays away. Put back after encoding, so a
  // read changes nothing (they are derived, never journaled).
  const double stored[3] = {p->p_alive, p->expected_purchases_90d, p->clv};
  if (const models::ModelSet* m = models::active_models(); m && m->clv) {
    p->p_alive = models::p_alive_at(*m->clv, *p, now);
    p->expected_purchases_90d = models::expected_purchases_90d_at(*m->clv, *p, now);
    p->clv = models::clv_at(*m->clv, *p, now);
  }
  std::string body = profile::profile_to_json(*p, now);
  p->p_alive = stored[0];
  p->expected_purchases_90d = stored[1];
  p->clv = stored[2];
  // Recent events of this id and of the visitor ids merged into it (those
  // applied on this shard), before the closing brace.
  if (!body.empty() && body.back() == '}') {
    body.pop_back();
    std::vector<std::string_view> also;
    for (const auto& l : p->links) also.push_back(l.other_id);
    recent_.append_json(body, w.target, also);
    body.push_back('}');
  }
  w.profile_done(200, std::move(body));
}

void RecentEvents::append_json(std::string& out, std::string_view key,
                               const std::vector<std::string_view>& also) const {
  out += ",\"recentEvents\":[";
  std::size_t n = 0;
  for (std::size_t i = 0; i < count_ && n < kMaxPerProfile; ++i) {
    const Slot& s = ring_[(next_ + kSize - 1 - i) % kSize];
    if (s.key != key && std::find(also.begin(), also.end(), s.key) == also.end()) continue;
    if (n++) out.push_back(',');
    out += "{\"type\":\"";
    out += protocol::event_type_name(s.type);
    out += '"';
    if (s.name != protocol::EventName::kNone) {
      out += ",\"event\":";
      protocol::append_json_string(out, protocol::event_name_str(s.name));
    }
    out += fmt::format(",\"channel\":\"{}\",\"timestamp\":\"{}\"",
                       protocol::channel_name(s.channel), format_iso8601(s.at));
    if (s.total >= 0) out += fmt::format(",\"total\":{}.{:02}", s.total / 100, s.total % 100);
    if (s.key != key) {
      out += ",\"id\":";
      protocol::append_json_string(out, s.key);
    }
    out += ",\"messageId\":";
    protocol::append_json_string(out, s.message_id);
    out += '}';
  }
  out += ']';
}

void Shard::handle_recommend(Work& w) {
  const auto* p = find(w.target);
  if (p && !p->merged_into.empty()) {
    auto fw = std::make_unique<Work>(std::move(w));
    fw->target = p->merged_into;
    const int s = engine_.shard_of(fw->target);
    engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(fw), false);
    return;
  }
  struct Item {
    std::string id, category;
    double score;
  };
  std::vector<Item> items;
  std::string reason;
  auto in_cart = [&](std::string_view id) {
    if (!p) return false;
    for (const auto& c : p->cart)
      if (p->name(c.product_id) == id) return true;
    return false;
  };
  // Never recommend what the customer just bought (nor the cart, nor the product in view).
  auto excluded = [&](std::string_view id) {
    if (id == w.rec.product_id || in_cart(id)) return true;
    if (!p) return false;
    const profile::NameId rid = p->names->find(id);
    return rid != profile::kNoName &&
           std::find(p->recent_products.begin(), p->recent_products.end(), rid) !=
               p->recent_products.end();
  };
  // Units sold: this shard's live counts plus what the other shards last
  // published (about once a second), so a new visitor on a shard that has
  // seen few orders still gets the chain's best sellers.
  std::vector<std::shared_ptr<const PopularityView>> others;
  for (const auto& sh : engine_.shards_)
    if (sh.get() != this)
      if (auto v = sh->published_popularity_.load(std::memory_order_acquire)) others.push_back(v);
  auto add_from = [&](std::string_view cat, double weight) {
    std::unordered_map<std::string_view, std::uint64_t> units;
    const std::string key(cat);
    if (auto it = popularity_.find(key); it != popularity_.end())
      for (const auto& [pid, count] : it->second) units[pid] += count;
    for (const auto& v : others)
      if (auto it = v->top.find(key); it != v->top.end())
        for (const auto& [pid, count] : it->second) units[pid] += count;
    for (const auto& [pid, count] : units) {
      if (excluded(pid)) continue;
      items.push_back({std::string(pid), key, weight * static_cast<double>(count)});
    }
  };
  auto category_of = [&](std::string_view pid) -> std::string {
    for (const auto& [cat, products] : popularity_)
      if (products.count(std::string(pid))) return cat;
    for (const auto& v : others)
      for (const auto& [cat, top] : v->top)
        for (const auto& [id, _] : top)
          if (id == pid) return cat;
    return {};
  };
  auto name_of = [&](const std::string& pid) -> const std::string& {
    if (auto it = product_names_.find(pid); it != product_names_.end()) return it->second;
    for (const auto& v : others)
      if (auto it = v->names.find(pid); it != v->names.end()) return it->second;
    return pid;
  };
  std::vector<Item> top;
  auto take = [&](std::vector<Item>& from) {
    std::sort(from.begin(), from.end(), [](const Item& a, const Item& b) {
      return a.score != b.score ? a.score > b.score : a.id < b.id;
    });
    // De-duplicate (a product can appear under several top categories).
    for (auto& it : from) {
      if (static_cast<int>(top.size()) >= w.rec.limit) break;
      if (std::any_of(top.begin(), top.end(), [&](const Item& t) { return t.id == it.id; }))
        continue;
      top.push_back(std::move(it));
    }
    from.clear();
  };

  // 1. The basket model: consequents of what the customer holds (the product
  //    in view, the cart, recent purchases), best rules first.
  if (models_ && models_->baskets) {
    const models::BasketModel& bm = *models_->baskets;
    std::array<std::string_view, models::BasketModel::kMaxHeld> held;
    std::size_t nh = 0;
    if (!w.rec.product_id.empty()) held[nh++] = w.rec.product_id;
    if (p) nh += bm.held_items(*p, std::span(held).subspan(nh));
    std::array<models::BasketSuggestion, 16> sug;
    const std::size_t want =
        std::clamp<std::size_t>(static_cast<std::size_t>(std::max(1, w.rec.limit)), 1, sug.size());
    const std::size_t ns = bm.suggest(std::span(held.data(), nh), std::span(sug.data(), want));
    for (std::size_t i = 0; i < ns; ++i) {
      const std::string& item = bm.item(sug[i].item);
      if (bm.item_key == "category") {
        add_from(item, 1000.0 * sug[i].confidence);  // a suggested category: its best sellers
      } else if (!excluded(item)) {
        items.push_back({item, category_of(item), sug[i].confidence});
      }
    }
    if (!items.empty()) {
      const auto& first = bm.rules()[sug[0].rule];
      reason = "bought together with " + bm.item(first.lhs.front());
      take(items);
    }
  }
  // 2. Affinities: best sellers in the customer's top categories.
  if (static_cast<int>(top.size()) < w.rec.limit) {
    std::vector<const profile::CategoryStat*> cats;
    if (p)
      for (const auto& c : p->categories) cats.push_back(&c);
    std::sort(cats.begin(), cats.end(), [](auto a, auto b) { return a->affinity > b->affinity; });
    if (cats.size() > 3) cats.resize(3);
    for (const auto* c : cats) add_from(p->name(c->name), 1.0 + c->affinity / 100.0);
    if (!cats.empty() && reason.empty())
      reason = fmt::format("top categories: {}", p->name(cats[0]->name));
    take(items);
  }
  // 3. Store-wide best sellers.
  if (top.empty()) {
    reason = "popular now";
    std::vector<std::string> cats;
    for (const auto& [cat, _] : popularity_) cats.push_back(cat);
    for (const auto& v : others)
      for (const auto& [cat, _] : v->top) cats.push_back(cat);
    std::sort(cats.begin(), cats.end());
    cats.erase(std::unique(cats.begin(), cats.end()), cats.end());
    for (const auto& cat : cats) add_from(cat, 1.0);
    take(items);
  }
  std::string out = R"({"type":"recommendations","items":[)";
  for (std::size_t i = 0; i < top.size(); ++i) {
    if (i) out.push_back(',');
    out += R"({"productId":)";
    protocol::append_json_string(out, top[i].id);
    out += R"(,"name":)";
    protocol::append_json_string(out, name_of(top[i].id));
    out += R"(,"category":)";
    protocol::append_json_string(out, top[i].category);
    out += fmt::format(R"(,"score":{:.3f}}})", top[i].score);
  }
  out += R"(],"reason":)";
  protocol::append_json_string(out, reason);
  out += "}";
  if (w.reply) w.reply->deliver(std::move(out));
}

}  // namespace storepulse::engine
