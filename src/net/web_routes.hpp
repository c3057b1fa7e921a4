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

/// Reads `rel` under `web_root`: `rel` comes from static_file_path
/// (http_routes.hpp), which maps the URL and refuses anything that could leave
/// web_root. nullopt = 404.
std::optional<StaticFile> read_static_file(const std::string& web_root, std::string_view rel);

struct AdminReply {
  int status = 200;
  std::string body;
};

/// Admin JSON endpoints (caller has checked the admin token):
/// `GET /v1/rules` (rules and live counters), `GET /v1/admin/stats`
/// (rates, latency quantiles, errors, queue depths). nullopt = not an admin path.
std::optional<AdminReply> handle_admin(engine::Engine& engine, std::string_view path);

}  // namespace storepulse::net
