#include "engine/dedupe_window.hpp"

#include <bit>
#include <functional>

namespace storepulse::engine {

std::uint64_t DedupeWindow::hash_of(std::string_view id) {
  // std::hash of a string_view is a 64-bit murmur-style hash: both the low bits
  // (index position) and the high bits (tag) are well mixed.
  return std::hash<std::string_view>{}(id);
}

std::size_t DedupeWindow::find_pos(std::string_view id, std::uint64_t h) const {
  if (index_.empty()) return kNpos;
  const std::uint64_t tag = h >> 32;
  for (std::size_t pos = h & mask_;; pos = (pos + 1) & mask_) {
    const std::uint64_t e = index_[pos];
    if (e == 0) return kNpos;
    if ((e >> 32) == tag) {
      const Slot& s = slots_[static_cast<std::uint32_t>(e) - 1];
      if (s.id == id) return pos;
    }
  }
}

bool DedupeWindow::contains(std::string_view id) const {
  return find_pos(id, hash_of(id)) != kNpos;
}

void DedupeWindow::grow_index(std::size_t min_entries) {
  const std::size_t size = std::bit_ceil(std::max<std::size_t>(16, 2 * min_entries));
  if (size <= index_.size()) return;
  index_.assign(size, 0);
  mask_ = size - 1;
  for (std::size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].live) index_insert(slots_[i].hash, static_cast<std::uint32_t>(i));
}

void DedupeWindow::index_insert(std::uint64_t h, std::uint32_t slot) {
  std::size_t pos = h & mask_;
  while (index_[pos] != 0) pos = (pos + 1) & mask_;
  index_[pos] = ((h >> 32) << 32) | (static_cast<std::uint64_t>(slot) + 1);
}

void DedupeWindow::index_erase(std::size_t pos) {
  // Backward-shift deletion: later entries of the same probe run move up, so
  // no tombstones accumulate and probes stay short.
  std::size_t hole = pos;
  for (std::size_t next = (pos + 1) & mask_;; next = (next + 1) & mask_) {
    const std::uint64_t e = index_[next];
    if (e == 0) break;
    const std::size_t home = slots_[static_cast<std::uint32_t>(e) - 1].hash & mask_;
    // Move `next` into the hole unless its home lies cyclically in (hole, next].
    const bool stays = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
    if (stays) continue;
    index_[hole] = e;
    hole = next;
  }
  index_[hole] = 0;
}

bool DedupeWindow::insert(std::string_view id) {
  if (cap_ == 0) return true;
  const std::uint64_t h = hash_of(id);
  if (find_pos(id, h) != kNpos) return false;
  std::size_t slot;
  if (slots_.size() < cap_) {
    // Filling up: the index doubles as the window grows (log2(cap) times in all).
    if (2 * (slots_.size() + 1) > index_.size()) grow_index(slots_.size() + 1);
    slot = slots_.size();
    slots_.emplace_back();
  } else {
    slot = head_;
    head_ = (head_ + 1) % cap_;
    Slot& old = slots_[slot];
    if (old.live) {
      index_erase(find_pos(old.id, old.hash));
      --live_;
    }
  }
  Slot& s = slots_[slot];
  s.id.assign(id);
  s.hash = h;
  s.live = true;
  ++live_;
  index_insert(h, static_cast<std::uint32_t>(slot));
  return true;
}

void DedupeWindow::clear_one(std::string_view id) {
  const std::size_t pos = find_pos(id, hash_of(id));
  if (pos == kNpos) return;
  Slot& s = slots_[static_cast<std::uint32_t>(index_[pos]) - 1];
  index_erase(pos);
  s.live = false;
  s.id.clear();
  --live_;
}

void DedupeWindow::clear() {
  slots_.clear();
  index_.clear();
  mask_ = 0;
  head_ = 0;
  live_ = 0;
}

}  // namespace storepulse::engine
