// bench/profile_bytes: what one customer profile costs on the heap, by member.
//
//   profile_bytes [--customers N]   (default 100000)
//
// Builds N profiles from the same kind of events as `replay --customers`
// (identify with traits, swipe, view, add to cart, orders of three products
// from a 20-category, 30-brand, 2000-product catalogue; 10 events each),
// keyed in a hash map as the shard keeps them, without rules or journal. Prints
// the heap growth per profile measured by malloc (mallinfo2) and an estimate
// per member (object sizes, vector capacities, out-of-line string blocks) so
// the largest costs can be cut first. Not a test; see docs/benchmarks.md.
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <unordered_map>

#include "storepulse/profile/profile.hpp"

using namespace storepulse;
using namespace storepulse::profile;

namespace {

// Heap block of a std::string (libstdc++: inline up to 15 characters), with
// malloc's 8-byte header rounded up to 16.
std::size_t str_heap(const std::string& s) {
  return s.capacity() > 15 ? ((s.capacity() + 1 + 8 + 15) / 16) * 16 : 0;
}
template <class T>
std::size_t vec_heap(const std::vector<T>& v) {
  return v.capacity() ? ((v.capacity() * sizeof(T) + 8 + 15) / 16) * 16 : 0;
}
template <class T>
std::size_t vec_heap(const CompactVec<T>& v) {  // 8-byte header in the block
  return v.capacity() ? ((8 + v.capacity() * sizeof(T) + 8 + 15) / 16) * 16 : 0;
}

protocol::Product product(unsigned long p) {
  protocol::Product pr;
  pr.product_id = "P" + std::to_string(1000 + p);
  pr.name = "Product " + std::to_string(p);
  pr.category = "Cat" + std::to_string(10 + p % 20);
  pr.brand = "B" + std::to_string(10 + p % 30);
  pr.price = static_cast<protocol::Money>(500 + (p % 40) * 100);
  pr.quantity = 1;
  return pr;
}

protocol::Event make(unsigned long c, int k) {
  protocol::Event ev;
  ev.user_id = "M" + std::to_string(1000000 + c);
  ev.message_id = "s-" + std::to_string(c) + "-" + std::to_string(k);
  ev.timestamp = 1'700'000'000LL * kUsPerSecond + k * kUsPerDay;
  const unsigned long p1 = (c * 7 + static_cast<unsigned long>(k) * 13) % 2000;
  switch (k % 5) {
    case 0:
      if (k == 0) {
        ev.type = protocol::EventType::kIdentify;
        ev.traits.first_name = "Name" + std::to_string(c);
        ev.traits.last_name = "Family" + std::to_string(c);
        ev.traits.birthday = "1980-01-02";
        ev.traits.phone = "+4477" + std::to_string(10000000 + c);
        ev.traits.email = "m" + std::to_string(c) + "@example.com";
        ev.traits.home_store = "S0" + std::to_string(c % 6);
        ev.traits.sms_opt_in = true;
        break;
      }
      [[fallthrough]];
    case 4:
      ev.name = protocol::EventName::kOrderCompleted;
      ev.channel = k % 2 ? protocol::Channel::kPos : protocol::Channel::kWeb;
      ev.store_id = "S0" + std::to_string(c % 6);
      for (unsigned long p : {p1, (p1 + 101) % 2000, (p1 + 577) % 2000})
        ev.products.push_back(product(p));
      ev.total = ev.products_value();
      break;
    case 1: ev.name = protocol::EventName::kCardSwiped; break;
    case 2:
      ev.name = protocol::EventName::kProductViewed;
      ev.products.push_back(product(p1));
      break;
    default:
      ev.name = protocol::EventName::kProductAdded;
      ev.products.push_back(product(p1));
      break;
  }
  return ev;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 100000;
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::strcmp(argv[i], "--customers") == 0) n = std::stoul(argv[i + 1]);
  NameTable names;
  std::unordered_map<std::string, std::unique_ptr<CustomerProfile>> profiles;
  ::malloc_trim(0);
  const auto before = ::mallinfo2().uordblks;
  for (int k = 0; k < 10; ++k)
    for (unsigned long c = 0; c < n; ++c) {
      const protocol::Event ev = make(c, k);
      auto& slot = profiles[ev.user_id];
      if (!slot) {
        slot = std::make_unique<CustomerProfile>();
        slot->names = &names;
        slot->user_id = ev.user_id;
      }
      apply_event(*slot, ev);
    }
  const auto after = ::mallinfo2().uordblks;
  std::printf("%zu profiles, %zu names interned: heap %.0f bytes per profile (mallinfo2)\n", n,
              names.size(), static_cast<double>(after - before) / static_cast<double>(n));

  struct Row {
    const char* what;
    double bytes = 0;
  };
  Row rows[] = {{"CustomerProfile object (sizeof, malloc block)"},
                {"hash map node + bucket (key string inline)"},
                {"strings out of line (user id, traits, segment)"},
                {"categories"},
                {"brands"},
                {"recent_products"},
                {"stores"},
                {"cart"},
                {"sizes, contacts, timers, exposures, links"}};
  for (const auto& [key, p] : profiles) {
    rows[0].bytes += static_cast<double>(((sizeof(CustomerProfile) + 8 + 15) / 16) * 16);
    rows[1].bytes += 64 + 8 + static_cast<double>(str_heap(key));
    const auto& t = p->traits;
    for (const std::string* s : std::initializer_list<const std::string*>{
             &p->user_id, &p->merged_into, &t.first_name, &t.last_name, &t.birthday, &t.gender,
             &t.phone, &t.email, &t.postal_code, &t.home_store})
      rows[2].bytes += static_cast<double>(str_heap(*s));
    rows[3].bytes += static_cast<double>(vec_heap(p->categories));
    rows[4].bytes += static_cast<double>(vec_heap(p->brands));
    rows[5].bytes += static_cast<double>(vec_heap(p->recent_products));
    rows[6].bytes += static_cast<double>(vec_heap(p->stores));
    rows[7].bytes += static_cast<double>(vec_heap(p->cart));
    rows[8].bytes +=
        static_cast<double>(vec_heap(p->sizes) + vec_heap(p->contacts) + vec_heap(p->timers) +
                            vec_heap(p->exposures) + vec_heap(p->links));
  }
  double total = 0;
  for (auto& r : rows) {
    r.bytes /= static_cast<double>(n);
    total += r.bytes;
    std::printf("  %-50s %7.0f\n", r.what, r.bytes);
  }
  std::printf("  %-50s %7.0f\n", "estimated total", total);
  std::printf("sizeof: CustomerProfile %zu, CategoryStat %zu, CartItem %zu, StoreOrders %zu\n",
              sizeof(CustomerProfile), sizeof(CategoryStat), sizeof(CartItem), sizeof(StoreOrders));
  return 0;
}
