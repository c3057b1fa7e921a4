#pragma once
// Interned catalogue names (categories, brands, product ids, stores) shared by
// the profiles of one shard. A profile keeps a 4-byte NameId per entry instead
// of a std::string (32 bytes, plus a heap block past 15 characters): with a few
// dozen names per profile and millions of profiles, the names themselves are a
// small bounded set (the catalogue) while the copies were most of the memory.
//
// Thread ownership: one table per shard, used only by that shard's worker (and
// by recovery before the worker starts), like the profiles that point to it.
// No locks. Tests and offline tools use a table per thread (thread_default()).
//
// Only non-personal names go in here: entries are never removed, so customer
// ids, contacts and traits (which erasure must be able to forget) stay in the
// profile as strings.
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "storepulse/common/flat_map.hpp"

namespace storepulse::profile {

/// Index of an interned name; 0 is the empty name (also "not interned").
using NameId = std::uint32_t;
constexpr NameId kNoName = 0;

class NameTable {
 public:
  /// Bounds: a catalogue of a few hundred thousand products with their names
  /// fits; a stream of made-up names cannot grow a shard without limit.
  static constexpr std::size_t kDefaultMaxNames = 1u << 21;    // 2M names
  static constexpr std::size_t kDefaultMaxBytes = 128u << 20;  // 128 MiB of name text
  /// Room kept beyond the bounds for intern_guardrail(): rule, channel and
  /// segment names are a few dozen, and losing one would lose a cooldown.
  static constexpr std::size_t kGuardrailRoom = 4096;
  static constexpr std::size_t kGuardrailBytes = 1u << 20;

  explicit NameTable(std::size_t max_names = kDefaultMaxNames,
                     std::size_t max_bytes = kDefaultMaxBytes);
  NameTable(const NameTable&) = delete;
  NameTable& operator=(const NameTable&) = delete;

  /// The id of `name`, adding it if new. kNoName for the empty name, and when
  /// the table is full and `name` is not in it yet: callers then treat the
  /// name as absent (the entry is not recorded, as when a profile list is at
  /// its cap) and refused() counts it.
  NameId intern(std::string_view name);
  /// As intern(), for the names of rules, channels and segments: these may use
  /// kGuardrailRoom more entries, so a table filled by catalogue names still
  /// records contacts, timers and attribution windows (cooldowns hold).
  NameId intern_guardrail(std::string_view name);
  /// The id of `name` if interned, else kNoName; never adds (read paths).
  NameId find(std::string_view name) const;
  /// The text of `id` (empty for kNoName or an id this table never gave out).
  std::string_view view(NameId id) const {
    return id < names_.size() ? std::string_view(names_[id]) : std::string_view();
  }

  std::size_t size() const { return names_.size() - 1; }  // without the empty name
  std::size_t bytes() const { return bytes_; }
  std::uint64_t refused() const { return refused_; }
  std::size_t max_names() const { return max_names_; }

  /// The table of the calling thread: profiles made without a shard (tests,
  /// offline analytics, tools) intern here.
  static NameTable& thread_default();

 private:
  NameId add(std::string_view name, std::size_t max_names, std::size_t max_bytes);
  std::optional<NameId> lookup(std::string_view name, std::uint64_t hash) const;

  std::size_t max_names_;
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  std::uint64_t refused_ = 0;
  std::deque<std::string> names_;  // by id; a deque: growing it moves no string
  FlatIdIndex ids_;                // hash of the name -> its id in names_
};

}  // namespace storepulse::profile
