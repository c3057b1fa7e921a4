#include "net/http_routes.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <charconv>

#include "net/segment_api.hpp"

namespace storepulse::net {

namespace http = boost::beast::http;

namespace {

std::string_view sv(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

RouteDecision reply(http::status st, std::string_view body, bool keep_alive,
                    RouteTally tally = RouteTally::kNone) {
  RouteDecision d;
  d.route = Route::kReply;
  d.status = st;
  d.body = body;
  d.keep_alive = keep_alive;
  d.tally = tally;
  return d;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool safe_relative(std::string_view rel) {
  if (rel.empty() || rel.size() > 200 || rel.front() == '/') return false;
  for (char c : rel) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '/' || c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return rel.find("..") == std::string_view::npos && rel.find("//") == std::string_view::npos;
}

}  // namespace

void apply_request_limits(HttpRequestParser& parser, const ServerOptions& opts) {
  parser.header_limit(static_cast<std::uint32_t>(opts.max_header_bytes));
  parser.body_limit(opts.max_batch_bytes);
}

std::string_view bearer_token(const HttpRequest& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return {};
  const std::string_view v = sv(it->value());
  if (v.size() > 7 && (v.substr(0, 7) == "Bearer " || v.substr(0, 7) == "bearer "))
    return v.substr(7);
  return {};
}

int pos_key_index(const ServerOptions& opts, std::string_view key) {
  int found = -1;
  for (std::size_t i = 0; i < opts.pos_keys.size(); ++i)
    if (secret_equals(key, opts.pos_keys[i])) found = static_cast<int>(i);
  return found;
}

bool admin_token_ok(const ServerOptions& opts, std::string_view token) {
  return !opts.admin_token.empty() && secret_equals(token, opts.admin_token);
}

bool write_key_ok(const ServerOptions& opts, std::string_view key) {
  bool found = false;
  for (const auto& k : opts.write_keys) found |= !key.empty() && secret_equals(key, k);
  return found;
}

bool origin_allowed(const HttpRequest& req, const ServerOptions& opts) {
  if (opts.web_allowed_origins.empty()) return true;
  if (req.count(http::field::origin) != 1) return false;
  const auto v = req[http::field::origin];
  for (const auto& o : opts.web_allowed_origins)
    if (boost::beast::iequals(v, o)) return true;
  return false;
}

std::string_view query_param(std::string_view target, std::string_view name) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return {};
}

std::string percent_decode(std::string_view s) {
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

std::string_view static_file_path(std::string_view path) {
  std::string_view rel;
  if (path == "/widget.js")
    rel = "widget/widget.js";
  else if (path == "/demo/shop" || path == "/demo/shop/")
    rel = "demo/shop.html";
  else if (path == "/dashboard" || path == "/dashboard/")
    rel = "dashboard/index.html";
  else if (starts_with(path, "/static/"))
    rel = path.substr(8);
  else
    return {};
  return safe_relative(rel) ? rel : std::string_view{};
}

RouteDecision route_request(const HttpRequest& req, const ServerOptions& opts) {
  const std::string_view target = sv(req.target());
  const std::string_view path = target.substr(0, target.find('?'));
  const bool keep = req.keep_alive();
  const auto method = req.method();
  // A Transfer-Encoding whose last coding is not chunked leaves the body's
  // length undefined (RFC 9112 6.1): Beast then reads no body (or the
  // Content-Length that came after it), and the body bytes would be taken as
  // the next request while a proxy in front may frame them otherwise. The
  // parser already refuses chunked next to a Content-Length.
  if (req.count(http::field::transfer_encoding) > 0 && !req.chunked())
    return reply(http::status::bad_request,
                 R"({"error":"bad_request","detail":"Transfer-Encoding other than chunked"})",
                 false);
  // Two credentials: which one counts would depend on header order, and a
  // proxy in front may check the other one. Refuse rather than pick.
  if (req.count(http::field::authorization) > 1)
    return reply(http::status::bad_request,
                 R"({"error":"bad_request","detail":"more than one Authorization header"})", false);
  if (boost::beast::websocket::is_upgrade(req)) {
    // An upgrade is a GET without a body (RFC 6455 §4.1). Body bytes would be
    // swallowed here as HTTP, while a proxy may forward them as frames: the
    // two would disagree about what the client sent.
    if (req.count(http::field::content_length) > 0 || req.count(http::field::transfer_encoding) > 0)
      return reply(
          http::status::bad_request,
          R"({"error":"bad_request","detail":"a WebSocket upgrade must not carry a body"})", false);
    if (path == "/v1/pos") {
      const int key_index = pos_key_index(opts, bearer_token(req));
      if (key_index < 0)
        return reply(
            http::status::unauthorized,
            R"({"error":"unauthorized","detail":"/v1/pos needs Authorization: Bearer <terminal key>"})",
            false, RouteTally::kUnauthorized);
      RouteDecision d;
      d.route = Route::kUpgradePos;
      d.key_index = key_index;
      d.path = path;
      return d;
    }
    if (path == "/v1/web") {
      // A browser always sends Origin on a WebSocket upgrade; a page on
      // another site cannot forge it. Non-browser clients can, so this
      // guards visitors' browsers, not the endpoint (the caps do that).
      if (!origin_allowed(req, opts))
        return reply(http::status::forbidden,
                     R"({"error":"forbidden","detail":"Origin not allowed for /v1/web"})", false,
                     RouteTally::kConnectionRefused);
      RouteDecision d;
      d.subject = percent_decode(query_param(target, "anonymousId"));
      if (d.subject.size() > 128)
        return reply(http::status::bad_request,
                     R"({"error":"bad_field","detail":"anonymousId: longer than 128 bytes"})",
                     false);
      d.route = Route::kUpgradeWeb;
      d.path = path;
      return d;
    }
    return reply(http::status::not_found,
                 R"({"error":"not_found","detail":"WebSocket endpoints are /v1/pos and /v1/web"})",
                 false);
  }
  RouteDecision d;
  d.path = path;
  if (path == "/healthz" && method == http::verb::get)
    return reply(http::status::ok, R"({"status":"ok"})", keep);
  if (path == "/metrics" && method == http::verb::get) {
    d.route = Route::kMetrics;
    return d;
  }
  if (starts_with(path, "/v1/profiles/")) {
    std::string_view rest = path.substr(13);
    const bool is_export = rest.size() >= 7 && rest.substr(rest.size() - 7) == "/export";
    if (is_export) rest.remove_suffix(7);
    if (method != http::verb::get && (method != http::verb::delete_ || is_export))
      return reply(http::status::method_not_allowed,
                   is_export ? R"({"error":"bad_request","detail":"use GET for an export"})"
                             : R"({"error":"bad_request","detail":"use GET or DELETE"})",
                   keep);
    if (!admin_token_ok(opts, bearer_token(req)))
      return reply(http::status::unauthorized,
                   R"({"error":"unauthorized","detail":"admin token required"})", keep);
    d.subject = percent_decode(rest);
    if (d.subject.empty() || d.subject.size() > 128)
      return reply(http::status::bad_request,
                   R"({"error":"bad_field","detail":"profile id must be 1-128 bytes"})", keep);
    d.route = is_export                       ? Route::kProfileExport
              : method == http::verb::delete_ ? Route::kProfileErase
                                              : Route::kProfile;
    return d;
  }
  if (starts_with(path, "/v1/sms/")) {
    d.route = Route::kSmsCallback;
    return d;
  }
  if (const std::string_view call = segment_call(path); !call.empty()) {
    if (method != http::verb::post)
      return reply(http::status::method_not_allowed,
                   R"({"success":false,"message":"use POST","error":"bad_request"})", keep);
    d.route = Route::kSegment;
    d.subject.assign(call);
    return d;
  }
  if (path == "/v1/recommendations") {
    if (method != http::verb::get)
      return reply(http::status::method_not_allowed,
                   R"({"error":"bad_request","detail":"use GET"})", keep);
    // As /v1/web: a browser page of an allowed origin (a page on another site
    // cannot forge Origin), or a server-side caller (server-rendered pages,
    // e-mail) with a terminal key or the admin token.
    const std::string_view bearer = bearer_token(req);
    const bool keyed =
        !bearer.empty() && (pos_key_index(opts, bearer) >= 0 || admin_token_ok(opts, bearer));
    if (!keyed && !bearer.empty())
      return reply(http::status::unauthorized,
                   R"({"error":"unauthorized","detail":"unknown key for /v1/recommendations"})",
                   keep, RouteTally::kUnauthorized);
    if (!keyed && !origin_allowed(req, opts))
      return reply(http::status::forbidden,
                   R"({"error":"forbidden","detail":"Origin not allowed for /v1/recommendations"})",
                   keep, RouteTally::kConnectionRefused);
    d.rec.user_id = percent_decode(query_param(target, "userId"));
    d.rec.anonymous_id = percent_decode(query_param(target, "anonymousId"));
    d.rec.product_id = percent_decode(query_param(target, "productId"));
    if (d.rec.user_id.size() > 128 || d.rec.anonymous_id.size() > 128 ||
        d.rec.product_id.size() > 128)
      return reply(
          http::status::bad_request,
          R"({"error":"bad_field","detail":"userId, anonymousId and productId: at most 128 bytes each"})",
          keep);
    if (d.rec.user_id.empty() && d.rec.anonymous_id.empty())
      return reply(http::status::bad_request,
                   R"({"error":"bad_field","detail":"userId: give ?userId= or ?anonymousId="})",
                   keep);
    if (const std::string_view l = query_param(target, "limit"); !l.empty()) {
      int n = 0;
      const auto [end, ec] = std::from_chars(l.data(), l.data() + l.size(), n);
      if (ec != std::errc() || end != l.data() + l.size() || n < 1 || n > 50)
        return reply(
            http::status::bad_request,
            R"({"error":"bad_field","detail":"limit: expected a whole number from 1 to 50"})",
            keep);
      d.rec.limit = n;
    }
    d.route = Route::kRecommend;
    return d;
  }
  if (path == "/v1/events") {
    if (method != http::verb::post)
      return reply(http::status::method_not_allowed,
                   R"({"error":"bad_request","detail":"use POST"})", keep);
    d.key_index = pos_key_index(opts, bearer_token(req));
    if (d.key_index < 0)
      return reply(
          http::status::unauthorized,
          R"({"error":"unauthorized","detail":"POST /v1/events needs Authorization: Bearer <terminal key>"})",
          keep, RouteTally::kUnauthorized);
    d.route = Route::kBatch;
    return d;
  }
  if (path == "/v1/admin/shards/claim") {
    if (method != http::verb::post)
      return reply(
          http::status::method_not_allowed,
          R"({"error":"bad_request","detail":"use POST /v1/admin/shards/claim?shards=4-7"})", keep);
    if (!admin_token_ok(opts, bearer_token(req)))
      return reply(http::status::unauthorized,
                   R"({"error":"unauthorized","detail":"admin token required"})", keep);
    d.subject = percent_decode(query_param(target, "shards"));
    if (d.subject.empty())
      return reply(
          http::status::bad_request,
          R"({"error":"bad_field","detail":"shards: give the shards to claim, e.g. ?shards=4-7"})",
          keep);
    d.route = Route::kShardClaim;
    return d;
  }
  if (path == "/v1/rules" || starts_with(path, "/v1/admin/")) {
    if (method != http::verb::get)
      return reply(http::status::method_not_allowed,
                   R"({"error":"bad_request","detail":"use GET"})", keep);
    if (!admin_token_ok(opts, bearer_token(req)))
      return reply(http::status::unauthorized,
                   R"({"error":"unauthorized","detail":"admin token required"})", keep);
    d.route = Route::kAdmin;
    d.query = target.size() > path.size() ? target.substr(path.size() + 1) : std::string_view{};
    return d;
  }
  if (method == http::verb::get) {
    d.file = static_file_path(path);
    if (!d.file.empty()) {
      d.route = Route::kStatic;
      return d;
    }
  }
  return reply(http::status::not_found, R"({"error":"not_found"})", keep);
}

}  // namespace storepulse::net
