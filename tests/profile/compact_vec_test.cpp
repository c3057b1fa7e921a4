#include "storepulse/profile/compact_vec.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "storepulse/profile/profile.hpp"

using storepulse::profile::CompactVec;

namespace {
struct Rec {
  std::uint32_t id = 0;
  std::int64_t when = 0;
  bool operator==(const Rec&) const = default;
};
std::vector<int> as_vector(const CompactVec<int>& v) {
  return std::vector<int>(v.begin(), v.end());
}
}  // namespace

TEST_CASE("compact vec: one pointer per list - no block while empty") {
  static_assert(sizeof(CompactVec<Rec>) == sizeof(void*));
  CompactVec<Rec> v;
  CHECK(v.empty());
  CHECK(v.capacity() == 0);
  CHECK(v.begin() == v.end());
  CHECK(std::find_if(v.begin(), v.end(), [](const Rec& r) { return r.id == 1; }) == v.end());
}

TEST_CASE("compact vec: push - index - grow two at a time - keep values across growth") {
  CompactVec<Rec> v;
  for (std::uint32_t i = 0; i < 9; ++i) v.push_back({i, 100 + i});
  REQUIRE(v.size() == 9);
  CHECK(v.capacity() == 10);  // 2, 4, 6, 8, 10: not 16 as doubling would
  for (std::uint32_t i = 0; i < 9; ++i) CHECK(v[i] == Rec{i, 100 + i});
  CHECK(v.back().id == 8);
  CHECK(v.front().id == 0);
  v.emplace_back().id = 42;
  CHECK(v.size() == 10);
  CHECK(v.back() == Rec{42, 0});
  // Pushing an element of the list itself while it grows copies the value first.
  v.push_back(v[0]);
  CHECK(v.back() == Rec{0, 100});
}

TEST_CASE("compact vec: erase - insert - erase_if - resize - clear - shrink") {
  CompactVec<int> v{1, 2, 3, 4, 5};
  v.erase(v.begin() + 1);
  CHECK(as_vector(v) == std::vector<int>{1, 3, 4, 5});
  v.erase(std::min_element(v.begin(), v.end()));
  CHECK(as_vector(v) == std::vector<int>{3, 4, 5});
  v.insert(v.begin(), 9);
  CHECK(as_vector(v) == std::vector<int>{9, 3, 4, 5});
  v.insert(v.end(), 7);
  CHECK(as_vector(v) == std::vector<int>{9, 3, 4, 5, 7});
  CHECK(erase_if(v, [](int x) { return x % 2 == 1; }) == 4);
  CHECK(as_vector(v) == std::vector<int>{4});
  v.resize(3);
  CHECK(as_vector(v) == std::vector<int>{4, 0, 0});
  CHECK(v.capacity() == 5);  // the block was big enough: resize does not shrink it
  CompactVec<int> fresh;
  fresh.resize(3);
  CHECK(fresh.capacity() == 3);  // a new block fits exactly
  v.resize(1);
  CHECK(as_vector(v) == std::vector<int>{4});
  v.shrink_to_fit();
  CHECK(v.capacity() == 1);
  std::vector<int> back(v.rbegin(), v.rend());
  CHECK(back == std::vector<int>{4});
  v.clear();
  CHECK(v.empty());
  CHECK(v.capacity() == 0);  // clear frees the block
  CHECK(erase_if(v, [](int) { return true; }) == 0);
}

TEST_CASE("compact vec: copies are deep - moves take the block - equality by elements") {
  CompactVec<int> a{1, 2, 3};
  CompactVec<int> b = a;
  b[0] = 10;
  CHECK(a[0] == 1);
  CHECK_FALSE(a == b);
  b[0] = 1;
  CHECK(a == b);
  CompactVec<int> c = std::move(b);
  CHECK(as_vector(c) == std::vector<int>{1, 2, 3});
  CHECK(b.empty());  // NOLINT(bugprone-use-after-move): a moved-from list is empty
  a = c;
  const CompactVec<int>& same = a;
  a = same;  // self-assignment keeps the elements
  CHECK(as_vector(a) == std::vector<int>{1, 2, 3});
  CompactVec<int> empty;
  a = empty;
  CHECK(a.empty());
  std::stable_sort(c.begin(), c.end(), [](int x, int y) { return x > y; });
  CHECK(as_vector(c) == std::vector<int>{3, 2, 1});
}

TEST_CASE("compact vec: a profile's lists cost one pointer each") {
  using namespace storepulse::profile;
  CustomerProfile p;
  CHECK(sizeof(p.categories) == sizeof(void*));
  CHECK(sizeof(p.contacts) == sizeof(void*));
  CHECK(p.cart.capacity() == 0);
}
