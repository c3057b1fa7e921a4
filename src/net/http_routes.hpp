#pragma once
// The pure part of serving one HTTP request: from a parsed request and the
// server's options to what the session does next (a reply, an upgrade, or one
// of the routes that need the engine, the outbox or the disk). No I/O, no
// shared state, no clock: the same request and options always give the same
// decision, which is what tests/net and the fuzz_http target check.
//
// Threads: any; called by HttpSession::route() on its io thread.
#include <boost/beast/http.hpp>
#include <string>
#include <string_view>

#include "storepulse/net/server.hpp"
#include "storepulse/protocol/codec.hpp"

namespace storepulse::net {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpRequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

/// The header and body limits the server reads every request with.
void apply_request_limits(HttpRequestParser& parser, const ServerOptions& opts);

enum class Route : unsigned char {
  kReply,       // send `status` + `body` (JSON) as is
  kUpgradePos,  // WebSocket /v1/pos for terminal `key_index`
  kUpgradeWeb,  // WebSocket /v1/web for `subject` (decoded ?anonymousId=, may be empty);
                // the caller still applies the per-address and per-visitor caps
  kMetrics,     // GET /metrics
  kProfile,     // GET /v1/profiles/{id}, admin token checked: `subject` = decoded id (1-128 bytes)
  kProfileExport,  // GET /v1/profiles/{id}/export (subject access), as kProfile
  kProfileErase,   // DELETE /v1/profiles/{id} (erasure), as kProfile
  kShardClaim,     // POST /v1/admin/shards/claim?shards=SPEC, admin token checked: `subject` = SPEC
  kSmsCallback,    // /v1/sms/*: handle_sms_callback; 404 `not_found` when it is not a callback
  kBatch,          // POST /v1/events for terminal `key_index`
  kSegment,        // POST /v1/batch, /v1/track, ... (Segment API): `subject` = the call;
                   // the write key is checked with the body (it may be sent there)
  kAdmin,          // GET /v1/rules or /v1/admin/*, admin token checked; `query` after '?';
                   // 404 `not_found` when no admin handler takes the path
  kRecommend,      // GET /v1/recommendations?userId=|anonymousId=[&productId=][&limit=]:
                   // `rec` checked (ids, limit 1-50); Origin as on /v1/web, or a
                   // terminal key / the admin token for server-side callers
  kStatic,         // GET of a static file: `file` relative to web_root (already checked
                   // against traversal); 404 `not_found` when it cannot be read
};

/// What the caller counts when it refuses a request.
enum class RouteTally : unsigned char { kNone, kUnauthorized, kConnectionRefused };

struct RouteDecision {
  Route route = Route::kReply;
  boost::beast::http::status status = boost::beast::http::status::not_found;
  std::string_view body;    // kReply: a string literal
  bool keep_alive = false;  // kReply: keep the connection open after the reply
  RouteTally tally = RouteTally::kNone;
  int key_index = -1;              // kUpgradePos, kBatch: index into opts.pos_keys
  std::string_view path;           // target without the query (views the request)
  std::string_view query;          // kAdmin: after the '?' (views the request)
  std::string_view file;           // kStatic (views the request or a literal)
  std::string subject;             // kUpgradeWeb: visitor; kProfile*: profile id
  protocol::RecommendRequest rec;  // kRecommend
};

/// Decides what to do with `req`. Never throws; allocates only the decoded
/// visitor or profile id.
RouteDecision route_request(const HttpRequest& req, const ServerOptions& opts);

/// The bearer token of the Authorization header ("Bearer x" / "bearer x"), empty when none.
std::string_view bearer_token(const HttpRequest& req);

/// Index of `key` in opts.pos_keys, -1 if none. Every key is compared (no early
/// exit), so the time does not say which one matched.
int pos_key_index(const ServerOptions& opts, std::string_view key);

/// A configured admin token, compared in constant time.
bool admin_token_ok(const ServerOptions& opts, std::string_view token);

/// Whether `key` is one of opts.write_keys (constant-time per key).
bool write_key_ok(const ServerOptions& opts, std::string_view key);

/// Exact match against web_allowed_origins (case-insensitive, exactly one
/// Origin header); any Origin when the list is empty.
bool origin_allowed(const HttpRequest& req, const ServerOptions& opts);

/// The value of `name` in the query string of `target`, undecoded; empty if absent.
std::string_view query_param(std::string_view target, std::string_view name);

/// %XX decoding (other bytes, and malformed escapes, pass through).
std::string percent_decode(std::string_view s);

/// The file under web_root a static URL path maps to (`/widget.js`,
/// `/demo/shop`, `/dashboard`, `/static/...`); empty when the path is not a
/// static file or tries to leave web_root (`..`, `//`, backslashes, NUL,
/// anything outside [A-Za-z0-9/._-], over 200 bytes).
std::string_view static_file_path(std::string_view path);

}  // namespace storepulse::net
