#pragma once
// JSON codec: decodes one wire message into an Event (simdjson on-demand) and
// encodes replies. Decoding never throws and never allocates beyond the Event's
// own strings; a bad message yields an error whose detail names the field.
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/common/status.hpp"
#include "storepulse/protocol/event.hpp"

namespace storepulse::protocol {

struct DecodeLimits {
  std::size_t max_products = 1000;
  std::size_t max_string = 1024;                      // bytes per string field
  TimeUs max_future_us = 24LL * 3600 * kUsPerSecond;  // event-time guard
  TimeUs max_past_us = 3660LL * kUsPerDay;            // ~10 years
};

/// A wire message is either an event or a `recommend` request (web only).
enum class MessageKind : unsigned char { kEvent, kRecommend };

struct RecommendRequest {
  std::string user_id;
  std::string anonymous_id;
  std::string product_id;  // context.productId
  int limit = 5;
};

/// Owns a simdjson parser; one per io thread (not thread-safe).
class EventDecoder {
 public:
  explicit EventDecoder(DecodeLimits limits = {});
  ~EventDecoder();
  EventDecoder(const EventDecoder&) = delete;
  EventDecoder& operator=(const EventDecoder&) = delete;

  /// `json` must have at least simdjson::SIMDJSON_PADDING readable bytes after
  /// its end (use `padded()` helpers below). `now` is the receive time: it is
  /// the default timestamp and the reference for the event-time guard.
  /// On error, `message_id` in `out` is filled when it could be read, so the
  /// error reply can name it.
  Status decode(std::string_view json, TimeUs now, Event& out);

  /// Peeks at `type`; for "recommend" fills `req` and returns kRecommend.
  Result<MessageKind> decode_message(std::string_view json, TimeUs now, Event& ev,
                                     RecommendRequest& req);

  const DecodeLimits& limits() const { return limits_; }

  /// The last decode accepted an order whose stated total does not add up to
  /// its lines (a gift card, a deposit, a rounding rule of the till): the
  /// stated total is kept as the truth; the caller counts it
  /// (storepulse_receipt_mismatch_total).
  bool last_total_mismatch() const { return total_mismatch_; }

 private:
  Status decode_impl(std::string_view json, TimeUs now, Event& out, RecommendRequest* req,
                     MessageKind* kind);
  DecodeLimits limits_;
  bool total_mismatch_ = false;
  struct Parser;  // simdjson::ondemand::parser, kept out of this header
  Parser* parser_;
};

/// Extra bytes a buffer handed to EventDecoder must own past the message end.
std::size_t decode_padding();

// ---- encoding --------------------------------------------------------------

/// Appends `s` as a JSON string literal (quotes included), escaping as RFC 8259 requires.
void append_json_string(std::string& out, std::string_view s);

/// One action produced by a rule, as sent to the caller.
struct Action {
  std::string rule;
  std::string channel;  // "pos" | "web" | "sms"
  std::string text;
  std::string offer_json;  // a JSON object, or empty
  /// Not on the wire: who the action is for (the profile's userId) and, for
  /// sms, the phone number; used by the outbox and web push.
  std::string customer;
  std::string phone;
  /// Event time of the firing: with rule and customer it makes the action's
  /// idempotency id, so a replayed firing is recognised downstream.
  TimeUs at = 0;
};

std::string encode_ack(std::string_view message_id);
/// Appends the ack of encode_ack to `out` (a caller's buffer that keeps its capacity).
void append_ack(std::string& out, std::string_view message_id);
std::string encode_actions(std::string_view message_id, const std::vector<Action>& actions);
std::string encode_error(std::string_view message_id, ErrorCode code, std::string_view detail);

/// Canonical JSON of an event (used by the simulator, importers and tests).
std::string encode_event(const Event& ev);

}  // namespace storepulse::protocol
