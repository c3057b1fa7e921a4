#include "storepulse/store/sealer.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>

namespace storepulse::store {
namespace {
void random_bytes(void* p, std::size_t n) {
  if (RAND_bytes(static_cast<unsigned char*>(p), static_cast<int>(n)) != 1)
    throw std::runtime_error("OpenSSL RAND_bytes failed: no entropy for customer keys");
}
}  // namespace

Sealer::Sealer() {
  // Fetch the cipher once: contexts made from it later only change key and
  // nonce (OpenSSL 3 would otherwise look the cipher up on every record, which
  // cost more than the encryption itself).
  cipher_ = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (!cipher_) throw std::runtime_error("OpenSSL: AES-256-GCM is not available");
  random_bytes(&nonce_prefix_, sizeof nonce_prefix_);
  random_bytes(&counter_, sizeof counter_);
}

Sealer::~Sealer() {
  for (auto* cache : {&enc_, &dec_})
    for (auto& s : *cache) EVP_CIPHER_CTX_free(s.ctx);
  EVP_CIPHER_free(cipher_);
}

EVP_CIPHER_CTX* Sealer::context(std::array<Slot, kCacheSlots>& cache, bool enc, std::uint64_t kid,
                                const KeyBytes& key) {
  // kids are random: their low bits spread customers over the slots.
  Slot& s = cache[kid % kCacheSlots];
  if (s.ctx && kid != 0 && s.kid == kid && s.key == key) {
    ++hits_;
    return s.ctx;
  }
  ++misses_;
  if (!s.ctx) {
    s.ctx = EVP_CIPHER_CTX_new();
    if (!s.ctx) return nullptr;
  }
  s.kid = 0;
  // Naming the cipher again would make OpenSSL free the context's algorithm
  // state and allocate it anew (one malloc per re-key, and a miss is the usual
  // case with many customers): once set up, only the key changes.
  const EVP_CIPHER* c = s.has_cipher ? nullptr : cipher_;
  const int ok = enc ? EVP_EncryptInit_ex(s.ctx, c, nullptr, key.data(), nullptr)
                     : EVP_DecryptInit_ex(s.ctx, c, nullptr, key.data(), nullptr);
  if (ok != 1) {
    s.has_cipher = false;
    return nullptr;
  }
  s.has_cipher = true;
  s.kid = kid;  // 0 (a damaged header): used once, never found again
  s.key = key;
  return s.ctx;
}

void Sealer::forget(std::uint64_t kid) {
  for (auto* cache : {&enc_, &dec_}) {
    Slot& s = (*cache)[kid % kCacheSlots];
    if (s.kid != kid) continue;
    s.kid = 0;
    OPENSSL_cleanse(s.key.data(), s.key.size());
    // The context holds the expanded key: reset wipes it.
    if (s.ctx) EVP_CIPHER_CTX_reset(s.ctx);
    s.has_cipher = false;
  }
}

StoredKey Sealer::new_key(std::string_view subject) {
  StoredKey k;
  k.subject.assign(subject);
  while (k.kid == 0) random_bytes(&k.kid, sizeof k.kid);
  random_bytes(k.key.data(), k.key.size());
  return k;
}

std::uint64_t Sealer::kid_of(std::string_view sealed) {
  if (sealed.size() < kSealOverhead) return 0;
  std::uint64_t kid = 0;
  std::memcpy(&kid, sealed.data(), 8);
  return kid;
}

void Sealer::seal(const StoredKey& k, std::uint8_t type, std::string_view plain, std::string& out) {
  const std::size_t at = out.size();
  out.resize(at + kSealOverhead + plain.size());
  auto* p = reinterpret_cast<unsigned char*>(out.data() + at);
  std::memcpy(p, &k.kid, 8);
  unsigned char* nonce = p + 8;
  ++counter_;
  std::memcpy(nonce, &nonce_prefix_, 4);
  std::memcpy(nonce + 4, &counter_, 8);
  unsigned char* ct = nonce + 12;
  int len = 0;
  // AES-256-GCM cannot fail on valid sizes with a live context; a failure here
  // means OpenSSL itself is broken, which no caller can recover from. The
  // cached context keeps the key schedule: only the nonce is set per record.
  EVP_CIPHER_CTX* ctx = context(enc_, true, k.kid, k.key);
  if (!ctx || EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) != 1 ||
      EVP_EncryptUpdate(ctx, nullptr, &len, &type, 1) != 1 ||
      EVP_EncryptUpdate(ctx, ct, &len, reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx, ct + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, ct + plain.size()) != 1)
    throw std::runtime_error("OpenSSL AES-256-GCM encryption failed");
}

Status Sealer::open(const KeyBytes& key, std::uint8_t type, std::string_view sealed,
                    std::string& out) {
  if (sealed.size() < kSealOverhead)
    return Status(ErrorCode::kBadField, "sealed record shorter than its header");
  const auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
  const unsigned char* nonce = p + 8;
  const unsigned char* ct = nonce + 12;
  const std::size_t n = sealed.size() - kSealOverhead;
  out.resize(n);
  int len = 0;
  unsigned char tag[16];
  std::memcpy(tag, ct + n, 16);
  EVP_CIPHER_CTX* dctx = context(dec_, false, kid_of(sealed), key);
  if (!dctx || EVP_DecryptInit_ex(dctx, nullptr, nullptr, nullptr, nonce) != 1 ||
      EVP_DecryptUpdate(dctx, nullptr, &len, &type, 1) != 1 ||
      EVP_DecryptUpdate(dctx, reinterpret_cast<unsigned char*>(out.data()), &len, ct,
                        static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(dctx, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1 ||
      EVP_DecryptFinal_ex(dctx, reinterpret_cast<unsigned char*>(out.data()) + len, &len) != 1) {
    out.clear();
    return Status(ErrorCode::kBadField,
                  "sealed record fails authentication (damaged or wrong key)");
  }
  return Status::ok();
}

}  // namespace storepulse::store
