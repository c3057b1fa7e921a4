#pragma once
// Signing of SMS gateway traffic in both directions. One shared secret; the
// header is `X-StorePulse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
// Putting the timestamp under the MAC lets the receiver refuse old requests, and
// remembering recent signatures refuses an exact replay inside the window.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "storepulse/common/time.hpp"

namespace storepulse::actions {

inline constexpr std::string_view kSignatureHeader = "X-StorePulse-Signature";

/// Lower-case hex HMAC-SHA256 (OpenSSL).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

/// The header value for `body` signed at `unix_seconds`.
std::string sign_request(std::string_view secret, std::int64_t unix_seconds, std::string_view body);

enum class SignatureCheck : unsigned char {
  kOk,
  kNoSecret,      // no secret configured: nothing can be verified, so nothing is accepted
  kMissing,       // no header
  kMalformed,     // header not `t=…,v1=…`
  kBadSignature,  // MAC does not match
  kStale,         // timestamp outside the tolerance (old capture or skewed clock)
  kReplayed,      // this exact signature was already accepted inside the window
};
std::string_view signature_check_name(SignatureCheck c);

/// Verifies callback signatures and remembers the accepted ones for the
/// tolerance window. Thread-safe (io threads call it concurrently).
class CallbackVerifier {
 public:
  explicit CallbackVerifier(std::string secret, TimeUs tolerance_us = 300 * kUsPerSecond,
                            std::size_t max_remembered = 100'000);
  SignatureCheck verify(std::string_view header, std::string_view body, TimeUs now_us);
  bool has_secret() const { return !secret_.empty(); }

 private:
  std::string secret_;
  TimeUs tolerance_us_;
  std::size_t max_remembered_;
  std::mutex mu_;
  // Accepted signatures with their timestamps, oldest first. Entries older than
  // the window can go: their timestamp alone makes a replay stale.
  std::deque<std::pair<std::int64_t, std::string>> recent_;
  std::unordered_set<std::string> recent_set_;
};

/// Replay protection for Twilio callbacks, whose signature carries no timestamp:
/// remembers each callback's key (path + MessageSid + MessageStatus) for
/// `window_us`, at most `max_keys` of them (oldest forgotten first).
/// Thread-safe.
class CallbackDeduper {
 public:
  explicit CallbackDeduper(TimeUs window_us = 24 * 3600 * kUsPerSecond,
                           std::size_t max_keys = 100'000);
  /// True the first time `key` is seen inside the window; remembers it.
  bool first(const std::string& key, TimeUs now_us);
  /// Drops `key` (the callback could not be processed; the gateway retries it).
  void forget(const std::string& key);
  std::size_t size() const;

 private:
  TimeUs window_us_;
  std::size_t max_keys_;
  mutable std::mutex mu_;
  std::deque<std::pair<TimeUs, std::string>> order_;  // oldest first
  std::unordered_map<std::string, TimeUs> seen_;
};

}  // namespace storepulse::actions
