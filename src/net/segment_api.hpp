#pragma once
// The Segment HTTP Tracking API on the server's port (docs/protocol.md, "Coming
// from Segment / RudderStack"): POST /v1/batch, /v1/track, /v1/identify,
// /v1/page, /v1/screen, /v1/group and /v1/alias, as @segment/analytics-node and
// RudderStack's SDKs send them. This part is transport-free: the body (after
// Content-Encoding) becomes messages for protocol::EventDecoder, and the
// per-message replies become Segment's answer. server.cpp does the I/O.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace storepulse::net {

/// Segment's documented limits: 32 KB per call, 500 KB per batch request.
inline constexpr std::size_t kSegmentMaxMessageBytes = 32 * 1024;
inline constexpr std::size_t kSegmentMaxBatchBytes = 500 * 1024;

/// The call of a Segment path ("/v1/track" -> "track"), or empty when the path
/// is not one of the API's.
std::string_view segment_call(std::string_view path);

/// The user of `Authorization: Basic base64(user:password)`; empty when the
/// header is not Basic or does not decode. Segment's write key is the user.
std::string basic_auth_user(std::string_view authorization);

/// Decompresses a request body sent with `Content-Encoding: encoding` (gzip,
/// deflate, or identity/empty: copied) into `out`, at most `limit` bytes.
/// False with `error` for another encoding (`unsupported` set: a 415), a
/// damaged stream or one that inflates past the limit (a 400/413).
bool decode_body(std::string_view body, std::string_view encoding, std::size_t limit,
                 std::string& out, std::string& error, bool& unsupported, bool& too_large);

struct SegmentRequest {
  std::string write_key;  // from the body ("writeKey"), when sent there
  std::string sent_at;    // "sentAt": when the SDK sent the request, by its own clock
  /// One JSON object per call, with "type" set (screen is sent on as page), in
  /// the order of the batch. Empty for an ignored call (see `ignored`).
  std::vector<std::string> messages;
  /// Calls acked with nothing to keep (group: the traits of a company).
  std::vector<bool> ignored;
  /// messageId of each call, as far as it could be read (for the answer).
  std::vector<std::string> message_ids;
};

/// Parses the body of POST /v1/<call>: for "batch", `{"batch":[...],...}`;
/// otherwise one call whose type the path gives. False with a reason for a
/// body that is not JSON or not of that shape (a 400: nothing was kept).
bool parse_segment_request(std::string_view call, std::string_view body, SegmentRequest& out,
                           std::string& error);

/// What to add to the calls' timestamps for the sender's clock, as Segment
/// does (timestamp = receivedAt − (sentAt − timestamp)): `received` − sentAt,
/// or 0 when sentAt is absent or not a time, or when the two clocks agree
/// within a second (network delay, not skew).
std::int64_t segment_clock_skew_us(std::string_view sent_at, std::int64_t received_us);

/// Segment's answer to a request whose calls got `replies` (the engine's
/// protocol replies: ack / actions / error, one per call, in order): 200
/// {"success":true} when every call is durable; 429 or 503 when a call may be
/// retried (rate limited, unavailable, shard elsewhere; the SDKs retry, and
/// dedupe by messageId makes that harmless); 500 for an internal error;
/// otherwise 400 with the rejected calls by index. Never a 2xx when a call
/// was lost.
struct SegmentAnswer {
  int status = 200;
  std::string body;
};
SegmentAnswer segment_answer(const std::vector<std::string>& replies);

}  // namespace storepulse::net
