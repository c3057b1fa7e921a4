#pragma once
// One port, HTTP and WebSocket (Beast). io threads accept, parse, authenticate,
// decode events (simdjson) and hand them to the engine; replies come back on
// the session's strand. See docs/architecture.md.
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
  std::size_t max_message_bytes = 64 * 1024;       // over it: `too_large`, connection stays
  std::size_t max_frame_bytes = 1024 * 1024;       // over it: close 1009
  std::size_t max_batch_bytes = 4 * 1024 * 1024;   // POST /v1/events body
  std::size_t max_header_bytes = 8 * 1024;
  TimeUs idle_timeout_us = 120 * kUsPerSecond;
  std::size_t send_queue_max = 1024;  // replies queued per connection before it is a slow reader
  std::string web_root = "web";  // widget, demo shop, dashboard files
  std::vector<std::string> pos_keys;
  std::string admin_token;
  // /v1/web: public, so stricter
  std::size_t web_max_message_bytes = 16 * 1024;
  double web_rate_per_sec = 20;
  double web_burst = 40;
  std::size_t web_send_queue_max = 64;
};

class Server {
 public:
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

  struct Impl;  // sessions reach the shared state through it; defined in server.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

/// Constant-time comparison for secrets.
bool secret_equals(std::string_view a, std::string_view b);

/// Splits a batch body (JSON array or NDJSON) into the raw JSON of each event.
/// Returns false with a message when the array is malformed.
bool split_batch(std::string_view body, std::vector<std::string_view>& out, std::string& error);

}  // namespace storepulse::net
