// libFuzzer target: the HTTP side of the server's request path. The bytes are
// what a client sends on a connection: Beast's request_parser reads them under
// the server's header and body limits (apply_request_limits), and every request
// it accepts goes through route_request, the server's routing, upgrade, admin
// token, query and static-file decisions, with keep-alive requests read one
// after another as the session does. Any crash, sanitizer report or broken
// invariant below is a bug. Build: scripts/fuzz.
#include <algorithm>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/range/iterator_range.hpp>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/http_routes.hpp"
#include "net/segment_api.hpp"
#include "storepulse/net/server.hpp"

using namespace storepulse;
namespace http = boost::beast::http;

namespace {

// The secrets the seed corpus uses, so the fuzzer starts from authorised requests too.
const net::ServerOptions& options() {
  static const net::ServerOptions opts = [] {
    net::ServerOptions o;
    o.pos_keys = {"pos-key-1", "pos-key-2"};
    o.admin_token = "admin-secret";
    o.web_allowed_origins = {"https://shop.example.com"};
    return o;
  }();
  return opts;
}

std::string_view sv(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void check(const net::HttpRequest& req, const net::RouteDecision& d) {
  const auto& opts = options();
  const std::string_view target = sv(req.target());
  // Views point into the request (or, for a mapped static file, a literal).
  if (!inside(d.path, target) || !inside(d.query, target)) std::abort();
  // Request smuggling: the body's length must be unambiguous for whatever sits
  // in front of the server. Every Content-Length (a field may hold a list)
  // names the length of the body that was read; the parser refuses others and
  // a length next to chunking. Spellings may differ (`40`, `040`, `40, 40`):
  // RFC 9110 8.6 lets a recipient take equal values. A Transfer-Encoding whose
  // last coding is not chunked leaves the length undefined (RFC 9112 6.1:
  // answer 400 and close), so such a request is never routed further.
  for (const auto& f : boost::make_iterator_range(req.equal_range(http::field::content_length))) {
    std::string_view v = sv(f.value());
    while (!v.empty()) {
      const auto comma = v.find(',');
      std::string_view tok = v.substr(0, comma);
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
      if (tok.empty()) continue;
      std::uint64_t n = 0;
      const auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), n);
      if (ec != std::errc{} || end != tok.data() + tok.size() || n != req.body().size())
        std::abort();
    }
  }
  if (req.count(http::field::transfer_encoding) > 0 && !req.chunked() &&
      !(d.route == net::Route::kReply && d.status == http::status::bad_request && !d.keep_alive))
    std::abort();
  if (req.count(http::field::authorization) > 1 && d.route != net::Route::kReply) std::abort();
  const std::string_view token = net::bearer_token(req);
  switch (d.route) {
    case net::Route::kReply:
      if (d.body.empty() || d.body.front() != '{' || d.body.back() != '}') std::abort();
      if (static_cast<int>(d.status) < 200 || static_cast<int>(d.status) > 499) std::abort();
      break;
    case net::Route::kUpgradePos:
    case net::Route::kBatch:
      // Only a configured terminal key opens /v1/pos or posts a batch.
      if (d.key_index < 0 || static_cast<std::size_t>(d.key_index) >= opts.pos_keys.size())
        std::abort();
      if (token != opts.pos_keys[static_cast<std::size_t>(d.key_index)]) std::abort();
      if (d.route == net::Route::kUpgradePos &&
          (!boost::beast::websocket::is_upgrade(req) || req.count(http::field::content_length) ||
           req.count(http::field::transfer_encoding)))
        std::abort();
      if (d.route == net::Route::kBatch && req.method() != http::verb::post) std::abort();
      break;
    case net::Route::kSegment:
      // Only a POST to one of the API's paths; the write key is checked with the body.
      if (req.method() != http::verb::post || net::segment_call(d.path).empty() ||
          d.subject != net::segment_call(d.path))
        std::abort();
      break;
    case net::Route::kUpgradeWeb:
      if (d.subject.size() > 128 || !net::origin_allowed(req, opts)) std::abort();
      if (req.count(http::field::origin) != 1) std::abort();  // the allowlist is set
      break;
    case net::Route::kRecommend: {
      // A GET with an id and a limit in range; an allowed Origin, or a
      // configured terminal key or the admin token.
      if (req.method() != http::verb::get) std::abort();
      if (d.rec.user_id.empty() && d.rec.anonymous_id.empty()) std::abort();
      if (d.rec.user_id.size() > 128 || d.rec.anonymous_id.size() > 128 ||
          d.rec.product_id.size() > 128 || d.rec.limit < 1 || d.rec.limit > 50)
        std::abort();
      const bool keyed = !token.empty() && (token == opts.admin_token ||
                                            std::find(opts.pos_keys.begin(), opts.pos_keys.end(),
                                                      token) != opts.pos_keys.end());
      if (!keyed && (!token.empty() || !net::origin_allowed(req, opts))) std::abort();
      break;
    }
    case net::Route::kShardClaim:
      if (token != opts.admin_token || req.method() != http::verb::post || d.subject.empty())
        std::abort();
      break;
    case net::Route::kProfile:
    case net::Route::kProfileExport:
    case net::Route::kProfileErase:
    case net::Route::kAdmin:
      // Profiles (lookup, export, erasure) and admin JSON only with the admin token;
      // only an erasure is a DELETE.
      if (token != opts.admin_token) std::abort();
      if ((req.method() == http::verb::delete_) != (d.route == net::Route::kProfileErase))
        std::abort();
      if (d.route != net::Route::kAdmin && (d.subject.empty() || d.subject.size() > 128))
        std::abort();
      break;
    case net::Route::kStatic: {
      // The file stays under web_root: relative, no '..' segment or part, no
      // empty segment, nothing a filesystem could read as a separator or an escape.
      const std::string_view f = d.file;
      if (req.method() != http::verb::get) std::abort();
      if (f.empty() || f.size() > 200 || f.front() == '/' ||
          f.find("..") != std::string_view::npos || f.find("//") != std::string_view::npos)
        std::abort();
      for (char c : f)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '.' || c == '-' || c == '_'))
          std::abort();
      break;
    }
    case net::Route::kMetrics:
    case net::Route::kSmsCallback: break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // A keep-alive connection: requests one after another on the same bytes.
  for (int n = 0; n < 8 && !in.empty(); ++n) {
    net::HttpRequestParser parser;
    net::apply_request_limits(parser, options());
    boost::beast::error_code ec;
    std::size_t used = 0;
    while (!parser.is_done() && used < in.size()) {
      const std::size_t k = parser.put(boost::asio::buffer(in.data() + used, in.size() - used), ec);
      if (ec == http::error::need_more) {
        ec = {};
        if (k == 0) break;  // the rest is an incomplete header or chunk: the server would wait
      }
      if (ec) return 0;  // the server answers 400 / 413 / 431 and closes
      used += k;
    }
    if (!parser.is_done()) {
      // The client closed: what the parser makes of end-of-stream must not crash.
      parser.put_eof(ec);
      if (ec || !parser.is_done()) return 0;
    }
    net::HttpRequest req = parser.release();
    if (req.body().size() > options().max_batch_bytes) std::abort();
    const net::RouteDecision d = net::route_request(req, options());
    check(req, d);
    // Static-file mapping and query parsing on their own, on the raw target too.
    (void)net::static_file_path(sv(req.target()));
    (void)net::percent_decode(net::query_param(sv(req.target()), "anonymousId"));
    if (d.route == net::Route::kReply && !d.keep_alive) return 0;  // the server closes
    if (net::Route::kReply != d.route && !req.keep_alive()) return 0;
    in.remove_prefix(used);
  }
  return 0;
}
