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
  const std::string key = opts_.redis.prefix + ":meta";
  auto c = store::redis_connect_for(opts_.redis, key);
  if (!c) throw std::runtime_error(c.status().detail());
  std::unique_ptr<redisContext, void (*)(redisContext*)> conn(*c, redisFree);
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
  for (int i : owned) shards_[static_cast<std::size_t>(i)]->request_resend_links();
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
  for (int i : shards) {
    // On a Redis Cluster each shard's lease lives on the master of its slot.
    auto c = store::redis_connect_for(opts_.redis, store::lease_key(opts_.redis.prefix, i));
    if (!c) throw std::runtime_error(fmt::format("shard {}: {}", i, c.status().detail()));
    std::unique_ptr<redisContext, void (*)(redisContext*)> conn(*c, redisFree);
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
  // One connection for all leases on one Redis; on a Redis Cluster one per
  // shard, to the master of its slot, made again after a failure (the slot
  // may have a new master after a failover).
  const bool per_shard = opts_.redis.cluster();
  std::vector<redisContext*> conns(per_shard ? static_cast<std::size_t>(shard_count()) : 1,
                                   nullptr);
  auto close = [](redisContext*& c) {
    if (c) redisFree(c);
    c = nullptr;
  };
  std::int64_t last_warn_ns = 0;
  auto warn = [&](const std::string& why) {
    if (mono_ns() - last_warn_ns > 1'000'000'000) {
      spdlog::warn("node {}: cannot renew shard leases: {}", node_id_, why);
      last_warn_ns = mono_ns();
    }
  };
  std::unique_lock<std::mutex> lk(lease_mu_);
  while (!lease_cv_.wait_for(lk, period, [this] { return lease_stop_; })) {
    lk.unlock();
    for (int i = 0; i < shard_count(); ++i) {
      Shard& sh = *shards_[static_cast<std::size_t>(i)];
      if (!sh.leased() || sh.lease_lost()) continue;
      redisContext*& conn = conns[per_shard ? static_cast<std::size_t>(i) : 0];
      if (conn && conn->err) close(conn);
      if (!conn) {
        auto c = store::redis_connect_for(opts_.redis, store::lease_key(opts_.redis.prefix, i));
        if (!c) {
          warn(c.status().detail());
          if (per_shard) continue;
          break;
        }
        conn = *c;
      }
      auto r = store::renew_lease(conn, opts_.redis, i, lease_value_);
      if (!r) {
        warn(r.status().detail());
        close(conn);  // reconnect (to the slot's current master) next period
        if (per_shard) continue;
        break;
      }
      if (!*r)
        sh.lose_lease(fmt::format("lease {} is no longer held by {}",
                                  store::lease_key(opts_.redis.prefix, i), node_id_));
    }
    lk.lock();
  }
  for (auto& c : conns) close(c);
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
  protocol::append_json_string(
      o, opts_.store_kind == "redis" && opts_.redis.cluster() ? "redis-cluster" : opts_.store_kind);
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
        sh.request_resend_links();
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

void ReplyTarget::deliver_ack(std::string_view message_id) {
  deliver(protocol::encode_ack(message_id));
}

Status Engine::submit(protocol::Event&& ev, std::string&& raw, TimeUs recv,
                      std::shared_ptr<ReplyTarget> reply) {
  auto w = take_work();
  w->kind = Work::Kind::kEvent;
  w->recv = recv;
  w->enq_ns = mono_ns();
  // The journal keeps the decoded event (kEventBinary), not the wire JSON: `raw`
  // stays with the caller and is freed on its own thread.
  (void)raw;
  // Swapped, not moved: the caller's Event gets the pooled Work's strings back,
  // with their capacity, for its next decode.
  std::swap(w->event, ev);
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
  auto w = take_work();
  w->kind = Work::Kind::kProfileQuery;
  w->target = std::move(id);
  w->profile_done = std::move(done);
  const int s = shard_of(w->target);
  shards_[static_cast<std::size_t>(s)]->push(std::move(w), false);
}

void Engine::recommend(protocol::RecommendRequest req, std::shared_ptr<ReplyTarget> reply) {
  auto w = take_work();
  w->kind = Work::Kind::kRecommend;
  w->target = req.user_id.empty() ? req.anonymous_id : req.user_id;
  w->rec = std::move(req);
  w->reply = std::move(reply);
  const int s = shard_of(w->target);
  // Refused (queue full, shard not served here): push has sent the error reply.
  (void)shards_[static_cast<std::size_t>(s)]->push(std::move(w), true);
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

}  // namespace storepulse::engine
