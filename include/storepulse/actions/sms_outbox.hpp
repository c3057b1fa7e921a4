#pragma once
// The SMS outbox: a bounded, durable queue between the rules and the SMS gateway.
//
// Threads: submit() is called on shard worker threads and only appends to an
// in-memory inbox under a short lock (no I/O, never blocks on the gateway).
// One sender thread (start()) journals the inbox and POSTs due messages.
// The callback methods (receipts, STOP/START) and the read-only views are
// called from io threads. All state is behind one mutex that is never held
// during a gateway request.
//
// A message moves queued -> sent -> delivered | failed. A send that gets no
// answer, a 5xx or a 429 is retried with exponential backoff and jitter until
// `retry_max` attempts; any other 4xx fails it at once. Every state change is
// journaled (data_dir/sms/, store::Journal), so queued messages, states, the
// STOP list, dead numbers and the phone -> customer index survive a restart.
// Delivery to the gateway is at least once (a crash between the POST and its
// journal record resends), with the same idempotency key (`id`, stable for one
// firing) each time.
//
// Two wire formats (sms.gateway_format): `twilio` (default) POSTs the Messages
// API form (To, From, Body, StatusCallback) with basic auth and reads Twilio's
// JSON answer and error codes; `json` POSTs {"id","to","text"} signed with
// X-StorePulse-Signature. Failed / undelivered receipts count against the rule
// that sent the message; a number that failed permanently (dead error code, or
// `undelivered` twice in a row) is dead: later SMS to it are not sent.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "storepulse/actions/sms_gateway.hpp"
#include "storepulse/actions/sms_signature.hpp"
#include "storepulse/common/status.hpp"
#include "storepulse/common/time.hpp"
#include "storepulse/store/journal.hpp"

namespace storepulse::actions {

enum class GatewayFormat : std::uint8_t { kTwilio = 0, kJson = 1 };
std::string_view gateway_format_name(GatewayFormat f);
bool parse_gateway_format(std::string_view s, GatewayFormat& out);

struct SmsOptions {
  std::string dir = "data/sms";  // journal folder (serve uses data_dir/sms)
  GatewayFormat format = GatewayFormat::kTwilio;
  std::string gateway_url;     // empty: messages stay queued (and visible)
  std::string gateway_secret;  // json format: signs sends, verifies callbacks
  std::string account_sid;     // twilio format: basic auth user
  std::string auth_token;      // twilio format: basic auth password, verifies X-Twilio-Signature
  std::string from;            // twilio format: sender number, or a MessagingServiceSid (MG…)
  std::string public_url;      // base URL the gateway calls us at (signatures, StatusCallback)
  std::string help_text =
      "Texts from your store's loyalty programme. Reply STOP to unsubscribe, START to resubscribe.";
  std::size_t max_dead_numbers = 100'000;  // dead / struck phones remembered at most
  TimeUs replay_window_us =
      24 * 3600 * kUsPerSecond;  // twilio callbacks deduped by (MessageSid, status)
  std::size_t max_outbox =
      10'000;                   // queued (unsent) messages at most; more are refused and counted
  std::uint32_t retry_max = 5;  // attempts per message before it fails
  double rate_per_sec = 10;     // sends per second to the gateway
  TimeUs retry_base_us = 2 * kUsPerSecond;   // first retry delay; doubles each attempt
  TimeUs retry_cap_us = 600 * kUsPerSecond;  // longest retry delay
  TimeUs timeout_us = 5 * kUsPerSecond;      // one gateway request
  std::size_t keep_finished =
      20'000;  // sent/delivered/failed messages kept (idempotency window, dashboard)
  std::size_t max_contacts = 200'000;  // phone -> customer entries kept for STOP
  store::FsyncPolicy fsync = store::FsyncPolicy::kInterval;
};

enum class SmsState : std::uint8_t { kQueued = 0, kSent = 1, kDelivered = 2, kFailed = 3 };
std::string_view sms_state_name(SmsState s);

/// One SMS a rule asked for.
struct SmsRequest {
  std::string rule;
  std::string customer;
  std::string phone;
  std::string text;
  /// Event time of the firing (event timestamp or timer due time). 0 = not
  /// known: the id then falls back to the text and the wall-clock hour.
  TimeUs event_time = 0;
};

struct SmsMessage {
  std::string id;
  std::string rule;
  std::string customer;
  std::string phone;  // normalized: '+' and digits
  std::string text;
  std::string gateway_sid;  // the gateway's id for it (Twilio `sid`), once accepted
  SmsState state = SmsState::kQueued;
  std::uint32_t attempts = 0;
  TimeUs created_us = 0;
  TimeUs updated_us = 0;
  TimeUs next_attempt_us = 0;
  std::string last_error;
};

struct SmsCounts {
  std::size_t queued = 0, sent = 0, delivered = 0, failed = 0;
  std::size_t suppressed_phones = 0, dead_numbers = 0;
  // Since start:
  std::uint64_t accepted = 0, duplicates = 0, dropped_full = 0, opted_out = 0, attempts = 0,
                retries = 0, dead_number = 0, delivery_failed = 0;
};

/// Per rule, since start: messages that failed delivery (failed / undelivered
/// receipt, permanent gateway refusal, retries used up) and SMS not sent
/// because the number is dead.
struct RuleSmsStats {
  std::uint64_t failed = 0;
  std::uint64_t dead_number = 0;
};

enum class ReceiptResult : unsigned char { kUpdated, kUnchanged, kUnknown };

enum class ReceiptStatus : unsigned char { kDelivered, kFailed, kUndelivered, kInProgress };
/// Twilio MessageStatus -> receipt status (queued, sending, sent, accepted … are in progress).
ReceiptStatus receipt_status_from_twilio(std::string_view message_status);

/// A delivery receipt. The message is found by `id` (ours) when given and
/// known, else by `gateway_sid`.
struct Receipt {
  std::string id;
  std::string gateway_sid;
  ReceiptStatus status = ReceiptStatus::kInProgress;
  int error_code = 0;  // Twilio ErrorCode, 0 = none
  std::string detail;  // reason text, if any
};

using Clock = std::function<TimeUs()>;

class SmsOutbox {
 public:
  /// Opens (creating) the journal folder and replays it. `transport` defaults
  /// to an HTTP client for `gateway_url` (none when the URL is empty); `clock`
  /// to the wall clock. Tests pass fakes.
  static Result<std::unique_ptr<SmsOutbox>> open(SmsOptions opts, SmsTransport transport = {},
                                                 Clock clock = {});
  ~SmsOutbox();
  SmsOutbox(const SmsOutbox&) = delete;
  SmsOutbox& operator=(const SmsOutbox&) = delete;

  /// Starts the sender thread. stop() drains the inbox to the journal and joins.
  void start();
  void stop();

  /// Any thread (shard workers): hands over one SMS. Never does I/O.
  void submit(SmsRequest req);
  /// Sender thread (or a test): journals what was submitted, then sends the
  /// messages that are due, as far as the rate allows. Returns how many sends
  /// were attempted.
  std::size_t pump();

  /// Delivery receipt from the gateway (io threads). A final receipt for a
  /// message that already has its final state changes nothing.
  ReceiptResult on_receipt(const Receipt& receipt);
  ReceiptResult on_receipt(const std::string& id, bool delivered, std::string_view detail);
  /// STOP: the phone goes on the suppression list (journaled before this
  /// returns) and queued messages to it fail. Returns the customer last sent to
  /// at that phone, if known.
  std::optional<std::string> opt_out(std::string_view phone);
  /// START: off the suppression list. Returns the customer, if known.
  std::optional<std::string> opt_in(std::string_view phone);
  bool is_suppressed(std::string_view phone) const;
  /// The number failed permanently; SMS to it are not sent.
  bool is_dead(std::string_view phone) const;
  /// Per-rule delivery failures, sorted by rule name.
  std::vector<std::pair<std::string, RuleSmsStats>> rule_stats() const;
  std::optional<std::string> customer_for_phone(std::string_view phone) const;

  /// Stable id of one firing: rule + customer + event time.
  static std::string message_id(const SmsRequest& req, TimeUs now_us);
  static std::string normalize_phone(std::string_view phone);

  std::optional<SmsMessage> find(const std::string& id) const;
  /// Erasure: forgets every message to or about these customers or phones, the
  /// phones' contact, STOP and health entries, then writes the outbox journal
  /// again from scratch and deletes every older segment. Returns how many
  /// messages were removed; an error when the rewrite failed.
  Result<std::size_t> erase_customer(const std::vector<std::string>& customers,
                                     const std::vector<std::string>& phones);
  /// Subject access: `"sms":{...}` content (messages, opt-out, health) for these
  /// customers or phones, as JSON, unmasked.
  std::string customer_json(const std::vector<std::string>& customers,
                            const std::vector<std::string>& phones) const;
  SmsCounts counts() const;
  /// Newest first.
  std::vector<SmsMessage> recent(std::size_t n) const;
  /// `GET /v1/admin/sms` body: counts and the last `n` messages (phones masked).
  std::string status_json(std::size_t n) const;

  CallbackVerifier& verifier() { return verifier_; }
  CallbackDeduper& deduper() { return deduper_; }
  bool has_gateway() const { return static_cast<bool>(transport_); }
  const SmsOptions& options() const { return opts_; }

 private:
  SmsOutbox(SmsOptions opts, SmsTransport transport, Clock clock);
  Status replay();
  void run();
  // All below: caller holds mu_.
  void apply_record(std::string_view payload);
  void journal_message(const SmsMessage& m);
  void journal_state(const SmsMessage& m);
  void journal_contact(const std::string& phone, const std::string& customer);
  void journal_suppress(const std::string& phone, bool on);
  void journal_health(const std::string& phone);
  void journal_sid(const SmsMessage& m);
  GatewayRequest build_request_locked(const SmsMessage& m, TimeUs now) const;
  void fail_delivery_locked(SmsMessage& m, TimeUs now, std::string error);
  void fail_queued_to_locked(const std::string& phone, TimeUs now, std::string_view reason);
  void strike_locked(const std::string& phone, bool permanent, TimeUs now);
  void set_health_locked(const std::string& phone, std::uint8_t strikes, bool dead);
  RuleSmsStats& rule_stats_locked(const std::string& rule);
  void commit_locked();
  void accept_locked(SmsRequest&& req, TimeUs now);
  void set_state_locked(SmsMessage& m, SmsState s, TimeUs now, std::string error);
  void remember_contact_locked(const std::string& phone, const std::string& customer);
  void finish_locked(const std::string& id);
  bool maybe_compact_locked(bool force = false);  // false: the rewrite failed

  SmsOptions opts_;
  SmsTransport transport_;
  Clock clock_;
  CallbackVerifier verifier_;
  CallbackDeduper deduper_;
  std::string basic_auth_;  // "Basic base64(sid:token)", twilio format

  std::mutex inbox_mu_;  // only ever held to push/swap: shard threads take it
  std::vector<SmsRequest> inbox_;
  std::condition_variable wake_;

  mutable std::mutex mu_;
  std::unique_ptr<store::Journal> journal_;
  std::unordered_map<std::string, SmsMessage> messages_;
  std::set<std::pair<TimeUs, std::string>> due_;  // queued: (next attempt, id)
  std::deque<std::string> order_;                 // every id in the table, oldest first
  std::deque<std::string> finished_;  // ids no longer queued, oldest first (eviction order)
  std::unordered_map<std::string, std::string> contacts_;  // phone -> customer
  std::deque<std::string> contact_order_;
  std::unordered_set<std::string> suppressed_;
  struct PhoneHealth {
    std::uint8_t strikes = 0;  // `undelivered` receipts in a row
    bool dead = false;
  };
  std::unordered_map<std::string, PhoneHealth> health_;  // bounded by max_dead_numbers
  std::deque<std::string> health_order_;                 // keys of health_, oldest first
  std::unordered_map<std::string, std::string>
      by_gateway_sid_;                              // gateway sid -> id, for kept messages
  std::map<std::string, RuleSmsStats> rule_stats_;  // bounded: kMaxRuleStats names
  std::unordered_set<std::string> in_flight_;
  std::uint64_t records_since_compact_ = 0;
  double tokens_ = 0;
  TimeUs last_refill_us_ = 0;
  std::uint64_t rng_ = 0x9e3779b97f4a7c15ull;
  TimeUs last_full_warning_us_ = 0;

  std::atomic<std::uint64_t> accepted_{0}, duplicates_{0}, dropped_full_{0}, opted_out_{0},
      attempts_{0}, retries_{0}, dead_number_{0}, delivery_failed_{0};
  std::atomic<bool> running_{false};
  std::thread sender_;
};

}  // namespace storepulse::actions
