// libFuzzer target: split_batch, which cuts a POST /v1/events body (JSON array
// or NDJSON) into per-event slices before any JSON parser sees it. Every slice
// must lie inside the body, and each slice of a well-formed split is handed
// to the decoder, as the server does. Build: scripts/fuzz.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/net/server.hpp"
#include "storepulse/protocol/codec.hpp"

using namespace storepulse;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static protocol::EventDecoder decoder;
  const std::string body(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  std::string error;
  if (!net::split_batch(body, parts, error)) {
    if (error.empty()) std::abort();  // a refusal must say why (it becomes the 400 detail)
    return 0;
  }
  for (auto part : parts) {
    if (part.data() < body.data() || part.data() + part.size() > body.data() + body.size())
      std::abort();
    if (part.empty()) std::abort();
    std::string raw;
    raw.reserve(part.size() + protocol::decode_padding());
    raw.assign(part);
    protocol::Event ev;
    (void)decoder.decode(raw, 1'790'000'000LL * kUsPerSecond, ev);
  }
  return 0;
}
