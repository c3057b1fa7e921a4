#pragma once
// SMS gateway callbacks and the outbox admin view, kept out of server.cpp.
// Called on io threads; every path here is rare traffic, so clarity wins over
// allocation counting.
#include <optional>
#include <string>
#include <string_view>

#include "storepulse/actions/sms_outbox.hpp"
#include "storepulse/engine/engine.hpp"

namespace storepulse::net {

struct SmsRouteReply {
  int status = 200;
  std::string body;
};

/// `POST /v1/sms/status` (delivery receipt `{id, status: delivered|failed}`) and
/// `POST /v1/sms/inbound` (`{from, text}`: STOP / START / HELP). Both must carry
/// `X-StorePulse-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of "t.body">`; a bad,
/// stale (±5 min) or replayed signature gets 403 and changes nothing.
/// STOP puts the phone on the outbox's suppression list and, when the outbox
/// knows the customer behind the phone, submits an identify with
/// `smsOptIn:false` through the engine. nullopt = not an SMS callback path.
std::optional<SmsRouteReply> handle_sms_callback(actions::SmsOutbox* outbox, engine::Engine& engine,
                                                 std::string_view path, bool is_post,
                                                 std::string_view signature, std::string_view body);

/// `GET /v1/admin/sms` (caller checked the admin token): outbox counts and the
/// last messages with their states. nullopt = another path.
std::optional<SmsRouteReply> handle_sms_admin(const actions::SmsOutbox* outbox, std::string_view path,
                                              std::string_view query);

/// Words that mean STOP / START / HELP (case-insensitive, surrounding blanks ignored).
enum class InboundKeyword : unsigned char { kNone, kStop, kStart, kHelp };
InboundKeyword parse_inbound_keyword(std::string_view text);

}  // namespace storepulse::net
