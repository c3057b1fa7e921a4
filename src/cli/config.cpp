#include "storepulse/cli/config.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "storepulse/store/redis_cluster.hpp"

namespace storepulse::cli {
namespace {

[[noreturn]] void fail(const std::string& file, std::string_view key, std::string_view what) {
  throw std::runtime_error(fmt::format("{}: {}: {}", file, key, what));
}

template <typename T>
void read_int(const toml::table& t, const std::string& file, std::string_view sect,
              std::string_view key, T& out, long long lo, long long hi) {
  auto node = t[sect][key];
  if (!node) return;
  auto v = node.value<long long>();
  const std::string name = fmt::format("{}.{}", sect, key);
  if (!v) fail(file, name, "expected a whole number");
  if (*v < lo || *v > hi)
    fail(file, name, fmt::format("must be between {} and {}, got {}", lo, hi, *v));
  out = static_cast<T>(*v);
}

void read_str(const toml::table& t, const std::string& file, std::string_view sect,
              std::string_view key, std::string& out) {
  auto node = t[sect][key];
  if (!node) return;
  auto v = node.value<std::string>();
  if (!v) fail(file, fmt::format("{}.{}", sect, key), "expected a string");
  out = *v;
}

void read_duration(const toml::table& t, const std::string& file, std::string_view sect,
                   std::string_view key, TimeUs& out) {
  std::string s;
  read_str(t, file, sect, key, s);
  if (s.empty()) return;
  auto d = parse_duration(s);
  if (!d)
    fail(file, fmt::format("{}.{}", sect, key),
         fmt::format("expected a duration such as 250ms, 30s, 2h or 7d, got '{}'", s));
  out = *d;
}

void read_double(const toml::table& t, const std::string& file, std::string_view sect,
                 std::string_view key, double& out) {
  auto node = t[sect][key];
  if (!node) return;
  auto v = node.value<double>();
  if (!v || *v <= 0) fail(file, fmt::format("{}.{}", sect, key), "expected a positive number");
  out = *v;
}

// Like read_double, but 0 is allowed (= off).
void read_rate(const toml::table& t, const std::string& file, std::string_view sect,
               std::string_view key, double& out) {
  auto node = t[sect][key];
  if (!node) return;
  auto v = node.value<double>();
  if (!v || *v < 0)
    fail(file, fmt::format("{}.{}", sect, key), "expected a number >= 0 (0 = no limit)");
  out = *v;
}

// web.allowed_origins: exact origins as a browser sends them, "https://shop.example.com[:port]".
void read_origins(const toml::table& t, const std::string& file, std::vector<std::string>& out) {
  auto node = t["web"]["allowed_origins"];
  if (!node) return;
  auto* arr = node.as_array();
  if (!arr) fail(file, "web.allowed_origins", "expected an array of strings");
  for (const auto& o : *arr) {
    auto v = o.value<std::string>();
    if (!v) fail(file, "web.allowed_origins", "expected an array of strings");
    std::string origin = *v;
    while (!origin.empty() && origin.back() == '/') origin.pop_back();
    const auto scheme = origin.find("://");
    if (!(origin.rfind("https://", 0) == 0 || origin.rfind("http://", 0) == 0) ||
        scheme + 3 >= origin.size() ||
        origin.find_first_of("/?#* ", scheme + 3) != std::string::npos)
      fail(file, "web.allowed_origins",
           fmt::format("'{}' is not an origin: expected scheme://host[:port] such as "
                       "https://shop.example.com",
                       *v));
    out.push_back(std::move(origin));
  }
}

std::vector<std::string> split_csv(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t comma = s.find(',', start);
    if (comma == std::string_view::npos) comma = s.size();
    std::string_view part = s.substr(start, comma - start);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (!part.empty()) out.emplace_back(part);
    start = comma + 1;
  }
  return out;
}

}  // namespace

const std::vector<std::pair<std::string, std::vector<std::string>>>& known_config_keys() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> known = {
      {"server",
       {"host", "port", "io_threads", "max_connections", "max_connections_per_ip",
        "max_message_bytes", "max_frame_bytes", "max_batch_bytes", "max_header_bytes",
        "idle_timeout", "send_queue_max", "web_root"}},
      {"web",
       {"max_message_bytes", "rate_per_sec", "burst", "send_queue_max", "allowed_origins",
        "max_connections_per_ip", "max_connections_per_visitor", "ip_rate_per_sec", "ip_burst",
        "close_after_limited"}},
      {"pos", {"rate_per_sec", "burst"}},
      {"tls", {"cert", "key", "allow_plain"}},
      {"auth", {"pos_keys", "admin_token"}},
      {"ingest", {"write_keys"}},
      {"engine",
       {"shards", "queue_capacity", "batch_max", "max_profiles", "dedupe_window", "owned_shards",
        "node_id"}},
      {"store",
       {"kind", "data_dir", "fsync", "fsync_interval", "segment_bytes", "snapshot_interval",
        "snapshot_min_records", "archive_segments"}},
      {"redis",
       {"url", "nodes", "password", "connect_timeout", "command_timeout", "prefix", "lease_ttl",
        "spool_dir", "spool_max_bytes", "tls_ca", "tls_cert", "tls_key", "tls_server_name"}},
      {"events", {"max_future", "max_past", "max_products"}},
      {"rules", {"dir"}},
      {"models", {"dir"}},
      {"sms",
       {"gateway_format", "gateway_url", "gateway_secret", "account_sid", "auth_token", "from",
        "public_url", "help_text", "max_outbox", "retry_max", "retry_base", "rate_per_sec",
        "timeout"}},
      {"privacy", {"encrypt_journal"}},
      {"log", {"level"}},
  };
  return known;
}

Config load_config(const std::string& path) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw std::runtime_error(fmt::format("{}:{}:{}: {}", path, e.source().begin.line,
                                         e.source().begin.column, e.description()));
  }
  const auto& kKnown = known_config_keys();
  // Unknown keys are errors: a misspelt limit silently ignored is a limit not applied.
  for (const auto& [sect, node] : t) {
    auto it = std::find_if(kKnown.begin(), kKnown.end(),
                           [&](const auto& k) { return k.first == sect.str(); });
    if (it == kKnown.end()) fail(path, sect.str(), "unknown section");
    if (!node.is_table()) fail(path, sect.str(), "expected a [section]");
    for (const auto& [key, _] : *node.as_table())
      if (std::find(it->second.begin(), it->second.end(), key.str()) == it->second.end())
        fail(path, fmt::format("{}.{}", sect.str(), key.str()), "unknown key");
  }

  Config c;
  c.source = path;
  auto& s = c.server;
  read_str(t, path, "server", "host", s.host);
  read_str(t, path, "server", "web_root", s.web_root);
  read_int(t, path, "server", "port", s.port, 0, 65535);
  read_int(t, path, "server", "io_threads", s.io_threads, 1, 64);
  read_int(t, path, "server", "max_connections", s.max_connections, 1, 1'000'000);
  read_int(t, path, "server", "max_message_bytes", s.max_message_bytes, 256, 16 << 20);
  read_int(t, path, "server", "max_frame_bytes", s.max_frame_bytes, 256, 64 << 20);
  read_int(t, path, "server", "max_batch_bytes", s.max_batch_bytes, 1024, 256 << 20);
  read_int(t, path, "server", "max_header_bytes", s.max_header_bytes, 1024, 1 << 20);
  read_duration(t, path, "server", "idle_timeout", s.idle_timeout_us);
  read_int(t, path, "server", "send_queue_max", s.send_queue_max, 1, 1'000'000);
  read_int(t, path, "web", "max_message_bytes", s.web_max_message_bytes, 256, 16 << 20);
  read_double(t, path, "web", "rate_per_sec", s.web_rate_per_sec);
  read_double(t, path, "web", "burst", s.web_burst);
  read_int(t, path, "web", "send_queue_max", s.web_send_queue_max, 1, 1'000'000);
  read_int(t, path, "server", "max_connections_per_ip", s.max_connections_per_ip, 0, 1'000'000);
  read_origins(t, path, s.web_allowed_origins);
  read_int(t, path, "web", "max_connections_per_ip", s.web_max_connections_per_ip, 0, 1'000'000);
  read_int(t, path, "web", "max_connections_per_visitor", s.web_max_connections_per_visitor, 0,
           1'000'000);
  read_rate(t, path, "web", "ip_rate_per_sec", s.web_ip_rate_per_sec);
  read_double(t, path, "web", "ip_burst", s.web_ip_burst);
  read_int(t, path, "web", "close_after_limited", s.web_close_after_limited, 0, 1'000'000);
  read_rate(t, path, "pos", "rate_per_sec", s.pos_rate_per_sec);
  read_rate(t, path, "pos", "burst", s.pos_burst);
  read_str(t, path, "tls", "cert", s.tls_cert);
  read_str(t, path, "tls", "key", s.tls_key);
  if (s.tls_cert.empty() != s.tls_key.empty())
    fail(path, s.tls_cert.empty() ? "tls.cert" : "tls.key",
         "tls.cert and tls.key go together: set both or neither");
  if (auto a = t["tls"]["allow_plain"]) {
    auto v = a.value<bool>();
    if (!v) fail(path, "tls.allow_plain", "expected true or false");
    s.tls_allow_plain = *v;
  }
  if (s.max_frame_bytes < s.max_message_bytes) s.max_frame_bytes = s.max_message_bytes;

  if (auto keys = t["auth"]["pos_keys"]) {
    auto* arr = keys.as_array();
    if (!arr) fail(path, "auth.pos_keys", "expected an array of strings");
    for (const auto& k : *arr) {
      auto v = k.value<std::string>();
      if (!v || v->size() < 16)
        fail(path, "auth.pos_keys", "each key must be a string of at least 16 characters");
      s.pos_keys.push_back(*v);
    }
  }
  read_str(t, path, "auth", "admin_token", s.admin_token);
  if (auto keys = t["ingest"]["write_keys"]) {
    auto* arr = keys.as_array();
    if (!arr) fail(path, "ingest.write_keys", "expected an array of strings");
    for (const auto& k : *arr) {
      auto v = k.value<std::string>();
      if (!v || v->size() < 8 || v->find(':') != std::string::npos)
        fail(path, "ingest.write_keys",
             "each write key must be a string of at least 8 characters, without ':'");
      s.write_keys.push_back(*v);
    }
  }
  c.secrets_in_file = !s.pos_keys.empty() || !s.admin_token.empty() || !s.write_keys.empty();

  auto& e = c.engine;
  read_int(t, path, "engine", "shards", e.shards, 1, 256);
  read_int(t, path, "engine", "queue_capacity", e.queue_capacity, 16, 10'000'000);
  read_int(t, path, "engine", "batch_max", e.batch_max, 1, 4096);
  read_int(t, path, "engine", "max_profiles", e.max_profiles, 1, 1'000'000'000);
  read_int(t, path, "engine", "dedupe_window", e.dedupe_window, 0, 100'000'000);
  read_str(t, path, "engine", "owned_shards", e.owned_shards);
  read_str(t, path, "engine", "node_id", e.node_id);
  if (e.node_id.find_first_of("/ \t") != std::string::npos)
    fail(path, "engine.node_id", "expected a name without '/' or spaces");
  if (!e.owned_shards.empty() && e.owned_shards != "all" && e.node_id.empty())
    fail(path, "engine.node_id",
         "engine.owned_shards is set: give this node a node_id unique among the nodes sharing the "
         "Redis "
         "(its shard leases are held under that name)");
  std::string kind = "embedded";
  read_str(t, path, "store", "kind", kind);
  if (kind != "embedded" && kind != "redis" && kind != "redis-cluster")
    fail(path, "store.kind",
         fmt::format("expected embedded, redis or redis-cluster, got '{}'", kind));
  // A Redis Cluster is the redis store whose shards each talk to the master
  // of their slot: the engine runs it as "redis" with cluster nodes set.
  e.store_kind = kind == "redis-cluster" ? "redis" : kind;
  std::string redis_url;
  read_str(t, path, "redis", "url", redis_url);
  if (!redis_url.empty())
    if (Status st = store::parse_redis_url(redis_url, e.redis); !st)
      fail(path, "redis.url", st.detail());
  if (auto node = t["redis"]["nodes"]) {
    auto* arr = node.as_array();
    if (!arr) fail(path, "redis.nodes", "expected an array of \"host:port\" strings");
    for (const auto& n : *arr) {
      auto v = n.value<std::string>();
      if (!v) fail(path, "redis.nodes", "expected an array of \"host:port\" strings");
      if (auto a = store::parse_cluster_address(*v); !a)
        fail(path, "redis.nodes", a.status().detail());
      e.redis.cluster_nodes.push_back(*v);
    }
  }
  if (kind == "redis-cluster") {
    if (e.redis.cluster_nodes.empty())  // the url's host:port is a node as good as any
      e.redis.cluster_nodes.push_back(fmt::format("{}:{}", e.redis.host, e.redis.port));
    if (e.redis.db != 0)
      fail(path, "redis.url", "a Redis Cluster has database 0 only: leave the /db out of the url");
  } else if (!e.redis.cluster_nodes.empty()) {
    fail(path, "redis.nodes", "cluster nodes are for store.kind = \"redis-cluster\"");
  }
  read_str(t, path, "redis", "password", e.redis.password);
  read_str(t, path, "redis", "tls_ca", e.redis.tls.ca_file);
  read_str(t, path, "redis", "tls_cert", e.redis.tls.cert_file);
  read_str(t, path, "redis", "tls_key", e.redis.tls.key_file);
  read_str(t, path, "redis", "tls_server_name", e.redis.tls.server_name);
  if (e.redis.tls.cert_file.empty() != e.redis.tls.key_file.empty())
    fail(path, "redis.tls_cert",
         "tls_cert and tls_key go together (a client certificate needs its key)");
  for (const auto* f : {&e.redis.tls.ca_file, &e.redis.tls.cert_file, &e.redis.tls.key_file})
    if (!f->empty() && ::access(f->c_str(), R_OK) != 0)
      fail(path, "redis.tls", fmt::format("cannot read '{}': {}", *f, std::strerror(errno)));
  read_str(t, path, "redis", "prefix", e.redis.prefix);
  if (e.redis.prefix.empty() || e.redis.prefix.find_first_of("{} \t") != std::string::npos)
    fail(path, "redis.prefix", "expected a non-empty key prefix without braces or spaces");
  TimeUs redis_connect = TimeUs{e.redis.connect_timeout_ms} * 1000,
         redis_command = TimeUs{e.redis.command_timeout_ms} * 1000;
  read_duration(t, path, "redis", "connect_timeout", redis_connect);
  read_duration(t, path, "redis", "command_timeout", redis_command);
  if (redis_connect < 1000 || redis_command < 1000)
    fail(path, "redis", "connect_timeout and command_timeout must be at least 1ms");
  e.redis.connect_timeout_ms = static_cast<int>(std::min<TimeUs>(redis_connect / 1000, 600'000));
  e.redis.command_timeout_ms = static_cast<int>(std::min<TimeUs>(redis_command / 1000, 600'000));
  TimeUs lease_ttl = TimeUs{e.redis.lease_ttl_ms} * 1000;
  read_duration(t, path, "redis", "lease_ttl", lease_ttl);
  if (lease_ttl < 300'000 || lease_ttl > 600 * kUsPerSecond)
    fail(path, "redis.lease_ttl", "expected between 300ms and 10m");
  e.redis.lease_ttl_ms = static_cast<int>(lease_ttl / 1000);
  // The spool (docs/operations.md, "Spool"): "" = <data_dir>/spool, resolved by
  // the engine; 0 bytes = no spool (commits Redis does not confirm answer unavailable).
  read_str(t, path, "redis", "spool_dir", e.redis.spool_dir);
  if (t["redis"]["spool_dir"] && e.redis.spool_dir.empty())
    fail(path, "redis.spool_dir", "expected a folder (leave the key out for <data_dir>/spool)");
  read_int(t, path, "redis", "spool_max_bytes", e.redis.spool_max_bytes, 0, 1LL << 40);
  if (e.redis.spool_max_bytes != 0 && e.redis.spool_max_bytes < (1u << 20))
    fail(path, "redis.spool_max_bytes",
         fmt::format("expected 0 (no spool) or at least 1048576 (1 MiB), got {}",
                     e.redis.spool_max_bytes));
  read_str(t, path, "store", "data_dir", e.data_dir);
  std::string fsync;
  read_str(t, path, "store", "fsync", fsync);
  if (!fsync.empty() && !store::parse_fsync_policy(fsync, e.fsync))
    fail(path, "store.fsync", fmt::format("expected always, interval or never, got '{}'", fsync));
  read_duration(t, path, "store", "fsync_interval", e.fsync_interval_us);
  read_int(t, path, "store", "segment_bytes", e.segment_bytes, 4096, 1LL << 34);
  read_duration(t, path, "store", "snapshot_interval", e.snapshot_interval_us);
  read_int(t, path, "store", "snapshot_min_records", e.snapshot_min_records, 0, 1LL << 40);
  if (auto a = t["store"]["archive_segments"]) {
    auto v = a.value<bool>();
    if (!v) fail(path, "store.archive_segments", "expected true or false");
    e.archive_segments = *v;
  }
  if (auto a = t["privacy"]["encrypt_journal"]) {
    auto v = a.value<bool>();
    if (!v) fail(path, "privacy.encrypt_journal", "expected true or false");
    e.seal_records = *v;
  }
  read_duration(t, path, "events", "max_future", e.limits.max_future_us);
  read_duration(t, path, "events", "max_past", e.limits.max_past_us);
  read_int(t, path, "events", "max_products", e.limits.max_products, 1, 100'000);
  read_str(t, path, "rules", "dir", c.rules_dir);
  read_str(t, path, "models", "dir", c.models_dir);
  auto& sms = c.sms;
  read_str(t, path, "sms", "gateway_url", sms.gateway_url);
  if (!sms.gateway_url.empty())
    if (auto u = actions::parse_gateway_url(sms.gateway_url); !u)
      fail(path, "sms.gateway_url", u.status().detail());
  read_str(t, path, "sms", "gateway_secret", sms.gateway_secret);
  if (!sms.gateway_secret.empty()) c.secrets_in_file = true;
  std::string format;
  read_str(t, path, "sms", "gateway_format", format);
  if (!format.empty() && !actions::parse_gateway_format(format, sms.format))
    fail(path, "sms.gateway_format", fmt::format("expected twilio or json, got '{}'", format));
  read_str(t, path, "sms", "account_sid", sms.account_sid);
  read_str(t, path, "sms", "auth_token", sms.auth_token);
  if (!sms.auth_token.empty()) c.secrets_in_file = true;
  read_str(t, path, "sms", "from", sms.from);
  read_str(t, path, "sms", "public_url", sms.public_url);
  if (!sms.public_url.empty())
    if (auto u = actions::parse_gateway_url(sms.public_url); !u)
      fail(path, "sms.public_url", u.status().detail());
  read_str(t, path, "sms", "help_text", sms.help_text);
  if (sms.help_text.empty() || sms.help_text.size() > 1600)
    fail(path, "sms.help_text", "expected 1-1600 characters");
  read_int(t, path, "sms", "max_outbox", sms.max_outbox, 1, 10'000'000);
  read_int(t, path, "sms", "retry_max", sms.retry_max, 1, 100);
  read_duration(t, path, "sms", "retry_base", sms.retry_base_us);
  read_double(t, path, "sms", "rate_per_sec", sms.rate_per_sec);
  read_duration(t, path, "sms", "timeout", sms.timeout_us);
  read_str(t, path, "log", "level", c.log_level);
  return c;
}

void apply_env(Config& cfg) {
  if (const char* k = std::getenv("STOREPULSE_POS_KEYS"); k && *k) {
    for (auto& key : split_csv(k)) cfg.server.pos_keys.push_back(std::move(key));
  }
  if (const char* a = std::getenv("STOREPULSE_ADMIN_TOKEN"); a && *a) cfg.server.admin_token = a;
  // Write keys from the environment replace the file's (the documented contract).
  if (const char* w = std::getenv("STOREPULSE_WRITE_KEYS"); w && *w) {
    auto keys = split_csv(w);
    for (const auto& key : keys)
      if (key.size() < 8 || key.find(':') != std::string::npos)
        throw std::runtime_error(
            "STOREPULSE_WRITE_KEYS: each write key must be at least 8 characters, without ':'");
    cfg.server.write_keys = std::move(keys);
  }
  if (const char* u = std::getenv("STOREPULSE_REDIS_URL"); u && *u)
    if (Status st = store::parse_redis_url(u, cfg.engine.redis); !st)
      throw std::runtime_error("STOREPULSE_REDIS_URL: " + st.detail());
  // Cluster nodes from the environment replace the file's (a cluster store only).
  if (const char* n = std::getenv("STOREPULSE_REDIS_NODES"); n && *n) {
    if (!cfg.engine.redis.cluster())
      throw std::runtime_error(
          "STOREPULSE_REDIS_NODES is set but store.kind is not \"redis-cluster\"");
    auto nodes = split_csv(n);
    for (const auto& a : nodes)
      if (auto ok = store::parse_cluster_address(a); !ok)
        throw std::runtime_error("STOREPULSE_REDIS_NODES: " + ok.status().detail());
    if (nodes.empty()) throw std::runtime_error("STOREPULSE_REDIS_NODES: no node given");
    cfg.engine.redis.cluster_nodes = std::move(nodes);
  }
  if (const char* pw = std::getenv("STOREPULSE_REDIS_PASSWORD"); pw && *pw)
    cfg.engine.redis.password = pw;
  if (const char* s = std::getenv("STOREPULSE_SMS_SECRET"); s && *s) cfg.sms.gateway_secret = s;
  if (const char* s = std::getenv("STOREPULSE_SMS_ACCOUNT_SID"); s && *s) cfg.sms.account_sid = s;
  if (const char* s = std::getenv("STOREPULSE_SMS_AUTH_TOKEN"); s && *s) cfg.sms.auth_token = s;
}

}  // namespace storepulse::cli
