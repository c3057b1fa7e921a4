// libFuzzer target: the event decoder (simdjson validation + on-demand decode)
// on arbitrary bytes, the way an io thread calls it. Any crash, sanitizer
// report or broken invariant below is a bug. Build: scripts/fuzz.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "storepulse/protocol/codec.hpp"

using namespace storepulse;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // One decoder for the whole run, like one per io thread: state left over from
  // an earlier input must not change how a later one decodes.
  static protocol::EventDecoder decoder;
  // The server hands the decoder a buffer with simdjson's padding past the end.
  std::string buf;
  buf.reserve(size + protocol::decode_padding());
  buf.assign(reinterpret_cast<const char*>(data), size);
  const TimeUs now = 1'790'000'000LL * kUsPerSecond;  // fixed: runs must be reproducible
  protocol::Event ev;
  protocol::RecommendRequest rec;
  auto kind = decoder.decode_message(buf, now, ev, rec);
  if (kind.is_ok() && *kind == protocol::MessageKind::kEvent) {
    // What the engine relies on for an accepted event.
    if (ev.message_id.empty() || ev.message_id.size() > 128) std::abort();
    if (ev.user_id.empty() && ev.anonymous_id.empty()) std::abort();
    if (ev.total < 0 || ev.discount < 0) std::abort();
    if (ev.products.size() > decoder.limits().max_products) std::abort();
    for (const auto& p : ev.products)
      if (p.price < 0 || p.quantity < 1 || p.quantity > 100000) std::abort();
    // Encoding it back must give valid JSON (escaping), naming the same
    // message and customer. It may still be refused for a field the Event does
    // not keep (tax and shipping that made a total add up), so only bad_json fails.
    std::string again = protocol::encode_event(ev);
    again.reserve(again.size() + protocol::decode_padding());
    protocol::Event ev2;
    const Status st = decoder.decode(again, now, ev2);
    if (!st.is_ok() && st.code() == ErrorCode::kBadJson) std::abort();
    if (st.is_ok() && (ev2.message_id != ev.message_id || ev2.user_id != ev.user_id)) std::abort();
    // encode_event writes properties for track and page only; the decoder also
    // keeps a total sent on identify / alias (found by this target, harmless:
    // nothing reads money from those), so amounts are compared where encoded.
    const bool has_properties =
        ev.type == protocol::EventType::kTrack || ev.type == protocol::EventType::kPage;
    if (st.is_ok() && has_properties && ev2.total != ev.total) std::abort();
  }
  // The plain-decode path (POST /v1/events, journal recovery) on the same input.
  protocol::Event ev3;
  (void)decoder.decode(buf, now, ev3);
  return 0;
}
