#include "storepulse/actions/sms_signature.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <charconv>

namespace storepulse::actions {

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 15]);
  }
  return out;
}

std::string sign_request(std::string_view secret, std::int64_t unix_seconds,
                         std::string_view body) {
  std::string signed_text = fmt::format("{}.", unix_seconds);
  signed_text.append(body);
  return fmt::format("t={},v1={}", unix_seconds, hmac_sha256_hex(secret, signed_text));
}

std::string_view signature_check_name(SignatureCheck c) {
  switch (c) {
    case SignatureCheck::kOk: return "ok";
    case SignatureCheck::kNoSecret: return "no secret configured";
    case SignatureCheck::kMissing: return "missing signature header";
    case SignatureCheck::kMalformed: return "malformed signature header";
    case SignatureCheck::kBadSignature: return "bad signature";
    case SignatureCheck::kStale: return "timestamp outside the allowed window";
    case SignatureCheck::kReplayed: return "replayed signature";
  }
  return "bad signature";
}

namespace {

// Constant time over the expected length: a mismatch position must not show in timing.
bool equal_hex(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

CallbackVerifier::CallbackVerifier(std::string secret, TimeUs tolerance_us,
                                   std::size_t max_remembered)
    : secret_(std::move(secret)), tolerance_us_(tolerance_us), max_remembered_(max_remembered) {}

SignatureCheck CallbackVerifier::verify(std::string_view header, std::string_view body,
                                        TimeUs now_us) {
  if (secret_.empty()) return SignatureCheck::kNoSecret;
  if (header.empty()) return SignatureCheck::kMissing;
  // t=<digits>,v1=<64 hex>; nothing else is accepted, so there is one way to sign.
  if (header.substr(0, 2) != "t=") return SignatureCheck::kMalformed;
  const auto comma = header.find(',');
  if (comma == std::string_view::npos) return SignatureCheck::kMalformed;
  const std::string_view t_text = header.substr(2, comma - 2);
  const std::string_view rest = header.substr(comma + 1);
  if (rest.substr(0, 3) != "v1=" || t_text.empty() || t_text.size() > 12)
    return SignatureCheck::kMalformed;
  const std::string_view mac = rest.substr(3);
  std::int64_t t = 0;
  auto [end, ec] = std::from_chars(t_text.data(), t_text.data() + t_text.size(), t);
  if (ec != std::errc() || end != t_text.data() + t_text.size() || mac.size() != 64)
    return SignatureCheck::kMalformed;
  std::string signed_text(t_text);
  signed_text.push_back('.');
  signed_text.append(body);
  if (!equal_hex(hmac_sha256_hex(secret_, signed_text), mac)) return SignatureCheck::kBadSignature;
  const TimeUs at = t * kUsPerSecond;
  if (at < now_us - tolerance_us_ || at > now_us + tolerance_us_) return SignatureCheck::kStale;

  std::lock_guard<std::mutex> lk(mu_);
  const std::int64_t oldest_ok = (now_us - tolerance_us_) / kUsPerSecond - 1;
  while (!recent_.empty() &&
         (recent_.front().first < oldest_ok || recent_.size() >= max_remembered_)) {
    recent_set_.erase(recent_.front().second);
    recent_.pop_front();
  }
  std::string key(mac);
  if (recent_set_.count(key)) return SignatureCheck::kReplayed;
  recent_set_.insert(key);
  recent_.emplace_back(t, std::move(key));
  return SignatureCheck::kOk;
}

CallbackDeduper::CallbackDeduper(TimeUs window_us, std::size_t max_keys)
    : window_us_(window_us), max_keys_(std::max<std::size_t>(1, max_keys)) {}

bool CallbackDeduper::first(const std::string& key, TimeUs now_us) {
  std::lock_guard<std::mutex> lk(mu_);
  while (!order_.empty() &&
         (order_.front().first < now_us - window_us_ || order_.size() >= max_keys_)) {
    auto it = seen_.find(order_.front().second);
    // A key forgotten and seen again has a newer entry further back: keep it.
    if (it != seen_.end() && it->second == order_.front().first) seen_.erase(it);
    order_.pop_front();
  }
  if (seen_.count(key)) return false;
  seen_.emplace(key, now_us);
  order_.emplace_back(now_us, key);
  return true;
}

void CallbackDeduper::forget(const std::string& key) {
  std::lock_guard<std::mutex> lk(mu_);
  seen_.erase(key);
}

std::size_t CallbackDeduper::size() const {
  std::lock_guard<std::mutex> lk(mu_);
  return seen_.size();
}

}  // namespace storepulse::actions
