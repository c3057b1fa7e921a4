#pragma once
// A string-keyed hash map for the shard's hot lookups (profiles by customer
// key, journal keys by subject) and a hash for short strings.
//
// Entries live in one dense vector in insertion order (erase moves the last
// entry into the hole); an open-addressing index of 8-byte slots (32 bits of
// the hash, 32 bits of entry index) finds them with linear probing and
// backward-shift deletion, so there are no tombstones and a lookup that
// misses stops at the first empty slot. Against std::unordered_map: no node
// allocation per entry, a lookup touches one slot line and one entry (the
// hash bits in the slot make a string compare on a wrong entry rare), and
// iteration is a walk over a vector.
//
// Unlike std::unordered_map, an insert may move every entry (the vector
// grows): pointers and references to keys and values are valid only until the
// next insert or erase. Store values that must stay put behind a pointer
// (profiles are held as unique_ptr).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace storepulse {

/// 64-bit hash of a short string: 8 bytes at a time, multiply-xor mixed. Not
/// stable across builds and not for routing (docs/protocol.md, *Routing*, uses
/// FNV-1a), not keyed: for in-memory indexes only.
inline std::uint64_t hash_string(std::string_view s) noexcept {
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15ull;
  std::uint64_t h = 0x2545F4914F6CDD1Dull ^ (s.size() * kMul);
  const char* p = s.data();
  std::size_t n = s.size();
  auto mix = [](std::uint64_t a, std::uint64_t b) {
    const __uint128_t m = static_cast<__uint128_t>(a) * b;
    return static_cast<std::uint64_t>(m) ^ static_cast<std::uint64_t>(m >> 64);
  };
  while (n >= 16) {
    std::uint64_t a, b;
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + 8, 8);
    h = mix(a ^ h, b ^ kMul);
    p += 16;
    n -= 16;
  }
  std::uint64_t a = 0, b = 0;
  if (n >= 8) {
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + n - 8, 8);  // overlaps a when n < 16: fine for a hash
  } else if (n > 0) {
    // 1-7 bytes: first, middle and last byte, then the first four if there are.
    a = (static_cast<std::uint64_t>(static_cast<unsigned char>(p[0])) << 16) |
        (static_cast<std::uint64_t>(static_cast<unsigned char>(p[n >> 1])) << 8) |
        static_cast<unsigned char>(p[n - 1]);
    if (n >= 4) {
      std::uint32_t x, y;
      std::memcpy(&x, p, 4);
      std::memcpy(&y, p + n - 4, 4);
      b = (static_cast<std::uint64_t>(x) << 32) | y;
    }
  }
  return mix(a ^ h, b ^ kMul) ^ h;
}

/// An open-addressing index from a string's hash to a 32-bit value, for tables
/// that keep their keys elsewhere (NameTable keeps the names in a deque; the
/// value is the name's id). The caller's `eq(value)` says whether a slot's value
/// holds the key looked up. No erase: the tables that use it only grow.
///
/// A slot is (tag << 32) | value, the tag being the hash's high 32 bits (never
/// 0, so 0 marks an empty slot); a key's home slot is tag & mask, so growing
/// needs no key: up to 2^32 slots.
class FlatIdIndex {
 public:
  template <class Eq>
  std::optional<std::uint32_t> find(std::uint64_t hash, Eq&& eq) const {
    if (slots_.empty()) return std::nullopt;
    const std::uint64_t tag = tag_of(hash);
    for (std::size_t i = tag & mask_;; i = (i + 1) & mask_) {
      const std::uint64_t s = slots_[i];
      if (s == 0) return std::nullopt;
      if ((s >> 32) == tag && eq(static_cast<std::uint32_t>(s)))
        return static_cast<std::uint32_t>(s);
    }
  }
  /// Adds `value` under `hash` (the caller has checked the key is not there).
  void insert(std::uint64_t hash, std::uint32_t value) {
    if ((size_ + 1) * 8 > slots_.size() * 7) grow();
    put((tag_of(hash) << 32) | value);
    ++size_;
  }
  std::size_t size() const { return size_; }

  static std::uint64_t tag_of(std::uint64_t hash) {
    const std::uint64_t t = hash >> 32;
    return t == 0 ? 1 : t;
  }

 private:
  void put(std::uint64_t slot) {
    std::size_t i = (slot >> 32) & mask_;
    while (slots_[i] != 0) i = (i + 1) & mask_;
    slots_[i] = slot;
  }
  void grow() {
    std::vector<std::uint64_t> old = std::move(slots_);
    const std::size_t cap = old.empty() ? 64 : old.size() * 2;
    slots_.assign(cap, 0);
    mask_ = cap - 1;
    for (const std::uint64_t s : old)
      if (s != 0) put(s);
  }

  std::vector<std::uint64_t> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

template <class V>
class FlatStringMap {
 public:
  using value_type = std::pair<std::string, V>;
  using iterator = value_type*;
  using const_iterator = const value_type*;

  iterator begin() { return entries_.data(); }
  iterator end() { return entries_.data() + entries_.size(); }
  const_iterator begin() const { return entries_.data(); }
  const_iterator end() const { return entries_.data() + entries_.size(); }
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

  void clear() {
    entries_.clear();
    std::fill(slots_.begin(), slots_.end(), 0);
  }
  void reserve(std::size_t n) {
    entries_.reserve(n);
    if (n * 8 > slots_.size() * 7) rebuild(capacity_for(n));
  }

  iterator find(std::string_view key) {
    const std::size_t i = index_of(key, hash_string(key));
    return i == kNone ? end() : begin() + i;
  }
  const_iterator find(std::string_view key) const {
    const std::size_t i = index_of(key, hash_string(key));
    return i == kNone ? end() : begin() + i;
  }
  bool contains(std::string_view key) const { return find(key) != end(); }
  std::size_t count(std::string_view key) const { return contains(key) ? 1 : 0; }

  V& at(std::string_view key) {
    auto it = find(key);
    if (it == end()) throw std::out_of_range("FlatStringMap::at: no such key");
    return it->second;
  }

  /// Inserts (key, V(args...)) unless the key is there; the entry and whether
  /// it was inserted. Like std::unordered_map, the arguments are references:
  /// nothing is moved from them when the key is there, and `emplace(k.name,
  /// std::move(k))` reads the name before the value is moved.
  template <class K, class... A>
  std::pair<iterator, bool> emplace(K&& key, A&&... args) {
    const std::string_view kv(key);
    const std::uint64_t h = hash_string(kv);
    if (const std::size_t i = index_of(kv, h); i != kNone) return {begin() + i, false};
    return {append(std::string(std::forward<K>(key)), h, std::forward<A>(args)...), true};
  }
  template <class K, class A>
  std::pair<iterator, bool> insert_or_assign(K&& key, A&& value) {
    const std::string_view kv(key);
    const std::uint64_t h = hash_string(kv);
    if (const std::size_t i = index_of(kv, h); i != kNone) {
      entries_[i].second = std::forward<A>(value);
      return {begin() + i, false};
    }
    return {append(std::string(std::forward<K>(key)), h, std::forward<A>(value)), true};
  }
  V& operator[](std::string_view key) {
    const std::uint64_t h = hash_string(key);
    if (const std::size_t i = index_of(key, h); i != kNone) return entries_[i].second;
    return append(std::string(key), h)->second;
  }

  std::size_t erase(std::string_view key) {
    auto it = find(key);
    if (it == end()) return 0;
    erase(it);
    return 1;
  }
  /// Removes the entry; the last entry takes its place (so the iterator then
  /// names that one, or end()).
  iterator erase(iterator it) {
    const auto i = static_cast<std::size_t>(it - begin());
    const std::size_t last = entries_.size() - 1;
    unlink(slot_of(i));
    if (i != last) {
      const std::size_t s = slot_of(last);
      slots_[s] = (slots_[s] & kTagMask) | (static_cast<std::uint64_t>(i) + 1);
      entries_[i] = std::move(entries_[last]);
    }
    entries_.pop_back();
    return begin() + i;
  }

 private:
  static constexpr std::size_t kNone = ~std::size_t{0};
  static constexpr std::uint64_t kTagMask = 0xFFFFFFFF00000000ull;

  // Load at most 7/8, so a probe always meets an empty slot.
  static std::size_t capacity_for(std::size_t n) {
    std::size_t c = 16;
    while (c * 7 < n * 8) c *= 2;
    return c;
  }
  // A slot: the hash's tag (FlatIdIndex::tag_of, never 0) | (entry index + 1).
  static std::uint64_t make_slot(std::uint64_t h, std::size_t i) {
    return (FlatIdIndex::tag_of(h) << 32) | (static_cast<std::uint64_t>(i) + 1);
  }
  std::size_t home(std::uint64_t slot) const { return (slot >> 32) & mask_; }

  std::size_t index_of(std::string_view key, std::uint64_t h) const {
    if (slots_.empty()) return kNone;
    const std::uint64_t tag = FlatIdIndex::tag_of(h) << 32;
    for (std::size_t s = home(tag);; s = (s + 1) & mask_) {
      const std::uint64_t v = slots_[s];
      if (v == 0) return kNone;
      if ((v & kTagMask) == tag) {
        const std::size_t i = static_cast<std::uint32_t>(v) - 1;
        if (entries_[i].first == key) return i;
      }
    }
  }
  // The slot that holds entry i (i < size()).
  std::size_t slot_of(std::size_t i) const {
    const std::uint64_t want = make_slot(hash_string(entries_[i].first), i);
    for (std::size_t s = home(want);; s = (s + 1) & mask_)
      if (slots_[s] == want) return s;
  }
  // Backward-shift deletion: empties slot s and moves later slots of the same
  // probe run back, so every entry stays reachable from its home slot.
  void unlink(std::size_t s) {
    std::size_t hole = s;
    for (std::size_t j = (s + 1) & mask_;; j = (j + 1) & mask_) {
      const std::uint64_t v = slots_[j];
      if (v == 0) break;
      const std::size_t h = home(v);
      // v may fill the hole unless its home lies cyclically in (hole, j].
      const bool stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
      if (!stays) {
        slots_[hole] = v;
        hole = j;
      }
    }
    slots_[hole] = 0;
  }
  void put(std::uint64_t slot) {
    std::size_t s = home(slot);
    while (slots_[s] != 0) s = (s + 1) & mask_;
    slots_[s] = slot;
  }
  template <class... A>
  iterator append(std::string key, std::uint64_t h, A&&... args) {
    if ((entries_.size() + 1) * 8 > slots_.size() * 7) rebuild(capacity_for(entries_.size() + 1));
    entries_.emplace_back(std::piecewise_construct, std::forward_as_tuple(std::move(key)),
                          std::forward_as_tuple(std::forward<A>(args)...));
    put(make_slot(h, entries_.size() - 1));
    return end() - 1;
  }
  void rebuild(std::size_t cap) {
    std::vector<std::uint64_t> old(cap, 0);
    old.swap(slots_);
    mask_ = cap - 1;
    for (const std::uint64_t v : old)
      if (v != 0) put(v);
  }

  std::vector<value_type> entries_;
  std::vector<std::uint64_t> slots_;
  std::size_t mask_ = 0;
};

}  // namespace storepulse
