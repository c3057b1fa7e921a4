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
// STOP list and the phone -> customer index survive a restart. Delivery to the
// gateway is at least once (a crash between the POST and its journal record
// resends): the gateway dedupes by `id`, which is stable for one firing.
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

struct SmsOptions {
  std::string dir = "data/sms";    // journal folder (serve uses data_dir/sms)
  std::string gateway_url;         // empty: messages stay queued (and visible)
  std::string gateway_secret;      // signs sends, verifies callbacks
  std::size_t max_outbox = 10'000;    // queued (unsent) messages at most; more are refused and counted
  std::uint32_t retry_max = 5;        // attempts per message before it fails
  double rate_per_sec = 10;           // sends per second to the gateway
  TimeUs retry_base_us = 2 * kUsPerSecond;   // first retry delay; doubles each attempt
  TimeUs retry_cap_us = 600 * kUsPerSecond;  // longest retry delay
  TimeUs timeout_us = 5 * kUsPerSecond;      // one gateway request
  std::size_t keep_finished = 20'000;  // sent/delivered/failed messages kept (idempotency window, dashboard)
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
  SmsState state = SmsState::kQueued;
  std::uint32_t attempts = 0;
  TimeUs created_us = 0;
  TimeUs updated_us = 0;
  TimeUs next_attempt_us = 0;
  std::string last_error;
};

struct SmsCounts {
  std::size_t queued = 0, sent = 0, delivered = 0, failed = 0;
  std::size_t suppressed_phones = 0;
  // Since start:
  std::uint64_t accepted = 0, duplicates = 0, dropped_full = 0, opted_out = 0, attempts = 0, retries = 0;
};

enum class ReceiptResult : unsigned char { kUpdated, kUnchanged, kUnknown };

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

  /// Delivery receipt from the gateway (io threads).
  ReceiptResult on_receipt(const std::string& id, bool delivered, std::string_view detail);
  /// STOP: the phone goes on the suppression list (journaled before this
  /// returns) and queued messages to it fail. Returns the customer last sent to
  /// at that phone, if known.
  std::optional<std::string> opt_out(std::string_view phone);
  /// START: off the suppression list. Returns the customer, if known.
  std::optional<std::string> opt_in(std::string_view phone);
  bool is_suppressed(std::string_view phone) const;
  std::optional<std::string> customer_for_phone(std::string_view phone) const;

  /// Stable id of one firing: rule + customer + event time.
  static std::string message_id(const SmsRequest& req, TimeUs now_us);
  static std::string normalize_phone(std::string_view phone);

  std::optional<SmsMessage> find(const std::string& id) const;
  SmsCounts counts() const;
  /// Newest first.
  std::vector<SmsMessage> recent(std::size_t n) const;
  /// `GET /v1/admin/sms` body: counts and the last `n` messages (phones masked).
  std::string status_json(std::size_t n) const;

  CallbackVerifier& verifier() { return verifier_; }
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
  void commit_locked();
  void accept_locked(SmsRequest&& req, TimeUs now);
  void set_state_locked(SmsMessage& m, SmsState s, TimeUs now, std::string error);
  void remember_contact_locked(const std::string& phone, const std::string& customer);
  void finish_locked(const std::string& id);
  void maybe_compact_locked();

  SmsOptions opts_;
  SmsTransport transport_;
  Clock clock_;
  CallbackVerifier verifier_;

  std::mutex inbox_mu_;  // only ever held to push/swap: shard threads take it
  std::vector<SmsRequest> inbox_;
  std::condition_variable wake_;

  mutable std::mutex mu_;
  std::unique_ptr<store::Journal> journal_;
  std::unordered_map<std::string, SmsMessage> messages_;
  std::set<std::pair<TimeUs, std::string>> due_;  // queued: (next attempt, id)
  std::deque<std::string> order_;     // every id in the table, oldest first
  std::deque<std::string> finished_;  // ids no longer queued, oldest first (eviction order)
  std::unordered_map<std::string, std::string> contacts_;  // phone -> customer
  std::deque<std::string> contact_order_;
  std::unordered_set<std::string> suppressed_;
  std::unordered_set<std::string> in_flight_;
  std::uint64_t records_since_compact_ = 0;
  double tokens_ = 0;
  TimeUs last_refill_us_ = 0;
  std::uint64_t rng_ = 0x9e3779b97f4a7c15ull;
  TimeUs last_full_warning_us_ = 0;

  std::atomic<std::uint64_t> accepted_{0}, duplicates_{0}, dropped_full_{0}, opted_out_{0}, attempts_{0},
      retries_{0};
  std::atomic<bool> running_{false};
  std::thread sender_;
};

}  // namespace storepulse::actions
