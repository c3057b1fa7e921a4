#include "storepulse/protocol/event_binary.hpp"

#include <fmt/format.h>

#include <cstring>

namespace storepulse::protocol {

namespace {

// Field lengths are small (ids ≤ 128 bytes, strings ≤ DecodeLimits::max_string):
// a LEB128 length is one byte for almost all of them, where a u32 would be four.

// Bounds-checked reader: the first overrun sets `ok` false and everything after
// reads as zero/empty, so the caller checks once at the end.
class Reader {
 public:
  explicit Reader(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}
  bool ok() const { return ok_; }
  bool at_end() const { return p_ == end_; }
  std::uint8_t u8() {
    if (p_ == end_) return fail(), 0;
    return static_cast<std::uint8_t>(*p_++);
  }
  template <typename T>
  T pod() {
    T v{};
    if (static_cast<std::size_t>(end_ - p_) < sizeof(T)) return fail(), v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return fail(), 0;
      const auto b = static_cast<std::uint8_t>(*p_++);
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    return fail(), 0;
  }
  void str(std::string& out) {
    const std::uint64_t n = varint();
    if (!ok_ || n > static_cast<std::uint64_t>(end_ - p_)) {
      fail();
      out.clear();
      return;
    }
    out.assign(p_, static_cast<std::size_t>(n));
    p_ += n;
  }
  std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }

 private:
  void fail() {
    ok_ = false;
    p_ = end_;
  }
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

}  // namespace

namespace {
std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Writes into a buffer sized beforehand: one resize per event instead of a
// capacity check per field.
class Writer {
 public:
  explicit Writer(char* p) : p_(p) {}
  void u8(std::uint8_t v) { *p_++ = static_cast<char>(v); }
  template <typename T>
  void pod(T v) {
    std::memcpy(p_, &v, sizeof(T));
    p_ += sizeof(T);
  }
  void str(const std::string& s) {
    std::uint64_t v = s.size();
    while (v >= 0x80) {
      *p_++ = static_cast<char>(static_cast<std::uint8_t>(v) | 0x80);
      v >>= 7;
    }
    *p_++ = static_cast<char>(v);
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  char* end() const { return p_; }

 private:
  char* p_;
};

std::size_t str_size(const std::string& s) {
  return varint_size(s.size()) + s.size();
}
}  // namespace

void encode_event_binary(const Event& ev, std::string& out) {
  const Traits& t = ev.traits;
  const std::string* const head[] = {&ev.message_id,  &ev.user_id,      &ev.anonymous_id,
                                     &ev.previous_id, &ev.store_id,     &ev.terminal_id,
                                     &ev.campaign,    &ev.timezone,     &ev.order_id,
                                     &ev.currency,    &ev.promotion_id, &ev.url};
  const std::string* const traits[] = {&t.first_name, &t.last_name, &t.birthday,    &t.gender,
                                       &t.phone,      &t.email,     &t.postal_code, &t.home_store};
  std::size_t size = 4 + 8 + 8 + 8 + 1 + 1 + varint_size(ev.products.size());
  for (const std::string* s : head) size += str_size(*s);
  for (const std::string* s : traits) size += str_size(*s);
  for (const Product& p : ev.products)
    size += str_size(p.product_id) + str_size(p.sku) + str_size(p.name) + str_size(p.category) +
            str_size(p.brand) + str_size(p.size) + str_size(p.promo) + 8 + 4;
  const std::size_t at = out.size();
  out.resize(at + size);
  Writer w(out.data() + at);
  w.u8(kEventBinaryVersion);
  w.u8(static_cast<std::uint8_t>(ev.type));
  w.u8(static_cast<std::uint8_t>(ev.name));
  w.u8(static_cast<std::uint8_t>(ev.channel));
  w.pod<std::int64_t>(ev.timestamp);
  for (const std::string* s : head) w.str(*s);
  w.pod<std::int64_t>(ev.total);
  w.pod<std::int64_t>(ev.discount);
  w.u8(ev.has_total ? 1 : 0);
  for (const std::string* s : traits) w.str(*s);
  w.u8(!t.sms_opt_in ? 0 : *t.sms_opt_in ? 2 : 1);
  std::uint64_t n = ev.products.size();
  while (n >= 0x80) {
    w.u8(static_cast<std::uint8_t>(n) | 0x80);
    n >>= 7;
  }
  w.u8(static_cast<std::uint8_t>(n));
  for (const Product& p : ev.products) {
    for (const std::string* s :
         {&p.product_id, &p.sku, &p.name, &p.category, &p.brand, &p.size, &p.promo})
      w.str(*s);
    w.pod<std::int64_t>(p.price);
    w.pod<std::int32_t>(p.quantity);
  }
}

Status decode_event_binary(std::string_view in, Event& out) {
  Reader r(in);
  const std::uint8_t version = r.u8();
  if (!r.ok()) return Status(ErrorCode::kBadField, "binary event: empty");
  if (version != kEventBinaryVersion)
    return Status(ErrorCode::kInternal,
                  fmt::format("binary event format version {}; this build reads version {} (was "
                              "it written by a newer build?)",
                              version, kEventBinaryVersion));
  const std::uint8_t type = r.u8(), name = r.u8(), channel = r.u8();
  if (type > static_cast<std::uint8_t>(EventType::kAlias))
    return Status(ErrorCode::kBadField, fmt::format("binary event: type {} out of range", type));
  if (name >= kEventNameCount)
    return Status(ErrorCode::kBadField, fmt::format("binary event: name {} out of range", name));
  if (channel > static_cast<std::uint8_t>(Channel::kApp))
    return Status(ErrorCode::kBadField,
                  fmt::format("binary event: channel {} out of range", channel));
  out.type = static_cast<EventType>(type);
  out.name = static_cast<EventName>(name);
  out.channel = static_cast<Channel>(channel);
  out.timestamp = r.pod<std::int64_t>();
  for (std::string* s : {&out.message_id, &out.user_id, &out.anonymous_id, &out.previous_id,
                         &out.store_id, &out.terminal_id, &out.campaign, &out.timezone,
                         &out.order_id, &out.currency, &out.promotion_id, &out.url})
    r.str(*s);
  out.total = r.pod<std::int64_t>();
  out.discount = r.pod<std::int64_t>();
  const std::uint8_t has_total = r.u8();
  out.has_total = has_total == 1;
  Traits& t = out.traits;
  for (std::string* s : {&t.first_name, &t.last_name, &t.birthday, &t.gender, &t.phone, &t.email,
                         &t.postal_code, &t.home_store})
    r.str(*s);
  const std::uint8_t opt_in = r.u8();
  if (opt_in == 0)
    t.sms_opt_in.reset();
  else
    t.sms_opt_in = opt_in == 2;
  const std::uint64_t n = r.varint();
  // Each product takes at least 7 length bytes + 12: a count past what is left
  // is damage, caught before it sizes a vector.
  if (!r.ok() || has_total > 1 || opt_in > 2 || n > r.left() / 19)
    return Status(ErrorCode::kBadField, "binary event: truncated or out of range");
  out.products.resize(static_cast<std::size_t>(n));
  for (Product& p : out.products) {
    for (std::string* s :
         {&p.product_id, &p.sku, &p.name, &p.category, &p.brand, &p.size, &p.promo})
      r.str(*s);
    p.price = r.pod<std::int64_t>();
    p.quantity = r.pod<std::int32_t>();
  }
  if (!r.ok()) return Status(ErrorCode::kBadField, "binary event: truncated");
  if (!r.at_end())
    return Status(ErrorCode::kBadField,
                  fmt::format("binary event: {} bytes after the last field", r.left()));
  if (out.message_id.empty() || (out.user_id.empty() && out.anonymous_id.empty()))
    return Status(ErrorCode::kBadField, "binary event: no messageId or customer id");
  return Status::ok();
}

}  // namespace storepulse::protocol
