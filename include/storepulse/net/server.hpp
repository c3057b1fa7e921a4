#pragma once
// One port, HTTP and WebSocket (Beast). io threads accept, parse, authenticate,
// decode events (simdjson) and hand them to the engine; replies come back on
// the session's own io thread (one io_context per io thread, a connection
// stays on one). See docs/architecture.md.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "storepulse/actions/sms_outbox.hpp"
#include "storepulse/engine/engine.hpp"

namespace storepulse::net {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  int io_threads = 2;
  std::size_t max_connections = 10000;
  // Open connections from one client address; over it: HTTP 429 at accept. 0 = no cap.
  // Behind a proxy every client shares the proxy's address: raise it or set 0.
  std::size_t max_connections_per_ip = 1000;
  std::size_t max_message_bytes = 64 * 1024;      // over it: `too_large`, connection stays
  std::size_t max_frame_bytes = 1024 * 1024;      // over it: close 1009
  std::size_t max_batch_bytes = 4 * 1024 * 1024;  // POST /v1/events body
  std::size_t max_header_bytes = 8 * 1024;
  TimeUs idle_timeout_us = 120 * kUsPerSecond;
  std::size_t send_queue_max = 1024;  // replies queued per connection before it is a slow reader
  std::string web_root = "web";       // widget, demo shop, dashboard files
  std::vector<std::string> pos_keys;
  std::vector<std::string> write_keys;  // Segment HTTP API ([ingest] write_keys): web events only
  std::string admin_token;
  // /v1/web: public, so stricter
  std::size_t web_max_message_bytes = 16 * 1024;
  double web_rate_per_sec = 20;
  double web_burst = 40;
  std::size_t web_send_queue_max = 64;
  // Origins allowed to open /v1/web ("https://shop.example.com"); anything else,
  // and a missing Origin, gets 403 at the upgrade. Empty = any Origin (development only).
  std::vector<std::string> web_allowed_origins;
  std::size_t web_max_connections_per_ip = 64;      // /v1/web sessions per address; 0 = no cap
  std::size_t web_max_connections_per_visitor = 8;  // per ?anonymousId= at upgrade; 0 = no cap
  double web_ip_rate_per_sec = 200;  // token bucket shared by all /v1/web sessions of one address
  double web_ip_burst = 400;
  // Consecutive `rate_limited` replies after which a /v1/web session is closed
  // with 1008 (policy violation). 0 = never close.
  std::size_t web_close_after_limited = 50;
  // /v1/pos and POST /v1/events: token bucket per terminal key (shared by all
  // connections and batches using that key). 0 = no limit.
  double pos_rate_per_sec = 0;
  double pos_burst = 0;
  // TLS (wss://, https://) on the same port: a connection that starts with a
  // TLS ClientHello is served over TLS. Empty cert = plain only.
  std::string tls_cert;          // PEM, certificate chain (leaf first)
  std::string tls_key;           // PEM, private key
  bool tls_allow_plain = false;  // with TLS configured, also serve plain HTTP/ws on the port
};

class Server {
 public:
  /// Loads the TLS certificate and key when configured; throws naming the
  /// file when they cannot be used.
  Server(ServerOptions opts, engine::Engine& engine);
  ~Server();
  /// Binds and starts the io threads. Throws if the port cannot be bound.
  void start();
  void stop();
  /// Pushes a web action (`{"type":"push",…}`) to the customer's live /v1/web
  /// sessions; thread-safe. False when the customer has none open.
  bool push(const protocol::Action& action);
  /// The outbox behind `POST /v1/sms/status|inbound` and `GET /v1/admin/sms`;
  /// call before start(). Without one those routes answer 503.
  void set_sms_outbox(actions::SmsOutbox* outbox);
  /// The bound port (useful with port 0).
  std::uint16_t port() const;
  /// Re-reads the TLS certificate and key files (SIGHUP). New connections use
  /// the new ones; open connections keep theirs. On failure (unreadable file,
  /// key that does not match the certificate) the old ones stay and the error
  /// is returned. Thread-safe. Without TLS configured: nothing to do, ok.
  Status reload_tls();
  /// True when TLS is configured (tls_cert): the port speaks https:// and wss://.
  bool tls() const;

  struct Impl;  // sessions reach the shared state through it; defined in server.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

/// Constant-time comparison for secrets: SHA-256 of both, compared with
/// CRYPTO_memcmp, so the time depends neither on where they differ nor on
/// how long the secret is. Empty `a` never matches.
bool secret_equals(std::string_view a, std::string_view b);

/// The top-level `messageId` of a JSON object when it is a plain string
/// (no escapes, 1-128 bytes), found without decoding the message; empty
/// otherwise. Lets a message refused before decoding (rate limit) be
/// answered with its id.
std::string_view peek_message_id(std::string_view json);

/// Splits a batch body (JSON array or NDJSON) into the raw JSON of each event.
/// Returns false with a message when the array is malformed.
bool split_batch(std::string_view body, std::vector<std::string_view>& out, std::string& error);

}  // namespace storepulse::net
