#pragma once
// The shard's window of recently seen messageIds. Owned by the shard worker
// (and by recovery before it starts); not thread-safe.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace storepulse::engine {

/// Bounded FIFO of messageIds seen; re-sent ids are acked without applying.
///
/// A ring of `cap` slots (oldest overwritten first) plus an open-addressing
/// index (linear probing, backward-shift deletion, load ≤ 1/2). Each index
/// entry holds the slot number and 32 bits of the id's hash, so a probe
/// compares strings only on a tag match. Steady state allocates nothing: a
/// slot's string keeps its capacity when it is reused, and the index is sized
/// once the ring is full. (It replaced an unordered_set<std::string> + deque,
/// which allocated two nodes per event and rehashed as the window grew.)
class DedupeWindow {
 public:
  explicit DedupeWindow(std::size_t cap) : cap_(cap) {}
  bool contains(std::string_view id) const;
  /// Remembers `id`; false when it was already held (one probe for both).
  /// A zero-sized window remembers nothing and always answers true.
  bool insert(std::string_view id);
  /// Ids held (what a snapshot writes).
  std::size_t size() const { return live_; }
  /// Calls fn(std::string_view) for every id held, oldest first.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      const Slot& s = slots_[(head_ + i) % slots_.size()];
      if (s.live) fn(std::string_view(s.id));
    }
  }
  /// Forgets one id (its event was not made durable after all), so neither a
  /// retry nor a snapshot sees it: a snapshot writing it would make replay skip
  /// the record of the client's successful retry (an acked event lost).
  void clear_one(std::string_view id);
  void clear();

 private:
  struct Slot {
    std::string id;
    std::uint64_t hash = 0;
    bool live = false;
  };
  static std::uint64_t hash_of(std::string_view id);
  /// Index position holding slot `slot` (hash `h`), or npos.
  std::size_t find_pos(std::string_view id, std::uint64_t h) const;
  void index_insert(std::uint64_t h, std::uint32_t slot);
  void index_erase(std::size_t pos);
  void grow_index(std::size_t min_entries);
  static constexpr std::size_t kNpos = ~std::size_t{0};

  std::size_t cap_;
  std::vector<Slot> slots_;  // grows to cap_, then a ring starting at head_
  std::size_t head_ = 0;     // oldest slot once the ring is full
  std::size_t live_ = 0;
  // Index entries: 0 = empty, else (hash >> 32) << 32 | (slot + 1).
  std::vector<std::uint64_t> index_;
  std::size_t mask_ = 0;
};

}  // namespace storepulse::engine
