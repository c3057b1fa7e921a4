#pragma once
// Compact binary form of a decoded Event, as the journal stores it (record type
// kEventBinary). An event is validated once, when it is received; the journal
// keeps what the decoder produced, so recovery and analytics read it back with
// a bounds-checked copy instead of running the validating JSON decoder again
// (which was most of the cost of a restart from the journal).
//
// Layout (little-endian; "str" = LEB128 length + bytes):
//   u8 version (kEventBinaryVersion) | u8 type | u8 name | u8 channel | i64 timestamp
//   | str message_id user_id anonymous_id previous_id store_id terminal_id campaign
//     timezone order_id currency promotion_id url
//   | i64 total | i64 discount | u8 has_total
//   | str first_name last_name birthday gender phone email postal_code home_store
//   | u8 sms_opt_in (0 not sent, 1 false, 2 true)
//   | LEB128 product count | per product: str product_id sku name category brand size
//     promo | i64 price | i32 quantity
// What the wire JSON held beyond the Event (tax, shipping, unknown fields) is
// not kept: nothing applies it.
#include <cstdint>
#include <string>
#include <string_view>

#include "storepulse/common/status.hpp"
#include "storepulse/protocol/event.hpp"

namespace storepulse::protocol {

inline constexpr std::uint8_t kEventBinaryVersion = 1;

/// Appends the binary form of `ev` to `out`.
void encode_event_binary(const Event& ev, std::string& out);

/// Fills `out` from `in` (every field is assigned, so an Event reused across
/// calls keeps its strings' capacity). Errors: kBadField naming what is wrong
/// (truncated, a value out of range, bytes left over); kInternal when the
/// version is not one this build reads (written by a newer build). On error
/// `out` is unspecified.
Status decode_event_binary(std::string_view in, Event& out);

}  // namespace storepulse::protocol
