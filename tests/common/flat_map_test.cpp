// FlatStringMap and FlatIdIndex (common/flat_map.hpp) against std::unordered_map
// over long random runs of inserts, lookups and erases, at every load.
#include "storepulse/common/flat_map.hpp"

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

using storepulse::FlatIdIndex;
using storepulse::FlatStringMap;
using storepulse::hash_string;

namespace {

// Keys of every length up to 40 (the hash's short, 8-byte and 16-byte paths),
// many sharing prefixes, some empty.
std::string key_of(std::uint32_t n) {
  std::string k = "C";
  k += std::to_string(n);
  k.append(n % 41, static_cast<char>('a' + n % 26));
  if (n % 97 == 0) k.clear();
  return k;
}

void check_same(const FlatStringMap<int>& m, const std::unordered_map<std::string, int>& ref) {
  REQUIRE(m.size() == ref.size());
  std::size_t seen = 0;
  for (const auto& [k, v] : m) {
    auto it = ref.find(k);
    REQUIRE(it != ref.end());
    REQUIRE(it->second == v);
    ++seen;
  }
  REQUIRE(seen == ref.size());
  for (const auto& [k, v] : ref) {
    auto it = m.find(k);
    REQUIRE(it != m.end());
    REQUIRE(it->second == v);
  }
}

}  // namespace

TEST_CASE("flat map: random inserts, lookups and erases agree with std::unordered_map") {
  std::mt19937 rng(12345);
  FlatStringMap<int> m;
  std::unordered_map<std::string, int> ref;
  // Key space small enough that erases and re-inserts hit the same keys often.
  for (const std::uint32_t space : {50u, 3000u}) {
    for (int step = 0; step < 60000; ++step) {
      const std::string k = key_of(rng() % space);
      const int v = static_cast<int>(rng() % 1000);
      switch (rng() % 6) {
        case 0:
        case 1: {
          auto [it, added] = m.emplace(k, v);
          auto [rit, radded] = ref.emplace(k, v);
          REQUIRE(added == radded);
          REQUIRE(it->second == rit->second);
          break;
        }
        case 2: {
          m.insert_or_assign(k, v);
          ref.insert_or_assign(k, v);
          break;
        }
        case 3: {
          REQUIRE(m.erase(k) == ref.erase(k));
          break;
        }
        case 4: {
          auto it = m.find(k);
          auto rit = ref.find(k);
          REQUIRE((it == m.end()) == (rit == ref.end()));
          if (it != m.end()) {
            REQUIRE(it->first == k);
            REQUIRE(it->second == rit->second);
          }
          break;
        }
        default: {
          m[k] += 1;
          ref[k] += 1;
        }
      }
      if (step % 5000 == 0) check_same(m, ref);
    }
    check_same(m, ref);
    // Erase everything through iterators: the last entry moves into each hole.
    for (auto it = m.begin(); it != m.end();) {
      REQUIRE(ref.erase(it->first) == 1);
      it = m.erase(it);
    }
    REQUIRE(m.empty());
    REQUIRE(ref.empty());
    REQUIRE(m.find("C1") == m.end());
  }
}

TEST_CASE("flat map: grows from empty to a million keys, every key found once") {
  FlatStringMap<std::uint32_t> m;
  constexpr std::uint32_t n = 1'000'000;
  for (std::uint32_t i = 0; i < n; ++i) REQUIRE(m.emplace("cust-" + std::to_string(i), i).second);
  REQUIRE(m.size() == n);
  for (std::uint32_t i = 0; i < n; i += 7) {
    auto it = m.find("cust-" + std::to_string(i));
    REQUIRE(it != m.end());
    REQUIRE(it->second == i);
  }
  REQUIRE(m.find("cust-" + std::to_string(n)) == m.end());
  REQUIRE(!m.emplace("cust-17", 0).second);
  m.clear();
  REQUIRE(m.empty());
  REQUIRE(m.find("cust-17") == m.end());
  REQUIRE(m.emplace("cust-17", 3).second);
  REQUIRE(m.at("cust-17") == 3);
  REQUIRE_THROWS_AS(m.at("cust-18"), std::out_of_range);
}

TEST_CASE("flat map: FlatIdIndex finds each id by its name's hash, through growth") {
  std::vector<std::string> names{""};
  FlatIdIndex idx;
  auto find = [&](const std::string& s) {
    return idx.find(hash_string(s), [&](std::uint32_t id) { return names[id] == s; });
  };
  for (std::uint32_t i = 1; i < 200'000; ++i) {
    names.push_back(key_of(i) + "#" + std::to_string(i));
    REQUIRE(!find(names.back()));
    idx.insert(hash_string(names.back()), i);
  }
  REQUIRE(idx.size() == names.size() - 1);
  for (std::uint32_t i = 1; i < names.size(); ++i) REQUIRE(find(names[i]) == i);
  REQUIRE(!find("not there"));
}

TEST_CASE("flat map: hash_string separates keys that differ in one byte anywhere") {
  std::unordered_map<std::uint64_t, std::string> seen;
  for (std::size_t len = 0; len <= 40; ++len) {
    std::string base(len, 'x');
    for (std::size_t pos = 0; pos < len; ++pos)
      for (char c : {'a', 'b', 'y'}) {
        std::string k = base;
        k[pos] = c;
        auto [it, added] = seen.emplace(hash_string(k), k);
        INFO(k << " vs " << it->second);
        REQUIRE((added || it->second == k));
      }
    seen.emplace(hash_string(base), base);
  }
}
