#include "storepulse/actions/sms_outbox.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "storepulse/actions/sms_twilio.hpp"
#include "storepulse/common/bytes.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::actions {
namespace {

// The outbox journal lives in its own folder, so the journal's record type
// byte carries nothing: the first payload byte says what the record is.
enum class OutboxRecord : std::uint8_t {
  kMessage = 1,
  kState = 2,
  kContact = 3,
  kSuppress = 4,
  kHealth = 5,      // phone, strikes, dead
  kGatewaySid = 6,  // id, gateway sid
};

// Distinct rule names with their own failure counters; more share "(other)".
constexpr std::size_t kMaxRuleStats = 1024;

// Above this many records since the last compaction (plus a share of the live
// state), the live state is written again and older segments are dropped, so
// the folder stays proportional to what is kept in memory.
constexpr std::uint64_t kCompactMinRecords = 4096;
// Small segments, so a compaction can drop nearly everything before it (the
// journal only deletes whole segments).
constexpr std::uint64_t kSegmentBytes = 256ull << 10;

std::string mask_phone(std::string_view phone) {
  if (phone.size() <= 3) return "***";
  return "***" + std::string(phone.substr(phone.size() - 3));
}

/// One message as the admin view and the export show it; the admin view masks
/// the phone (enough to tell numbers apart), the export is the customer's own data.
void append_message_json(std::string& o, const SmsMessage& m, bool unmasked) {
  o += "{\"id\":";
  protocol::append_json_string(o, m.id);
  o += ",\"rule\":";
  protocol::append_json_string(o, m.rule);
  o += ",\"customer\":";
  protocol::append_json_string(o, m.customer);
  o += ",\"to\":";
  protocol::append_json_string(o, unmasked ? m.phone : mask_phone(m.phone));
  o += ",\"text\":";
  protocol::append_json_string(o, m.text);
  if (!m.gateway_sid.empty()) {
    o += ",\"gatewaySid\":";
    protocol::append_json_string(o, m.gateway_sid);
  }
  o += fmt::format(
      ",\"state\":\"{}\",\"attempts\":{},\"created\":\"{}\",\"updated\":\"{}\",\"lastError\":",
      sms_state_name(m.state), m.attempts, format_iso8601(m.created_us),
      format_iso8601(m.updated_us));
  protocol::append_json_string(o, m.last_error);
  o += "}";
}

bool retryable(const GatewayReply& r) {
  return r.status == 0 || r.status == 429 || r.status >= 500;
}

}  // namespace

std::string_view gateway_format_name(GatewayFormat f) {
  return f == GatewayFormat::kJson ? "json" : "twilio";
}

bool parse_gateway_format(std::string_view s, GatewayFormat& out) {
  if (s == "twilio")
    out = GatewayFormat::kTwilio;
  else if (s == "json")
    out = GatewayFormat::kJson;
  else
    return false;
  return true;
}

ReceiptStatus receipt_status_from_twilio(std::string_view st) {
  if (st == "delivered" || st == "read") return ReceiptStatus::kDelivered;
  if (st == "undelivered") return ReceiptStatus::kUndelivered;
  if (st == "failed" || st == "canceled") return ReceiptStatus::kFailed;
  return ReceiptStatus::kInProgress;
}

std::string_view sms_state_name(SmsState s) {
  switch (s) {
    case SmsState::kQueued: return "queued";
    case SmsState::kSent: return "sent";
    case SmsState::kDelivered: return "delivered";
    case SmsState::kFailed: return "failed";
  }
  return "queued";
}

std::string SmsOutbox::normalize_phone(std::string_view phone) {
  // Gateways and profiles write the same number as "+46 70-123 45 67" or
  // "+46701234567"; STOP must match either.
  std::string out;
  for (char c : phone) {
    if (c >= '0' && c <= '9')
      out.push_back(c);
    else if (c == '+' && out.empty())
      out.push_back(c);
  }
  return out;
}

std::string SmsOutbox::message_id(const SmsRequest& req, TimeUs now_us) {
  std::string key = req.rule;
  key.push_back('\x1f');
  key += req.customer;
  key.push_back('\x1f');
  if (req.event_time != 0) {
    key += std::to_string(req.event_time);
  } else {
    // Without the firing's event time, the same text for the same customer
    // within the hour counts as the same firing (caps allow at most one anyway).
    key += req.text;
    key.push_back('\x1f');
    key += std::to_string(now_us / (3600 * kUsPerSecond));
  }
  return "sms-" + hmac_sha256_hex("storepulse-sms-id", key).substr(0, 32);
}

SmsOutbox::SmsOutbox(SmsOptions opts, SmsTransport transport, Clock clock)
    : opts_(std::move(opts)),
      transport_(std::move(transport)),
      clock_(std::move(clock)),
      verifier_(opts_.gateway_secret),
      deduper_(opts_.replay_window_us) {
  if (!clock_) clock_ = [] { return wall_clock_us(); };
  if (!opts_.account_sid.empty() || !opts_.auth_token.empty())
    basic_auth_ = "Basic " + base64_encode(opts_.account_sid + ":" + opts_.auth_token);
  tokens_ = std::max(1.0, opts_.rate_per_sec);
}

Result<std::unique_ptr<SmsOutbox>> SmsOutbox::open(SmsOptions opts, SmsTransport transport,
                                                   Clock clock) {
  if (!transport && !opts.gateway_url.empty()) {
    auto url = parse_gateway_url(opts.gateway_url);
    if (!url) return Status(url.status().code(), "sms.gateway_url: " + url.status().detail());
    transport = make_http_transport(std::move(*url), opts.timeout_us);
  }
  std::unique_ptr<SmsOutbox> box(
      new SmsOutbox(std::move(opts), std::move(transport), std::move(clock)));
  std::error_code ec;
  std::filesystem::create_directories(box->opts_.dir, ec);
  store::JournalOptions jo;
  jo.dir = box->opts_.dir;
  jo.fsync = box->opts_.fsync;
  jo.segment_bytes = kSegmentBytes;
  auto j = store::Journal::open(jo);
  if (!j) return j.status();
  box->journal_ = std::move(*j);
  if (Status s = box->replay(); !s) return s;
  return box;
}

SmsOutbox::~SmsOutbox() {
  stop();
}

Status SmsOutbox::replay() {
  std::lock_guard<std::mutex> lk(mu_);
  store::RecoveryReport rep;
  Status s = journal_->replay(
      0, [&](const store::JournalRecord& r) { apply_record(r.payload); }, rep);
  if (!s) return s;
  for (const auto& p : rep.problems) spdlog::warn("sms outbox journal damage: {}", p);
  records_since_compact_ = rep.records;
  // Rebuild the derived indexes from the table, in arrival order.
  due_.clear();
  finished_.clear();
  std::deque<std::string> order;
  for (const auto& id : order_) {
    auto it = messages_.find(id);
    if (it == messages_.end() || (!order.empty() && order.back() == id)) continue;
    order.push_back(id);
    if (it->second.state == SmsState::kQueued)
      due_.insert({it->second.next_attempt_us, id});
    else
      finished_.push_back(id);
  }
  order_ = std::move(order);
  while (finished_.size() > opts_.keep_finished) {
    messages_.erase(finished_.front());
    finished_.pop_front();
  }
  by_gateway_sid_.clear();
  for (const auto& [id, m] : messages_)
    if (!m.gateway_sid.empty()) by_gateway_sid_[m.gateway_sid] = id;
  std::size_t sent = 0;
  for (const auto& [id, m] : messages_) sent += m.state == SmsState::kSent;
  std::size_t dead = 0;
  for (const auto& [phone, h] : health_) dead += h.dead;
  spdlog::info(
      "sms outbox: {} queued, {} awaiting receipt, {} phones opted out, {} dead numbers ({} "
      "journal records)",
      due_.size(), sent, suppressed_.size(), dead, rep.records);
  return Status::ok();
}

void SmsOutbox::apply_record(std::string_view payload) {
  ByteReader r(payload);
  const auto kind = static_cast<OutboxRecord>(r.u8());
  switch (kind) {
    case OutboxRecord::kMessage: {
      SmsMessage m;
      m.id = r.str();
      m.rule = r.str();
      m.customer = r.str();
      m.phone = r.str();
      m.text = r.str();
      m.created_us = r.i64();
      if (!r.ok()) return;
      m.updated_us = m.next_attempt_us = m.created_us;
      order_.push_back(m.id);
      messages_[m.id] = std::move(m);
      break;
    }
    case OutboxRecord::kState: {
      std::string id = r.str();
      const auto state = static_cast<SmsState>(r.u8());
      const auto attempts = r.u32();
      const auto next = r.i64();
      const auto updated = r.i64();
      std::string err = r.str();
      auto it = messages_.find(id);
      if (!r.ok() || it == messages_.end()) return;
      it->second.state = state;
      it->second.attempts = attempts;
      it->second.next_attempt_us = next;
      it->second.updated_us = updated;
      it->second.last_error = std::move(err);
      break;
    }
    case OutboxRecord::kContact: {
      std::string phone = r.str(), customer = r.str();
      if (r.ok()) remember_contact_locked(phone, customer);
      break;
    }
    case OutboxRecord::kSuppress: {
      std::string phone = r.str();
      const bool on = r.u8() != 0;
      if (!r.ok()) return;
      if (on)
        suppressed_.insert(phone);
      else
        suppressed_.erase(phone);
      break;
    }
    case OutboxRecord::kHealth: {
      std::string phone = r.str();
      const auto strikes = r.u8();
      const bool dead = r.u8() != 0;
      if (r.ok()) set_health_locked(phone, strikes, dead);
      break;
    }
    case OutboxRecord::kGatewaySid: {
      std::string id = r.str(), sid = r.str();
      auto it = messages_.find(id);
      if (r.ok() && it != messages_.end()) it->second.gateway_sid = std::move(sid);
      break;
    }
  }
}

void SmsOutbox::journal_message(const SmsMessage& m) {
  std::string p;
  ByteWriter w(p);
  w.u8(static_cast<std::uint8_t>(OutboxRecord::kMessage));
  w.str(m.id);
  w.str(m.rule);
  w.str(m.customer);
  w.str(m.phone);
  w.str(m.text);
  w.i64(m.created_us);
  journal_->append(store::RecordType::kEvent, m.created_us, p);
  ++records_since_compact_;
}

void SmsOutbox::journal_state(const SmsMessage& m) {
  std::string p;
  ByteWriter w(p);
  w.u8(static_cast<std::uint8_t>(OutboxRecord::kState));
  w.str(m.id);
  w.u8(static_cast<std::uint8_t>(m.state));
  w.u32(m.attempts);
  w.i64(m.next_attempt_us);
  w.i64(m.updated_us);
  w.str(m.last_error);
  journal_->append(store::RecordType::kEvent, m.updated_us, p);
  ++records_since_compact_;
}

void SmsOutbox::journal_contact(const std::string& phone, const std::string& customer) {
  std::string p;
  ByteWriter w(p);
  w.u8(static_cast<std::uint8_t>(OutboxRecord::kContact));
  w.str(phone);
  w.str(customer);
  journal_->append(store::RecordType::kEvent, 0, p);
  ++records_since_compact_;
}

void SmsOutbox::journal_suppress(const std::string& phone, bool on) {
  std::string p;
  ByteWriter w(p);
  w.u8(static_cast<std::uint8_t>(OutboxRecord::kSuppress));
  w.str(phone);
  w.u8(on ? 1 : 0);
  journal_->append(store::RecordType::kEvent, 0, p);
  ++records_since_compact_;
}

void SmsOutbox::journal_health(const std::string& phone) {
  auto it = health_.find(phone);
  if (it == health_.end()) return;
  std::string p;
  ByteWriter w(p);
  w.u8(static_cast<std::uint8_t>(OutboxRecord::kHealth));
  w.str(phone);
  w.u8(it->second.strikes);
  w.u8(it->second.dead ? 1 : 0);
  journal_->append(store::RecordType::kEvent, 0, p);
  ++records_since_compact_;
}

void SmsOutbox::journal_sid(const SmsMessage& m) {
  std::string p;
  ByteWriter w(p);
  w.u8(static_cast<std::uint8_t>(OutboxRecord::kGatewaySid));
  w.str(m.id);
  w.str(m.gateway_sid);
  journal_->append(store::RecordType::kEvent, m.updated_us, p);
  ++records_since_compact_;
}

void SmsOutbox::set_health_locked(const std::string& phone, std::uint8_t strikes, bool dead) {
  auto [it, added] = health_.try_emplace(phone);
  it->second.strikes = strikes;
  it->second.dead = dead;
  if (!added) return;
  health_order_.push_back(phone);
  while (health_.size() > opts_.max_dead_numbers && !health_order_.empty()) {
    health_.erase(health_order_.front());
    health_order_.pop_front();
  }
}

RuleSmsStats& SmsOutbox::rule_stats_locked(const std::string& rule) {
  if (auto it = rule_stats_.find(rule); it != rule_stats_.end()) return it->second;
  if (rule_stats_.size() >= kMaxRuleStats) return rule_stats_["(other)"];
  return rule_stats_[rule];
}

void SmsOutbox::fail_delivery_locked(SmsMessage& m, TimeUs now, std::string error) {
  delivery_failed_.fetch_add(1, std::memory_order_relaxed);
  ++rule_stats_locked(m.rule).failed;
  set_state_locked(m, SmsState::kFailed, now, std::move(error));
}

void SmsOutbox::fail_queued_to_locked(const std::string& phone, TimeUs now,
                                      std::string_view reason) {
  std::vector<std::string> ids;
  for (const auto& [at, id] : due_)
    if (auto it = messages_.find(id); it != messages_.end() && it->second.phone == phone)
      ids.push_back(id);
  const bool dead = reason == "dead_number";
  for (const auto& id : ids) {
    auto it = messages_.find(id);
    if (it == messages_.end()) continue;
    if (dead) {
      dead_number_.fetch_add(1, std::memory_order_relaxed);
      ++rule_stats_locked(it->second.rule).dead_number;
    } else {
      opted_out_.fetch_add(1, std::memory_order_relaxed);
    }
    set_state_locked(it->second, SmsState::kFailed, now, std::string(reason));
  }
}

void SmsOutbox::strike_locked(const std::string& phone, bool permanent, TimeUs now) {
  const auto it = health_.find(phone);
  const PhoneHealth h = it == health_.end() ? PhoneHealth{} : it->second;
  if (h.dead) return;
  const auto strikes = static_cast<std::uint8_t>(std::min(255, h.strikes + (permanent ? 0 : 1)));
  const bool dead = permanent || strikes >= 2;
  set_health_locked(phone, strikes, dead);
  journal_health(phone);
  if (!dead) return;
  spdlog::warn("sms: number {} marked dead ({}): later SMS to it are not sent", mask_phone(phone),
               permanent ? "permanent error" : "undelivered twice");
  fail_queued_to_locked(phone, now, "dead_number");
}

GatewayRequest SmsOutbox::build_request_locked(const SmsMessage& m, TimeUs now) const {
  GatewayRequest r;
  if (opts_.format == GatewayFormat::kJson) {
    r.body = "{\"id\":";
    protocol::append_json_string(r.body, m.id);
    r.body += ",\"to\":";
    protocol::append_json_string(r.body, m.phone);
    r.body += ",\"text\":";
    protocol::append_json_string(r.body, m.text);
    r.body += "}";
    r.content_type = "application/json";
    r.headers.emplace_back(std::string(kSignatureHeader),
                           sign_request(opts_.gateway_secret, now / kUsPerSecond, r.body));
  } else {
    FormParams p;
    p.emplace_back("To", m.phone);
    // A Messaging Service picks the sender itself.
    if (opts_.from.rfind("MG", 0) == 0 && opts_.from.size() == 34)
      p.emplace_back("MessagingServiceSid", opts_.from);
    else
      p.emplace_back("From", opts_.from);
    p.emplace_back("Body", m.text);
    // Our id in the callback URL: the receipt finds its message even when the
    // gateway's answer (with its sid) was lost.
    if (!opts_.public_url.empty())
      p.emplace_back("StatusCallback",
                     join_public_url(opts_.public_url, "/v1/sms/status?id=" + m.id));
    r.body = form_encode(p);
    r.content_type = "application/x-www-form-urlencoded";
    if (!basic_auth_.empty()) r.headers.emplace_back("Authorization", basic_auth_);
  }
  r.headers.emplace_back("Idempotency-Key", m.id);
  return r;
}

void SmsOutbox::commit_locked() {
  if (journal_->pending_bytes() == 0) return;
  if (Status s = journal_->commit(); !s) {
    // In-memory state stays ahead of the disk until the next commit succeeds;
    // the sender keeps working rather than dropping messages on the floor.
    spdlog::error("sms outbox: cannot write journal: {}", s.detail());
    return;
  }
  maybe_compact_locked();
}

bool SmsOutbox::maybe_compact_locked(bool force) {
  const std::uint64_t live =
      messages_.size() * 2 + contacts_.size() + suppressed_.size() + health_.size();
  if (!force && records_since_compact_ < kCompactMinRecords + 4 * live) return true;
  if (force) {
    // Erasure: every old record must go, so the rewrite starts a new segment.
    if (Status s = journal_->roll_segment(); !s) {
      spdlog::error("sms outbox: cannot start a new journal segment: {}", s.detail());
      return false;
    }
  }
  const std::uint64_t before = journal_->last_seq();
  records_since_compact_ = 0;
  // Contacts and the STOP list first, then messages in arrival order, so a
  // replay of the rewritten tail rebuilds exactly the state in memory.
  for (const auto& phone : contact_order_)
    if (auto it = contacts_.find(phone); it != contacts_.end()) journal_contact(phone, it->second);
  for (const auto& phone : suppressed_) journal_suppress(phone, true);
  for (const auto& phone : health_order_) journal_health(phone);
  for (const auto& id : order_) {
    auto it = messages_.find(id);
    if (it == messages_.end()) continue;
    journal_message(it->second);
    journal_state(it->second);
    if (!it->second.gateway_sid.empty()) journal_sid(it->second);
  }
  if (Status s = journal_->commit(); !s) {
    spdlog::error("sms outbox: compaction write failed, keeping old segments: {}", s.detail());
    return false;
  }
  journal_->remove_segments_through(before);
  return true;
}

Result<std::size_t> SmsOutbox::erase_customer(const std::vector<std::string>& customers,
                                              const std::vector<std::string>& phones_in) {
  std::vector<std::string> phones;
  for (const auto& p : phones_in) {
    phones.push_back(p);
    phones.push_back(normalize_phone(p));
  }
  auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  std::lock_guard lock(mu_);
  for (const auto& [phone, customer] : contacts_)
    if (has(customers, customer)) phones.push_back(phone);
  std::size_t removed = 0;
  for (auto it = messages_.begin(); it != messages_.end();) {
    const SmsMessage& m = it->second;
    if (!has(customers, m.customer) && !has(phones, m.phone)) {
      ++it;
      continue;
    }
    due_.erase({m.next_attempt_us, m.id});
    if (!m.gateway_sid.empty()) by_gateway_sid_.erase(m.gateway_sid);
    order_.erase(std::remove(order_.begin(), order_.end(), m.id), order_.end());
    finished_.erase(std::remove(finished_.begin(), finished_.end(), m.id), finished_.end());
    it = messages_.erase(it);
    ++removed;
  }
  for (const auto& p : phones) {
    contacts_.erase(p);
    suppressed_.erase(p);
    health_.erase(p);
  }
  contact_order_.erase(std::remove_if(contact_order_.begin(), contact_order_.end(),
                                      [&](const std::string& p) { return !contacts_.count(p); }),
                       contact_order_.end());
  health_order_.erase(std::remove_if(health_order_.begin(), health_order_.end(),
                                     [&](const std::string& p) { return !health_.count(p); }),
                      health_order_.end());
  if (!maybe_compact_locked(true))
    return Status(ErrorCode::kUnavailable,
                  "sms outbox: the journal rewrite after erasure failed (see the log)");
  return removed;
}

std::string SmsOutbox::customer_json(const std::vector<std::string>& customers,
                                     const std::vector<std::string>& phones_in) const {
  std::vector<std::string> phones;
  for (const auto& p : phones_in) phones.push_back(normalize_phone(p));
  auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  std::lock_guard lock(mu_);
  for (const auto& [phone, customer] : contacts_)
    if (has(customers, customer) && !has(phones, phone)) phones.push_back(phone);
  std::string o = "{\"phones\":[";
  for (std::size_t i = 0; i < phones.size(); ++i) {
    if (i) o.push_back(',');
    o += "{\"phone\":";
    protocol::append_json_string(o, phones[i]);
    auto h = health_.find(phones[i]);
    o += fmt::format(",\"optedOut\":{},\"deadNumber\":{}}}",
                     suppressed_.count(phones[i]) ? "true" : "false",
                     h != health_.end() && h->second.dead ? "true" : "false");
  }
  o += "],\"messages\":[";
  bool first = true;
  for (const auto& id : order_) {
    auto it = messages_.find(id);
    if (it == messages_.end()) continue;
    const SmsMessage& m = it->second;
    if (!has(customers, m.customer) && !has(phones, m.phone)) continue;
    if (!first) o.push_back(',');
    first = false;
    append_message_json(o, m, true);
  }
  o += "]}";
  return o;
}

void SmsOutbox::remember_contact_locked(const std::string& phone, const std::string& customer) {
  auto [it, added] = contacts_.try_emplace(phone, customer);
  if (!added) {
    it->second = customer;
    return;
  }
  contact_order_.push_back(phone);
  while (contacts_.size() > opts_.max_contacts && !contact_order_.empty()) {
    contacts_.erase(contact_order_.front());
    contact_order_.pop_front();
  }
}

void SmsOutbox::finish_locked(const std::string& id) {
  finished_.push_back(id);
  while (finished_.size() > opts_.keep_finished) {
    auto it = messages_.find(finished_.front());
    if (it != messages_.end() && it->second.state != SmsState::kQueued) {
      if (!it->second.gateway_sid.empty()) by_gateway_sid_.erase(it->second.gateway_sid);
      messages_.erase(it);
    }
    finished_.pop_front();
  }
  while (!order_.empty() && !messages_.count(order_.front())) order_.pop_front();
}

void SmsOutbox::set_state_locked(SmsMessage& m, SmsState s, TimeUs now, std::string error) {
  const bool was_queued = m.state == SmsState::kQueued;
  m.state = s;
  m.updated_us = now;
  m.last_error = std::move(error);
  journal_state(m);
  if (was_queued && s != SmsState::kQueued) {
    due_.erase({m.next_attempt_us, m.id});
    finish_locked(std::string(m.id));
  }
}

void SmsOutbox::accept_locked(SmsRequest&& req, TimeUs now) {
  std::string id = message_id(req, now);
  if (messages_.count(id)) {
    duplicates_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::string phone = normalize_phone(req.phone);
  if (phone.size() < 3) {
    spdlog::warn("sms {} for {}: no usable phone number, not queued", req.rule, req.customer);
    return;
  }
  const bool refused_anyway =
      suppressed_.count(phone) || (health_.count(phone) && health_.at(phone).dead);
  if (!refused_anyway && due_.size() + in_flight_.size() >= opts_.max_outbox) {
    dropped_full_.fetch_add(1, std::memory_order_relaxed);
    if (now - last_full_warning_us_ > 60 * kUsPerSecond) {
      last_full_warning_us_ = now;
      spdlog::warn(
          "sms outbox full ({} queued, sms.max_outbox): refusing new messages ({} so far){}",
          opts_.max_outbox, dropped_full_.load(),
          transport_ ? "" : "; no sms.gateway_url is configured");
    }
    return;
  }
  if (auto it = contacts_.find(phone); it == contacts_.end() || it->second != req.customer) {
    remember_contact_locked(phone, req.customer);
    journal_contact(phone, req.customer);
  }
  SmsMessage m;
  m.id = std::move(id);
  m.rule = std::move(req.rule);
  m.customer = std::move(req.customer);
  m.phone = std::move(phone);
  m.text = std::move(req.text);
  m.created_us = m.updated_us = m.next_attempt_us = now;
  journal_message(m);
  order_.push_back(m.id);
  accepted_.fetch_add(1, std::memory_order_relaxed);
  const std::string key = m.id;
  SmsMessage& stored = messages_[key];
  stored = std::move(m);
  if (suppressed_.count(stored.phone)) {
    // Kept and visible as failed rather than silently dropped: the dashboard
    // shows that a rule tried to text someone who said STOP.
    opted_out_.fetch_add(1, std::memory_order_relaxed);
    set_state_locked(stored, SmsState::kFailed, now, "opted_out");
    due_.erase({stored.next_attempt_us, stored.id});
    return;
  }
  if (auto h = health_.find(stored.phone); h != health_.end() && h->second.dead) {
    dead_number_.fetch_add(1, std::memory_order_relaxed);
    ++rule_stats_locked(stored.rule).dead_number;
    set_state_locked(stored, SmsState::kFailed, now, "dead_number");
    return;
  }
  due_.insert({stored.next_attempt_us, stored.id});
}

void SmsOutbox::submit(SmsRequest req) {
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    inbox_.push_back(std::move(req));
  }
  wake_.notify_one();
}

std::size_t SmsOutbox::pump() {
  std::vector<SmsRequest> batch;
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    batch.swap(inbox_);
  }
  TimeUs now = clock_();
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& r : batch) accept_locked(std::move(r), now);
    commit_locked();
    (void)journal_->tick();
  }
  if (!transport_) return 0;
  std::size_t attempted = 0;
  for (;;) {
    std::string id;
    GatewayRequest request;
    batch.clear();
    {
      // Between sends too: what the shards hand over reaches the journal
      // without waiting for a whole burst of gateway requests.
      std::lock_guard<std::mutex> lk(inbox_mu_);
      batch.swap(inbox_);
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (auto& r : batch) accept_locked(std::move(r), now);
      if (!batch.empty()) commit_locked();
      const double burst = std::max(1.0, opts_.rate_per_sec);
      if (last_refill_us_ != 0)
        tokens_ = std::min(
            burst, tokens_ + static_cast<double>(now - last_refill_us_) / 1e6 * opts_.rate_per_sec);
      last_refill_us_ = now;
      if (tokens_ < 1 || due_.empty() || due_.begin()->first > now) break;
      id = due_.begin()->second;
      due_.erase(due_.begin());
      auto it = messages_.find(id);
      if (it == messages_.end() || it->second.state != SmsState::kQueued) continue;
      const SmsMessage& m = it->second;
      tokens_ -= 1;
      in_flight_.insert(id);
      request = build_request_locked(m, now);
    }
    const GatewayReply reply = transport_(request);
    attempts_.fetch_add(1, std::memory_order_relaxed);
    ++attempted;
    now = clock_();
    std::lock_guard<std::mutex> lk(mu_);
    in_flight_.erase(id);
    auto it = messages_.find(id);
    // A STOP or an early receipt may have settled it while the request was out.
    if (it == messages_.end() || it->second.state != SmsState::kQueued) {
      commit_locked();
      continue;
    }
    SmsMessage& m = it->second;
    ++m.attempts;
    const TwilioAnswer answer =
        opts_.format == GatewayFormat::kTwilio ? parse_twilio_answer(reply.body) : TwilioAnswer{};
    if (reply.status >= 200 && reply.status < 300) {
      if (!answer.sid.empty() && m.gateway_sid.empty()) {
        m.gateway_sid = answer.sid;
        by_gateway_sid_[answer.sid] = m.id;
        journal_sid(m);
      }
      set_state_locked(m, SmsState::kSent, now, "");
    } else {
      std::string err =
          reply.status ? fmt::format("gateway answered {}", reply.status) : reply.error;
      if (answer.code != 0) err += fmt::format(" (error {}: {})", answer.code, answer.message);
      if (!retryable(reply) && answer.code == kTwilioUnsubscribedCode) {
        // The recipient said STOP to the gateway: the same as a STOP to us.
        const std::string phone = m.phone;
        if (suppressed_.insert(phone).second) journal_suppress(phone, true);
        opted_out_.fetch_add(1, std::memory_order_relaxed);
        set_state_locked(m, SmsState::kFailed, now, "opted_out: " + err);
        fail_queued_to_locked(phone, now, "opted_out");
      } else if (retryable(reply) && m.attempts < opts_.retry_max) {
        // Exponential backoff with ±20 % jitter, so a gateway outage does not
        // end in every message retrying at the same instant.
        const double factor =
            std::ldexp(1.0, static_cast<int>(std::min<std::uint32_t>(m.attempts - 1, 30)));
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        const double jitter = 0.8 + 0.4 * static_cast<double>(rng_ % 10'000) / 10'000.0;
        const auto delay =
            static_cast<TimeUs>(std::min(static_cast<double>(opts_.retry_cap_us),
                                         static_cast<double>(opts_.retry_base_us) * factor) *
                                jitter);
        m.next_attempt_us = now + std::max<TimeUs>(delay, 1);
        m.updated_us = now;
        m.last_error = std::move(err);
        journal_state(m);
        due_.insert({m.next_attempt_us, m.id});
        retries_.fetch_add(1, std::memory_order_relaxed);
      } else {
        if (retryable(reply)) err = fmt::format("gave up after {} attempts: {}", m.attempts, err);
        spdlog::warn("sms {} ({} for {}) failed: {}", m.id, m.rule, m.customer, err);
        const std::string phone = m.phone;
        fail_delivery_locked(m, now, std::move(err));
        if (twilio_dead_number_code(answer.code)) strike_locked(phone, true, now);
      }
    }
    commit_locked();
  }
  return attempted;
}

void SmsOutbox::start() {
  if (running_.exchange(true)) return;
  if (!transport_)
    spdlog::warn(
        "sms: no sms.gateway_url configured: SMS are kept queued (at most sms.max_outbox = {}), "
        "see GET /v1/admin/sms",
        opts_.max_outbox);
  sender_ = std::thread([this] { run(); });
}

void SmsOutbox::run() {
  while (running_.load()) {
    pump();
    std::unique_lock<std::mutex> lk(inbox_mu_);
    // Short sleep: retries come due and the rate bucket refills without a
    // separate timer; a submit wakes the thread at once.
    wake_.wait_for(lk, std::chrono::milliseconds(50),
                   [this] { return !inbox_.empty() || !running_.load(); });
  }
}

void SmsOutbox::stop() {
  if (running_.exchange(false)) {
    wake_.notify_all();
    sender_.join();
  }
  // Whatever the shards handed over last still reaches the journal.
  std::vector<SmsRequest> batch;
  {
    std::lock_guard<std::mutex> lk(inbox_mu_);
    batch.swap(inbox_);
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (!journal_) return;
  const TimeUs now = clock_();
  for (auto& r : batch) accept_locked(std::move(r), now);
  commit_locked();
  (void)journal_->sync();
}

ReceiptResult SmsOutbox::on_receipt(const std::string& id, bool delivered,
                                    std::string_view detail) {
  Receipt r;
  r.id = id;
  r.status = delivered ? ReceiptStatus::kDelivered : ReceiptStatus::kFailed;
  r.detail = std::string(detail);
  return on_receipt(r);
}

ReceiptResult SmsOutbox::on_receipt(const Receipt& r) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = r.id.empty() ? messages_.end() : messages_.find(r.id);
  if (it == messages_.end() && !r.gateway_sid.empty())
    if (auto s = by_gateway_sid_.find(r.gateway_sid); s != by_gateway_sid_.end())
      it = messages_.find(s->second);
  if (it == messages_.end()) return ReceiptResult::kUnknown;
  SmsMessage& m = it->second;
  if (!r.gateway_sid.empty() && m.gateway_sid.empty()) {
    m.gateway_sid = r.gateway_sid;
    by_gateway_sid_[r.gateway_sid] = m.id;
    journal_sid(m);
  }
  // A receipt for a message still queued proves the gateway took it (its
  // answer was lost or is still on the way): settle it, do not resend.
  const bool open = m.state == SmsState::kSent || m.state == SmsState::kQueued;
  if (r.status == ReceiptStatus::kInProgress || !open) {
    commit_locked();
    return ReceiptResult::kUnchanged;  // receipts repeat; the first final word stands
  }
  const TimeUs now = clock_();
  const std::string phone = m.phone;
  if (r.status == ReceiptStatus::kDelivered) {
    set_state_locked(m, SmsState::kDelivered, now, "");
    if (auto h = health_.find(phone);
        h != health_.end() && !h->second.dead && h->second.strikes != 0) {
      h->second.strikes = 0;  // it takes texts: earlier misses were passing
      journal_health(phone);
    }
  } else {
    const bool undelivered = r.status == ReceiptStatus::kUndelivered;
    std::string err = r.detail.empty()
                          ? std::string(undelivered ? "undelivered" : "gateway reported failure")
                          : r.detail;
    if (r.error_code != 0) err += fmt::format(" (error {})", r.error_code);
    fail_delivery_locked(m, now, std::move(err));
    if (twilio_dead_number_code(r.error_code))
      strike_locked(phone, true, now);
    else if (undelivered)
      strike_locked(phone, false, now);
  }
  commit_locked();
  return ReceiptResult::kUpdated;
}

std::optional<std::string> SmsOutbox::opt_out(std::string_view phone_in) {
  const std::string phone = normalize_phone(phone_in);
  std::lock_guard<std::mutex> lk(mu_);
  if (phone.empty()) return std::nullopt;
  const TimeUs now = clock_();
  if (suppressed_.insert(phone).second) journal_suppress(phone, true);
  std::vector<std::string> ids;
  for (const auto& [at, id] : due_)
    if (auto it = messages_.find(id); it != messages_.end() && it->second.phone == phone)
      ids.push_back(id);
  for (const auto& id : ids) {
    opted_out_.fetch_add(1, std::memory_order_relaxed);
    set_state_locked(messages_[id], SmsState::kFailed, now, "opted_out");
  }
  commit_locked();
  // STOP is rare and must hold after a crash whatever the fsync policy says.
  (void)journal_->sync();
  auto it = contacts_.find(phone);
  return it == contacts_.end() ? std::nullopt : std::optional<std::string>(it->second);
}

std::optional<std::string> SmsOutbox::opt_in(std::string_view phone_in) {
  const std::string phone = normalize_phone(phone_in);
  std::lock_guard<std::mutex> lk(mu_);
  if (phone.empty()) return std::nullopt;
  if (suppressed_.erase(phone)) {
    journal_suppress(phone, false);
    commit_locked();
    (void)journal_->sync();
  }
  auto it = contacts_.find(phone);
  return it == contacts_.end() ? std::nullopt : std::optional<std::string>(it->second);
}

bool SmsOutbox::is_dead(std::string_view phone) const {
  const std::string p = normalize_phone(phone);
  std::lock_guard<std::mutex> lk(mu_);
  auto it = health_.find(p);
  return it != health_.end() && it->second.dead;
}

std::vector<std::pair<std::string, RuleSmsStats>> SmsOutbox::rule_stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return {rule_stats_.begin(), rule_stats_.end()};
}

bool SmsOutbox::is_suppressed(std::string_view phone) const {
  const std::string p = normalize_phone(phone);
  std::lock_guard<std::mutex> lk(mu_);
  return suppressed_.count(p) > 0;
}

std::optional<std::string> SmsOutbox::customer_for_phone(std::string_view phone) const {
  const std::string p = normalize_phone(phone);
  std::lock_guard<std::mutex> lk(mu_);
  auto it = contacts_.find(p);
  return it == contacts_.end() ? std::nullopt : std::optional<std::string>(it->second);
}

std::optional<SmsMessage> SmsOutbox::find(const std::string& id) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = messages_.find(id);
  return it == messages_.end() ? std::nullopt : std::optional<SmsMessage>(it->second);
}

SmsCounts SmsOutbox::counts() const {
  SmsCounts c;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [id, m] : messages_) {
      switch (m.state) {
        case SmsState::kQueued: ++c.queued; break;
        case SmsState::kSent: ++c.sent; break;
        case SmsState::kDelivered: ++c.delivered; break;
        case SmsState::kFailed: ++c.failed; break;
      }
    }
    c.suppressed_phones = suppressed_.size();
    for (const auto& [phone, h] : health_) c.dead_numbers += h.dead;
  }
  c.accepted = accepted_.load();
  c.duplicates = duplicates_.load();
  c.dropped_full = dropped_full_.load();
  c.opted_out = opted_out_.load();
  c.attempts = attempts_.load();
  c.retries = retries_.load();
  c.dead_number = dead_number_.load();
  c.delivery_failed = delivery_failed_.load();
  return c;
}

std::vector<SmsMessage> SmsOutbox::recent(std::size_t n) const {
  std::vector<SmsMessage> out;
  std::lock_guard<std::mutex> lk(mu_);
  for (auto it = order_.rbegin(); it != order_.rend() && out.size() < n; ++it)
    if (auto m = messages_.find(*it); m != messages_.end()) out.push_back(m->second);
  return out;
}

std::string SmsOutbox::status_json(std::size_t n) const {
  const SmsCounts c = counts();
  std::string o = fmt::format(
      "{{\"gateway\":{},\"format\":\"{}\",\"counts\":{{\"queued\":{},\"sent\":{},\"delivered\":{},"
      "\"failed\":{}}},\"suppressedPhones\":{},\"deadNumbers\":{},\"maxOutbox\":{},\"totals\":{{"
      "\"accepted\":{},\"duplicates\":{},\"droppedFull\":{},\"optedOut\":{},\"deadNumber\":{},"
      "\"deliveryFailed\":{},\"attempts\":{},\"retries\":{}}},\"rules\":{{",
      has_gateway() ? "true" : "false", gateway_format_name(opts_.format), c.queued, c.sent,
      c.delivered, c.failed, c.suppressed_phones, c.dead_numbers, opts_.max_outbox, c.accepted,
      c.duplicates, c.dropped_full, c.opted_out, c.dead_number, c.delivery_failed, c.attempts,
      c.retries);
  bool first_rule = true;
  for (const auto& [rule, st] : rule_stats()) {
    if (!first_rule) o.push_back(',');
    first_rule = false;
    protocol::append_json_string(o, rule);
    o += fmt::format(":{{\"sms_failed\":{},\"dead_number\":{}}}", st.failed, st.dead_number);
  }
  o += "},\"messages\":[";
  bool first = true;
  for (const auto& m : recent(n)) {
    if (!first) o.push_back(',');
    first = false;
    append_message_json(o, m, false);
  }
  o += "]}";
  return o;
}

}  // namespace storepulse::actions
