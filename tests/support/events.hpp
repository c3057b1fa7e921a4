#pragma once
// Builds wire events for tests, decoded by the real decoder.
#include <catch2/catch.hpp>
#include <string>

#include "storepulse/protocol/codec.hpp"

namespace storepulse::test {

inline protocol::Event decode_event(const std::string& json, TimeUs now = 0) {
  static protocol::EventDecoder dec;
  std::string buf;
  buf.reserve(json.size() + protocol::decode_padding());
  buf = json;
  if (now == 0) now = wall_clock_us();
  protocol::Event ev;
  Status s = dec.decode(buf, now, ev);
  INFO(json);
  INFO(s.detail());
  REQUIRE(s.is_ok());
  return ev;
}

}  // namespace storepulse::test
