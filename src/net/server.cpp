#include "storepulse/net/server.hpp"

#include <concurrentqueue.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "net/coalescing_stream.hpp"
#include "net/http_routes.hpp"
#include "net/metrics_text.hpp"
#include "net/privacy_routes.hpp"
#include "net/segment_api.hpp"
#include "net/sms_routes.hpp"
#include "net/web_routes.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
namespace ssl = asio::ssl;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

bool secret_equals(std::string_view a, std::string_view b) {
  // Digests first: CRYPTO_memcmp then always compares 32 bytes, so neither the
  // position of the first difference nor the secret's length shows in the time.
  unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
  unsigned int na = 0, nb = 0;
  if (EVP_Digest(a.data(), a.size(), da, &na, EVP_sha256(), nullptr) != 1 ||
      EVP_Digest(b.data(), b.size(), db, &nb, EVP_sha256(), nullptr) != 1 || na != nb)
    return false;
  return CRYPTO_memcmp(da, db, na) == 0 && !a.empty();
}

std::string_view peek_message_id(std::string_view s) {
  // One pass, no allocation: tracks nesting and strings so that only a key of
  // the outermost object counts (a "messageId" inside properties does not).
  std::size_t i = 0;
  auto skip_ws = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  };
  skip_ws();
  if (i >= s.size() || s[i] != '{') return {};
  int depth = 0;
  bool key_position = false;  // the next string at depth 1 is a key
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '"') {
      const std::size_t start = ++i;
      bool escaped = false;
      while (i < s.size() && s[i] != '"') i += s[i] == '\\' ? (escaped = true, 2) : 1;
      if (i >= s.size()) return {};
      const std::string_view str = s.substr(start, i - start);
      if (depth != 1 || !key_position) continue;
      key_position = false;
      if (escaped || str != "messageId") continue;
      ++i;
      skip_ws();
      if (i >= s.size() || s[i] != ':') return {};
      ++i;
      skip_ws();
      if (i >= s.size() || s[i] != '"') return {};
      const std::size_t vstart = ++i;
      while (i < s.size() && s[i] != '"' && s[i] != '\\' &&
             static_cast<unsigned char>(s[i]) >= 0x20)
        ++i;
      if (i >= s.size() || s[i] != '"' || i == vstart || i - vstart > 128) return {};
      return s.substr(vstart, i - vstart);
    }
    if (c == '{' || c == '[') {
      ++depth;
      key_position = depth == 1;
    } else if (c == '}' || c == ']') {
      if (--depth <= 0) return {};
    } else if (c == ',' && depth == 1) {
      key_position = true;
    }
  }
  return {};
}

bool split_batch(std::string_view body, std::vector<std::string_view>& out, std::string& error) {
  out.clear();
  std::size_t i = 0;
  auto skip_ws = [&] {
    while (i < body.size() &&
           (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
      ++i;
  };
  skip_ws();
  if (i < body.size() && body[i] == '[') {
    ++i;
    int depth = 0;
    bool in_str = false, esc = false;
    std::size_t start = std::string_view::npos;
    for (; i < body.size(); ++i) {
      const char c = body[i];
      if (in_str) {
        if (esc)
          esc = false;
        else if (c == '\\')
          esc = true;
        else if (c == '"')
          in_str = false;
        continue;
      }
      if (c == '"') {
        in_str = true;
        if (start == std::string_view::npos) start = i;
      } else if (c == '{' || c == '[') {
        if (depth == 0 && start == std::string_view::npos) start = i;
        ++depth;
      } else if (c == '}' || c == ']') {
        if (depth == 0 && c == ']') {
          if (start != std::string_view::npos) out.push_back(body.substr(start, i - start));
          ++i;
          skip_ws();
          if (i != body.size()) {
            error = "text after the closing ]";
            return false;
          }
          return true;
        }
        --depth;
        if (depth < 0) {
          error = "unbalanced brackets";
          return false;
        }
      } else if (c == ',' && depth == 0) {
        if (start == std::string_view::npos) {
          error = fmt::format("empty element at byte {}", i);
          return false;
        }
        out.push_back(body.substr(start, i - start));
        start = std::string_view::npos;
      } else if (start == std::string_view::npos && c != ' ' && c != '\n' && c != '\r' &&
                 c != '\t') {
        start = i;
      }
    }
    error = "unterminated JSON array";
    return false;
  }
  // NDJSON: one event per non-empty line.
  std::size_t line_start = i;
  for (std::size_t j = i; j <= body.size(); ++j) {
    if (j == body.size() || body[j] == '\n') {
      std::string_view line = body.substr(line_start, j - line_start);
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
      while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
      if (!line.empty()) out.push_back(line);
      line_start = j + 1;
    }
  }
  return true;
}

namespace {

enum class Endpoint : unsigned char { kPos, kWeb };

/// The io_context the calling thread runs (Server::Impl::run_io_thread), or null.
asio::io_context*& current_io_context() {
  thread_local asio::io_context* ioc = nullptr;
  return ioc;
}

/// Token bucket as GCRA (generic cell rate algorithm): one atomic time, the
/// "theoretical arrival time" of the next message, so connections on several
/// io threads share a bucket without a lock. `interval_ns` = 1 s / rate;
/// `burst` messages may arrive at once.
bool take_gcra(std::atomic<std::int64_t>& tat, std::int64_t now_ns, std::int64_t interval_ns,
               std::int64_t burst_ns) {
  std::int64_t cur = tat.load(std::memory_order_relaxed);
  for (;;) {
    const std::int64_t next = std::max(cur, now_ns) + interval_ns;
    if (next - now_ns > burst_ns) return false;
    if (tat.compare_exchange_weak(cur, next, std::memory_order_relaxed)) return true;
  }
}

struct GcraParams {
  std::int64_t interval_ns = 0;  // 0 = unlimited
  std::int64_t burst_ns = 0;
  static GcraParams of(double rate_per_sec, double burst) {
    GcraParams p;
    if (rate_per_sec <= 0) return p;
    p.interval_ns = std::max<std::int64_t>(1, static_cast<std::int64_t>(1e9 / rate_per_sec));
    p.burst_ns =
        static_cast<std::int64_t>(std::max(1.0, burst) * static_cast<double>(p.interval_ns));
    return p;
  }
};

std::string client_address(const tcp::socket& sock) {
  beast::error_code ec;
  auto ep = sock.remote_endpoint(ec);
  if (ec) return "?";
  auto a = ep.address();
  // An IPv4 client on a dual-stack socket counts as its IPv4 address.
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return a.to_string();
}

}  // namespace

/// What the server tracks per client address: open connections, open /v1/web
/// sessions and the address's web token bucket. Counts are guarded by
/// Impl::peers_mu (touched at accept, upgrade and close only); the bucket is
/// one atomic, taken per web message without a lock.
struct PeerState {
  std::size_t connections = 0;
  std::size_t web_sessions = 0;
  std::atomic<std::int64_t> web_tat_ns{0};
};

struct Server::Impl {
  ServerOptions opts;
  engine::Engine& engine;
  actions::SmsOutbox* sms_outbox = nullptr;  // set before start(); null = SMS routes answer 503
  std::atomic<std::size_t> connections{0};
  std::uint16_t bound_port = 0;

  static std::vector<std::unique_ptr<asio::io_context>> make_contexts(int n) {
    std::vector<std::unique_ptr<asio::io_context>> v;
    for (int t = 0; t < std::max(1, n); ++t) v.push_back(std::make_unique<asio::io_context>(1));
    return v;
  }

  Impl(ServerOptions o, engine::Engine& e) : opts(std::move(o)), engine(e) {
    for (std::size_t t = 0; t < iocs.size(); ++t)
      decoders.push_back(std::make_unique<protocol::EventDecoder>(engine.options().limits));
    key_rate = GcraParams::of(opts.pos_rate_per_sec,
                              opts.pos_burst > 0 ? opts.pos_burst : opts.pos_rate_per_sec);
    web_ip_rate = GcraParams::of(opts.web_ip_rate_per_sec, opts.web_ip_burst);
    key_tat = std::make_unique<std::atomic<std::int64_t>[]>(opts.pos_keys.size());
    // Thread-per-core: the io threads are the engine's cores, so a swipe whose
    // shard is on the thread that read it is applied in that thread's loop
    // turn. An engine already started (on threads of its own) is used as is.
    if (!engine.started()) {
      std::vector<std::function<void()>> wakers;
      for (auto& ioc : iocs) wakers.emplace_back([c = ioc.get()] { asio::post(*c, [] {}); });
      engine.use_external_cores(std::move(wakers));
    }
  }

  /// One io thread: runs its io_context in loop turns. A turn runs the handlers
  /// that are ready (reads complete, sessions decode and submit: events for
  /// this thread's shards join their batch), bounded so a busy thread still
  /// commits often; then the engine's turn for this core: one group commit per
  /// shard, then the replies. Blocks only when there is nothing to do, and at
  /// most 2 ms, which keeps timers and the fsync interval going.
  void run_io_thread(int t) {
    asio::io_context& ioc = *iocs[static_cast<std::size_t>(t)];
    current_io_context() = &ioc;
    engine.enter_core(t);
    const bool core = t < engine.core_count() && !engine.started_with_own_threads();
    constexpr int kHandlersPerTurn = 256;
    FlushList flush;  // connections with replies appended this turn
    while (!ioc.stopped()) {
      int ran = 0;
      while (ran < kHandlersPerTurn && ioc.poll_one()) ++ran;
      bool did = false;
      if (core) did = engine.run_turn(t);
      // One socket write per connection for everything this turn produced.
      flush.flush_pending();
      if (ran == 0 && !did && !engine.core_has_local_work(t))
        ioc.run_one_for(std::chrono::milliseconds(2));
    }
    engine.enter_core(-1);
    current_io_context() = nullptr;
  }

  // Live web sessions by customer id, for pushed nudges. Touched once per id per
  // session (not per event), so one mutex is enough.
  std::mutex push_mu;
  std::unordered_map<std::string, std::vector<std::weak_ptr<engine::ReplyTarget>>> push_map;
  static constexpr std::size_t kMaxPushIds = 1'000'000;

  void register_push(const std::string& id, const std::shared_ptr<engine::ReplyTarget>& s) {
    std::lock_guard<std::mutex> lk(push_mu);
    if (push_map.size() >= kMaxPushIds && !push_map.count(id)) return;
    auto& v = push_map[id];
    v.erase(std::remove_if(v.begin(), v.end(), [](const auto& w) { return w.expired(); }), v.end());
    if (v.size() < 8) v.push_back(s);
  }
  void unregister_push(const std::vector<std::string>& ids) {
    std::lock_guard<std::mutex> lk(push_mu);
    for (const auto& id : ids) {
      auto it = push_map.find(id);
      if (it == push_map.end()) continue;
      auto& v = it->second;
      v.erase(std::remove_if(v.begin(), v.end(), [](const auto& w) { return w.expired(); }),
              v.end());
      if (v.empty()) push_map.erase(it);
    }
  }
  /// Delivers a pushed action to every live web session of the customer; false if none.
  bool push(const protocol::Action& a) {
    std::vector<std::shared_ptr<engine::ReplyTarget>> targets;
    {
      std::lock_guard<std::mutex> lk(push_mu);
      auto it = push_map.find(a.customer);
      if (it == push_map.end()) return false;
      for (const auto& w : it->second)
        if (auto sp = w.lock()) targets.push_back(std::move(sp));
    }
    if (targets.empty()) return false;
    std::string msg = R"({"type":"push","actions":[)";
    std::string one = protocol::encode_actions("", {a});
    // Reuse the action encoding: cut the array out of the actions message.
    const auto open = one.find('[');
    msg += one.substr(open + 1, one.size() - open - 3);
    msg += "]}";
    for (auto& t : targets) t->deliver(msg);
    return true;
  }

  // ---- per-key and per-address limits ----
  GcraParams key_rate, web_ip_rate;
  std::unique_ptr<std::atomic<std::int64_t>[]> key_tat;  // one bucket per entry of opts.pos_keys

  /// One token from the terminal key's bucket (shared by its connections and batches).
  bool take_key_token(int key_index) {
    if (key_rate.interval_ns == 0 || key_index < 0) return true;
    return take_gcra(key_tat[static_cast<std::size_t>(key_index)], mono_ns(), key_rate.interval_ns,
                     key_rate.burst_ns);
  }
  bool take_ip_token(PeerState& p) {
    if (web_ip_rate.interval_ns == 0) return true;
    return take_gcra(p.web_tat_ns, mono_ns(), web_ip_rate.interval_ns, web_ip_rate.burst_ns);
  }

  // Addresses: bounded. Entries with open connections are bounded by
  // max_connections; idle ones are kept (so reconnecting does not refill an
  // address's bucket) until the map is full, then dropped, refilled ones first.
  static constexpr std::size_t kMaxPeers = 100'000;
  std::mutex peers_mu;
  std::unordered_map<std::string, std::shared_ptr<PeerState>> peers;
  std::unordered_map<std::string, std::size_t> visitors;  // open /v1/web sessions per ?anonymousId=

  /// Counts a new connection from `addr`; null when the address is over its cap.
  std::shared_ptr<PeerState> admit_connection(const std::string& addr) {
    std::lock_guard<std::mutex> lk(peers_mu);
    auto it = peers.find(addr);
    if (it == peers.end()) {
      if (peers.size() >= kMaxPeers) evict_idle_peers();
      it = peers.emplace(addr, std::make_shared<PeerState>()).first;
    }
    auto& p = it->second;
    if (opts.max_connections_per_ip > 0 && p->connections >= opts.max_connections_per_ip)
      return nullptr;
    ++p->connections;
    return p;
  }
  void evict_idle_peers() {
    const std::int64_t now = mono_ns();
    for (int pass = 0; pass < 2 && peers.size() >= kMaxPeers; ++pass)
      for (auto it = peers.begin(); it != peers.end();) {
        const bool idle =
            it->second->connections == 0 &&
            (pass == 1 || it->second->web_tat_ns.load(std::memory_order_relaxed) <= now);
        it = idle ? peers.erase(it) : std::next(it);
      }
  }
  void release_connection(PeerState& p) {
    {
      std::lock_guard<std::mutex> lk(peers_mu);
      --p.connections;
    }
    connections.fetch_sub(1);
    engine.metrics().connections.fetch_sub(1);
  }
  /// Admits a /v1/web session; an error detail when the address or visitor is over its cap.
  std::string admit_web(PeerState& p, const std::string& visitor) {
    std::lock_guard<std::mutex> lk(peers_mu);
    if (opts.web_max_connections_per_ip > 0 && p.web_sessions >= opts.web_max_connections_per_ip)
      return fmt::format("too many /v1/web connections from this address (limit {})",
                         opts.web_max_connections_per_ip);
    if (!visitor.empty() && opts.web_max_connections_per_visitor > 0) {
      auto it = visitors.find(visitor);
      if (it != visitors.end() && it->second >= opts.web_max_connections_per_visitor)
        return fmt::format("too many /v1/web connections for this visitor (limit {})",
                           opts.web_max_connections_per_visitor);
    }
    ++p.web_sessions;
    if (!visitor.empty()) ++visitors[visitor];
    return {};
  }
  void release_web(PeerState& p, const std::string& visitor) {
    std::lock_guard<std::mutex> lk(peers_mu);
    --p.web_sessions;
    if (visitor.empty()) return;
    auto it = visitors.find(visitor);
    if (it != visitors.end() && --it->second == 0) visitors.erase(it);
  }
  // ---- TLS ----
  // The context new connections use. Swapped whole on reload (SIGHUP); each
  // connection holds the one it started with. Read once per TLS connection.
  std::mutex tls_mu;
  std::shared_ptr<ssl::context> tls_ctx;
  std::shared_ptr<ssl::context> current_tls() {
    std::lock_guard<std::mutex> lk(tls_mu);
    return tls_ctx;
  }

  // ---- decoding ----
  // One event decoder per io thread, shared by the connections that thread
  // runs: a decoder's simdjson buffers grow to the largest message it has seen
  // (about ten times its size), so one per connection let 10,000 connections
  // that each sent one 64 KiB message hold gigabytes. Decoding is synchronous
  // inside a read handler, so a thread's connections never use it at once.
  // Declared before the contexts: sessions hold a reference to theirs.
  std::vector<std::unique_ptr<protocol::EventDecoder>> decoders;

  // ---- io ----
  // One io_context per io thread, each run by its one thread: a connection
  // lives on a single thread for its whole life, so the events it submits
  // reach a shard's queue from one producer, in the order they were read
  // (the queue keeps FIFO per producer only). The acceptor runs on the first.
  //
  // Declared last, so destroyed first: handlers still pending at shutdown
  // (idle connections' reads, replies posted after stop()) own sessions, and a
  // session's destructor releases its slot in `peers`, `visitors`, `push_map`
  // and `connections`, which must still exist then. The acceptor and the work
  // guards go before the contexts they use.
  std::vector<std::unique_ptr<asio::io_context>> iocs = make_contexts(opts.io_threads);
  std::size_t next_ioc = 0;  // round robin of new connections (acceptor's thread only)
  tcp::acceptor acceptor{*iocs.front()};
  std::vector<std::thread> threads;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;

  void do_accept();
};

namespace {

// TLS 1.2 suites: forward secrecy (ECDHE) and AEAD (AES-GCM, ChaCha20-Poly1305)
// only. TLS 1.3's own suites are all of that kind and keep OpenSSL's order.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

/// A server context from PEM files: TLS 1.2+, the suites above, no
/// compression, no renegotiation, server's cipher order. Errors name the file.
Result<std::shared_ptr<ssl::context>> make_tls_context(const std::string& cert,
                                                       const std::string& key) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* h = ctx->native_handle();
  ERR_clear_error();
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::no_compression | ssl::context::single_dh_use);
  SSL_CTX_set_options(
      h, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  if (SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(h, kTls12Ciphers) != 1)
    return Status(ErrorCode::kInternal, "tls: " + openssl_error());
  if (SSL_CTX_use_certificate_chain_file(h, cert.c_str()) != 1)
    return Status(ErrorCode::kBadField, fmt::format("tls.cert {}: {}", cert, openssl_error()));
  if (SSL_CTX_use_PrivateKey_file(h, key.c_str(), SSL_FILETYPE_PEM) != 1)
    return Status(ErrorCode::kBadField, fmt::format("tls.key {}: {}", key, openssl_error()));
  if (SSL_CTX_check_private_key(h) != 1)
    return Status(ErrorCode::kBadField, fmt::format("tls.key {} does not match tls.cert {}: {}",
                                                    key, cert, openssl_error()));
  return ctx;
}

}  // namespace

/// A connection's place in the global and per-address counts, taken at
/// accept and given back when the last session object holding it goes
/// (detector -> HTTP session -> WebSocket session). Move-only.
class ConnectionSlot {
 public:
  /// `io_index`: the io thread (and io_context) the connection lives on.
  ConnectionSlot(Server::Impl& srv, std::shared_ptr<PeerState> peer, std::size_t io_index)
      : srv_(&srv), peer_(std::move(peer)), io_index_(io_index) {}
  ConnectionSlot(ConnectionSlot&& o) noexcept
      : srv_(o.srv_), peer_(std::move(o.peer_)), io_index_(o.io_index_) {}
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  ~ConnectionSlot() {
    if (peer_) srv_->release_connection(*peer_);
  }
  PeerState& peer() { return *peer_; }
  /// The decoder of the connection's io thread (only ever used on that thread).
  protocol::EventDecoder& decoder() { return *srv_->decoders[io_index_]; }

 private:
  Server::Impl* srv_;
  std::shared_ptr<PeerState> peer_;
  std::size_t io_index_;
};

// ---- WebSocket session -------------------------------------------------------

/// One WebSocket connection, plain (Stream = beast::tcp_stream) or TLS
/// (beast::ssl_stream<beast::tcp_stream>). Runs on its io thread alone; shard threads
/// only call deliver().
template <class Stream>
class WsSession : public engine::ReplyTarget,
                  public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  /// `slot` is the connection's place in the caps (released with the session);
  /// `key_index` is the terminal key on /v1/pos (-1 on /v1/web); a web session
  /// was admitted with `visitor` (may be empty) by Impl::admit_web. `tls_ctx`
  /// keeps the TLS context the connection was accepted with alive.
  WsSession(Server::Impl& srv, Stream&& stream, Endpoint ep, std::string who, ConnectionSlot slot,
            int key_index, std::string visitor, std::shared_ptr<ssl::context> tls_ctx)
      : srv_(srv),
        tls_ctx_(std::move(tls_ctx)),
        ws_(std::move(stream)),
        ep_(ep),
        who_(std::move(who)),
        slot_(std::move(slot)),
        key_index_(key_index),
        visitor_(std::move(visitor)),
        decoder_(slot_.decoder()) {
    const bool web = ep_ == Endpoint::kWeb;
    max_msg_ = web ? srv_.opts.web_max_message_bytes : srv_.opts.max_message_bytes;
    max_queue_ = web ? srv_.opts.web_send_queue_max : srv_.opts.send_queue_max;
    tokens_ = srv_.opts.web_burst;
    last_refill_ns_ = mono_ns();
  }
  ~WsSession() override {
    srv_.unregister_push(push_ids_);
    if (ep_ == Endpoint::kWeb) srv_.release_web(slot_.peer(), visitor_);
  }

  void run(http::request<http::string_body> req) {
    // A write in flight keeps this session (and so its stream) alive.
    ws_.next_layer().set_owner(this->weak_from_this());
    // The websocket stream keeps its own timers; the TCP layer's would cut it.
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = std::chrono::microseconds(srv_.opts.idle_timeout_us);
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.read_message_max(srv_.opts.max_frame_bytes);
    ws_.auto_fragment(false);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "storepulse"); }));
    ws_.async_accept(req, [self = this->shared_from_this()](beast::error_code ec) {
      // A refused upgrade: Beast's error response sits in the outbox; the
      // session lives until it is written.
      if (ec) return self->ws_.next_layer().when_drained([self] {});
      self->ws_.next_layer().handshake_done();
      self->do_read();
    });
  }

  void deliver(std::string message) override {
    // From this connection's own io thread (its shard is on this core: the
    // usual case), straight into the send queue.
    if (current_io_context() == &ws_.get_executor().context()) return queue_write(message);
    // Shard threads drop replies into a lock-free inbox and post one drain to
    // the session's io thread per burst, not one handler per reply: under load a
    // whole group commit's replies cross threads with a single wake-up.
    inbox_.enqueue(std::move(message));
    if (!drain_posted_.exchange(true, std::memory_order_acq_rel))
      asio::post(ws_.get_executor(), [self = this->shared_from_this()] { self->drain_inbox(); });
  }

  void deliver_ack(std::string_view message_id) override {
    if (current_io_context() != &ws_.get_executor().context())
      return deliver(protocol::encode_ack(message_id));
    // The usual case: encoded in the io thread's scratch, framed into the outbox.
    thread_local std::string ack;
    ack.clear();
    protocol::append_ack(ack, message_id);
    queue_write(ack);
  }

 private:
  void drain_inbox() {
    drain_posted_.store(false, std::memory_order_release);
    std::string m;
    while (inbox_.try_dequeue(m)) queue_write(m);
  }

  void do_read() {
    // The read buffer grows to the largest message; after a large one (every
    // message is consumed whole by now) give it back, so an idle connection
    // keeps a few KiB rather than up to max_frame_bytes.
    if (buf_.capacity() > kKeepReadBuffer) buf_.shrink_to_fit();
    ws_.async_read(buf_, [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
      self->on_read(ec, n);
    });
  }

  /// Rate limits, before any decoding: the terminal key's bucket on /v1/pos;
  /// on /v1/web the connection's bucket, then the address's.
  bool take_token() {
    if (ep_ != Endpoint::kWeb) return srv_.take_key_token(key_index_);
    const auto now = mono_ns();
    tokens_ = std::min(srv_.opts.web_burst, tokens_ + static_cast<double>(now - last_refill_ns_) /
                                                          1e9 * srv_.opts.web_rate_per_sec);
    last_refill_ns_ = now;
    if (tokens_ < 1) return false;
    if (!srv_.take_ip_token(slot_.peer())) return false;
    tokens_ -= 1;
    return true;
  }

  /// Closes with 1008 (policy violation): stops reading, lets the replies
  /// already queued go out (the client learns which messages were refused),
  /// then sends the close. A client that floods and never reads would stall
  /// that, so the socket is cut after kPolicyCloseGrace regardless.
  void policy_close() {
    if (closing_ || policy_close_pending_) return;
    policy_close_pending_ = true;
    srv_.engine.metrics().policy_closed.fetch_add(1);
    spdlog::info("closing {} with 1008: stayed over the rate limit", who_);
    close_timer_.emplace(ws_.get_executor());
    close_timer_->expires_after(kPolicyCloseGrace);
    close_timer_->async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec) beast::get_lowest_layer(self->ws_).close();
    });
    // The close frame goes out behind the replies already queued (one outbox).
    start_policy_close();
  }
  void start_policy_close() {
    closing_ = true;  // replies arriving from shards from now on are dropped
    ws_.async_close(
        websocket::close_reason(websocket::close_code::policy_error, "rate limit exceeded"),
        [self = this->shared_from_this()](beast::error_code) {
          if (self->close_timer_) self->close_timer_->cancel();
        });
  }
  static constexpr std::chrono::seconds kPolicyCloseGrace{5};

  void reply_error(std::string_view mid, ErrorCode code, std::string_view detail) {
    srv_.engine.metrics().count_error(code);
    queue_write(protocol::encode_error(mid, code, detail));
  }

  void on_read(beast::error_code ec, std::size_t n) {
    if (ec) {
      if (ec == websocket::error::message_too_big)
        srv_.engine.metrics().count_error(ErrorCode::kTooLarge);
      return;  // closed, timed out, or protocol error (Beast replied with the close code)
    }
    const TimeUs now = wall_clock_us();
    if (!ws_.got_text()) {
      buf_.consume(n);
      reply_error("", ErrorCode::kBadJson, "binary frames are not accepted; send JSON text");
      return do_read();
    }
    if (n > max_msg_) {
      buf_.consume(n);
      reply_error("", ErrorCode::kTooLarge,
                  fmt::format("message of {} bytes is over the {} byte limit", n, max_msg_));
      return do_read();
    }
    // A padded copy for the decoder, in the io thread's scratch (it keeps its
    // capacity; the journal keeps the decoded event, not this text).
    thread_local std::string raw;
    raw.clear();
    raw.reserve(n + protocol::decode_padding());
    const auto data = buf_.data();  // flat_buffer: one contiguous buffer
    raw.append(static_cast<const char*>(data.data()), data.size());
    buf_.consume(n);
    if (!take_token()) {
      // The id is peeked, not decoded: refusing must stay cheaper than accepting.
      reply_error(peek_message_id(raw), ErrorCode::kRateLimited,
                  ep_ == Endpoint::kWeb
                      ? "too many messages from this connection or address; slow down"
                      : "too many messages for this terminal key; slow down");
      if (ep_ == Endpoint::kWeb && srv_.opts.web_close_after_limited > 0 &&
          ++limited_streak_ >= srv_.opts.web_close_after_limited)
        return policy_close();
      return do_read();
    }
    limited_streak_ = 0;
    // The io thread's scratch Event, like its decoder: Engine::submit swaps the
    // pooled Work's strings back into it, so decoding allocates nothing once
    // warm. Nothing here runs on_read again before it returns.
    thread_local protocol::Event ev;
    protocol::RecommendRequest rec;
    auto kind = decoder_.decode_message(raw, now, ev, rec);
    if (!kind.is_ok()) {
      reply_error(ev.message_id, kind.status().code(), kind.status().detail());
      return do_read();
    }
    if (decoder_.last_total_mismatch()) srv_.engine.metrics().receipt_mismatches.fetch_add(1);
    if (*kind == protocol::MessageKind::kRecommend) {
      if (ep_ != Endpoint::kWeb) {
        reply_error(ev.message_id, ErrorCode::kUnknownEvent, "recommend is only served on /v1/web");
        return do_read();
      }
      srv_.engine.recommend(std::move(rec), this->shared_from_this());
      return do_read();
    }
    // The endpoint decides the channel: a web visitor cannot claim to be a till.
    if (ep_ == Endpoint::kWeb) {
      if (ev.channel == protocol::Channel::kPos) {
        reply_error(ev.message_id, ErrorCode::kBadField,
                    "context.channel: pos is not allowed on /v1/web");
        return do_read();
      }
      if (ev.channel == protocol::Channel::kUnknown) ev.channel = protocol::Channel::kWeb;
    } else if (ev.channel == protocol::Channel::kUnknown) {
      ev.channel = protocol::Channel::kPos;
    }
    if (ep_ == Endpoint::kWeb) {
      for (const std::string* id : {&ev.user_id, &ev.anonymous_id}) {
        if (id->empty() || push_ids_.size() >= 4) continue;
        if (std::find(push_ids_.begin(), push_ids_.end(), *id) != push_ids_.end()) continue;
        push_ids_.push_back(*id);
        srv_.register_push(*id, this->shared_from_this());
      }
    }
    // A refusal (queue full, shard elsewhere) was replied to and counted by the engine.
    (void)srv_.engine.submit(std::move(ev), std::string(), now, this->shared_from_this());
    do_read();
  }

  /// Appends the reply as one text frame to the connection's outbox; the io
  /// thread writes what a turn appended in one socket write (coalescing_stream.hpp).
  void queue_write(const std::string& msg) {
    if (closing_) return;
    auto& out = ws_.next_layer();
    if (out.queued_messages() >= max_queue_) {
      // A reader this far behind would make us buffer without limit: drop it.
      closing_ = true;
      srv_.engine.metrics().slow_readers_closed.fetch_add(1);
      spdlog::warn("closing slow reader {} ({} replies queued)", who_, out.queued_messages());
      beast::get_lowest_layer(ws_).close();
      return;
    }
    if (!out.write_text(msg)) closing_ = true;  // closed, or the socket failed
  }

  Server::Impl& srv_;
  std::shared_ptr<ssl::context> tls_ctx_;  // before ws_: outlives the TLS stream
  websocket::stream<CoalescingStream<Stream>> ws_;
  Endpoint ep_;
  std::string who_;
  ConnectionSlot slot_;
  int key_index_;
  std::string visitor_;
  std::size_t limited_streak_ = 0;     // consecutive rate_limited replies
  bool policy_close_pending_ = false;  // a 1008 close was started (behind the queued replies)
  std::optional<asio::steady_timer> close_timer_;
  static constexpr std::size_t kKeepReadBuffer = 16 * 1024;
  beast::flat_buffer buf_;
  bool closing_ = false;
  std::size_t max_msg_;
  std::size_t max_queue_;
  std::vector<std::string> push_ids_;               // ids registered for pushed nudges
  moodycamel::ConcurrentQueue<std::string> inbox_;  // replies from shard threads
  std::atomic<bool> drain_posted_{false};
  double tokens_;
  std::int64_t last_refill_ns_;
  protocol::EventDecoder& decoder_;  // the io thread's (ConnectionSlot::decoder)
};

// ---- HTTP session ------------------------------------------------------------

/// HTTP requests on one connection, plain or TLS (see WsSession); hands the
/// stream to a WsSession on upgrade.
template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, PlainStream>;

 public:
  /// `buf` holds bytes already read (by TLS detection); `slot` is the
  /// connection's place in the caps, passed on to a WsSession on upgrade.
  HttpSession(Server::Impl& srv, Stream&& stream, beast::flat_buffer&& buf, ConnectionSlot slot,
              std::shared_ptr<ssl::context> tls_ctx)
      : srv_(srv),
        tls_ctx_(std::move(tls_ctx)),
        stream_(std::move(stream)),
        buf_(std::move(buf)),
        slot_(std::move(slot)),
        decoder_(slot_.decoder()) {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    who_ = ec ? "?" : fmt::format("{}:{}", ep.address().to_string(), ep.port());
  }

  void run() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->handshake();
      } else {
        self->do_read();
      }
    });
  }

 private:
  void handshake() {
    beast::get_lowest_layer(stream_).expires_after(kTlsHandshakeTimeout);
    // The detector's bytes (the start of the ClientHello) are fed in first.
    // (`used = 0`: Boost 1.81's ssl_stream constrains this handler as if it
    // took only the error code, while it is called with both.)
    stream_.async_handshake(
        ssl::stream_base::server, buf_.data(),
        [self = this->shared_from_this()](beast::error_code ec, std::size_t used = 0) {
          if (ec) return;  // not TLS we accept (old version, no shared cipher) or timeout
          self->buf_.consume(used);
          self->do_read();
        });
  }
  static constexpr std::chrono::seconds kTlsHandshakeTimeout{10};

  /// Ends the connection after the last response: TCP half-close, or the TLS
  /// close_notify (bounded by a timeout) before the socket goes.
  void close_stream() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code ignored;
        beast::get_lowest_layer(self->stream_)
            .socket()
            .shutdown(tcp::socket::shutdown_both, ignored);
      });
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  void do_read() {
    parser_.emplace();
    apply_request_limits(*parser_, srv_.opts);
    beast::get_lowest_layer(stream_).expires_after(
        std::chrono::microseconds(srv_.opts.idle_timeout_us));
    http::async_read(stream_, buf_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return close_stream();
    if (ec == http::error::body_limit) {
      return send_simple(http::status::payload_too_large,
                         R"({"error":"too_large","detail":"request body over the batch limit"})",
                         false);
    }
    if (ec == http::error::header_limit) {
      return send_simple(http::status::request_header_fields_too_large,
                         R"({"error":"too_large","detail":"request headers too large"})", false);
    }
    if (ec) {
      if (ec != beast::error::timeout && ec != asio::error::operation_aborted &&
          ec != asio::error::connection_reset)
        send_simple(http::status::bad_request,
                    fmt::format(R"({{"error":"bad_request","detail":"{}"}})", ec.message()), false);
      return;
    }
    req_ = parser_->release();
    route();
  }

  void route() {
    RouteDecision d = route_request(req_, srv_.opts);
    switch (d.route) {
      case Route::kReply:
        if (d.tally == RouteTally::kUnauthorized)
          srv_.engine.metrics().count_error(ErrorCode::kUnauthorized);
        if (d.tally == RouteTally::kConnectionRefused)
          srv_.engine.metrics().connections_refused.fetch_add(1);
        return send_simple(d.status, std::string(d.body), d.keep_alive);
      case Route::kUpgradePos: return upgrade(Endpoint::kPos, d.key_index, {});
      case Route::kUpgradeWeb:
        if (auto over = srv_.admit_web(slot_.peer(), d.subject); !over.empty()) {
          srv_.engine.metrics().connections_refused.fetch_add(1);
          return send_simple(http::status::too_many_requests,
                             fmt::format(R"({{"error":"rate_limited","detail":"{}"}})", over),
                             false);
        }
        return upgrade(Endpoint::kWeb, -1, std::move(d.subject));
      case Route::kMetrics:
        return send_text(http::status::ok,
                         render_metrics(srv_.engine) + render_sms_metrics(srv_.sms_outbox),
                         "text/plain; version=0.0.4");
      case Route::kProfile:
      case Route::kProfileExport:
      case Route::kProfileErase: {
        auto answer = [self = this->shared_from_this()](int status, std::string body) {
          asio::post(self->stream_.get_executor(), [self, status, b = std::move(body)]() mutable {
            self->send_simple(static_cast<http::status>(status), std::move(b),
                              self->req_.keep_alive());
          });
        };
        if (d.route == Route::kProfileErase)
          erase_customer(srv_.engine, srv_.sms_outbox, std::move(d.subject), std::move(answer));
        else if (d.route == Route::kProfileExport)
          export_customer(srv_.engine, srv_.sms_outbox, std::move(d.subject), std::move(answer));
        else
          srv_.engine.query_profile(std::move(d.subject), std::move(answer));
        return;
      }
      case Route::kSmsCallback: {
        // Exactly one signature header, or none counts: two would be ambiguous.
        auto one = [&](std::string_view name) {
          const auto v = req_.count(name) == 1 ? req_[name] : beast::string_view{};
          return std::string_view(v.data(), v.size());
        };
        SmsCallbackRequest cb;
        cb.path = d.path;
        cb.target = std::string_view(req_.target().data(), req_.target().size());
        cb.is_post = req_.method() == http::verb::post;
        cb.storepulse_signature = one(actions::kSignatureHeader);
        cb.twilio_signature = one(actions::kTwilioSignatureHeader);
        cb.body = req_.body();
        if (auto r = handle_sms_callback(srv_.sms_outbox, srv_.engine, cb))
          return send_text(static_cast<http::status>(r->status), std::move(r->body),
                           r->content_type);
        break;
      }
      case Route::kRecommend: {
        // Refusing stays cheaper than answering: the address's token bucket first.
        if (!srv_.take_ip_token(slot_.peer())) {
          srv_.engine.metrics().count_error(ErrorCode::kRateLimited);
          return send_simple(
              http::status::too_many_requests,
              R"({"error":"rate_limited","detail":"too many requests from this address; slow down"})",
              req_.keep_alive());
        }
        // The shard that owns the customer answers as it does a WebSocket
        // `recommend`; the reply comes back here on the session's own thread.
        struct Answer : engine::ReplyTarget {
          std::shared_ptr<HttpSession> session;
          void deliver(std::string message) override {
            auto s = std::move(session);
            if (!s) return;
            asio::post(s->stream_.get_executor(), [s, b = std::move(message)]() mutable {
              // An engine refusal (queue full, shard elsewhere) is an error reply.
              http::status st = http::status::ok;
              if (b.rfind(R"({"type":"error")", 0) == 0)
                st = b.find(R"("code":"rate_limited")") != std::string::npos
                         ? http::status::too_many_requests
                     : b.find(R"("code":"wrong_node")") != std::string::npos
                         ? http::status::misdirected_request
                         : http::status::service_unavailable;
              s->send_json_cors(st, std::move(b));
            });
          }
        };
        auto a = std::make_shared<Answer>();
        a->session = this->shared_from_this();
        srv_.engine.recommend(std::move(d.rec), std::move(a));
        return;
      }
      case Route::kBatch: return handle_batch(d.key_index);
      case Route::kSegment: return handle_segment(d.subject);
      case Route::kShardClaim:
        // Recovery can take a while: it runs on an engine thread, the answer comes back here.
        srv_.engine.claim_async(std::move(d.subject), [self = this->shared_from_this()](
                                                          int status, std::string body) {
          asio::post(self->stream_.get_executor(), [self, status, b = std::move(body)]() mutable {
            self->send_simple(static_cast<http::status>(status), std::move(b),
                              self->req_.keep_alive());
          });
        });
        return;
      case Route::kAdmin:
        if (auto r = handle_sms_admin(srv_.sms_outbox, d.path, d.query))
          return send_simple(static_cast<http::status>(r->status), std::move(r->body),
                             req_.keep_alive());
        if (auto r = handle_admin(srv_.engine, d.path))
          return send_simple(static_cast<http::status>(r->status), std::move(r->body),
                             req_.keep_alive());
        break;
      case Route::kStatic:
        if (auto f = read_static_file(srv_.opts.web_root, d.file))
          return send_text(http::status::ok, std::move(f->body), f->content_type);
        break;
    }
    send_simple(http::status::not_found, R"({"error":"not_found"})", req_.keep_alive());
  }

  void upgrade(Endpoint ep, int key_index, std::string visitor) {
    // Same stream, TLS state and all; the WsSession now owns the slot.
    std::make_shared<WsSession<Stream>>(srv_, std::move(stream_), ep, who_, std::move(slot_),
                                        key_index, std::move(visitor), tls_ctx_)
        ->run(std::move(req_));
  }

  // Collects one reply per event of a batch; the last shard to answer posts the response.
  struct Batch : std::enable_shared_from_this<Batch> {
    std::vector<std::string> results;
    std::atomic<std::size_t> remaining{0};
    std::shared_ptr<HttpSession> session;
    bool segment = false;  // answer as the Segment API does (segment_answer)
    void done() {
      if (segment) {
        auto a = segment_answer(results);
        auto s = session;
        asio::post(s->stream_.get_executor(), [s, a = std::move(a)]() mutable {
          s->send_simple(static_cast<http::status>(a.status), std::move(a.body),
                         s->req_.keep_alive());
        });
        return;
      }
      std::string body = "{\"results\":[";
      std::size_t rejected = 0;
      for (std::size_t i = 0; i < results.size(); ++i) {
        if (i) body.push_back(',');
        body += results[i];
        if (results[i].find(R"("type":"error")") != std::string::npos) ++rejected;
      }
      body +=
          fmt::format("],\"accepted\":{},\"rejected\":{}}}", results.size() - rejected, rejected);
      auto s = session;
      asio::post(s->stream_.get_executor(), [s, b = std::move(body)]() mutable {
        s->send_simple(http::status::ok, std::move(b), s->req_.keep_alive());
      });
    }
  };
  struct BatchSlot : engine::ReplyTarget {
    std::shared_ptr<Batch> batch;
    std::size_t index;
    void deliver(std::string message) override {
      batch->results[index] = std::move(message);
      if (batch->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) batch->done();
    }
  };

  void handle_batch(int key_index) {
    std::vector<std::string_view> parts;
    std::string err;
    const std::string& body = req_.body();
    if (!split_batch(body, parts, err))
      return send_simple(http::status::bad_request,
                         fmt::format(R"({{"error":"bad_json","detail":"batch: {}"}})", err),
                         req_.keep_alive());
    if (parts.empty())
      return send_simple(http::status::ok, R"({"results":[],"accepted":0,"rejected":0})",
                         req_.keep_alive());
    auto batch = std::make_shared<Batch>();
    batch->results.resize(parts.size());
    batch->remaining.store(parts.size());
    batch->session = this->shared_from_this();
    const TimeUs now = wall_clock_us();
    for (std::size_t i = 0; i < parts.size(); ++i) {
      auto slot = std::make_shared<BatchSlot>();
      slot->batch = batch;
      slot->index = i;
      if (parts[i].size() > srv_.opts.max_message_bytes) {
        srv_.engine.metrics().count_error(ErrorCode::kTooLarge);
        slot->deliver(protocol::encode_error(
            "", ErrorCode::kTooLarge,
            fmt::format("event {} is over the {} byte limit", i, srv_.opts.max_message_bytes)));
        continue;
      }
      // Each event of a batch takes a token from the key's bucket, as on /v1/pos.
      if (!srv_.take_key_token(key_index)) {
        srv_.engine.metrics().count_error(ErrorCode::kRateLimited);
        slot->deliver(protocol::encode_error(peek_message_id(parts[i]), ErrorCode::kRateLimited,
                                             "too many messages for this terminal key; slow down"));
        continue;
      }
      std::string raw;
      raw.reserve(parts[i].size() + protocol::decode_padding());
      raw.append(parts[i]);
      protocol::Event ev;
      Status s = decoder_.decode(raw, now, ev);
      if (!s) {
        srv_.engine.metrics().count_error(s.code());
        slot->deliver(protocol::encode_error(ev.message_id, s.code(), s.detail()));
        continue;
      }
      if (decoder_.last_total_mismatch()) srv_.engine.metrics().receipt_mismatches.fetch_add(1);
      if (ev.channel == protocol::Channel::kUnknown) ev.channel = protocol::Channel::kPos;
      (void)srv_.engine.submit(std::move(ev), std::move(raw), now,
                               slot);  // refusals counted by the engine
    }
  }

  /// The Segment HTTP Tracking API (segment_api.hpp): the same decoder, dedupe
  /// and durability as /v1/web; 200 only once every call is durable.
  void handle_segment(const std::string& call) {
    auto& m = srv_.engine.metrics();
    const bool keep = req_.keep_alive();
    auto fail = [&](http::status st, std::string_view error, std::string_view message) {
      std::string body = R"({"success":false,"message":)";
      protocol::append_json_string(body, message);
      body += R"(,"error":)";
      protocol::append_json_string(body, error);
      body.push_back('}');
      send_simple(st, std::move(body), keep);
    };
    // A Basic header is checked before the body is looked at; without one the
    // body's writeKey must do.
    const auto auth = req_[http::field::authorization];
    const std::string basic_key = basic_auth_user(std::string_view(auth.data(), auth.size()));
    const char* kUnauthorized =
        "unknown write key: send Authorization: Basic base64(writeKey + \":\") or \"writeKey\" "
        "in the body";
    if (!basic_key.empty() && !write_key_ok(srv_.opts, basic_key)) {
      m.count_error(ErrorCode::kUnauthorized);
      return fail(http::status::unauthorized, "unauthorized", kUnauthorized);
    }
    // Write keys live in web pages: each request takes a token from its
    // address's bucket (web.ip_rate_per_sec / ip_burst) before the body is
    // inflated or parsed. The calls inside are bounded by the request size and
    // by the shards' queues (rate_limited -> 429, which the SDKs back off on).
    if (!srv_.take_ip_token(slot_.peer())) {
      m.count_error(ErrorCode::kRateLimited);
      return fail(http::status::too_many_requests, "rate_limited",
                  "too many requests from this address; slow down");
    }
    std::string body, err;
    bool unsupported = false, too_large = false;
    const auto enc = req_[http::field::content_encoding];
    if (!decode_body(req_.body(), std::string_view(enc.data(), enc.size()), kSegmentMaxBatchBytes,
                     body, err, unsupported, too_large))
      return fail(unsupported ? http::status::unsupported_media_type
                  : too_large ? http::status::payload_too_large
                              : http::status::bad_request,
                  unsupported ? "unsupported_encoding"
                  : too_large ? "too_large"
                              : "bad_body",
                  err);
    SegmentRequest sr;
    if (!parse_segment_request(call, body, sr, err))
      return fail(http::status::bad_request, "bad_json", err);
    if (basic_key.empty() && !write_key_ok(srv_.opts, sr.write_key)) {
      m.count_error(ErrorCode::kUnauthorized);
      return fail(http::status::unauthorized, "unauthorized", kUnauthorized);
    }
    if (sr.messages.empty()) return send_simple(http::status::ok, R"({"success":true})", keep);
    auto batch = std::make_shared<Batch>();
    batch->segment = true;
    batch->results.resize(sr.messages.size());
    batch->remaining.store(sr.messages.size());
    batch->session = this->shared_from_this();
    const TimeUs now = wall_clock_us();
    // The sender's clock, corrected from sentAt as Segment does.
    const TimeUs skew = segment_clock_skew_us(sr.sent_at, now);
    for (std::size_t i = 0; i < sr.messages.size(); ++i) {
      auto slot = std::make_shared<BatchSlot>();
      slot->batch = batch;
      slot->index = i;
      if (sr.ignored[i]) {
        m.segment_ignored.fetch_add(1, std::memory_order_relaxed);
        slot->deliver(protocol::encode_ack(sr.message_ids[i]));
        continue;
      }
      std::string& raw = sr.messages[i];
      if (raw.size() > kSegmentMaxMessageBytes) {
        m.count_error(ErrorCode::kTooLarge);
        slot->deliver(protocol::encode_error(
            sr.message_ids[i], ErrorCode::kTooLarge,
            fmt::format("call {} is over Segment's {} byte limit", i, kSegmentMaxMessageBytes)));
        continue;
      }
      const std::size_t len = raw.size();
      raw.append(protocol::decode_padding(), '\0');
      protocol::Event ev;
      Status s = decoder_.decode(std::string_view(raw.data(), len), now, ev);
      if (s && ev.channel == protocol::Channel::kPos)
        s = Status(ErrorCode::kBadField,
                   "context.channel: pos is not allowed with a write key (tills use /v1/pos)");
      if (!s) {
        m.count_error(s.code());
        slot->deliver(protocol::encode_error(
            ev.message_id.empty() ? sr.message_ids[i] : ev.message_id, s.code(), s.detail()));
        continue;
      }
      if (decoder_.last_total_mismatch()) m.receipt_mismatches.fetch_add(1);
      if (ev.channel == protocol::Channel::kUnknown) ev.channel = protocol::Channel::kWeb;
      // A call without a timestamp already has the receive time; one with a
      // timestamp by a skewed clock is moved by the skew, never past now.
      if (skew != 0 && ev.timestamp != now) ev.timestamp = std::min(now, ev.timestamp + skew);
      (void)srv_.engine.submit(std::move(ev), std::string(), now,
                               slot);  // refusals counted by the engine
    }
  }

  void send_text(http::status st, std::string body, std::string_view type) {
    auto res = std::make_shared<http::response<http::string_body>>(st, req_.version());
    res->set(http::field::server, "storepulse");
    res->set(http::field::content_type, type);
    res->keep_alive(req_.keep_alive());
    res->body() = std::move(body);
    res->prepare_payload();
    write(res);
  }

  /// A JSON answer to a browser-callable GET: an allowed Origin is named back
  /// (CORS), so a page of that origin can read it.
  void send_json_cors(http::status st, std::string body) {
    auto res = std::make_shared<http::response<http::string_body>>(st, req_.version());
    res->set(http::field::server, "storepulse");
    res->set(http::field::content_type, "application/json");
    res->set(http::field::cache_control, "no-store");
    if (req_.count(http::field::origin) == 1 && origin_allowed(req_, srv_.opts)) {
      res->set(http::field::access_control_allow_origin, req_[http::field::origin]);
      res->set(http::field::vary, "Origin");
    }
    res->keep_alive(req_.keep_alive());
    res->body() = std::move(body);
    res->prepare_payload();
    write(res);
  }

  void send_simple(http::status st, std::string body, bool keep_alive) {
    auto res = std::make_shared<http::response<http::string_body>>(st, 11);
    res->set(http::field::server, "storepulse");
    res->set(http::field::content_type, "application/json");
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    write(res);
  }

  void write(std::shared_ptr<http::response<http::string_body>> res) {
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (ec) return;
                        if (!res->keep_alive()) return self->close_stream();
                        self->do_read();
                      });
  }

  Server::Impl& srv_;
  std::shared_ptr<ssl::context> tls_ctx_;  // before stream_: outlives the TLS stream
  Stream stream_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  std::string who_;
  ConnectionSlot slot_;
  protocol::EventDecoder& decoder_;  // the io thread's (ConnectionSlot::decoder)
};

// ---- TLS detection ----------------------------------------------------------

/// With TLS configured, the first bytes of a connection decide: a TLS
/// ClientHello gets an HttpSession over TLS, anything else plain HTTP (when
/// tls.allow_plain) or a 400 telling it to use https.
class DetectSession : public std::enable_shared_from_this<DetectSession> {
 public:
  DetectSession(Server::Impl& srv, tcp::socket&& sock, ConnectionSlot slot)
      : srv_(srv), stream_(std::move(sock)), slot_(std::move(slot)) {}

  void run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->stream_.expires_after(std::chrono::microseconds(self->srv_.opts.idle_timeout_us));
      beast::async_detect_ssl(self->stream_, self->buf_,
                              [self](beast::error_code ec, bool tls) { self->on_detect(ec, tls); });
    });
  }

 private:
  void on_detect(beast::error_code ec, bool tls) {
    if (ec) return;  // closed or silent until the idle timeout
    if (tls) {
      auto ctx = srv_.current_tls();
      TlsStream ts(std::move(stream_), *ctx);
      std::make_shared<HttpSession<TlsStream>>(srv_, std::move(ts), std::move(buf_),
                                               std::move(slot_), ctx)
          ->run();
      return;
    }
    if (srv_.opts.tls_allow_plain) {
      std::make_shared<HttpSession<PlainStream>>(srv_, std::move(stream_), std::move(buf_),
                                                 std::move(slot_), nullptr)
          ->run();
      return;
    }
    static constexpr std::string_view kBody =
        R"({"error":"tls_required","detail":"this port serves https:// and wss:// only"})";
    static const std::string kResponse = fmt::format(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: "
        "{}\r\nConnection: close\r\n\r\n{}",
        kBody.size(), kBody);
    stream_.expires_after(std::chrono::seconds(5));
    asio::async_write(stream_, asio::buffer(kResponse),
                      [self = shared_from_this()](beast::error_code, std::size_t) {
                        beast::error_code ignored;
                        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                      });
  }

  Server::Impl& srv_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  ConnectionSlot slot_;
};

void Server::Impl::do_accept() {
  const std::size_t home = next_ioc++ % iocs.size();
  acceptor.async_accept(
      iocs[home]->get_executor(), [this, home](beast::error_code ec, tcp::socket sock) {
        if (ec) {
          if (ec == asio::error::operation_aborted) return;
          spdlog::warn("accept: {}", ec.message());
          return do_accept();
        }
        if (connections.load() >= opts.max_connections) {
          // Over the cap: a short 503 and close, so clients back off instead of hanging.
          static constexpr std::string_view kBusy =
              "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
          beast::error_code ignored;
          asio::write(sock, asio::buffer(kBusy), ignored);
          sock.close(ignored);
          engine.metrics().count_error(ErrorCode::kRateLimited);
          return do_accept();
        }
        auto peer = admit_connection(client_address(sock));
        if (!peer) {
          // One address holding many slots (silent ones until idle_timeout) would
          // deny everyone else; it gets a short 429 instead.
          static constexpr std::string_view kTooMany =
              "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
          beast::error_code ignored;
          asio::write(sock, asio::buffer(kTooMany), ignored);
          sock.close(ignored);
          engine.metrics().connections_refused.fetch_add(1);
          return do_accept();
        }
        connections.fetch_add(1);
        engine.metrics().connections.fetch_add(1);
        engine.metrics().connections_total.fetch_add(1);
        beast::error_code ignored;
        sock.set_option(tcp::no_delay(true), ignored);
        ConnectionSlot slot(*this, std::move(peer), home);
        if (current_tls()) {
          std::make_shared<DetectSession>(*this, std::move(sock), std::move(slot))->run();
        } else {
          std::make_shared<HttpSession<PlainStream>>(*this, PlainStream(std::move(sock)),
                                                     beast::flat_buffer{}, std::move(slot), nullptr)
              ->run();
        }
        do_accept();
      });
}

Server::Server(ServerOptions opts, engine::Engine& engine)
    : impl_(std::make_unique<Impl>(std::move(opts), engine)) {
  // Here rather than in start(): a bad certificate stops serve before the
  // engine and outbox threads exist.
  if (Status st = reload_tls(); !st) throw std::runtime_error(st.detail());
}

bool Server::push(const protocol::Action& action) {
  return impl_->push(action);
}

void Server::set_sms_outbox(actions::SmsOutbox* outbox) {
  impl_->sms_outbox = outbox;
}

Server::~Server() {
  stop();
}

Status Server::reload_tls() {
  auto& i = *impl_;
  if (i.opts.tls_cert.empty()) return Status::ok();
  auto ctx = make_tls_context(i.opts.tls_cert, i.opts.tls_key);
  if (!ctx) return ctx.status();
  std::lock_guard<std::mutex> lk(i.tls_mu);
  i.tls_ctx = std::move(ctx).value();
  return Status::ok();
}

bool Server::tls() const {
  return !impl_->opts.tls_cert.empty();
}

void Server::start() {
  auto& i = *impl_;
  tcp::endpoint ep(asio::ip::make_address(i.opts.host), i.opts.port);
  i.acceptor.open(ep.protocol());
  i.acceptor.set_option(asio::socket_base::reuse_address(true));
  i.acceptor.bind(ep);
  i.acceptor.listen(asio::socket_base::max_listen_connections);
  i.bound_port = i.acceptor.local_endpoint().port();
  for (auto& ioc : i.iocs) i.guards.push_back(asio::make_work_guard(*ioc));
  i.do_accept();
  for (std::size_t t = 0; t < i.iocs.size(); ++t)
    i.threads.emplace_back([&i, t] { i.run_io_thread(static_cast<int>(t)); });
}

void Server::stop() {
  auto& i = *impl_;
  if (i.threads.empty()) return;
  asio::post(*i.iocs.front(), [&i] {
    beast::error_code ec;
    i.acceptor.close(ec);
  });
  i.guards.clear();
  for (auto& ioc : i.iocs) ioc->stop();
  for (auto& t : i.threads) t.join();
  i.threads.clear();
}

std::uint16_t Server::port() const {
  return impl_->bound_port;
}

}  // namespace storepulse::net
