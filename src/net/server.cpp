#include "storepulse/net/server.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <concurrentqueue.h>

#include <deque>
#include <mutex>
#include <unordered_map>
#include <thread>

#include "net/metrics_text.hpp"
#include "net/sms_routes.hpp"
#include "net/web_routes.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

bool secret_equals(std::string_view a, std::string_view b) {
  // Compare every byte of the longer input so timing does not reveal a prefix.
  const std::size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0 && !a.empty();
}

bool split_batch(std::string_view body, std::vector<std::string_view>& out, std::string& error) {
  out.clear();
  std::size_t i = 0;
  auto skip_ws = [&] {
    while (i < body.size() && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
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
        if (esc) esc = false;
        else if (c == '\\') esc = true;
        else if (c == '"') in_str = false;
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
      } else if (start == std::string_view::npos && c != ' ' && c != '\n' && c != '\r' && c != '\t') {
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

std::string bearer(const http::request<http::string_body>& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return {};
  std::string_view v(it->value().data(), it->value().size());
  if (v.size() > 7 && (v.substr(0, 7) == "Bearer " || v.substr(0, 7) == "bearer "))
    return std::string(v.substr(7));
  return {};
}

}  // namespace

struct Server::Impl {
  ServerOptions opts;
  engine::Engine& engine;
  actions::SmsOutbox* sms_outbox = nullptr;  // set before start(); null = SMS routes answer 503
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::atomic<std::size_t> connections{0};
  std::uint16_t bound_port = 0;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;

  Impl(ServerOptions o, engine::Engine& e) : opts(std::move(o)), engine(e) {}

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
      v.erase(std::remove_if(v.begin(), v.end(), [](const auto& w) { return w.expired(); }), v.end());
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

  bool pos_key_ok(const std::string& key) const {
    bool ok = false;
    for (const auto& k : opts.pos_keys) ok |= secret_equals(key, k);
    return ok;
  }
  bool admin_ok(const std::string& token) const {
    return !opts.admin_token.empty() && secret_equals(token, opts.admin_token);
  }
  void do_accept();
};

// ---- WebSocket session -------------------------------------------------------

class WsSession : public engine::ReplyTarget, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(Server::Impl& srv, tcp::socket&& sock, Endpoint ep, std::string who)
      : srv_(srv), ws_(std::move(sock)), ep_(ep), who_(std::move(who)),
        decoder_(srv.engine.options().limits) {
    const bool web = ep_ == Endpoint::kWeb;
    max_msg_ = web ? srv_.opts.web_max_message_bytes : srv_.opts.max_message_bytes;
    max_queue_ = web ? srv_.opts.web_send_queue_max : srv_.opts.send_queue_max;
    tokens_ = srv_.opts.web_burst;
    last_refill_ns_ = mono_ns();
  }
  ~WsSession() override {
    srv_.unregister_push(push_ids_);
    srv_.connections.fetch_sub(1);
    srv_.engine.metrics().connections.fetch_sub(1);
  }

  void run(http::request<http::string_body> req) {
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = std::chrono::microseconds(srv_.opts.idle_timeout_us);
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.read_message_max(srv_.opts.max_frame_bytes);
    ws_.auto_fragment(false);
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::server, "storepulse");
    }));
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->do_read();
    });
  }

  void deliver(std::string message) override {
    // Shard threads drop replies into a lock-free inbox and post one drain to
    // the session's strand per burst, not one handler per reply: under load a
    // whole group commit's replies cross threads with a single wake-up.
    inbox_.enqueue(std::move(message));
    if (!drain_posted_.exchange(true, std::memory_order_acq_rel))
      asio::post(ws_.get_executor(), [self = shared_from_this()] { self->drain_inbox(); });
  }

 private:
  void drain_inbox() {
    drain_posted_.store(false, std::memory_order_release);
    std::string m;
    while (inbox_.try_dequeue(m)) queue_write(std::move(m));
  }

  void do_read() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->on_read(ec, n);
    });
  }

  bool take_token() {
    if (ep_ != Endpoint::kWeb) return true;
    const auto now = mono_ns();
    tokens_ = std::min(srv_.opts.web_burst,
                       tokens_ + static_cast<double>(now - last_refill_ns_) / 1e9 * srv_.opts.web_rate_per_sec);
    last_refill_ns_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

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
    std::string raw;
    raw.reserve(n + protocol::decode_padding());
    const auto data = buf_.data();  // flat_buffer: one contiguous buffer
    raw.append(static_cast<const char*>(data.data()), data.size());
    buf_.consume(n);
    if (!take_token()) {
      reply_error("", ErrorCode::kRateLimited, "too many messages on this connection; slow down");
      return do_read();
    }
    protocol::Event ev;
    protocol::RecommendRequest rec;
    auto kind = decoder_.decode_message(raw, now, ev, rec);
    if (!kind.is_ok()) {
      reply_error(ev.message_id, kind.status().code(), kind.status().detail());
      return do_read();
    }
    if (*kind == protocol::MessageKind::kRecommend) {
      if (ep_ != Endpoint::kWeb) {
        reply_error(ev.message_id, ErrorCode::kUnknownEvent, "recommend is only served on /v1/web");
        return do_read();
      }
      srv_.engine.recommend(std::move(rec), shared_from_this());
      return do_read();
    }
    // The endpoint decides the channel: a web visitor cannot claim to be a till.
    if (ep_ == Endpoint::kWeb) {
      if (ev.channel == protocol::Channel::kPos) {
        reply_error(ev.message_id, ErrorCode::kBadField, "context.channel: pos is not allowed on /v1/web");
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
        srv_.register_push(*id, shared_from_this());
      }
    }
    Status s = srv_.engine.submit(std::move(ev), std::move(raw), now, shared_from_this());
    if (!s) srv_.engine.metrics().count_error(s.code());  // the shard already replied
    do_read();
  }

  void queue_write(std::string msg) {
    if (closing_) return;
    if (outq_.size() >= max_queue_) {
      // A reader this far behind would make us buffer without limit: drop it.
      closing_ = true;
      srv_.engine.metrics().slow_readers_closed.fetch_add(1);
      spdlog::warn("closing slow reader {} ({} replies queued)", who_, outq_.size());
      beast::get_lowest_layer(ws_).close();
      return;
    }
    outq_.push_back(std::move(msg));
    if (outq_.size() == 1) do_write();
  }

  void do_write() {
    ws_.text(true);
    ws_.async_write(asio::buffer(outq_.front()),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      if (ec) {
                        self->closing_ = true;
                        self->outq_.clear();
                        return;
                      }
                      self->outq_.pop_front();
                      if (!self->outq_.empty()) self->do_write();
                    });
  }

  Server::Impl& srv_;
  websocket::stream<beast::tcp_stream> ws_;
  Endpoint ep_;
  std::string who_;
  beast::flat_buffer buf_;
  std::deque<std::string> outq_;
  bool closing_ = false;
  std::size_t max_msg_;
  std::size_t max_queue_;
  std::vector<std::string> push_ids_;  // ids registered for pushed nudges
  moodycamel::ConcurrentQueue<std::string> inbox_;  // replies from shard threads
  std::atomic<bool> drain_posted_{false};
  double tokens_;
  std::int64_t last_refill_ns_;
  protocol::EventDecoder decoder_;
};

// ---- HTTP session ------------------------------------------------------------

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(Server::Impl& srv, tcp::socket&& sock)
      : srv_(srv), stream_(std::move(sock)), decoder_(srv.engine.options().limits) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    who_ = ec ? "?" : fmt::format("{}:{}", ep.address().to_string(), ep.port());
  }
  ~HttpSession() {
    if (!upgraded_) {
      srv_.connections.fetch_sub(1);
      srv_.engine.metrics().connections.fetch_sub(1);
    }
  }

  void run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_read(); });
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(srv_.opts.max_header_bytes));
    parser_->body_limit(srv_.opts.max_batch_bytes);
    stream_.expires_after(std::chrono::microseconds(srv_.opts.idle_timeout_us));
    http::async_read(stream_, buf_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    if (ec == http::error::body_limit) {
      return send_simple(http::status::payload_too_large, R"({"error":"too_large","detail":"request body over the batch limit"})", false);
    }
    if (ec == http::error::header_limit) {
      return send_simple(http::status::request_header_fields_too_large, R"({"error":"too_large","detail":"request headers too large"})", false);
    }
    if (ec) {
      if (ec != beast::error::timeout && ec != asio::error::operation_aborted &&
          ec != asio::error::connection_reset)
        send_simple(http::status::bad_request, fmt::format(R"({{"error":"bad_request","detail":"{}"}})", ec.message()), false);
      return;
    }
    req_ = parser_->release();
    route();
  }

  void route() {
    const std::string target(req_.target());
    const auto path = target.substr(0, target.find('?'));
    // Two credentials: which one counts would depend on header order, and a
    // proxy in front may check the other one. Refuse rather than pick.
    if (req_.count(http::field::authorization) > 1)
      return send_simple(http::status::bad_request, R"({"error":"bad_request","detail":"more than one Authorization header"})", false);
    if (websocket::is_upgrade(req_)) {
      // An upgrade is a GET without a body (RFC 6455 §4.1). Body bytes would be
      // swallowed here as HTTP, while a proxy may forward them as frames: the
      // two would disagree about what the client sent.
      if (req_.count(http::field::content_length) > 0 || req_.count(http::field::transfer_encoding) > 0)
        return send_simple(http::status::bad_request, R"({"error":"bad_request","detail":"a WebSocket upgrade must not carry a body"})", false);
      Endpoint ep;
      if (path == "/v1/pos") {
        if (!srv_.pos_key_ok(bearer(req_))) {
          srv_.engine.metrics().count_error(ErrorCode::kUnauthorized);
          return send_simple(http::status::unauthorized, R"({"error":"unauthorized","detail":"/v1/pos needs Authorization: Bearer <terminal key>"})", false);
        }
        ep = Endpoint::kPos;
      } else if (path == "/v1/web") {
        ep = Endpoint::kWeb;
      } else {
        return send_simple(http::status::not_found, R"({"error":"not_found","detail":"WebSocket endpoints are /v1/pos and /v1/web"})", false);
      }
      upgraded_ = true;
      stream_.expires_never();
      std::make_shared<WsSession>(srv_, stream_.release_socket(), ep, who_)->run(std::move(req_));
      return;
    }
    if (path == "/healthz" && req_.method() == http::verb::get)
      return send_simple(http::status::ok, R"({"status":"ok"})", req_.keep_alive());
    if (path == "/metrics" && req_.method() == http::verb::get)
      return send_text(http::status::ok, render_metrics(srv_.engine) + render_sms_metrics(srv_.sms_outbox),
                       "text/plain; version=0.0.4");
    if (path.rfind("/v1/profiles/", 0) == 0 && req_.method() == http::verb::get) {
      if (!srv_.admin_ok(bearer(req_)))
        return send_simple(http::status::unauthorized, R"({"error":"unauthorized","detail":"admin token required"})", req_.keep_alive());
      std::string id = percent_decode(path.substr(13));
      if (id.empty() || id.size() > 128)
        return send_simple(http::status::bad_request, R"({"error":"bad_field","detail":"profile id must be 1-128 bytes"})", req_.keep_alive());
      srv_.engine.query_profile(std::move(id), [self = shared_from_this()](int status, std::string body) {
        asio::post(self->stream_.get_executor(), [self, status, b = std::move(body)]() mutable {
          self->send_simple(static_cast<http::status>(status), std::move(b), self->req_.keep_alive());
        });
      });
      return;
    }
    if (path.rfind("/v1/sms/", 0) == 0) {
      // Exactly one signature header, or none counts: two would be ambiguous.
      auto one = [&](std::string_view name) {
        const auto v = req_.count(name) == 1 ? req_[name] : beast::string_view{};
        return std::string_view(v.data(), v.size());
      };
      SmsCallbackRequest cb;
      cb.path = path;
      cb.target = target;
      cb.is_post = req_.method() == http::verb::post;
      cb.storepulse_signature = one(actions::kSignatureHeader);
      cb.twilio_signature = one(actions::kTwilioSignatureHeader);
      cb.body = req_.body();
      if (auto r = handle_sms_callback(srv_.sms_outbox, srv_.engine, cb))
        return send_text(static_cast<http::status>(r->status), std::move(r->body), r->content_type);
    }
    if (path == "/v1/events") {
      if (req_.method() != http::verb::post)
        return send_simple(http::status::method_not_allowed, R"({"error":"bad_request","detail":"use POST"})", req_.keep_alive());
      if (!srv_.pos_key_ok(bearer(req_))) {
        srv_.engine.metrics().count_error(ErrorCode::kUnauthorized);
        return send_simple(http::status::unauthorized, R"({"error":"unauthorized","detail":"POST /v1/events needs Authorization: Bearer <terminal key>"})", req_.keep_alive());
      }
      return handle_batch();
    }
    if (path == "/v1/rules" || path.rfind("/v1/admin/", 0) == 0) {
      if (req_.method() != http::verb::get)
        return send_simple(http::status::method_not_allowed, R"({"error":"bad_request","detail":"use GET"})", req_.keep_alive());
      if (!srv_.admin_ok(bearer(req_)))
        return send_simple(http::status::unauthorized, R"({"error":"unauthorized","detail":"admin token required"})", req_.keep_alive());
      if (auto r = handle_sms_admin(srv_.sms_outbox, path,
                                    target.size() > path.size() ? std::string_view(target).substr(path.size() + 1) : ""))
        return send_simple(static_cast<http::status>(r->status), std::move(r->body), req_.keep_alive());
      if (auto r = handle_admin(srv_.engine, path))
        return send_simple(static_cast<http::status>(r->status), std::move(r->body), req_.keep_alive());
    }
    if (req_.method() == http::verb::get) {
      if (auto f = serve_static(srv_.opts.web_root, path))
        return send_text(http::status::ok, std::move(f->body), f->content_type);
    }
    send_simple(http::status::not_found, R"({"error":"not_found"})", req_.keep_alive());
  }

  static std::string percent_decode(std::string_view s) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size()) {
        const int h = hex(s[i + 1]), l = hex(s[i + 2]);
        if (h >= 0 && l >= 0) {
          out.push_back(static_cast<char>(h * 16 + l));
          i += 2;
          continue;
        }
      }
      out.push_back(s[i]);
    }
    return out;
  }

  // Collects one reply per event of a batch; the last shard to answer posts the response.
  struct Batch : std::enable_shared_from_this<Batch> {
    std::vector<std::string> results;
    std::atomic<std::size_t> remaining{0};
    std::shared_ptr<HttpSession> session;
    void done() {
      std::string body = "{\"results\":[";
      std::size_t rejected = 0;
      for (std::size_t i = 0; i < results.size(); ++i) {
        if (i) body.push_back(',');
        body += results[i];
        if (results[i].find(R"("type":"error")") != std::string::npos) ++rejected;
      }
      body += fmt::format("],\"accepted\":{},\"rejected\":{}}}", results.size() - rejected, rejected);
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

  void handle_batch() {
    std::vector<std::string_view> parts;
    std::string err;
    const std::string& body = req_.body();
    if (!split_batch(body, parts, err))
      return send_simple(http::status::bad_request,
                         fmt::format(R"({{"error":"bad_json","detail":"batch: {}"}})", err), req_.keep_alive());
    if (parts.empty())
      return send_simple(http::status::ok, R"({"results":[],"accepted":0,"rejected":0})", req_.keep_alive());
    auto batch = std::make_shared<Batch>();
    batch->results.resize(parts.size());
    batch->remaining.store(parts.size());
    batch->session = shared_from_this();
    const TimeUs now = wall_clock_us();
    for (std::size_t i = 0; i < parts.size(); ++i) {
      auto slot = std::make_shared<BatchSlot>();
      slot->batch = batch;
      slot->index = i;
      if (parts[i].size() > srv_.opts.max_message_bytes) {
        srv_.engine.metrics().count_error(ErrorCode::kTooLarge);
        slot->deliver(protocol::encode_error("", ErrorCode::kTooLarge,
                                             fmt::format("event {} is over the {} byte limit", i, srv_.opts.max_message_bytes)));
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
      if (ev.channel == protocol::Channel::kUnknown) ev.channel = protocol::Channel::kPos;
      Status q = srv_.engine.submit(std::move(ev), std::move(raw), now, slot);
      if (!q) srv_.engine.metrics().count_error(q.code());
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
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec || !res->keep_alive()) {
        beast::error_code ignored;
        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        return;
      }
      self->do_read();
    });
  }

  Server::Impl& srv_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  std::string who_;
  bool upgraded_ = false;
  protocol::EventDecoder decoder_;
};

void Server::Impl::do_accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket sock) {
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
    connections.fetch_add(1);
    engine.metrics().connections.fetch_add(1);
    engine.metrics().connections_total.fetch_add(1);
    beast::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    std::make_shared<HttpSession>(*this, std::move(sock))->run();
    do_accept();
  });
}

Server::Server(ServerOptions opts, engine::Engine& engine)
    : impl_(std::make_unique<Impl>(std::move(opts), engine)) {}

bool Server::push(const protocol::Action& action) { return impl_->push(action); }

void Server::set_sms_outbox(actions::SmsOutbox* outbox) { impl_->sms_outbox = outbox; }

Server::~Server() { stop(); }

void Server::start() {
  auto& i = *impl_;
  tcp::endpoint ep(asio::ip::make_address(i.opts.host), i.opts.port);
  i.acceptor.open(ep.protocol());
  i.acceptor.set_option(asio::socket_base::reuse_address(true));
  i.acceptor.bind(ep);
  i.acceptor.listen(asio::socket_base::max_listen_connections);
  i.bound_port = i.acceptor.local_endpoint().port();
  i.guard.emplace(i.ioc.get_executor());
  i.do_accept();
  for (int t = 0; t < std::max(1, i.opts.io_threads); ++t)
    i.threads.emplace_back([&i] { i.ioc.run(); });
}

void Server::stop() {
  auto& i = *impl_;
  if (i.threads.empty()) return;
  asio::post(i.ioc, [&i] {
    beast::error_code ec;
    i.acceptor.close(ec);
  });
  i.guard.reset();
  i.ioc.stop();
  for (auto& t : i.threads) t.join();
  i.threads.clear();
}

std::uint16_t Server::port() const { return impl_->bound_port; }

}  // namespace storepulse::net
