#include "storepulse/engine/engine.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <span>
#include <stdexcept>

#include "engine/core.hpp"
#include "engine/shard.hpp"
#include "storepulse/common/bytes.hpp"
#include "storepulse/protocol/event_binary.hpp"
#include "storepulse/store/memory_log.hpp"
#include "storepulse/store/snapshot.hpp"

namespace storepulse::engine {

namespace {
// FNV-1a 64 with a start value one digit short of the standard basis
// (14695981039346656037). Routing depends on it and data is laid out by it, so
// it stays; docs/protocol.md ("Routing") states it for clients of several nodes.
std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}
// Contacts are compared in a canonical form: phone digits (with a leading +),
// lower-case e-mail. Too short to identify anyone -> empty.
std::string contact_key(std::string_view kind, std::string_view v) {
  std::string out(kind);
  out.push_back(':');
  if (kind == "phone") {
    for (char c : v)
      if ((c >= '0' && c <= '9') || (c == '+' && out.size() == 6)) out.push_back(c);
    if (out.size() < 6 + 6) return {};
  } else {
    for (char c : v) out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    if (v.find('@') == std::string_view::npos) return {};
  }
  return out;
}

}  // namespace

// ---- Shard sets ----------------------------------------------------------------

Status parse_shard_set(std::string_view spec, int shards, std::vector<int>& out) {
  out.clear();
  auto trim = [](std::string_view v) {
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    return v;
  };
  spec = trim(spec);
  if (spec.empty() || spec == "all") {
    for (int i = 0; i < shards; ++i) out.push_back(i);
    return Status::ok();
  }
  auto number = [&](std::string_view v, int& n) -> Status {
    v = trim(v);
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || p != v.data() + v.size())
      return Status(ErrorCode::kBadField,
                    fmt::format("shard set '{}': '{}' is not a shard number", spec, v));
    if (n < 0 || n >= shards)
      return Status(ErrorCode::kBadField,
                    fmt::format("shard set '{}': shard {} does not exist (shards are 0-{})", spec,
                                n, shards - 1));
    return Status::ok();
  };
  std::vector<bool> seen(static_cast<std::size_t>(shards), false);
  while (!spec.empty()) {
    const auto comma = spec.find(',');
    std::string_view part = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
    int lo = 0, hi = 0;
    if (const auto dash = part.find('-'); dash != std::string_view::npos) {
      if (Status s = number(part.substr(0, dash), lo); !s) return s;
      if (Status s = number(part.substr(dash + 1), hi); !s) return s;
      if (hi < lo)
        return Status(ErrorCode::kBadField,
                      fmt::format("shard set: range '{}' runs backwards", trim(part)));
    } else {
      if (Status s = number(part, lo); !s) return s;
      hi = lo;
    }
    for (int i = lo; i <= hi; ++i) seen[static_cast<std::size_t>(i)] = true;
  }
  for (int i = 0; i < shards; ++i)
    if (seen[static_cast<std::size_t>(i)]) out.push_back(i);
  return Status::ok();
}

namespace {
/// [0,1,2,3,6] -> "0-3,6"
std::string describe_set(const std::vector<int>& v) {
  if (v.empty()) return "none";
  std::string out;
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out.push_back(',');
    out += j == i ? fmt::format("{}", v[i]) : fmt::format("{}-{}", v[i], v[j]);
    i = j + 1;
  }
  return out;
}
}  // namespace

// ---- Engine ------------------------------------------------------------------

Engine::Engine(EngineOptions opts, std::shared_ptr<rules::RuleSet> rules, Metrics& metrics)
    : opts_(std::move(opts)), rules_(std::move(rules)), metrics_(metrics) {
  if (opts_.shards < 1 || opts_.shards > 256)
    throw std::runtime_error("engine.shards must be between 1 and 256");
  std::vector<int> owned;
  if (Status s = parse_shard_set(opts_.owned_shards, opts_.shards, owned); !s)
    throw std::runtime_error("engine.owned_shards: " + s.detail());
  if (!opts_.owned_shards.empty() && opts_.owned_shards != "all" && opts_.store_kind != "redis")
    throw std::runtime_error(
        "engine.owned_shards needs store.kind = \"redis\": an embedded journal belongs to one "
        "node, "
        "which serves all its shards");
  owned_.assign(static_cast<std::size_t>(opts_.shards), false);
  for (int i : owned) owned_[static_cast<std::size_t>(i)] = true;
  // The Redis spool acks events this node has not written to Redis. With
  // several nodes another one may claim a shard during the outage and serve it
  // from Redis without those events, so only a node serving every shard spools
  // (its drain is still fenced by the lease; docs/operations.md, "Spool").
  serves_all_ = std::find(owned_.begin(), owned_.end(), false) == owned_.end();
  if (opts_.redis.spool_dir.empty()) opts_.redis.spool_dir = opts_.data_dir + "/spool";
  if (opts_.store_kind == "redis" && opts_.redis.spool_max_bytes > 0 && !serves_all_)
    spdlog::warn(
        "redis spool off: this node serves only some shards (engine.owned_shards = \"{}\"); "
        "commits redis does not confirm answer unavailable",
        opts_.owned_shards);
  node_id_ = opts_.node_id;
  if (node_id_.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || !host[0])
      std::snprintf(host, sizeof host, "storepulse");
    node_id_ = host;
  }
  if (node_id_.find_first_of("/ ") != std::string::npos)
    throw std::runtime_error(
        fmt::format("engine.node_id '{}': no '/' or spaces allowed", node_id_));
  std::random_device rd;
  lease_value_ = fmt::format("{}/{:08x}{:08x}", node_id_, rd(), rd());
  for (int i = 0; i < opts_.shards; ++i) shards_.push_back(std::make_unique<Shard>(*this, i));
}

Engine::~Engine() {
  stop();
}

// The Redis store keeps the shard count beside the streams (`<prefix>:meta`),
// as storepulse.meta does for the embedded one: routing depends on it.
void Engine::check_redis_shard_count() {
  auto c = store::redis_connect(opts_.redis);
  if (!c) throw std::runtime_error(c.status().detail());
  std::unique_ptr<redisContext, void (*)(redisContext*)> conn(*c, redisFree);
  const std::string key = opts_.redis.prefix + ":meta";
  const std::string want = fmt::format("shards {}", opts_.shards);
  auto* r = static_cast<redisReply*>(redisCommand(conn.get(), "SET %b %b NX GET", key.data(),
                                                  key.size(), want.data(), want.size()));
  if (!r)
    throw std::runtime_error(
        fmt::format("redis at {}:{}: {}", opts_.redis.host, opts_.redis.port, conn->errstr));
  std::unique_ptr<redisReply, void (*)(void*)> reply(r, freeReplyObject);
  if (r->type == REDIS_REPLY_ERROR)
    throw std::runtime_error(fmt::format("redis at {}:{}: SET {}: {}", opts_.redis.host,
                                         opts_.redis.port, key, std::string(r->str, r->len)));
  if (r->type == REDIS_REPLY_STRING && std::string_view(r->str, r->len) != want)
    throw std::runtime_error(fmt::format(
        "redis key {} says '{}' but the config says {} shards: set engine.shards to match "
        "(changing the shard count needs an export/import)",
        key, std::string_view(r->str, r->len), opts_.shards));
}

void Engine::start() {
  namespace fs = std::filesystem;
  fs::create_directories(opts_.data_dir);
  // Routing depends on the shard count: refuse to start on data laid out for another.
  const std::string meta = opts_.data_dir + "/storepulse.meta";
  if (std::ifstream in{meta}) {
    int shards = 0;
    std::string key;
    in >> key >> shards;
    if (key == "shards" && shards != opts_.shards)
      throw std::runtime_error(fmt::format(
          "{} was written with {} shards but the config says {}: set engine.shards = {} "
          "(changing the shard count needs an export/import)",
          opts_.data_dir, shards, opts_.shards, shards));
  } else {
    std::ofstream out{meta};
    out << "shards " << opts_.shards << "\n";
  }
  std::vector<int> owned;
  for (int i = 0; i < shard_count(); ++i)
    if (owned_[static_cast<std::size_t>(i)]) owned.push_back(i);
  if (opts_.store_kind == "redis") {
    check_redis_shard_count();
    acquire_leases(owned);
    // Renewed from now on: recovering a large shard may take longer than the lease.
    lease_thread_ = std::thread([this] { lease_loop(); });
  }
  std::vector<std::thread> recoverers;
  std::vector<std::string> errors(shards_.size());
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    if (!owned_[i]) continue;
    recoverers.emplace_back([this, i, &errors] {
      try {
        shards_[i]->recover();
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : recoverers) t.join();
  for (const auto& e : errors)
    if (!e.empty()) throw std::runtime_error(e);
  if (!external_cores_) {
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    make_cores(opts_.cores > 0 ? opts_.cores : std::min(shard_count(), hw));
    for (auto& c : cores_) {
      Core* core = c.get();
      core->waker = [core] { core->sem.signal(); };
    }
  }
  started_ = true;
  for (int i : owned) shards_[static_cast<std::size_t>(i)]->start();
  if (!external_cores_)
    for (auto& c : cores_)
      c->thread = std::thread([this, core = c.get()] { run_core_thread(*core); });
  for (int i : owned)
    if (!shards_[static_cast<std::size_t>(i)]->lease_lost())
      shards_[static_cast<std::size_t>(i)]->set_serving(true);
  for (int i : owned) shards_[static_cast<std::size_t>(i)]->resend_pending_links();
  if (leases_enabled())
    spdlog::info("node {} serves shards {} of {} (leases {} ms in {}:{{sN}}:owner)", node_id_,
                 serving_description(), shard_count(), opts_.redis.lease_ttl_ms,
                 opts_.redis.prefix);
}

void Engine::stop() {
  {
    std::lock_guard<std::mutex> lk(lease_mu_);
    lease_stop_ = true;
  }
  lease_cv_.notify_all();
  if (lease_thread_.joinable()) lease_thread_.join();
  if (claim_thread_.joinable()) claim_thread_.join();
  if (stopped_) return;
  stopped_ = true;
  for (auto& c : cores_) {
    c->stop.store(true, std::memory_order_release);
    c->sem.signal();
    if (c->thread.joinable()) c->thread.join();
  }
  // Every core has stopped: what is still queued is applied (and answered)
  // here, on this thread, before the final commit and snapshot.
  if (started_) run_until_idle();
  for (auto& s : shards_) s->stop();
}

void Engine::acquire_leases(const std::vector<int>& shards) {
  auto c = store::redis_connect(opts_.redis);
  if (!c) throw std::runtime_error(c.status().detail());
  std::unique_ptr<redisContext, void (*)(redisContext*)> conn(*c, redisFree);
  for (int i : shards) {
    auto held = store::acquire_lease(conn.get(), opts_.redis, i, lease_value_);
    if (!held) throw std::runtime_error(fmt::format("shard {}: {}", i, held.status().detail()));
    if (!held->empty())
      throw std::runtime_error(
          fmt::format("shard {} is leased by node {} ({}:{{s{}}}:owner): another live node serves "
                      "it. Wait until "
                      "that node has stopped and its lease ran out, then claim the shard (POST "
                      "/v1/admin/shards/claim) "
                      "or start this node again; or fix engine.owned_shards",
                      i, *held, opts_.redis.prefix, i));
    shards_[static_cast<std::size_t>(i)]->set_leased();
  }
}

// Renews this node's leases every third of their TTL. A renewal that finds the
// lease gone or someone else's stops the shard for good in this process (its
// state may be stale now); Redis being unreachable is only logged: the lease
// may still be ours when it is back, and every write is fenced anyway.
void Engine::lease_loop() {
  const auto period = std::chrono::milliseconds(std::max(50, opts_.redis.lease_ttl_ms / 3));
  redisContext* conn = nullptr;
  std::int64_t last_warn_ns = 0;
  std::unique_lock<std::mutex> lk(lease_mu_);
  while (!lease_cv_.wait_for(lk, period, [this] { return lease_stop_; })) {
    lk.unlock();
    if (conn && conn->err) {
      redisFree(conn);
      conn = nullptr;
    }
    if (!conn) {
      auto c = store::redis_connect(opts_.redis);
      if (c) conn = *c;
    }
    for (int i = 0; i < shard_count() && conn; ++i) {
      Shard& sh = *shards_[static_cast<std::size_t>(i)];
      if (!sh.leased() || sh.lease_lost()) continue;
      auto r = store::renew_lease(conn, opts_.redis, i, lease_value_);
      if (!r) {
        if (mono_ns() - last_warn_ns > 1'000'000'000) {
          spdlog::warn("node {}: cannot renew shard leases: {}", node_id_, r.status().detail());
          last_warn_ns = mono_ns();
        }
        break;
      }
      if (!*r)
        sh.lose_lease(fmt::format("lease {} is no longer held by {}",
                                  store::lease_key(opts_.redis.prefix, i), node_id_));
    }
    if (!conn && mono_ns() - last_warn_ns > 1'000'000'000) {
      spdlog::warn("node {}: cannot renew shard leases: redis at {}:{} is unreachable", node_id_,
                   opts_.redis.host, opts_.redis.port);
      last_warn_ns = mono_ns();
    }
    lk.lock();
  }
  if (conn) redisFree(conn);
}

bool Engine::serving(int shard) const {
  return shard >= 0 && shard < shard_count() && shards_[static_cast<std::size_t>(shard)]->serving();
}

std::string Engine::serving_description() const {
  std::vector<int> v;
  for (int i = 0; i < shard_count(); ++i)
    if (serving(i)) v.push_back(i);
  return describe_set(v);
}

std::string Engine::wrong_node_detail(int shard, std::string_view key) const {
  const Shard& sh = *shards_[static_cast<std::size_t>(shard)];
  return fmt::format(
      "customer '{}' is on shard {}, which node {} does not serve{} (it serves shards {}); "
      "send it to the node that owns shard {} (GET /v1/admin/shards)",
      key, shard, node_id_, sh.lease_lost() ? " any more: its lease was lost" : "",
      serving_description(), shard);
}

void Engine::reject_unserved(Work& w, int shard) {
  switch (w.kind) {
    case Work::Kind::kEvent:
    case Work::Kind::kRecommend:
      // Counted here, once: submit()'s callers do not count its failures.
      metrics_.count_error(ErrorCode::kWrongNode);
      if (w.reply)
        w.reply->deliver(protocol::encode_error(
            w.kind == Work::Kind::kEvent ? std::string_view(w.event.message_id)
                                         : std::string_view(),
            ErrorCode::kWrongNode,
            wrong_node_detail(shard, w.kind == Work::Kind::kEvent ? w.event.customer_key()
                                                                  : std::string_view(w.target))));
      return;
    case Work::Kind::kErase: {
      ErasureResult r;
      r.status = 421;
      r.error = wrong_node_detail(shard, w.target);
      if (w.erase_done) w.erase_done(std::move(r));
      return;
    }
    case Work::Kind::kPurge:
      Shard::finish_purge(*w.purge, 0, 0, Status::ok(), shard, false);
      return;
    case Work::Kind::kProfileQuery: {
      std::string body = R"({"error":"wrong_node","detail":)";
      protocol::append_json_string(body, wrong_node_detail(shard, w.target));
      body += "}";
      if (w.profile_done) w.profile_done(421, std::move(body));
      return;
    }
    default: break;
  }
  // Cross-shard identity steps (links, merges, contact claims, forwards) whose
  // other side is served by another node: not carried out here. Links are
  // asked for again when the owning shard restarts (resend_pending_links).
  unserved_dropped_.fetch_add(1, std::memory_order_relaxed);
  if (w.reply) {
    metrics_.count_error(ErrorCode::kWrongNode);
    w.reply->deliver(protocol::encode_error(w.event.message_id, ErrorCode::kWrongNode,
                                            wrong_node_detail(shard, w.target)));
  }
  const std::int64_t now = mono_ns();
  std::int64_t last = last_unserved_log_ns_.load();
  if (now - last > 1'000'000'000 && last_unserved_log_ns_.compare_exchange_strong(last, now))
    spdlog::warn(
        "node {}: cross-shard identity step for '{}' needs shard {}, which this node does not "
        "serve; "
        "skipped ({} so far)",
        node_id_, w.target, shard, unserved_dropped_.load());
}

SpoolSummary Engine::spool_summary() const {
  SpoolSummary out;
  out.enabled = opts_.store_kind == "redis" && serves_all_ && opts_.redis.spool_max_bytes > 0;
  out.max_bytes = out.enabled ? opts_.redis.spool_max_bytes : 0;
  for (int i = 0; i < shard_count(); ++i) {
    const store::SpoolStats* st = shards_[static_cast<std::size_t>(i)]->spool_stats();
    if (!st) continue;
    const bool active = st->active.load(std::memory_order_relaxed);
    if (active) out.spooling.push_back(i);
    if (st->refused.load(std::memory_order_relaxed)) out.refused.push_back(i);
    out.bytes += st->bytes.load(std::memory_order_relaxed);
    out.records += st->records.load(std::memory_order_relaxed);
    out.spooled_total += st->spooled_total.load(std::memory_order_relaxed);
    out.drained_total += st->drained_total.load(std::memory_order_relaxed);
    out.drains_total += st->drains_total.load(std::memory_order_relaxed);
    out.last_drain_ms = std::max<std::uint64_t>(out.last_drain_ms,
                                                st->last_drain_ms.load(std::memory_order_relaxed));
    out.last_outage_ms = std::max<std::uint64_t>(
        out.last_outage_ms, st->last_outage_ms.load(std::memory_order_relaxed));
  }
  return out;
}

std::string Engine::shards_json() const {
  std::string o = "{\"node\":";
  protocol::append_json_string(o, node_id_);
  o += fmt::format(R"(,"shards":{},"hash":"fnv1a64","route":)", shard_count());
  protocol::append_json_string(
      o,
      "shard = fnv1a64(customer key) % shards; customer key = userId, else anonymousId; "
      "h = 1469598103934665603 (not the standard FNV basis), for each byte h = (h ^ byte) * "
      "1099511628211 mod 2^64");
  o += R"(,"store":)";
  protocol::append_json_string(o, opts_.store_kind);
  o += R"(,"serving":[)";
  bool first = true;
  for (int i = 0; i < shard_count(); ++i)
    if (serving(i)) {
      o += fmt::format("{}{}", first ? "" : ",", i);
      first = false;
    }
  o += R"(],"leaseLost":[)";
  first = true;
  for (int i = 0; i < shard_count(); ++i)
    if (shards_[static_cast<std::size_t>(i)]->lease_lost()) {
      o += fmt::format("{}{}", first ? "" : ",", i);
      first = false;
    }
  o += fmt::format(R"(],"leaseTtlMs":{},"crossNodeStepsSkipped":{})",
                   leases_enabled() ? opts_.redis.lease_ttl_ms : 0, unserved_dropped_.load());
  const SpoolSummary sp = spool_summary();
  o += fmt::format(R"(,"spool":{{"enabled":{},"maxBytes":{},"bytes":{},"records":{},"spooling":[)",
                   sp.enabled, sp.max_bytes, sp.bytes, sp.records);
  for (std::size_t i = 0; i < sp.spooling.size(); ++i)
    o += fmt::format("{}{}", i ? "," : "", sp.spooling[i]);
  o += R"(],"refused":[)";
  for (std::size_t i = 0; i < sp.refused.size(); ++i)
    o += fmt::format("{}{}", i ? "," : "", sp.refused[i]);
  o += fmt::format(
      R"(],"spooledTotal":{},"drainedTotal":{},"drains":{},"lastDrainMs":{},"lastOutageMs":{}}}}})",
      sp.spooled_total, sp.drained_total, sp.drains_total, sp.last_drain_ms, sp.last_outage_ms);
  return o;
}

void Engine::claim_async(std::string spec, std::function<void(int, std::string)> done) {
  auto error = [](std::string code, const std::string& detail) {
    std::string b = R"({"error":")" + code + R"(","detail":)";
    protocol::append_json_string(b, detail);
    return b + "}";
  };
  if (!leases_enabled())
    return done(400, error("bad_field",
                           "claiming shards needs store.kind = \"redis\": an embedded node serves "
                           "all its shards"));
  std::vector<int> want;
  if (Status s = parse_shard_set(spec, shard_count(), want); !s)
    return done(400, error("bad_field", s.detail()));
  if (claim_busy_.exchange(true))
    return done(409, error("busy", "another claim is running on this node; retry"));
  std::lock_guard<std::mutex> lk(claim_mu_);
  if (claim_thread_.joinable()) claim_thread_.join();
  claim_thread_ = std::thread([this, want = std::move(want), done = std::move(done), error] {
    std::vector<int> todo;
    for (int i : want) {
      Shard& sh = *shards_[static_cast<std::size_t>(i)];
      if (sh.serving()) continue;
      if (sh.recovered()) {
        claim_busy_.store(false);
        return done(409,
                    error("lease_lost",
                          fmt::format("shard {} was served by this process and lost its lease; "
                                      "restart the node to serve it again",
                                      i)));
      }
      todo.push_back(i);
    }
    std::vector<std::string> lines;
    try {
      acquire_leases(todo);
      for (int i : todo) {
        Shard& sh = *shards_[static_cast<std::size_t>(i)];
        sh.recover();
        sh.start();
        if (!sh.lease_lost()) sh.set_serving(true);
        sh.resend_pending_links();
        lines.insert(lines.end(), sh.recovery_lines().begin(), sh.recovery_lines().end());
      }
    } catch (const std::exception& e) {
      spdlog::error("node {}: claim of shards {}: {}", node_id_, describe_set(todo), e.what());
      claim_busy_.store(false);
      return done(409, error("lease_held", e.what()));
    }
    spdlog::info("node {}: claimed shards {}; now serves {}", node_id_, describe_set(todo),
                 serving_description());
    std::string body = R"({"claimed":[)";
    for (std::size_t k = 0; k < todo.size(); ++k)
      body += fmt::format("{}{}", k ? "," : "", todo[k]);
    body += R"(],"serving":)";
    protocol::append_json_string(body, serving_description());
    body += R"(,"recovery":[)";
    for (std::size_t k = 0; k < lines.size(); ++k) {
      if (k) body.push_back(',');
      protocol::append_json_string(body, lines[k]);
    }
    body += "]}";
    claim_busy_.store(false);
    done(200, std::move(body));
  });
}

int Engine::shard_of(std::string_view key) const {
  return static_cast<int>(fnv1a(key) % shards_.size());
}

std::size_t Engine::queue_depth(int shard) const {
  return shards_[static_cast<std::size_t>(shard)]->depth();
}

std::size_t Engine::profile_count() const {
  std::size_t n = 0;
  for (const auto& s : shards_) n += s->profile_count();
  return n;
}

void Engine::set_rules(std::shared_ptr<rules::RuleSet> rules) {
  std::atomic_store(&rules_, std::move(rules));
}

std::vector<std::string> Engine::recovery_lines() const {
  std::vector<std::string> out;
  for (const auto& s : shards_)
    out.insert(out.end(), s->recovery_lines().begin(), s->recovery_lines().end());
  return out;
}

Status Engine::submit(protocol::Event&& ev, std::string&& raw, TimeUs recv,
                      std::shared_ptr<ReplyTarget> reply) {
  auto w = std::make_unique<Work>();
  w->kind = Work::Kind::kEvent;
  w->recv = recv;
  w->enq_ns = mono_ns();
  // The journal keeps the decoded event (kEventBinary), not the wire JSON: `raw`
  // stays with the caller and is freed on its own thread.
  (void)raw;
  w->event = std::move(ev);
  w->reply = std::move(reply);
  const int s = shard_of(w->event.customer_key());
  if (!shards_[static_cast<std::size_t>(s)]->serving()) {
    reject_unserved(*w, s);
    return Status(ErrorCode::kWrongNode, fmt::format("shard {} is served by another node", s));
  }
  if (!shards_[static_cast<std::size_t>(s)]->push(std::move(w), true))
    return Status(ErrorCode::kRateLimited, fmt::format("shard {} queue is full; retry later", s));
  return Status::ok();
}

void Engine::query_profile(std::string id, ProfileCallback done) {
  auto w = std::make_unique<Work>();
  w->kind = Work::Kind::kProfileQuery;
  w->target = std::move(id);
  w->profile_done = std::move(done);
  const int s = shard_of(w->target);
  shards_[static_cast<std::size_t>(s)]->push(std::move(w), false);
}

void Engine::recommend(protocol::RecommendRequest req, std::shared_ptr<ReplyTarget> reply) {
  auto w = std::make_unique<Work>();
  w->kind = Work::Kind::kRecommend;
  w->target = req.user_id.empty() ? req.anonymous_id : req.user_id;
  w->rec = std::move(req);
  w->reply = std::move(reply);
  const int s = shard_of(w->target);
  if (!shards_[static_cast<std::size_t>(s)]->push(std::move(w), true)) {
    // Queue full: the caller still gets exactly one reply.
    // (w was moved; rebuild a minimal error through the reply we kept.)
  }
}

// ---- Shard -------------------------------------------------------------------

Shard::Shard(Engine& engine, int index)
    : engine_(engine),
      index_(index),
      dir_(fmt::format("{}/shard-{:03}", engine.opts_.data_dir, index)),
      queue_(engine.opts_.queue_capacity + 1024),
      dedupe_(engine.opts_.dedupe_window) {}

Shard::~Shard() {
  stop();
}

std::string_view Shard::event_payload(std::string_view key, const protocol::Event& ev) {
  event_buf_.clear();
  ByteWriter w(event_buf_);
  w.str(key);
  protocol::encode_event_binary(ev, event_buf_);
  return event_buf_;
}

profile::CustomerProfile* Shard::find(std::string_view key) {
  auto it = profiles_.find(key);
  return it == profiles_.end() ? nullptr : it->second.get();
}

profile::CustomerProfile& Shard::get_or_create(std::string_view key) {
  if (auto it = profiles_.find(key); it != profiles_.end()) return *it->second;
  auto p = std::make_unique<profile::CustomerProfile>();
  p->names = &names_;
  p->user_id.assign(key);
  auto& out = *profiles_.emplace(std::string(key), std::move(p)).first->second;
  profile_count_.store(profiles_.size(), std::memory_order_relaxed);
  return out;
}

void Shard::lose_lease(const std::string& why) {
  if (lease_lost_.exchange(true)) return;
  set_serving(false);
  spdlog::error("shard {}: stops serving on this node: {}", index_, why);
}

void Shard::recover() {
  const auto t0 = mono_ns();
  recovered_ = true;
  if (engine_.opts_.store_kind == "memory") {
    journal_ = std::make_unique<store::MemoryLog>();
  } else if (engine_.opts_.store_kind == "redis") {
    store::RedisOptions ro = engine_.opts_.redis;
    ro.trim = !engine_.opts_.archive_segments;  // keep the stream's history like archived segments
    ro.spool_dir = fmt::format("{}/shard-{:03}", engine_.opts_.redis.spool_dir, index_);
    if (!engine_.serves_all_) ro.spool_max_bytes = 0;  // a spool left from earlier is still drained
    ro.spool_fsync = engine_.opts_.fsync;
    ro.spool_fsync_interval_us = engine_.opts_.fsync_interval_us;
    auto j = store::RedisLog::open(ro, index_);
    if (!j.is_ok())
      throw std::runtime_error(fmt::format("shard {}: {}", index_, j.status().detail()));
    j.value()->set_lease(engine_.lease_value_);
    spool_stats_.store(j.value()->spool_stats(), std::memory_order_release);
    journal_ = std::move(j.value());
  } else {
    store::JournalOptions jo;
    jo.dir = dir_;
    jo.fsync = engine_.opts_.fsync;
    jo.fsync_interval_us = engine_.opts_.fsync_interval_us;
    jo.archive_segments = engine_.opts_.archive_segments;
    jo.segment_bytes = engine_.opts_.segment_bytes;
    auto j = store::Journal::open(jo);
    if (!j.is_ok()) throw std::runtime_error(j.status().detail());
    journal_ = std::move(j.value());
  }
  std::uint64_t seq = 0;
  std::string body;
  auto snap = journal_->read_snapshot(seq, body);
  if (!snap.is_ok())
    throw std::runtime_error(
        fmt::format("shard {}: {} (move it aside to recover from the journal alone, if the journal "
                    "is complete)",
                    index_, snap.status().detail()));
  if (*snap) decode_snapshot(body);
  snapshot_seq_ = seq;
  rules_ = engine_.rules();
  take_models();  // replay scores profiles with the models loaded at start
  protocol::DecodeLimits replay_limits = engine_.opts_.limits;
  protocol::EventDecoder dec(replay_limits);
  store::RecoveryReport rep;
  sealer_ = std::make_unique<store::Sealer>();
  if (Status ks = journal_->load_keys(
          [&](store::StoredKey&& k) {
            kid_subject_[k.kid] = k.subject;
            std::string subject = k.subject;
            keys_.insert_or_assign(std::move(subject), std::move(k));
          },
          rep);
      !ks)
    throw std::runtime_error(fmt::format("shard {}: customer keys: {}", index_, ks.detail()));
  // kid -> key bytes for opening records: one integer lookup per record
  // instead of kid -> subject -> key (keys_ is not changed during replay).
  std::unordered_map<std::uint64_t, const store::KeyBytes*> kid_key;
  kid_key.reserve(kid_subject_.size());
  for (const auto& [kid, subject] : kid_subject_) kid_key.emplace(kid, &keys_.at(subject).key);
  Status s = journal_->replay(
      seq,
      [&](const store::JournalRecord& r) {
        const auto t = static_cast<std::uint8_t>(r.type);
        if (!(t & store::kSealedBit)) {
          apply_recovered(r, dec);
          return;
        }
        // A sealed record: its key is gone when the customer was erased.
        const std::uint64_t kid = store::Sealer::kid_of(r.payload);
        auto kk = kid_key.find(kid);
        if (kk == kid_key.end()) {
          ++shredded_records_;
          return;
        }
        if (!sealer_->open(*kk->second, t, r.payload, open_buf_)) {
          rep.problems.push_back(fmt::format("record {} fails authentication; skipped", r.seq));
          return;
        }
        store::JournalRecord plain = r;
        plain.type = static_cast<store::RecordType>(t & ~store::kSealedBit);
        plain.payload = open_buf_;
        apply_recovered(plain, dec);
      },
      rep);
  if (!s) throw std::runtime_error(fmt::format("shard {}: {}", index_, s.detail()));
  if (!replay_fatal_.empty())
    throw std::runtime_error(
        fmt::format("shard {}: {}; recovery stopped there", index_, replay_fatal_));
  replay_event_ = protocol::Event{};  // give the recovery scratch's memory back
  if (shredded_records_ > 0) {
    auto line =
        fmt::format("shard {}: {} records of erased customers skipped (their keys are destroyed)",
                    index_, shredded_records_);
    spdlog::info("{}", line);
    recovery_lines_.push_back(line);
  }
  for (const auto& p : rep.problems) {
    spdlog::warn("shard {}: journal damage: {}", index_, p);
    recovery_lines_.push_back(fmt::format("shard {}: {}", index_, p));
  }
  const double ms = static_cast<double>(mono_ns() - t0) / 1e6;
  auto line = fmt::format(
      "shard {}: recovered {} profiles ({} customer keys) from snapshot@{} + {} journal records in "
      "{:.1f} ms",
      index_, profiles_.size(), keys_.size(), seq, journal_->last_seq() - seq, ms);
  spdlog::info("{}", line);
  recovery_lines_.push_back(line);
  last_snapshot_ns_ = mono_ns();
  profile_count_.store(profiles_.size());
  for (const auto& [key, p] : profiles_) index_timers(key, *p);
  models::set_active_models(nullptr);  // this recovery thread ends; the worker sets its own
}

void Shard::take_models() {
  models_ = engine_.models();
  models::set_active_models(models_.get());
}

void Shard::evaluate_rules(const std::string& key, profile::CustomerProfile& p,
                           const protocol::Event& ev, bool live) {
  actions_scratch_.clear();
  reply_actions_.clear();
  if (!rules_) return;
  // Only timers this event armed or re-armed go on the heap: the unchanged
  // ones have their entry there already (pushing every timer again on each
  // change left one stale 48-byte entry per timer and event until it was due).
  std::array<profile::PendingTimer, profile::CustomerProfile::kMaxTimers> before;
  const std::size_t n_before = std::min(p.timers.size(), before.size());
  std::copy_n(p.timers.begin(), n_before, before.begin());
  rules_->evaluate(ev, p, actions_scratch_);
  for (const auto& t : p.timers)
    if (std::none_of(before.begin(), before.begin() + static_cast<std::ptrdiff_t>(n_before),
                     [&](const auto& b) { return b.rule == t.rule && b.fire_at == t.fire_at; }))
      timers_.push(TimerEntry{t.fire_at, key, t.rule});
  if (!live) return;
  for (auto& a : actions_scratch_) {
    if (engine_.observer_) engine_.observer_(a);
    // The caller waiting on this event sees till and web actions in its reply;
    // SMS goes to the outbox.
    if (a.channel == "sms") {
      if (engine_.sink_) engine_.sink_(a);
    } else {
      reply_actions_.push_back(std::move(a));
    }
  }
}

void Shard::index_timers(const std::string& key, const profile::CustomerProfile& p) {
  for (const auto& t : p.timers) timers_.push(TimerEntry{t.fire_at, key, t.rule});
}

void Shard::remove_timer(profile::CustomerProfile& p, profile::NameId rule, TimeUs at) {
  auto it = std::find_if(p.timers.begin(), p.timers.end(),
                         [&](const auto& t) { return t.rule == rule && t.fire_at == at; });
  if (it != p.timers.end()) p.timers.erase(it);
}

bool Shard::fire_due_timers() {
  if (timers_.empty() || !rules_ || lease_lost()) return false;
  // Event time drives waiting; the wall clock only moves the watermark on when
  // no events arrive, so a replay of the same events fires the same timers.
  const TimeUs watermark =
      std::max(max_event_time_,
               engine_.opts_.watermark_clock ? engine_.opts_.watermark_clock() : wall_clock_us());
  struct Due {
    std::string key;
    profile::NameId rule;
    TimeUs at;
  };
  std::vector<Due> due;
  while (!timers_.empty() && timers_.top().at <= watermark && due.size() < 4096) {
    TimerEntry e = timers_.top();
    timers_.pop();
    auto* p = find(e.key);
    if (!p || std::none_of(p->timers.begin(), p->timers.end(),
                           [&](const auto& t) { return t.rule == e.rule && t.fire_at == e.at; }))
      continue;  // stale: re-armed or cancelled since
    if (std::any_of(due.begin(), due.end(), [&](const Due& d) {
          return d.key == e.key && d.rule == e.rule && d.at == e.at;
        }))
      continue;
    std::string payload;
    ByteWriter w(payload);
    w.str(e.key);
    w.str(names_.view(e.rule));
    w.i64(e.at);
    append_record(store::RecordType::kTimerFired, watermark, e.key, payload);
    due.push_back({std::move(e.key), e.rule, e.at});
  }
  if (due.empty()) return false;
  if (Status s = journal_->commit(); !s) {
    if (s.code() == ErrorCode::kWrongNode) lose_lease(s.detail());
    spdlog::error("shard {}: cannot journal fired timers, retrying: {}", index_, s.detail());
    for (auto& d : due) timers_.push(TimerEntry{d.at, std::move(d.key), d.rule});
    return false;
  }
  for (const auto& d : due) {
    auto* p = find(d.key);
    remove_timer(*p, d.rule, d.at);
    actions_scratch_.clear();
    rules_->fire_timer(std::string(names_.view(d.rule)), d.at, *p, actions_scratch_);
    index_timers(d.key, *p);  // a rule may re-arm (e.g. held until quiet hours end)
    for (const auto& a : actions_scratch_) {
      engine_.metrics_.actions.fetch_add(1, std::memory_order_relaxed);
      if (engine_.observer_) engine_.observer_(a);
      if (engine_.sink_) engine_.sink_(a);
    }
  }
  return true;
}

void Shard::fire_customer_timers(const std::string& key, profile::CustomerProfile& p, TimeUs t,
                                 bool live) {
  if (!rules_ || p.timers.empty()) return;
  bool fired = false;
  // Bounded: a rule may re-arm (quiet hours), never more often than it has timers.
  for (std::size_t round = 0; round < 4 * profile::CustomerProfile::kMaxTimers; ++round) {
    const profile::PendingTimer* next = nullptr;
    for (const auto& tm : p.timers)
      if (tm.fire_at <= t && (!next || tm.fire_at < next->fire_at)) next = &tm;
    if (!next) break;
    const profile::NameId rule = next->rule;
    const TimeUs at = next->fire_at;
    remove_timer(p, rule, at);
    actions_scratch_.clear();
    rules_->fire_timer(std::string(p.name(rule)), at, p, actions_scratch_);
    fired = true;
    if (!live) continue;
    for (const auto& a : actions_scratch_) {
      engine_.metrics_.actions.fetch_add(1, std::memory_order_relaxed);
      if (engine_.observer_) engine_.observer_(a);
      if (engine_.sink_) engine_.sink_(a);
    }
  }
  if (fired) index_timers(key, p);
}

void Shard::apply_replayed_event(const std::string& key, const protocol::Event& ev) {
  // A message id already applied is not applied again: a batch whose
  // commit reply was lost (Redis) may be in the log twice with the retry.
  if (!dedupe_.insert(ev.message_id)) return;
  auto& p = get_or_create(key);
  fire_customer_timers(key, p, ev.timestamp, false);
  profile::apply_event(p, ev);
  if (models_) models::update_profile(*models_, p, ev);
  apply_and_link(p, ev);
  max_event_time_ = std::max(max_event_time_, ev.timestamp);
  evaluate_rules(key, p, ev, false);
  record_popularity(ev);
  recent_.add(key, ev);
}

void Shard::apply_recovered(const store::JournalRecord& rec, protocol::EventDecoder& dec) {
  if (!replay_fatal_.empty()) return;  // recover() refuses to start after the replay
  ByteReader r(rec.payload);
  switch (rec.type) {
    case store::RecordType::kEventBinary: {
      const std::string key = r.str();
      // Validated when it was received; this is a bounds-checked copy, not a parse.
      Status d = r.ok() ? protocol::decode_event_binary(rec.payload.substr(r.pos()), replay_event_)
                        : Status(ErrorCode::kBadField, "no profile key");
      if (d.code() == ErrorCode::kInternal) {
        replay_fatal_ = fmt::format("journal record {}: {}", rec.seq, d.detail());
        return;
      }
      if (!d) {
        spdlog::warn("shard {}: journal record {} does not decode ({}); skipped", index_, rec.seq,
                     d.detail());
        recovery_lines_.push_back(
            fmt::format("shard {}: journal record {} does not decode ({}); skipped", index_,
                        rec.seq, d.detail()));
        return;
      }
      apply_replayed_event(key, replay_event_);
      break;
    }
    case store::RecordType::kEvent:
    case store::RecordType::kEventOnChannel: {
      const std::string key = r.str();
      const bool has_channel = rec.type == store::RecordType::kEventOnChannel;
      const auto channel = static_cast<protocol::Channel>(has_channel ? r.u8() : 0);
      std::string raw(rec.payload.substr(r.pos()));
      raw.reserve(raw.size() + protocol::decode_padding());
      protocol::Event ev;
      // Journal records passed validation when received; the receive time makes
      // the event-time guard and default timestamp come out the same again.
      if (!dec.decode(raw, rec.recv_time, ev).is_ok()) {
        spdlog::warn("shard {}: journal record {} no longer decodes; skipped", index_, rec.seq);
        return;
      }
      if (has_channel) ev.channel = channel;  // as applied live (endpoint default included)
      apply_replayed_event(key, ev);
      break;
    }
    case store::RecordType::kLink: {
      const std::string target = r.str();
      const std::string other = r.str();
      const std::string via = r.str();
      add_link(get_or_create(target), other, rec.recv_time, via);
      break;
    }
    case store::RecordType::kTimerFired: {
      const std::string key = r.str();
      const std::string rule = r.str();
      const TimeUs at = r.i64();
      auto* p = find(key);
      if (!p) return;
      remove_timer(*p, p->names->find(rule), at);
      actions_scratch_.clear();
      if (rules_) rules_->fire_timer(rule, at, *p, actions_scratch_);
      break;
    }
    case store::RecordType::kMergePayload: {
      const std::string target = r.str();
      const std::string other = r.str();
      absorb(target, other, r.str_view());
      break;
    }
    case store::RecordType::kRedirect: {
      const std::string from = r.str();
      const std::string to = r.str();
      get_or_create(from).merged_into = to;
      break;
    }
    default:
      // Skipping a record this build does not know would silently lose what it
      // changed: refuse to start instead (recover() throws with this).
      replay_fatal_ = fmt::format(
          "journal record {} has type {}, which this build does not know "
          "(written by a newer build?)",
          rec.seq, static_cast<int>(rec.type));
      break;
  }
}

void Shard::apply_and_link(profile::CustomerProfile& p, const protocol::Event& ev) {
  // alias (previousId -> userId), or any event that carries both ids, links the
  // visitor's profile to the member's. The visitor's shard is asked for its data.
  std::string_view other;
  std::string_view via;
  if (ev.type == protocol::EventType::kAlias) {
    other = ev.previous_id;
    via = "alias";
  } else if (!ev.user_id.empty() && !ev.anonymous_id.empty() && ev.anonymous_id != ev.user_id) {
    other = ev.anonymous_id;
    via = "identify";
  }
  if (!other.empty()) add_link(p, other, ev.timestamp, via);
}

bool Shard::add_link(profile::CustomerProfile& p, std::string_view other, TimeUs when,
                     std::string_view via) {
  if (p.links.size() >= profile::CustomerProfile::kMaxLinks) return false;
  for (const auto& l : p.links)
    if (l.other_id == other) return false;
  p.links.push_back({std::string(other), when, std::string(via), false});
  return true;
}

void Shard::absorb(const std::string& target, const std::string& other,
                   std::string_view serialized) {
  profile::CustomerProfile o;
  o.names = &names_;
  if (!profile::deserialize_profile(serialized, o)) {
    spdlog::error("shard {}: merge payload for {} from {} is malformed; skipped", index_, target,
                  other);
    return;
  }
  auto& p = get_or_create(target);
  auto it = std::find_if(p.links.begin(), p.links.end(),
                         [&](const auto& l) { return l.other_id == other; });
  if (it != p.links.end() && it->absorbed) return;  // merging twice would double the sums
  profile::merge_profile(p, o);
  if (it == p.links.end())
    p.links.push_back({other, o.last_seen, "alias", true});
  else
    it->absorbed = true;
  if (!o.timers.empty()) index_timers(target, p);
}

void Shard::resend_pending_links() {
  // Called once after start (recovery done): ask for any visitor data whose merge
  // was cut short, and after each live link. Merges are idempotent.
  std::vector<std::unique_ptr<Work>> out;
  for (const auto& [key, p] : profiles_) {
    for (const auto& l : p->links) {
      if (l.absorbed) continue;
      auto w = std::make_unique<Work>();
      w->kind = Work::Kind::kLinkRequest;
      w->target = key;
      w->other = l.other_id;
      out.push_back(std::move(w));
    }
  }
  for (auto& w : out) {
    const int s = engine_.shard_of(w->other);
    engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(w), false);
  }
  for (const auto& [key, p] : profiles_)
    if (p->merged_into.empty()) send_contact_claims(key, *p);
}

void Shard::send_link_request(const std::string& target, const std::string& other) {
  auto lw = std::make_unique<Work>();
  lw->kind = Work::Kind::kLinkRequest;
  lw->target = target;
  lw->other = other;
  const int s = engine_.shard_of(other);
  engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(lw), false);
}

void Shard::send_contact_claims(const std::string& key, const profile::CustomerProfile& p) {
  for (const auto& ck :
       {contact_key("phone", p.traits.phone), contact_key("email", p.traits.email)}) {
    if (ck.empty()) continue;
    auto w = std::make_unique<Work>();
    w->kind = Work::Kind::kContactClaim;
    w->target = key;
    w->other = ck;
    w->payload = p.member ? "m" : "v";
    const int s = engine_.shard_of(ck);
    engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(w), false);
  }
}

void Shard::handle_contact_claim(Work& w) {
  const bool member = w.payload == "m";
  auto it = contact_owners_.find(w.other);
  if (it == contact_owners_.end()) {
    if (contact_owners_.size() < kMaxContactsIndexed)
      contact_owners_.emplace(w.other, ContactOwner{w.target, member});
    return;
  }
  ContactOwner& owner = it->second;
  if (owner.key == w.target) {
    owner.member |= member;
    return;
  }
  if (owner.member == member) return;  // two members (a household) or two visitors: not merged
  const std::string member_key = member ? w.target : owner.key;
  const std::string visitor_key = member ? owner.key : w.target;
  if (member) owner = ContactOwner{w.target, true};
  auto lw = std::make_unique<Work>();
  lw->kind = Work::Kind::kLinkCommand;
  lw->target = member_key;
  lw->other = visitor_key;
  lw->payload = w.other.substr(0, w.other.find(':'));  // "phone" | "email"
  const int s = engine_.shard_of(member_key);
  engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(lw), false);
}

void Shard::record_popularity(const protocol::Event& ev) {
  if (ev.name != protocol::EventName::kOrderCompleted) return;
  constexpr std::size_t kMaxCategories = 2000, kMaxProducts = 5000;
  for (const auto& prod : ev.products) {
    if (prod.category.empty() || prod.product_id.empty()) continue;
    auto cit = popularity_.find(prod.category);
    if (cit == popularity_.end()) {
      if (popularity_.size() >= kMaxCategories) continue;
      cit = popularity_.emplace(prod.category, std::unordered_map<std::string, std::uint32_t>{})
                .first;
    }
    auto pit = cit->second.find(prod.product_id);
    if (pit == cit->second.end()) {
      if (cit->second.size() >= kMaxProducts) continue;
      pit = cit->second.emplace(prod.product_id, 0).first;
      if (product_names_.size() < kMaxCategories * 10) product_names_[prod.product_id] = prod.name;
    }
    pit->second += static_cast<std::uint32_t>(prod.quantity);
  }
}

// ---- erasure (crypto-shredding) ------------------------------------------------

const store::StoredKey& Shard::key_for(std::string_view subject) {
  auto it = keys_.find(subject);
  if (it != keys_.end()) return it->second;
  store::StoredKey k = store::Sealer::new_key(subject);
  while (kid_subject_.count(k.kid)) k = store::Sealer::new_key(subject);
  journal_->stage_key(k);
  kid_subject_.emplace(k.kid, k.subject);
  return keys_.emplace(k.subject, std::move(k)).first->second;
}

void Shard::append_record(store::RecordType type, TimeUs recv, std::string_view subject,
                          std::string_view payload) {
  if (!engine_.opts_.seal_records) {
    journal_->append(type, recv, payload);
    return;
  }
  const auto t = static_cast<std::uint8_t>(static_cast<std::uint8_t>(type) | store::kSealedBit);
  seal_buf_.clear();
  sealer_->seal(key_for(subject), t, payload, seal_buf_);
  journal_->append(static_cast<store::RecordType>(t), recv, seal_buf_);
}

void Engine::erase_profile(std::string id, ErasureCallback done) {
  auto w = std::make_unique<Work>();
  w->kind = Work::Kind::kErase;
  w->target = std::move(id);
  w->erase_done = std::move(done);
  const int s = shard_of(w->target);
  shards_[static_cast<std::size_t>(s)]->push(std::move(w), false);
}

void Shard::handle_erase(Work& w) {
  auto* p = find(w.target);
  if (p && !p->merged_into.empty()) {
    // A visitor id merged into a member: erasing it erases the member.
    engine_.erase_profile(p->merged_into, std::move(w.erase_done));
    return;
  }
  auto state = std::make_shared<PurgeState>();
  state->engine = &engine_;
  ErasureResult& r = state->result;
  r.subjects.push_back(w.target);
  if (p) {
    for (const auto& l : p->links) r.subjects.push_back(l.other_id);
    if (!p->traits.phone.empty()) r.phones.push_back(p->traits.phone);
    if (!p->traits.email.empty()) r.emails.push_back(p->traits.email);
  }
  {
    // A retry after a failed erasure covers the same ids (the profile, with
    // its links, left memory the first time).
    // Bounded: erasures fail only while the store is down, and an operator
    // retrying thousands of them then is told in the log that a retry of the
    // newest may miss linked ids.
    constexpr std::size_t kMaxPendingErasures = 100'000;
    std::lock_guard lock(engine_.erase_mu_);
    auto it = engine_.pending_erasures_.find(w.target);
    if (it == engine_.pending_erasures_.end() &&
        engine_.pending_erasures_.size() < kMaxPendingErasures)
      it = engine_.pending_erasures_.emplace(w.target, Engine::PendingErasure{}).first;
    else if (it == engine_.pending_erasures_.end())
      spdlog::warn(
          "erasure: {} erasures already wait for a retry; this one's linked ids are not remembered",
          kMaxPendingErasures);
    if (it != engine_.pending_erasures_.end()) {
      auto& pending = it->second;
      for (auto* list : {&r.subjects, &r.phones, &r.emails}) {
        auto& keep = list == &r.subjects ? pending.subjects
                     : list == &r.phones ? pending.phones
                                         : pending.emails;
        for (const auto& x : keep)
          if (std::find(list->begin(), list->end(), x) == list->end()) list->push_back(x);
        keep = *list;
      }
    }
  }
  state->done = std::move(w.erase_done);
  state->remaining = engine_.shard_count();
  for (int s = 0; s < engine_.shard_count(); ++s) {
    auto pw = std::make_unique<Work>();
    pw->kind = Work::Kind::kPurge;
    pw->purge = state;
    engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(pw), false);
  }
}

void Shard::handle_purge(Work& w) {
  PurgeState& st = *w.purge;
  std::vector<std::string> subjects;
  {
    std::lock_guard lock(st.mu);
    subjects = st.result.subjects;
  }
  auto is_subject = [&](std::string_view k) {
    return std::find(subjects.begin(), subjects.end(), k) != subjects.end();
  };
  std::uint64_t removed = 0;
  std::vector<std::uint64_t> kids;
  for (const auto& sub : subjects) {
    removed += profiles_.erase(sub);
    if (auto it = keys_.find(sub); it != keys_.end()) kids.push_back(it->second.kid);
  }
  recent_.forget(subjects);
  for (auto it = contact_owners_.begin(); it != contact_owners_.end();)
    it = is_subject(it->second.key) ? contact_owners_.erase(it) : std::next(it);
  profile_count_.store(profiles_.size(), std::memory_order_relaxed);
  // A new snapshot without them first (the previous one holds them in the
  // clear), then the keys: a crash in between leaves the keys, not the data.
  Status s = Status::ok();
  if (removed > 0 || !kids.empty()) s = snapshot_now();
  if (s) s = journal_->erase_keys(kids);
  if (s) {
    for (const auto& sub : subjects)
      if (auto it = keys_.find(sub); it != keys_.end()) {
        kid_subject_.erase(it->second.kid);
        sealer_->forget(it->second.kid);  // its expanded key too
        keys_.erase(it);
      }
  } else {
    // The keys stay known, so a retry of the DELETE writes the snapshot and
    // destroys them again (the profiles are already gone from memory).
    spdlog::error("shard {}: erasure incomplete: {}", index_, s.detail());
  }
  finish_purge(st, removed, kids.size(), s, index_, true);
}

void Shard::finish_purge(PurgeState& st, std::uint64_t removed, std::uint64_t keys, const Status& s,
                         int shard, bool served) {
  ErasureCallback done;
  ErasureResult result;
  {
    std::lock_guard lock(st.mu);
    st.result.profiles += removed;
    st.result.keys += keys;
    if (!served) st.result.shards_not_served.push_back(shard);
    if (!s && st.result.status == 200) {
      st.result.status = 503;
      st.result.error = fmt::format("shard {}: {}", shard, s.detail());
    }
    if (--st.remaining > 0) return;
    done = std::move(st.done);
    result = std::move(st.result);
  }
  if (result.status == 200 && result.profiles == 0 && result.keys == 0) {
    result.status = 404;
    result.error = "no profile for " + result.subjects.front();
  }
  if (result.status != 503 && st.engine) {
    std::lock_guard lock(st.engine->erase_mu_);
    st.engine->pending_erasures_.erase(result.subjects.front());
  }
  if (done) done(std::move(result));
}

Status Shard::snapshot_now() {
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  if (!journal_->snapshot_allowed())
    return Status(
        ErrorCode::kUnavailable,
        fmt::format("shard {}: the redis spool is not drained yet; try again once it is", index_));
  const std::uint64_t done = snapshot_done_seq_.load();
  if (done > snapshot_seq_) snapshot_seq_ = done;
  const std::uint64_t seq = journal_->last_seq();
  std::string body = encode_snapshot();
  if (Status s = journal_->write_snapshot(seq, body); !s) return s;
  snapshot_seq_ = seq;
  snapshot_done_seq_.store(seq);
  last_snapshot_ns_ = mono_ns();
  journal_->remove_through(seq);
  engine_.metrics_.snapshots.fetch_add(1, std::memory_order_relaxed);
  return Status::ok();
}

void Shard::handle_query(Work& w) {
  auto* p = find(w.target);
  if (!p) {
    std::string body = R"({"error":"not_found","detail":)";
    protocol::append_json_string(body, "no profile for " + w.target);
    body += "}";
    w.profile_done(404, std::move(body));
    return;
  }
  if (!p->merged_into.empty()) {
    engine_.query_profile(p->merged_into, std::move(w.profile_done));
    return;
  }
  const TimeUs now = wall_clock_us();
  // CLV figures as of now: the stored ones are as of the last order, and
  // P(alive) falls while a customer stays away. Put back after encoding, so a
  // read changes nothing (they are derived, never journaled).
  const double stored[3] = {p->p_alive, p->expected_purchases_90d, p->clv};
  if (const models::ModelSet* m = models::active_models(); m && m->clv) {
    p->p_alive = models::p_alive_at(*m->clv, *p, now);
    p->expected_purchases_90d = models::expected_purchases_90d_at(*m->clv, *p, now);
    p->clv = models::clv_at(*m->clv, *p, now);
  }
  std::string body = profile::profile_to_json(*p, now);
  p->p_alive = stored[0];
  p->expected_purchases_90d = stored[1];
  p->clv = stored[2];
  // Recent events of this id and of the visitor ids merged into it (those
  // applied on this shard), before the closing brace.
  if (!body.empty() && body.back() == '}') {
    body.pop_back();
    std::vector<std::string_view> also;
    for (const auto& l : p->links) also.push_back(l.other_id);
    recent_.append_json(body, w.target, also);
    body.push_back('}');
  }
  w.profile_done(200, std::move(body));
}

void RecentEvents::append_json(std::string& out, std::string_view key,
                               const std::vector<std::string_view>& also) const {
  out += ",\"recentEvents\":[";
  std::size_t n = 0;
  for (std::size_t i = 0; i < count_ && n < kMaxPerProfile; ++i) {
    const Slot& s = ring_[(next_ + kSize - 1 - i) % kSize];
    if (s.key != key && std::find(also.begin(), also.end(), s.key) == also.end()) continue;
    if (n++) out.push_back(',');
    out += "{\"type\":\"";
    out += protocol::event_type_name(s.type);
    out += '"';
    if (s.name != protocol::EventName::kNone) {
      out += ",\"event\":";
      protocol::append_json_string(out, protocol::event_name_str(s.name));
    }
    out += fmt::format(",\"channel\":\"{}\",\"timestamp\":\"{}\"",
                       protocol::channel_name(s.channel), format_iso8601(s.at));
    if (s.total >= 0) out += fmt::format(",\"total\":{}.{:02}", s.total / 100, s.total % 100);
    if (s.key != key) {
      out += ",\"id\":";
      protocol::append_json_string(out, s.key);
    }
    out += ",\"messageId\":";
    protocol::append_json_string(out, s.message_id);
    out += '}';
  }
  out += ']';
}

void Shard::handle_recommend(Work& w) {
  const auto* p = find(w.target);
  if (p && !p->merged_into.empty()) {
    auto fw = std::make_unique<Work>(std::move(w));
    fw->target = p->merged_into;
    const int s = engine_.shard_of(fw->target);
    engine_.shards_[static_cast<std::size_t>(s)]->push(std::move(fw), false);
    return;
  }
  struct Item {
    std::string id, category;
    double score;
  };
  std::vector<Item> items;
  std::string reason;
  auto in_cart = [&](std::string_view id) {
    if (!p) return false;
    for (const auto& c : p->cart)
      if (p->name(c.product_id) == id) return true;
    return false;
  };
  // Never recommend what the customer just bought (nor the cart, nor the product in view).
  auto excluded = [&](std::string_view id) {
    if (id == w.rec.product_id || in_cart(id)) return true;
    if (!p) return false;
    const profile::NameId rid = p->names->find(id);
    return rid != profile::kNoName &&
           std::find(p->recent_products.begin(), p->recent_products.end(), rid) !=
               p->recent_products.end();
  };
  auto add_from = [&](std::string_view cat, double weight) {
    auto it = popularity_.find(std::string(cat));
    if (it == popularity_.end()) return;
    for (const auto& [pid, count] : it->second) {
      if (excluded(pid)) continue;
      items.push_back({pid, std::string(cat), weight * count});
    }
  };
  auto category_of = [&](std::string_view pid) -> std::string {
    for (const auto& [cat, products] : popularity_)
      if (products.count(std::string(pid))) return cat;
    return {};
  };
  std::vector<Item> top;
  auto take = [&](std::vector<Item>& from) {
    std::sort(from.begin(), from.end(), [](const Item& a, const Item& b) {
      return a.score != b.score ? a.score > b.score : a.id < b.id;
    });
    // De-duplicate (a product can appear under several top categories).
    for (auto& it : from) {
      if (static_cast<int>(top.size()) >= w.rec.limit) break;
      if (std::any_of(top.begin(), top.end(), [&](const Item& t) { return t.id == it.id; }))
        continue;
      top.push_back(std::move(it));
    }
    from.clear();
  };

  // 1. The basket model: consequents of what the customer holds (the product
  //    in view, the cart, recent purchases), best rules first.
  if (models_ && models_->baskets) {
    const models::BasketModel& bm = *models_->baskets;
    std::array<std::string_view, models::BasketModel::kMaxHeld> held;
    std::size_t nh = 0;
    if (!w.rec.product_id.empty()) held[nh++] = w.rec.product_id;
    if (p) nh += bm.held_items(*p, std::span(held).subspan(nh));
    std::array<models::BasketSuggestion, 16> sug;
    const std::size_t want =
        std::clamp<std::size_t>(static_cast<std::size_t>(std::max(1, w.rec.limit)), 1, sug.size());
    const std::size_t ns = bm.suggest(std::span(held.data(), nh), std::span(sug.data(), want));
    for (std::size_t i = 0; i < ns; ++i) {
      const std::string& item = bm.item(sug[i].item);
      if (bm.item_key == "category") {
        add_from(item, 1000.0 * sug[i].confidence);  // a suggested category: its best sellers
      } else if (!excluded(item)) {
        items.push_back({item, category_of(item), sug[i].confidence});
      }
    }
    if (!items.empty()) {
      const auto& first = bm.rules()[sug[0].rule];
      reason = "bought together with " + bm.item(first.lhs.front());
      take(items);
    }
  }
  // 2. Affinities: best sellers in the customer's top categories.
  if (static_cast<int>(top.size()) < w.rec.limit) {
    std::vector<const profile::CategoryStat*> cats;
    if (p)
      for (const auto& c : p->categories) cats.push_back(&c);
    std::sort(cats.begin(), cats.end(), [](auto a, auto b) { return a->affinity > b->affinity; });
    if (cats.size() > 3) cats.resize(3);
    for (const auto* c : cats) add_from(p->name(c->name), 1.0 + c->affinity / 100.0);
    if (!cats.empty() && reason.empty())
      reason = fmt::format("top categories: {}", p->name(cats[0]->name));
    take(items);
  }
  // 3. Store-wide best sellers.
  if (top.empty()) {
    reason = "popular now";
    for (const auto& [cat, _] : popularity_) add_from(cat, 1.0);
    take(items);
  }
  std::string out = R"({"type":"recommendations","items":[)";
  for (std::size_t i = 0; i < top.size(); ++i) {
    if (i) out.push_back(',');
    out += R"({"productId":)";
    protocol::append_json_string(out, top[i].id);
    out += R"(,"name":)";
    auto nit = product_names_.find(top[i].id);
    protocol::append_json_string(out, nit == product_names_.end() ? top[i].id : nit->second);
    out += R"(,"category":)";
    protocol::append_json_string(out, top[i].category);
    out += fmt::format(R"(,"score":{:.3f}}})", top[i].score);
  }
  out += R"(],"reason":)";
  protocol::append_json_string(out, reason);
  out += "}";
  if (w.reply) w.reply->deliver(std::move(out));
}

std::string Shard::encode_snapshot() const {
  std::string body;
  ByteWriter w(body);
  w.u64(profiles_.size());
  std::string buf;
  for (const auto& [key, p] : profiles_) {
    buf.clear();
    profile::serialize_profile(*p, buf);
    w.str(buf);
  }
  w.u64(dedupe_.size());
  dedupe_.for_each([&](std::string_view id) { w.str(id); });
  return body;
}

void Shard::decode_snapshot(const std::string& body) {
  ByteReader r(body);
  const std::uint64_t n = r.u64();
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    auto p = std::make_unique<profile::CustomerProfile>();
    p->names = &names_;
    if (!profile::deserialize_profile(r.str_view(), *p))
      throw std::runtime_error(
          fmt::format("shard {}: profile {} in snapshot is malformed", index_, i));
    std::string key = p->user_id;
    profiles_[key] = std::move(p);
  }
  const std::uint64_t d = r.u64();
  for (std::uint64_t i = 0; i < d && r.ok(); ++i) dedupe_.insert(r.str_view());
  if (!r.ok())
    throw std::runtime_error(fmt::format("shard {}: snapshot body is truncated", index_));
}

void Shard::warn_names_refused() {
  // A full name table drops new catalogue names from profiles (the events still
  // count): say so, at most once a minute, with the number since the last line.
  const std::uint64_t refused = names_.refused();
  if (refused == names_refused_logged_) return;
  const std::int64_t now = mono_ns();
  if (names_refused_logged_ != 0 && now - last_names_log_ns_ < 60'000'000'000) return;
  spdlog::warn(
      "shard {}: name table full ({} names): {} new category/brand/product/store names not "
      "recorded in "
      "profiles since the last report",
      index_, names_.size(), refused - names_refused_logged_);
  names_refused_logged_ = refused;
  last_names_log_ns_ = now;
}

void Shard::maybe_snapshot(bool force) {
  const std::uint64_t done = snapshot_done_seq_.load();
  if (done > snapshot_seq_) {
    journal_->remove_through(done);
    snapshot_seq_ = done;
    engine_.metrics_.snapshots.fetch_add(1, std::memory_order_relaxed);
  }
  if (snapshot_busy_.load()) {
    if (!force) return;
    if (snapshot_thread_.joinable()) snapshot_thread_.join();
  }
  // Never a snapshot naming records the store does not hold yet (spooled),
  // and none of a log that keeps nothing.
  if (!journal_->snapshot_allowed() || !journal_->durable()) return;
  const std::uint64_t seq = journal_->last_seq();
  if (seq <= snapshot_seq_) return;
  if (!force) {
    if (mono_ns() - last_snapshot_ns_ < engine_.opts_.snapshot_interval_us * 1000) return;
    if (seq - snapshot_seq_ < engine_.opts_.snapshot_min_records) return;
  }
  last_snapshot_ns_ = mono_ns();
  // Serialising here, between batches, makes the snapshot exactly the state at
  // `seq`; the slow part (write + fsync) runs on a helper thread.
  std::string body = encode_snapshot();
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  if (force) {
    if (Status s = journal_->write_snapshot(seq, body); !s)
      spdlog::error("shard {}: snapshot failed: {}", index_, s.detail());
    else
      snapshot_seq_ = seq;
    return;
  }
  snapshot_busy_.store(true);
  snapshot_thread_ = std::thread([this, seq, body = std::move(body)] {
    if (Status s = journal_->write_snapshot(seq, body); !s)
      spdlog::error("shard {}: snapshot failed: {}", index_, s.detail());
    else
      snapshot_done_seq_.store(seq);
    snapshot_busy_.store(false);
  });
}

}  // namespace storepulse::engine
