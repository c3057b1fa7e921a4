#pragma once
// SMS gateway callbacks and the outbox admin view, kept out of server.cpp.
// Called on io threads; every path here is rare traffic, so clarity wins over
// allocation counting.
#include <optional>
#include <string>
#include <string_view>

#include "storepulse/actions/sms_outbox.hpp"
#include "storepulse/actions/sms_twilio.hpp"
#include "storepulse/engine/engine.hpp"

namespace storepulse::net {

struct SmsRouteReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

/// One callback request as the server received it.
struct SmsCallbackRequest {
  std::string_view path;    // without the query
  std::string_view target;  // path and query, as sent (Twilio signs the full URL)
  bool is_post = false;
  std::string_view storepulse_signature;  // X-StorePulse-Signature (json format)
  std::string_view twilio_signature;      // X-Twilio-Signature (twilio format)
  std::string_view body;
};

/// `POST /v1/sms/status` (delivery receipt) and `POST /v1/sms/inbound` (a text
/// from a phone: STOP / START / HELP), in the outbox's gateway format:
/// - twilio: form fields (MessageSid, MessageStatus, ErrorCode / From, Body),
///   `X-Twilio-Signature` = base64 HMAC-SHA1(auth token, sms.public_url + target
///   + sorted fields); a repeat of (MessageSid, MessageStatus) inside the replay
///   window is answered 200 and changes nothing; inbound answers TwiML.
/// - json: `{id, status}` / `{from, text}` with `X-StorePulse-Signature`
///   (HMAC-SHA256, ±5 min, replays refused).
/// A bad or missing signature gets 403 and changes nothing. STOP puts the phone
/// on the outbox's suppression list and, when the outbox knows the customer
/// behind the phone, submits an identify with `smsOptIn:false` through the
/// engine (START: true). nullopt = not an SMS callback path.
std::optional<SmsRouteReply> handle_sms_callback(actions::SmsOutbox* outbox, engine::Engine& engine,
                                                 const SmsCallbackRequest& req);

/// Prometheus lines for the outbox (appended to GET /metrics); empty without one.
std::string render_sms_metrics(const actions::SmsOutbox* outbox);

/// `<?xml …?><Response><Message>text</Message></Response>`; empty text gives `<Response/>`.
std::string twiml_message(std::string_view text);

/// `GET /v1/admin/sms` (caller checked the admin token): outbox counts and the
/// last messages with their states. nullopt = another path.
std::optional<SmsRouteReply> handle_sms_admin(const actions::SmsOutbox* outbox,
                                              std::string_view path, std::string_view query);

/// Words that mean STOP / START / HELP (case-insensitive, surrounding blanks ignored).
enum class InboundKeyword : unsigned char { kNone, kStop, kStart, kHelp };
InboundKeyword parse_inbound_keyword(std::string_view text);

}  // namespace storepulse::net
