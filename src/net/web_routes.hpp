#pragma once
// Plain HTTP routes beside the event API: static files of the widget, demo shop
// and dashboard (from `server.web_root`), and the admin JSON endpoints.
#include <optional>
#include <string>
#include <string_view>

#include "storepulse/engine/engine.hpp"

namespace storepulse::net {

struct StaticFile {
  std::string body;
  std::string content_type;
};

/// Maps a URL path to a file under `web_root` (`/widget.js`, `/demo/shop`,
/// `/dashboard`, `/static/...`). Never serves anything outside web_root:
/// `..`, backslashes, NUL and absolute tricks are refused. nullopt = 404.
std::optional<StaticFile> serve_static(const std::string& web_root, std::string_view path);

struct AdminReply {
  int status = 200;
  std::string body;
};

/// Admin JSON endpoints (caller has checked the admin token):
/// `GET /v1/rules` (rules and live counters), `GET /v1/admin/stats`
/// (rates, latency quantiles, errors, queue depths). nullopt = not an admin path.
std::optional<AdminReply> handle_admin(engine::Engine& engine, std::string_view path);

}  // namespace storepulse::net
