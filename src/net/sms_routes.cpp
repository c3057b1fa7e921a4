#include "net/sms_routes.hpp"

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "storepulse/actions/sms_twilio.hpp"
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
Status submit_consent(engine::Engine& engine, const std::string& customer, bool on,
                      std::string_view phone) {
  const TimeUs now = wall_clock_us();
  const std::string message_id =
      fmt::format("sms-{}-{}", on ? "start" : "stop",
                  actions::hmac_sha256_hex("storepulse-sms-consent",
                                           fmt::format("{}|{}|{}", customer, phone, now))
                      .substr(0, 24));
  std::string raw = R"({"type":"identify","messageId":)";
  protocol::append_json_string(raw, message_id);
  raw += R"(,"userId":)";
  protocol::append_json_string(raw, customer);
  raw += on ? R"(,"traits":{"smsOptIn":true}})" : R"(,"traits":{"smsOptIn":false}})";
  raw.reserve(raw.size() + protocol::decode_padding());
  protocol::EventDecoder decoder(engine.options().limits);
  protocol::Event ev;
  if (Status s = decoder.decode(raw, now, ev); !s) return s;
  return engine.submit(std::move(ev), std::move(raw), now,
                       std::make_shared<ConsentReply>(customer));
}

SmsRouteReply handle_status(actions::SmsOutbox& outbox, simdjson::dom::element doc) {
  std::string_view id, status, detail;
  if (doc["id"].get_string().get(id) || id.empty())
    return json_error(400, "bad_field", "id: expected a string");
  if (doc["status"].get_string().get(status) || (status != "delivered" && status != "failed"))
    return json_error(400, "bad_field", "status: expected \"delivered\" or \"failed\"");
  if (doc["error"].get_string().get(detail)) detail = {};  // optional reason from the gateway
  switch (outbox.on_receipt(std::string(id), status == "delivered", detail)) {
    case actions::ReceiptResult::kUnknown:
      return json_error(404, "not_found", "no such message id");
    case actions::ReceiptResult::kUnchanged: return {200, R"({"status":"ok","changed":false})"};
    case actions::ReceiptResult::kUpdated: break;
  }
  return {200, R"({"status":"ok","changed":true})"};
}

/// What an inbound text did, for either wire format.
struct InboundOutcome {
  int status = 200;  // 503: the consent change could not be queued (the gateway retries)
  std::string_view word = "none";
  std::string reply;
  bool customer_known = false;
  bool consent_updated = false;
};

InboundOutcome process_inbound(actions::SmsOutbox& outbox, engine::Engine& engine,
                               std::string_view from, std::string_view text) {
  InboundOutcome out;
  const InboundKeyword kw = parse_inbound_keyword(text);
  std::optional<std::string> customer;
  if (kw == InboundKeyword::kStop) {
    out.word = "stop";
    out.reply = kStopReply;
    customer = outbox.opt_out(from);  // durable before we answer
  } else if (kw == InboundKeyword::kStart) {
    out.word = "start";
    out.reply = kStartReply;
    customer = outbox.opt_in(from);
  } else if (kw == InboundKeyword::kHelp) {
    out.word = "help";
    out.reply = outbox.options().help_text;
  }
  out.customer_known = customer.has_value();
  if (customer && (kw == InboundKeyword::kStop || kw == InboundKeyword::kStart)) {
    Status s = submit_consent(engine, *customer, kw == InboundKeyword::kStart, from);
    if (!s) {
      // The suppression list already holds; a 503 makes the gateway retry so the
      // profile's consent follows.
      spdlog::warn("sms {}: consent change for {} not queued: {}", out.word, *customer, s.detail());
      out.status = 503;
      return out;
    }
    out.consent_updated = true;
  }
  return out;
}

SmsRouteReply handle_inbound(actions::SmsOutbox& outbox, engine::Engine& engine,
                             simdjson::dom::element doc) {
  std::string_view from, text;
  if (doc["from"].get_string().get(from) || actions::SmsOutbox::normalize_phone(from).size() < 3)
    return json_error(400, "bad_field", "from: expected a phone number");
  if (doc["text"].get_string().get(text))
    return json_error(400, "bad_field", "text: expected a string");
  const InboundOutcome r = process_inbound(outbox, engine, from, text);
  if (r.status == 503)
    return json_error(503, "unavailable", "consent change could not be queued; retry");
  std::string b = fmt::format(
      R"({{"status":"ok","keyword":"{}","customerKnown":{},"consentUpdated":{})", r.word,
      r.customer_known ? "true" : "false", r.consent_updated ? "true" : "false");
  if (!r.reply.empty()) {
    b += ",\"reply\":";
    protocol::append_json_string(b, r.reply);
  }
  b += "}";
  return {200, std::move(b)};
}

SmsRouteReply handle_json_callback(actions::SmsOutbox& outbox, engine::Engine& engine,
                                   const SmsCallbackRequest& req, bool status_path) {
  const auto check = outbox.verifier().verify(req.storepulse_signature, req.body, wall_clock_us());
  if (check != actions::SignatureCheck::kOk) {
    // Never say which part was wrong beyond the category, and never log the header.
    spdlog::warn("sms callback {} refused: {}", req.path, actions::signature_check_name(check));
    return json_error(403, "forbidden", actions::signature_check_name(check));
  }
  simdjson::dom::parser parser;
  simdjson::padded_string padded(req.body);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) || !doc.is_object())
    return json_error(400, "bad_json", "expected a JSON object");
  return status_path ? handle_status(outbox, doc) : handle_inbound(outbox, engine, doc);
}

SmsRouteReply twiml_reply(std::string_view text) {
  return {200, twiml_message(text), "text/xml; charset=utf-8"};
}

SmsRouteReply handle_twilio_callback(actions::SmsOutbox& outbox, engine::Engine& engine,
                                     const SmsCallbackRequest& req, bool status_path) {
  const auto& opts = outbox.options();
  if (opts.auth_token.empty() || opts.public_url.empty()) {
    // Without both nothing can be verified, so nothing is accepted.
    spdlog::warn("sms callback {} refused: no sms.auth_token or sms.public_url configured",
                 req.path);
    return json_error(403, "forbidden", "no auth token or public_url configured");
  }
  if (req.twilio_signature.empty()) {
    spdlog::warn("sms callback {} refused: missing signature header", req.path);
    return json_error(403, "forbidden", "missing signature header");
  }
  auto params = actions::parse_form(req.body);
  if (!params) return json_error(400, "bad_request", params.status().detail());
  // Twilio signs the URL it called: our public base URL and the target as sent.
  const std::string url = actions::join_public_url(opts.public_url, req.target);
  if (!actions::constant_time_equal(actions::twilio_signature(opts.auth_token, url, *params),
                                    req.twilio_signature)) {
    spdlog::warn("sms callback {} refused: bad signature", req.path);
    return json_error(403, "forbidden", "bad signature");
  }
  std::string_view sid = actions::form_value(*params, "MessageSid");
  if (sid.empty()) sid = actions::form_value(*params, "SmsSid");
  if (sid.empty() || sid.size() > 64)
    return json_error(400, "bad_field", "MessageSid: expected a message sid");

  if (status_path) {
    std::string_view st = actions::form_value(*params, "MessageStatus");
    if (st.empty()) st = actions::form_value(*params, "SmsStatus");
    if (st.empty() || st.size() > 32)
      return json_error(400, "bad_field", "MessageStatus: expected a status");
    // The signature has no timestamp: a receipt seen before is a retry or a replay.
    const std::string key = fmt::format("status|{}|{}", sid, st);
    if (!outbox.deduper().first(key, wall_clock_us()))
      return {200, R"({"status":"ok","changed":false,"duplicate":true})"};
    actions::Receipt r;
    // Our id rides in the StatusCallback URL; the sid finds it otherwise.
    if (auto q = req.target.find('?'); q != std::string_view::npos)
      if (auto query = actions::parse_form(req.target.substr(q + 1)))
        r.id = std::string(actions::form_value(*query, "id"));
    r.gateway_sid = std::string(sid);
    r.status = actions::receipt_status_from_twilio(st);
    const std::string_view code_text = actions::form_value(*params, "ErrorCode");
    int code = 0;
    if (!code_text.empty()) {
      auto [end, ec] = std::from_chars(code_text.data(), code_text.data() + code_text.size(), code);
      if (ec != std::errc() || end != code_text.data() + code_text.size()) code = 0;
    }
    r.error_code = code;
    if (r.status == actions::ReceiptStatus::kFailed ||
        r.status == actions::ReceiptStatus::kUndelivered)
      r.detail = std::string(st);
    switch (outbox.on_receipt(r)) {
      case actions::ReceiptResult::kUnknown: return json_error(404, "not_found", "no such message");
      case actions::ReceiptResult::kUnchanged: return {200, R"({"status":"ok","changed":false})"};
      case actions::ReceiptResult::kUpdated: break;
    }
    return {200, R"({"status":"ok","changed":true})"};
  }

  const std::string_view from = actions::form_value(*params, "From");
  if (actions::SmsOutbox::normalize_phone(from).size() < 3)
    return json_error(400, "bad_field", "From: expected a phone number");
  const std::string key = fmt::format("inbound|{}", sid);
  if (!outbox.deduper().first(key, wall_clock_us())) return twiml_reply({});
  const InboundOutcome r =
      process_inbound(outbox, engine, from, actions::form_value(*params, "Body"));
  if (r.status == 503) {
    outbox.deduper().forget(key);  // the gateway's retry must be processed
    return json_error(503, "unavailable", "consent change could not be queued; retry");
  }
  return twiml_reply(r.reply);
}

}  // namespace

InboundKeyword parse_inbound_keyword(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && (std::isspace(static_cast<unsigned char>(text.back())) ||
                           text.back() == '.' || text.back() == '!'))
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
                                                 const SmsCallbackRequest& req) {
  const bool status_path = req.path == "/v1/sms/status";
  if (!status_path && req.path != "/v1/sms/inbound") return std::nullopt;
  if (!req.is_post) return json_error(405, "bad_request", "use POST");
  if (!outbox) return json_error(503, "unavailable", "SMS is not enabled on this server");
  if (req.body.size() > kMaxCallbackBytes)
    return json_error(413, "too_large", "callback body over 8 KiB");
  if (outbox->options().format == actions::GatewayFormat::kJson)
    return handle_json_callback(*outbox, engine, req, status_path);
  return handle_twilio_callback(*outbox, engine, req, status_path);
}

std::string twiml_message(std::string_view text) {
  std::string o = R"(<?xml version="1.0" encoding="UTF-8"?>)";
  if (text.empty()) return o + "<Response/>";
  o += "<Response><Message>";
  for (char c : text) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default: o.push_back(c);
    }
  }
  o += "</Message></Response>";
  return o;
}

std::string render_sms_metrics(const actions::SmsOutbox* outbox) {
  if (!outbox) return {};
  auto label = [](std::string_view v) {
    std::string o;
    for (char c : v) {
      if (c == '\\' || c == '"') o.push_back('\\');
      if (c == '\n') {
        o += "\\n";
        continue;
      }
      o.push_back(c);
    }
    return o;
  };
  const auto c = outbox->counts();
  std::string o;
  o += "# HELP storepulse_sms_messages SMS in the outbox, by state.\n";
  o += "# TYPE storepulse_sms_messages gauge\n";
  o += fmt::format("storepulse_sms_messages{{state=\"queued\"}} {}\n", c.queued);
  o += fmt::format("storepulse_sms_messages{{state=\"sent\"}} {}\n", c.sent);
  o += fmt::format("storepulse_sms_messages{{state=\"delivered\"}} {}\n", c.delivered);
  o += fmt::format("storepulse_sms_messages{{state=\"failed\"}} {}\n", c.failed);
  o += "# HELP storepulse_sms_dead_numbers Phone numbers marked dead (SMS to them are not sent).\n";
  o += "# TYPE storepulse_sms_dead_numbers gauge\n";
  o += fmt::format("storepulse_sms_dead_numbers {}\n", c.dead_numbers);
  o += "# HELP storepulse_sms_suppressed_total SMS not sent, by reason.\n";
  o += "# TYPE storepulse_sms_suppressed_total counter\n";
  o += fmt::format("storepulse_sms_suppressed_total{{reason=\"opted_out\"}} {}\n", c.opted_out);
  o += fmt::format("storepulse_sms_suppressed_total{{reason=\"dead_number\"}} {}\n", c.dead_number);
  const auto rules = outbox->rule_stats();
  o += "# HELP storepulse_sms_failed_total SMS that failed delivery (receipt failed/undelivered, "
       "refused, retries used up), by rule.\n";
  o += "# TYPE storepulse_sms_failed_total counter\n";
  for (const auto& [rule, st] : rules)
    o += fmt::format("storepulse_sms_failed_total{{rule=\"{}\"}} {}\n", label(rule), st.failed);
  return o;
}

std::optional<SmsRouteReply> handle_sms_admin(const actions::SmsOutbox* outbox,
                                              std::string_view path, std::string_view query) {
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
