#pragma once
// Per-customer encryption of log records (crypto-shredding). A shard seals
// every record that names a customer with that customer's own AES-256-GCM key;
// the key lives in the log's key store (keys.bin beside the journal, or a hash
// in Redis). Erasing a customer destroys the key, which leaves every record
// about them in the append-only log - and in archived segments and Redis AOF
// history - unreadable, without rewriting the log.
//
// Sealed payload: u64 kid | 12-byte nonce | ciphertext | 16-byte tag.
// The record type byte is authenticated as associated data. Nonces are a
// random 32-bit prefix drawn when the sealer is created plus a 64-bit counter,
// so a nonce never repeats under one key, across restarts included.
//
// The expanded key (AES round keys and the GCM hash key) of recently used
// customers is kept, one cipher context per cache slot: sealing a record of a
// customer seen recently only sets a new nonce, where a key schedule per record
// cost more than the encryption itself. forget() drops a customer's contexts
// (erasure); the cache is bounded (kCacheSlots contexts per direction).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "storepulse/common/status.hpp"

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct evp_cipher_st EVP_CIPHER;

namespace storepulse::store {

using KeyBytes = std::array<unsigned char, 32>;

/// One customer's key: `kid` is what sealed records carry in the clear (a
/// random number, not derived from the customer id), `subject` the profile key.
struct StoredKey {
  std::uint64_t kid = 0;
  std::string subject;
  KeyBytes key{};
};

/// Record type bit set on sealed records; the low bits keep the RecordType.
constexpr std::uint8_t kSealedBit = 0x80;
constexpr std::size_t kSealOverhead = 8 + 12 + 16;

class Sealer {
 public:
  Sealer();
  ~Sealer();
  Sealer(const Sealer&) = delete;
  Sealer& operator=(const Sealer&) = delete;

  /// A fresh random key and kid (kid is never 0).
  static StoredKey new_key(std::string_view subject);
  /// The kid a sealed payload was written under (0 when too short to be one).
  static std::uint64_t kid_of(std::string_view sealed);

  /// Appends the sealed form of `plain` to `out`.
  void seal(const StoredKey& k, std::uint8_t type, std::string_view plain, std::string& out);
  /// Replaces `out` with the plaintext; an error when the payload is damaged or
  /// was not sealed with this key.
  Status open(const KeyBytes& key, std::uint8_t type, std::string_view sealed, std::string& out);
  /// Drops the cached key schedule of `kid` (its key is being destroyed).
  void forget(std::uint64_t kid);

  /// Cipher contexts kept per direction (direct-mapped on the kid).
  static constexpr std::size_t kCacheSlots = 256;
  /// Seals and opens that found their key schedule cached / had to make it.
  std::uint64_t cache_hits() const { return hits_; }
  std::uint64_t cache_misses() const { return misses_; }

 private:
  struct Slot {
    std::uint64_t kid = 0;  // 0: empty
    KeyBytes key{};
    EVP_CIPHER_CTX* ctx = nullptr;
    bool has_cipher = false;  // ctx was set up for AES-256-GCM: a new key keeps that state
  };
  /// The context of `kid` with `key` set, for sealing (enc) or opening; null
  /// when OpenSSL cannot make one.
  EVP_CIPHER_CTX* context(std::array<Slot, kCacheSlots>& cache, bool enc, std::uint64_t kid,
                          const KeyBytes& key);

  EVP_CIPHER* cipher_ = nullptr;
  std::array<Slot, kCacheSlots> enc_{};
  std::array<Slot, kCacheSlots> dec_{};
  std::uint32_t nonce_prefix_ = 0;
  std::uint64_t counter_ = 0;
  std::uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace storepulse::store
