#include "net/web_routes.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "net/http_routes.hpp"

namespace storepulse::net {
namespace {

std::string_view content_type_for(std::string_view file) {
  auto ends = [&](std::string_view ext) {
    return file.size() >= ext.size() && file.substr(file.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "application/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".json")) return "application/json";
  return "application/octet-stream";
}

}  // namespace

std::optional<StaticFile> read_static_file(const std::string& web_root, std::string_view rel) {
  // Regular files only: a folder (`/static/js`) opens as a stream on Linux and
  // would answer 200 with an empty body. Widget assets are small; anything
  // over 16 MiB is not one.
  constexpr std::uintmax_t kMaxStaticBytes = 16u << 20;
  const std::string path = web_root + "/" + std::string(rel);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec) ||
      std::filesystem::file_size(path, ec) > kMaxStaticBytes || ec)
    return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return StaticFile{ss.str(), std::string(content_type_for(rel))};
}

std::optional<AdminReply> handle_admin(engine::Engine& engine, std::string_view path) {
  if (path == "/v1/rules") {
    auto rules = engine.rules();
    return AdminReply{200, rules ? rules->describe_json() : "[]"};
  }
  if (path == "/v1/admin/shards") return AdminReply{200, engine.shards_json()};
  if (path == "/v1/admin/stats") {
    Metrics& m = engine.metrics();
    std::string o = "{\"events\":{";
    static constexpr const char* kTypes[] = {"track", "identify", "page", "alias"};
    static constexpr const char* kChannels[] = {"unknown", "pos", "web", "app"};
    bool first = true;
    for (int c = 0; c < Metrics::kChannels; ++c) {
      std::uint64_t n = 0;
      for (int t = 0; t < Metrics::kTypes; ++t)
        n += m.events[static_cast<std::size_t>(t * Metrics::kChannels + c)].load();
      o += fmt::format("{}\"{}\":{}", first ? "" : ",", kChannels[c], n);
      first = false;
    }
    o += "},\"eventsByType\":{";
    first = true;
    for (int t = 0; t < Metrics::kTypes; ++t) {
      std::uint64_t n = 0;
      for (int c = 0; c < Metrics::kChannels; ++c)
        n += m.events[static_cast<std::size_t>(t * Metrics::kChannels + c)].load();
      o += fmt::format("{}\"{}\":{}", first ? "" : ",", kTypes[t], n);
      first = false;
    }
    o += "},\"errors\":{";
    first = true;
    for (ErrorCode c : kAllWireErrors) {
      o += fmt::format("{}\"{}\":{}", first ? "" : ",", error_code_name(c),
                       m.errors[static_cast<std::size_t>(c)].load());
      first = false;
    }
    o += fmt::format("}},\"latencyUs\":{{\"p50\":{},\"p99\":{},\"count\":{}}}",
                     m.event_latency.quantile_us(0.5), m.event_latency.quantile_us(0.99),
                     m.event_latency.count());
    o += ",\"queueDepth\":[";
    for (int s = 0; s < engine.shard_count(); ++s)
      o += fmt::format("{}{}", s ? "," : "", engine.queue_depth(s));
    o += fmt::format("],\"profiles\":{},\"connections\":{},\"actions\":{},\"duplicates\":{}}}",
                     engine.profile_count(), m.connections.load(), m.actions.load(),
                     m.duplicates.load());
    return AdminReply{200, std::move(o)};
  }
  return std::nullopt;
}

}  // namespace storepulse::net
