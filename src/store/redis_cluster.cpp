#include "storepulse/store/redis_cluster.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <thread>

namespace storepulse::store {
namespace {

// CRC16-CCITT, XMODEM variant (poly 0x1021, init 0), as the cluster spec gives.
constexpr std::array<std::uint16_t, 256> kCrc16 = [] {
  std::array<std::uint16_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    std::uint16_t c = static_cast<std::uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b)
      c = static_cast<std::uint16_t>((c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1);
    t[i] = c;
  }
  return t;
}();

std::uint16_t crc16(std::string_view s) {
  std::uint16_t crc = 0;
  for (unsigned char ch : s)
    crc = static_cast<std::uint16_t>((crc << 8) ^ kCrc16[((crc >> 8) ^ ch) & 0xFF]);
  return crc;
}

std::string_view reply_str(const redisReply* r) {
  if (!r) return {};
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
      r->type == REDIS_REPLY_ERROR)
    return {r->str, r->len};
  return {};
}

ClusterReply wrap(void* r) {
  return ClusterReply(static_cast<redisReply*>(r), freeReplyObject);
}

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

}  // namespace

std::uint16_t key_slot(std::string_view key) {
  if (const auto open = key.find('{'); open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1)
      return crc16(key.substr(open + 1, close - open - 1)) & (kClusterSlots - 1);
  }
  return crc16(key) & (kClusterSlots - 1);
}

Result<ClusterAddress> parse_cluster_address(std::string_view s) {
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return Status(ErrorCode::kBadField,
                  fmt::format("redis node '{}': expected host:port", std::string(s)));
  std::string_view host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string_view port = s.substr(colon + 1);
  int p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535)
    return Status(ErrorCode::kBadField, fmt::format("redis node '{}': port '{}' is not 1-65535",
                                                    std::string(s), std::string(port)));
  return ClusterAddress{std::string(host), p};
}

// ---- ClusterSlots ------------------------------------------------------------

std::uint16_t ClusterSlots::node_index(const ClusterAddress& a) {
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i] == a) return static_cast<std::uint16_t>(i);
  nodes_.push_back(a);
  return static_cast<std::uint16_t>(nodes_.size() - 1);
}

Result<ClusterSlots> ClusterSlots::parse(const redisReply& r, const std::string& asked_host) {
  auto bad = [](std::string what) {
    return Status(ErrorCode::kUnavailable, "CLUSTER SLOTS: " + std::move(what));
  };
  if (r.type == REDIS_REPLY_ERROR) return bad(std::string(reply_str(&r)));
  if (r.type != REDIS_REPLY_ARRAY) return bad("not an array");
  ClusterSlots m;
  for (std::size_t i = 0; i < r.elements; ++i) {
    const redisReply* e = r.element[i];
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        e->element[0]->type != REDIS_REPLY_INTEGER || e->element[1]->type != REDIS_REPLY_INTEGER)
      return bad(fmt::format("entry {} is not [start, end, master, ...]", i));
    const long long lo = e->element[0]->integer, hi = e->element[1]->integer;
    if (lo < 0 || hi >= kClusterSlots || lo > hi)
      return bad(fmt::format("entry {}: slots {}-{} out of range", i, lo, hi));
    const redisReply* n = e->element[2];
    if (!n || n->type != REDIS_REPLY_ARRAY || n->elements < 2 ||
        n->element[0]->type != REDIS_REPLY_STRING || n->element[1]->type != REDIS_REPLY_INTEGER)
      return bad(fmt::format("entry {}: master is not [host, port, ...]", i));
    ClusterAddress a{std::string(reply_str(n->element[0])),
                     static_cast<int>(n->element[1]->integer)};
    // An empty host ("" or "?") means the node this reply came from.
    if (a.host.empty() || a.host == "?") a.host = asked_host;
    const std::uint16_t idx = m.node_index(a);
    for (long long s = lo; s <= hi; ++s) m.slot_node_[static_cast<std::size_t>(s)] = idx;
  }
  return m;
}

const ClusterAddress* ClusterSlots::master(std::uint16_t slot) const {
  if (slot >= kClusterSlots) return nullptr;
  const std::uint16_t i = slot_node_[slot];
  return i == kNone ? nullptr : &nodes_[i];
}

void ClusterSlots::assign(std::uint16_t slot, const ClusterAddress& to) {
  if (slot < kClusterSlots) slot_node_[slot] = node_index(to);
}

std::size_t ClusterSlots::covered() const {
  return static_cast<std::size_t>(std::count_if(slot_node_.begin(), slot_node_.end(),
                                                [](std::uint16_t i) { return i != kNone; }));
}

std::vector<ClusterAddress> ClusterSlots::masters() const {
  std::vector<bool> used(nodes_.size(), false);
  for (const std::uint16_t i : slot_node_)
    if (i != kNone) used[i] = true;
  std::vector<ClusterAddress> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (used[i]) out.push_back(nodes_[i]);
  return out;
}

std::optional<ClusterRedirect> parse_redirect(std::string_view error) {
  ClusterRedirect r;
  if (starts_with(error, "MOVED "))
    error.remove_prefix(6);
  else if (starts_with(error, "ASK "))
    r.ask = true, error.remove_prefix(4);
  else
    return std::nullopt;
  const auto sp = error.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  unsigned slot = 0;
  auto [end, ec] = std::from_chars(error.data(), error.data() + sp, slot);
  if (ec != std::errc() || end != error.data() + sp || slot >= kClusterSlots) return std::nullopt;
  auto to = parse_cluster_address(error.substr(sp + 1));
  if (!to) return std::nullopt;
  r.slot = static_cast<std::uint16_t>(slot);
  r.to = std::move(to).value();
  return r;
}

// ---- ClusterConnection -----------------------------------------------------------

ClusterConnection::ClusterConnection(ClusterOptions opts) : opts_(std::move(opts)) {}

ClusterConnection::~ClusterConnection() {
  for (auto& [_, c] : conns_) redisFree(c);
}

Result<redisContext*> ClusterConnection::node(const ClusterAddress& a) {
  const std::string k = a.str();
  if (auto it = conns_.find(k); it != conns_.end()) return it->second;
  RedisOptions o = opts_.node;
  o.host = a.host;
  o.port = a.port;
  o.db = 0;                   // a cluster has database 0 only
  auto c = redis_connect(o);  // AUTH and TLS as for a single Redis
  if (!c) return c.status();
  conns_.emplace(k, *c);
  return *c;
}

void ClusterConnection::drop(const ClusterAddress& a) {
  if (auto it = conns_.find(a.str()); it != conns_.end()) {
    redisFree(it->second);
    conns_.erase(it);
  }
}

Status ClusterConnection::refresh() {
  std::vector<ClusterAddress> tries = opts_.seeds;
  for (const auto& m : slots_.masters())
    if (std::find(tries.begin(), tries.end(), m) == tries.end()) tries.push_back(m);
  std::string why;
  for (const auto& a : tries) {
    auto c = node(a);
    if (!c) {
      why += fmt::format("{}{}", why.empty() ? "" : "; ", c.status().detail());
      continue;
    }
    auto r = wrap(redisCommand(*c, "CLUSTER SLOTS"));
    if (!r) {
      why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", a.str(), (*c)->errstr);
      drop(a);
      continue;
    }
    auto m = ClusterSlots::parse(*r, a.host);
    if (!m) {
      why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", a.str(), m.status().detail());
      continue;
    }
    if (m->covered() == 0) {
      why += fmt::format("{}{}: serves no slots yet", why.empty() ? "" : "; ", a.str());
      continue;
    }
    slots_ = std::move(m).value();
    have_map_ = true;
    return Status::ok();
  }
  return Status(ErrorCode::kUnavailable,
                "redis cluster: no node gave its slot map" + (why.empty() ? "" : " (" + why + ")"));
}

Result<ClusterReply> ClusterConnection::command(std::uint16_t slot,
                                                const std::vector<std::string_view>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.node.command_timeout_ms);
  std::string last = "no attempt";
  int redirects = 0;
  std::optional<ClusterAddress> ask;  // the next attempt goes here, after ASKING
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0 && std::chrono::steady_clock::now() >= deadline)
      return Status(ErrorCode::kUnavailable, fmt::format("redis cluster: {} on slot {}: {}",
                                                         args.empty() ? "" : args[0], slot, last));
    if (!have_map_) {
      if (Status s = refresh(); !s) {
        last = s.detail();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
    }
    ClusterAddress to;
    if (ask) {
      to = *ask;
    } else if (const ClusterAddress* m = slots_.master(slot)) {
      to = *m;
    } else {
      last = "no master serves the slot";
      have_map_ = false;  // re-read: a failover may have moved it
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    auto c = node(to);
    if (!c) {
      last = c.status().detail();
      have_map_ = false;
      ask.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (ask) {
      auto a = wrap(redisCommand(*c, "ASKING"));
      if (!a) {
        last = fmt::format("{}: {}", to.str(), (*c)->errstr);
        drop(to);
        ask.reset();
        continue;
      }
      ask.reset();
    }
    // A lost connection is retried (a commit script is fenced by the lease, so
    // a retry after a reply that was lost on the way is harmless to decide:
    // the caller's own checks see what happened).
    auto r = wrap(redisCommandArgv(*c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (!r) {
      last = fmt::format("{}: {}", to.str(), (*c)->errstr);
      drop(to);
      have_map_ = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      const std::string_view e = reply_str(r.get());
      if (auto red = parse_redirect(e)) {
        if (++redirects > opts_.max_redirects)
          return Status(ErrorCode::kUnavailable,
                        fmt::format("redis cluster: slot {}: more than {} redirections (last: {})",
                                    slot, opts_.max_redirects, std::string(e)));
        ++redirects_;
        if (red->ask)
          ask = red->to;
        else
          slots_.assign(red->slot, red->to);
        --attempt;  // a redirection is an answer, not a failed try
        continue;
      }
      if (starts_with(e, "CLUSTERDOWN") || starts_with(e, "TRYAGAIN") ||
          starts_with(e, "LOADING") || starts_with(e, "MASTERDOWN")) {
        last = fmt::format("{}: {}", to.str(), std::string(e));
        have_map_ = false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
    }
    return r;
  }
}

namespace {
thread_local std::uint64_t tl_cluster_redirects = 0;
}  // namespace

std::uint64_t redis_cluster_redirects_seen() {
  return tl_cluster_redirects;
}

void note_cluster_error(std::string_view e) {
  if (starts_with(e, "MOVED ") || starts_with(e, "ASK ") || starts_with(e, "CLUSTERDOWN") ||
      starts_with(e, "TRYAGAIN") || starts_with(e, "MASTERDOWN"))
    ++tl_cluster_redirects;
}

Result<redisContext*> redis_connect_for(const RedisOptions& o, std::string_view key) {
  if (!o.cluster()) return redis_connect(o);
  ClusterOptions co;
  for (const auto& n : o.cluster_nodes) {
    auto a = parse_cluster_address(n);
    if (!a) return a.status();
    co.seeds.push_back(std::move(a).value());
  }
  co.node = o;
  ClusterConnection cc(std::move(co));
  if (Status s = cc.refresh(); !s) return s;
  const std::uint16_t slot = key_slot(key);
  const ClusterAddress* m = cc.slots().master(slot);
  if (!m)
    return Status(
        ErrorCode::kUnavailable,
        fmt::format("redis cluster: no master serves slot {} (key {})", slot, std::string(key)));
  RedisOptions one = o;
  one.host = m->host;
  one.port = m->port;
  one.db = 0;
  return redis_connect(one);
}

}  // namespace storepulse::store
