#include "net/sms_routes.hpp"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cctype>

#include "storepulse/protocol/codec.hpp"

namespace storepulse::net {
namespace {

// A receipt or an inbound text is a few hundred bytes; anything much larger is
// not from a gateway, and is refused before the MAC is even computed.
constexpr std::size_t kMaxCallbackBytes = 8 * 1024;
constexpr std::size_t kDefaultAdminMessages = 50;
constexpr std::size_t kMaxAdminMessages = 500;

constexpr std::string_view kStopReply =
    "You are unsubscribed and will get no more texts from us. Reply START to resubscribe.";
constexpr std::string_view kStartReply = "You are subscribed again. Reply STOP to unsubscribe.";
constexpr std::string_view kHelpReply =
    "Texts from your store's loyalty programme. Reply STOP to unsubscribe, START to resubscribe.";

SmsRouteReply json_error(int status, std::string_view code, std::string_view detail) {
  std::string b = fmt::format("{{\"error\":\"{}\",\"detail\":", code);
  protocol::append_json_string(b, detail);
  b += "}";
  return {status, std::move(b)};
}

/// Logs what the shard answered to a consent change; nobody waits on it.
class ConsentReply final : public engine::ReplyTarget {
 public:
  explicit ConsentReply(std::string customer) : customer_(std::move(customer)) {}
  void deliver(std::string message) override {
    if (message.find(R"("type":"error")") != std::string::npos)
      spdlog::error("sms: consent change for {} was not applied: {}", customer_, message);
  }

 private:
  std::string customer_;
};

/// Submits `{"type":"identify",…,"traits":{"smsOptIn":<on>}}` for the customer
/// through the engine, decoded like any other event so it is journaled,
/// deduped and applied on the customer's shard.
Status submit_consent(engine::Engine& engine, const std::string& customer, bool on, std::string_view phone) {
  const TimeUs now = wall_clock_us();
  const std::string message_id = fmt::format(
      "sms-{}-{}", on ? "start" : "stop",
      actions::hmac_sha256_hex("storepulse-sms-consent", fmt::format("{}|{}|{}", customer, phone, now)).substr(0, 24));
  std::string raw = R"({"type":"identify","messageId":)";
  protocol::append_json_string(raw, message_id);
  raw += R"(,"userId":)";
  protocol::append_json_string(raw, customer);
  raw += on ? R"(,"traits":{"smsOptIn":true}})" : R"(,"traits":{"smsOptIn":false}})";
  raw.reserve(raw.size() + protocol::decode_padding());
  protocol::EventDecoder decoder(engine.options().limits);
  protocol::Event ev;
  if (Status s = decoder.decode(raw, now, ev); !s) return s;
  return engine.submit(std::move(ev), std::move(raw), now, std::make_shared<ConsentReply>(customer));
}

SmsRouteReply handle_status(actions::SmsOutbox& outbox, simdjson::dom::element doc) {
  std::string_view id, status, detail;
  if (doc["id"].get_string().get(id) || id.empty()) return json_error(400, "bad_field", "id: expected a string");
  if (doc["status"].get_string().get(status) || (status != "delivered" && status != "failed"))
    return json_error(400, "bad_field", "status: expected \"delivered\" or \"failed\"");
  if (doc["error"].get_string().get(detail)) detail = {};  // optional reason from the gateway
  switch (outbox.on_receipt(std::string(id), status == "delivered", detail)) {
    case actions::ReceiptResult::kUnknown: return json_error(404, "not_found", "no such message id");
    case actions::ReceiptResult::kUnchanged: return {200, R"({"status":"ok","changed":false})"};
    case actions::ReceiptResult::kUpdated: break;
  }
  return {200, R"({"status":"ok","changed":true})"};
}

SmsRouteReply handle_inbound(actions::SmsOutbox& outbox, engine::Engine& engine, simdjson::dom::element doc) {
  std::string_view from, text;
  if (doc["from"].get_string().get(from) || actions::SmsOutbox::normalize_phone(from).size() < 3)
    return json_error(400, "bad_field", "from: expected a phone number");
  if (doc["text"].get_string().get(text)) return json_error(400, "bad_field", "text: expected a string");
  const InboundKeyword kw = parse_inbound_keyword(text);
  std::string_view word = "none", reply;
  std::optional<std::string> customer;
  if (kw == InboundKeyword::kStop) {
    word = "stop";
    reply = kStopReply;
    customer = outbox.opt_out(from);  // durable before we answer
  } else if (kw == InboundKeyword::kStart) {
    word = "start";
    reply = kStartReply;
    customer = outbox.opt_in(from);
  } else if (kw == InboundKeyword::kHelp) {
    word = "help";
    reply = kHelpReply;
  }
  bool consent_submitted = false;
  if (customer && (kw == InboundKeyword::kStop || kw == InboundKeyword::kStart)) {
    Status s = submit_consent(engine, *customer, kw == InboundKeyword::kStart, from);
    if (!s) {
      // The suppression list already holds; a 503 makes the gateway retry so the
      // profile's consent follows.
      spdlog::warn("sms {}: consent change for {} not queued: {}", word, *customer, s.detail());
      return json_error(503, "unavailable", "consent change could not be queued; retry");
    }
    consent_submitted = true;
  }
  std::string b = fmt::format(R"({{"status":"ok","keyword":"{}","customerKnown":{},"consentUpdated":{})", word,
                              customer ? "true" : "false", consent_submitted ? "true" : "false");
  if (!reply.empty()) {
    b += ",\"reply\":";
    protocol::append_json_string(b, reply);
  }
  b += "}";
  return {200, std::move(b)};
}

}  // namespace

InboundKeyword parse_inbound_keyword(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && (std::isspace(static_cast<unsigned char>(text.back())) || text.back() == '.' ||
                           text.back() == '!'))
    text.remove_suffix(1);
  if (text.size() > 16) return InboundKeyword::kNone;
  std::string w;
  for (char c : text) w.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  // The carrier-standard opt-out and opt-in words (CTIA / Twilio defaults).
  for (std::string_view s : {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT"})
    if (w == s) return InboundKeyword::kStop;
  for (std::string_view s : {"START", "YES", "UNSTOP", "OPTIN"})
    if (w == s) return InboundKeyword::kStart;
  for (std::string_view s : {"HELP", "INFO"})
    if (w == s) return InboundKeyword::kHelp;
  return InboundKeyword::kNone;
}

std::optional<SmsRouteReply> handle_sms_callback(actions::SmsOutbox* outbox, engine::Engine& engine,
                                                 std::string_view path, bool is_post,
                                                 std::string_view signature, std::string_view body) {
  const bool status_path = path == "/v1/sms/status";
  if (!status_path && path != "/v1/sms/inbound") return std::nullopt;
  if (!is_post) return json_error(405, "bad_request", "use POST");
  if (!outbox) return json_error(503, "unavailable", "SMS is not enabled on this server");
  if (body.size() > kMaxCallbackBytes) return json_error(413, "too_large", "callback body over 8 KiB");
  const auto check = outbox->verifier().verify(signature, body, wall_clock_us());
  if (check != actions::SignatureCheck::kOk) {
    // Never say which part was wrong beyond the category, and never log the header.
    spdlog::warn("sms callback {} refused: {}", path, actions::signature_check_name(check));
    return json_error(403, "forbidden", actions::signature_check_name(check));
  }
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) || !doc.is_object())
    return json_error(400, "bad_json", "expected a JSON object");
  return status_path ? handle_status(*outbox, doc) : handle_inbound(*outbox, engine, doc);
}

std::optional<SmsRouteReply> handle_sms_admin(const actions::SmsOutbox* outbox, std::string_view path,
                                              std::string_view query) {
  if (path != "/v1/admin/sms") return std::nullopt;
  if (!outbox) return json_error(503, "unavailable", "SMS is not enabled on this server");
  std::size_t n = kDefaultAdminMessages;
  if (auto at = query.find("limit="); at != std::string_view::npos) {
    std::string_view v = query.substr(at + 6);
    v = v.substr(0, v.find('&'));
    std::size_t parsed = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
    if (ec != std::errc() || end != v.data() + v.size())
      return json_error(400, "bad_field", "limit: expected a whole number");
    n = std::min(parsed, kMaxAdminMessages);
  }
  return SmsRouteReply{200, outbox->status_json(n)};
}

}  // namespace storepulse::net
