#pragma once
// CompactVec<T>: the bounded lists of a customer profile (categories, cart,
// contacts, timers...). One pointer per list instead of std::vector's three:
// a profile has nine such lists and most of them are empty for most customers,
// so the 16 bytes saved per list are 144 bytes per profile. The size and the
// capacity live in a small header in front of the elements, in the same heap
// block; an empty list has no block at all.
//
// Only for trivially copyable T (ids, numbers, times): elements are moved with
// memcpy/memmove and the block with realloc. Growth is by kGrowStep elements,
// not by doubling, because the lists are short and bounded by the caller
// (CustomerProfile::kMax*): doubling left up to half of each block unused in
// every profile. Reallocation happens when an entry is added, never when one
// is updated.
//
// Thread ownership: that of the profile it is in (one shard worker).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <new>
#include <type_traits>
#include <utility>

namespace storepulse::profile {

template <class T>
class CompactVec {
  static_assert(std::is_trivially_copyable_v<T>, "CompactVec moves elements with memcpy");
  static_assert(alignof(T) <= 8, "elements follow an 8-byte header");

 public:
  using value_type = T;
  using size_type = std::size_t;
  using iterator = T*;
  using const_iterator = const T*;
  using reverse_iterator = std::reverse_iterator<T*>;
  using const_reverse_iterator = std::reverse_iterator<const T*>;
  static constexpr std::size_t kGrowStep = 2;

  CompactVec() = default;
  CompactVec(std::initializer_list<T> init) {
    reserve(init.size());
    for (const T& v : init) push_back(v);
  }
  CompactVec(const CompactVec& o) { assign_from(o); }
  CompactVec(CompactVec&& o) noexcept : block_(std::exchange(o.block_, nullptr)) {}
  CompactVec& operator=(const CompactVec& o) {
    if (this != &o) {
      clear();
      assign_from(o);
    }
    return *this;
  }
  CompactVec& operator=(CompactVec&& o) noexcept {
    if (this != &o) {
      release();
      block_ = std::exchange(o.block_, nullptr);
    }
    return *this;
  }
  ~CompactVec() { release(); }

  std::size_t size() const { return block_ ? block_->size : 0; }
  std::size_t capacity() const { return block_ ? block_->cap : 0; }
  bool empty() const { return size() == 0; }

  T* data() { return block_ ? elems() : nullptr; }
  const T* data() const { return block_ ? elems() : nullptr; }
  T* begin() { return data(); }
  T* end() { return data() + size(); }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size(); }
  reverse_iterator rbegin() { return reverse_iterator(end()); }
  reverse_iterator rend() { return reverse_iterator(begin()); }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }
  T& operator[](std::size_t i) { return elems()[i]; }
  const T& operator[](std::size_t i) const { return elems()[i]; }
  T& front() { return elems()[0]; }
  T& back() { return elems()[size() - 1]; }
  const T& front() const { return elems()[0]; }
  const T& back() const { return elems()[size() - 1]; }

  /// Makes room for `n` elements in all (never shrinks).
  void reserve(std::size_t n) {
    if (n > capacity()) regrow(n);
  }
  void push_back(const T& v) {
    const T copy = v;  // `v` may be an element of this list, moved by the regrow
    if (size() == capacity()) regrow(capacity() + kGrowStep);
    elems()[block_->size++] = copy;
  }
  /// Appends a value-initialised element and returns it.
  T& emplace_back() {
    push_back(T{});
    return back();
  }
  void pop_back() { --block_->size; }
  /// Resizes to `n`: new elements are value-initialised; the block fits `n` exactly.
  void resize(std::size_t n) {
    const std::size_t old = size();
    if (n == old) return;
    if (n == 0) {
      clear();
      return;
    }
    if (n > capacity()) regrow(n);
    for (std::size_t i = old; i < n; ++i) elems()[i] = T{};
    block_->size = static_cast<std::uint32_t>(n);
  }
  /// Empties the list and frees its block (an empty list costs nothing).
  void clear() { release(); }
  /// Frees the unused tail of the block (all of it when empty).
  void shrink_to_fit() {
    if (!block_) return;
    if (block_->size == 0)
      release();
    else if (block_->size < block_->cap)
      regrow(block_->size);
  }
  T* erase(const T* pos) { return erase(pos, pos + 1); }
  T* erase(const T* first, const T* last) {
    T* f = const_cast<T*>(first);
    const std::size_t n = static_cast<std::size_t>(last - first);
    if (n == 0) return f;
    std::memmove(static_cast<void*>(f), last, static_cast<std::size_t>(end() - last) * sizeof(T));
    block_->size -= static_cast<std::uint32_t>(n);
    return f;
  }
  T* insert(const T* pos, const T& v) {
    const T copy = v;
    const std::size_t at = static_cast<std::size_t>(pos - begin());
    if (size() == capacity()) regrow(capacity() + kGrowStep);
    T* p = elems() + at;
    std::memmove(static_cast<void*>(p + 1), p, (size() - at) * sizeof(T));
    *p = copy;
    ++block_->size;
    return p;
  }

  friend bool operator==(const CompactVec& a, const CompactVec& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!(a[i] == b[i])) return false;
    return true;
  }

  /// Removes the elements matching `pred`; returns how many (like std::erase_if).
  template <class Pred>
  friend std::size_t erase_if(CompactVec& v, Pred pred) {
    T* out = v.begin();
    for (T* it = v.begin(); it != v.end(); ++it)
      if (!pred(*it)) *out++ = *it;
    const std::size_t n = static_cast<std::size_t>(v.end() - out);
    v.erase(out, v.end());
    return n;
  }

 private:
  struct alignas(8) Header {
    std::uint32_t size;
    std::uint32_t cap;
  };
  static constexpr std::size_t kHeader = sizeof(Header);

  T* elems() { return reinterpret_cast<T*>(reinterpret_cast<char*>(block_) + kHeader); }
  const T* elems() const {
    return reinterpret_cast<const T*>(reinterpret_cast<const char*>(block_) + kHeader);
  }

  void regrow(std::size_t cap) {
    const std::size_t n = size();
    void* p = std::realloc(block_, kHeader + cap * sizeof(T));
    if (!p) throw std::bad_alloc();
    block_ = static_cast<Header*>(p);
    block_->size = static_cast<std::uint32_t>(n);
    block_->cap = static_cast<std::uint32_t>(cap);
  }
  void release() {
    std::free(block_);
    block_ = nullptr;
  }
  void assign_from(const CompactVec& o) {
    if (o.empty()) return;
    regrow(o.size());
    std::memcpy(static_cast<void*>(elems()), o.elems(), o.size() * sizeof(T));
    block_->size = static_cast<std::uint32_t>(o.size());
  }

  Header* block_ = nullptr;
};

}  // namespace storepulse::profile
