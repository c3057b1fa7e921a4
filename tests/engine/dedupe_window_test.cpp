#include "engine/dedupe_window.hpp"

#include <catch2/catch.hpp>
#include <deque>
#include <random>
#include <set>
#include <string>
#include <vector>

using storepulse::engine::DedupeWindow;

namespace {
std::vector<std::string> held(const DedupeWindow& w) {
  std::vector<std::string> out;
  w.for_each([&](std::string_view id) { out.emplace_back(id); });
  return out;
}
}  // namespace

TEST_CASE("dedupe window: remembers the last cap ids, forgets the oldest first") {
  DedupeWindow w(3);
  for (const char* id : {"a", "b", "c"}) CHECK(w.insert(id));
  CHECK(w.contains("a"));
  w.insert("d");  // evicts a
  CHECK_FALSE(w.contains("a"));
  CHECK(w.contains("b"));
  CHECK(w.contains("d"));
  CHECK(held(w) == std::vector<std::string>{"b", "c", "d"});
  CHECK_FALSE(w.insert("c"));  // already held: no effect on the order
  CHECK(held(w) == std::vector<std::string>{"b", "c", "d"});
  CHECK(w.size() == 3);
}

TEST_CASE("dedupe window: clear_one forgets one id, and the snapshot order skips it") {
  DedupeWindow w(4);
  for (const char* id : {"a", "b", "c"}) w.insert(id);
  w.clear_one("b");
  CHECK_FALSE(w.contains("b"));
  CHECK(w.size() == 2);
  CHECK(held(w) == std::vector<std::string>{"a", "c"});
  w.insert("b");  // a retry of the same id is new again
  CHECK(w.contains("b"));
  CHECK(held(w) == std::vector<std::string>{"a", "c", "b"});
  w.clear_one("zzz");  // not held: nothing happens
  CHECK(w.size() == 3);
}

TEST_CASE("dedupe window: a zero-sized window remembers nothing") {
  DedupeWindow w(0);
  CHECK(w.insert("a"));
  CHECK(w.insert("a"));
  CHECK_FALSE(w.contains("a"));
  CHECK(w.size() == 0);
}

TEST_CASE("dedupe window: agrees with a reference model over a long random run") {
  // The reference: a set + a FIFO in which a cleared id leaves an empty place
  // (its ring slot stays used until it is overwritten). Ids repeat often and
  // are cleared now and then, so eviction, backward-shift deletion and index
  // growth all run many times.
  constexpr std::size_t kCap = 1000;
  DedupeWindow w(kCap);
  std::set<std::string> ref_set;
  std::deque<std::string> ref_order;  // "" = a cleared place
  std::mt19937 rng(42);
  auto ref_live = [&] {
    std::vector<std::string> out;
    for (const auto& id : ref_order)
      if (!id.empty()) out.push_back(id);
    return out;
  };
  for (int i = 0; i < 200'000; ++i) {
    const std::string id = "m-" + std::to_string(rng() % 3000);
    const bool want = ref_set.count(id) != 0;
    REQUIRE(w.contains(id) == want);
    if (want) {
      if (rng() % 4 == 0) {
        w.clear_one(id);
        ref_set.erase(id);
        for (auto& x : ref_order)
          if (x == id) x.clear();
        REQUIRE_FALSE(w.contains(id));
      }
      continue;
    }
    REQUIRE(w.insert(id));
    ref_set.insert(id);
    ref_order.push_back(id);
    if (ref_order.size() > kCap) {
      ref_set.erase(ref_order.front());
      ref_order.pop_front();
    }
    REQUIRE(w.size() == ref_set.size());
    if (i % 10'000 == 0) REQUIRE(held(w) == ref_live());
  }
  CHECK(held(w) == ref_live());
  CHECK(w.size() <= kCap);
}
