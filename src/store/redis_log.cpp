#include "storepulse/store/redis_log.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "storepulse/store/journal.hpp"  // crc32_of

namespace storepulse::store {
namespace {

using ReplyPtr = std::unique_ptr<redisReply, void (*)(void*)>;

ReplyPtr wrap(void* r) {
  return ReplyPtr(static_cast<redisReply*>(r), freeReplyObject);
}

timeval ms_to_tv(int ms) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

Status unavailable(std::string what) {
  return Status(ErrorCode::kUnavailable, std::move(what));
}

std::string where(const RedisOptions& o) {
  if (o.cluster())
    return fmt::format("redis cluster at {}{}", fmt::join(o.cluster_nodes, ","),
                       o.tls.enabled ? " (TLS)" : "");
  return fmt::format("redis at {}:{}{}", o.host, o.port, o.tls.enabled ? " (TLS)" : "");
}

std::string reply_text(const redisReply* r) {
  if (!r) return "no reply";
  // Every error a reply carries is read through here: a cluster redirection
  // noted now makes the shard's connection look up its slot's master again.
  if (r->type == REDIS_REPLY_ERROR) note_cluster_error(std::string_view(r->str, r->len));
  if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS ||
      r->type == REDIS_REPLY_STRING)
    return std::string(r->str, r->len);
  return fmt::format("reply type {}", r->type);
}

/// `<seq>-0` -> seq; false on anything else.
bool parse_stream_id(std::string_view id, std::uint64_t& seq) {
  const auto dash = id.find('-');
  if (dash == std::string_view::npos) return false;
  auto [p, ec] = std::from_chars(id.data(), id.data() + dash, seq);
  return ec == std::errc() && p == id.data() + dash;
}

template <typename Int>
bool parse_int(std::string_view s, Int& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

/// Runs one command given as arguments; the reply, or an error naming it.
Result<ReplyPtr> run(redisContext* c, const std::vector<std::string_view>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto r = wrap(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (!r) return unavailable(fmt::format("{}: {}", args.empty() ? "" : args[0], c->errstr));
  return r;
}

constexpr std::string_view kSnapshotMagic = "SPS1";

// KEYS[1] stream, KEYS[2] owner, KEYS[3] customer keys; ARGV[1] lease value,
// ARGV[2] n, then n HSET field/value strings (new keys), then id, type, recv, data
// per record. The owner check and the appends are one atomic step in Redis.
constexpr std::string_view kFencedAppend = R"(
local cur = redis.call('GET', KEYS[2])
if cur ~= ARGV[1] then return redis.error_reply('LEASE held by ' .. (cur or 'nobody')) end
local nk = tonumber(ARGV[2])
if nk > 0 then redis.call('HSET', KEYS[3], unpack(ARGV, 3, 2 + nk)) end
for i = 3 + nk, #ARGV, 4 do
  redis.call('XADD', KEYS[1], ARGV[i], 't', ARGV[i + 1], 'r', ARGV[i + 2], 'd', ARGV[i + 3])
end
return #ARGV)";

// KEYS[1] owner, KEYS[2] the key written; ARGV[1] lease value, ARGV[2] command,
// ARGV[3..] its arguments after the key (SET snapshot, XTRIM).
constexpr std::string_view kFencedWrite = R"(
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then return redis.error_reply('LEASE held by ' .. (cur or 'nobody')) end
return redis.call(ARGV[2], KEYS[2], unpack(ARGV, 3)))";

// KEYS[1] owner; ARGV[1] lease value, ARGV[2] ttl ms, ARGV[3] "<node-id>/".
constexpr std::string_view kAcquireLease = R"(
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[1] or string.sub(cur, 1, #ARGV[3]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ''
end
return cur .. ' ' .. redis.call('PTTL', KEYS[1]))";

constexpr std::string_view kRenewLease = R"(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0)";

// The spool's drain. KEYS[1] stream, KEYS[2] owner, KEYS[3] customer keys;
// ARGV[1] lease value ('' = not fenced), ARGV[2] n, n HSET strings, then id,
// type, recv, data per record (ascending ids). A record whose id Redis already
// holds is skipped when the entry there carries the same data (a drain step or
// the commit that started the spool landed, but its reply was lost) and refused
// otherwise (CONFLICT: another writer used the id), so a re-drain after a crash
// writes nothing twice and never skips a record Redis does not have.
constexpr std::string_view kDrain = R"(
if ARGV[1] ~= '' then
  local cur = redis.call('GET', KEYS[2])
  if cur ~= ARGV[1] then return redis.error_reply('LEASE held by ' .. (cur or 'nobody')) end
end
local nk = tonumber(ARGV[2])
if nk > 0 then redis.call('HSET', KEYS[3], unpack(ARGV, 3, 2 + nk)) end
local added, present = 0, 0
for i = 3 + nk, #ARGV, 4 do
  local ok = redis.pcall('XADD', KEYS[1], ARGV[i], 't', ARGV[i + 1], 'r', ARGV[i + 2], 'd', ARGV[i + 3])
  if type(ok) == 'table' and ok.err then
    local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if #e == 1 and e[1][2][6] == ARGV[i + 3] then
      present = present + 1
    else
      return redis.error_reply('CONFLICT stream entry ' .. ARGV[i] .. ' is not the spooled record (' .. ok.err .. ')')
    end
  else
    added = added + 1
  end
end
return {added, present})";

constexpr std::size_t kSpoolRecordHeader = 25;  // the journal's record header (journal.hpp)

JournalOptions spool_journal_options(const RedisOptions& o) {
  JournalOptions jo;
  jo.dir = o.spool_dir;
  jo.fsync = o.spool_fsync;
  jo.fsync_interval_us = o.spool_fsync_interval_us;
  jo.segment_bytes = o.spool_segment_bytes;
  return jo;
}

bool has_segments(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".log") return true;
  return false;
}

bool lease_refused(const redisReply* r) {
  return r && r->type == REDIS_REPLY_ERROR && std::string_view(r->str, r->len).starts_with("LEASE");
}

/// Holder part of a lease value: "node-b/7f3a…" -> "node-b".
std::string_view holder_name(std::string_view v) {
  return v.substr(0, v.rfind('/'));
}

}  // namespace

Status parse_redis_url(std::string_view url, RedisOptions& o) {
  std::string_view rest = url;
  if (rest.starts_with("redis://")) {
    rest.remove_prefix(8);
    o.tls.enabled = false;
  } else if (rest.starts_with("rediss://")) {
    rest.remove_prefix(9);
    o.tls.enabled = true;
  } else if (rest.find("://") != std::string_view::npos) {
    return Status(ErrorCode::kBadField,
                  fmt::format("redis url '{}': expected redis:// or rediss:// (TLS)", url));
  }
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    if (auto colon = cred.find(':'); colon != std::string_view::npos) {
      o.username = std::string(cred.substr(0, colon));
      o.password = std::string(cred.substr(colon + 1));
    } else {
      o.password = std::string(cred);
    }
  }
  std::string_view hostport = rest;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!parse_int(db, o.db) || o.db < 0))
      return Status(ErrorCode::kBadField,
                    fmt::format("redis url '{}': database '{}' is not a number", url, db));
  }
  if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    std::string_view port = hostport.substr(colon + 1);
    if (!parse_int(port, o.port) || o.port < 1 || o.port > 65535)
      return Status(ErrorCode::kBadField,
                    fmt::format("redis url '{}': port '{}' is not 1-65535", url, port));
    hostport = hostport.substr(0, colon);
  }
  if (hostport.empty())
    return Status(ErrorCode::kBadField, fmt::format("redis url '{}': no host", url));
  o.host = std::string(hostport);
  return Status::ok();
}

Result<redisContext*> redis_connect(const RedisOptions& o) {
  std::shared_ptr<RedisTlsTunnel> tunnel;
  if (o.tls.enabled) {
    auto t = RedisTlsTunnel::for_endpoint(o.host, o.port, o.tls, o.connect_timeout_ms);
    if (!t) return t.status();
    tunnel = std::move(t).value();
  }
  redisContext* c =
      tunnel ? redisConnectUnixWithTimeout(tunnel->socket_path().c_str(),
                                           ms_to_tv(o.connect_timeout_ms))
             : redisConnectWithTimeout(o.host.c_str(), o.port, ms_to_tv(o.connect_timeout_ms));
  if (!c) return unavailable(fmt::format("{}: cannot allocate a connection", where(o)));
  if (c->err) {
    Status s = unavailable(fmt::format("{}: {}", where(o), c->errstr));
    redisFree(c);
    return s;
  }
  redisSetTimeout(c, ms_to_tv(o.command_timeout_ms));
  auto fail = [&](std::string what) {
    redisFree(c);
    // Through the tunnel a refused certificate shows as a closed connection:
    // the tunnel knows why.
    if (tunnel)
      if (std::string why = tunnel->last_error(); !why.empty()) what += " (" + why + ")";
    return Result<redisContext*>(unavailable(fmt::format("{}: {}", where(o), what)));
  };
  if (tunnel) {
    // The TLS session is made when the first bytes go through: a PING now
    // turns an untrusted certificate into an error here, not at the first commit.
    auto r = run(c, {"PING"});
    if (!r) return fail(r.status().detail());
  }
  if (!o.password.empty()) {
    std::vector<std::string_view> args{"AUTH"};
    if (!o.username.empty()) args.push_back(o.username);
    args.push_back(o.password);
    auto r = run(c, args);
    if (!r) return fail(r.status().detail());
    if ((*r)->type == REDIS_REPLY_ERROR) return fail("AUTH refused: " + reply_text(r->get()));
  }
  if (o.db != 0) {
    const std::string db = std::to_string(o.db);
    auto r = run(c, {"SELECT", db});
    if (!r) return fail(r.status().detail());
    if ((*r)->type == REDIS_REPLY_ERROR) return fail("SELECT " + db + ": " + reply_text(r->get()));
  }
  return c;
}

RedisLog::RedisLog(RedisOptions opts, int shard)
    : opts_(std::move(opts)),
      stream_key_(fmt::format("{}:{{s{}}}:log", opts_.prefix, shard)),
      snapshot_key_(fmt::format("{}:{{s{}}}:snapshot", opts_.prefix, shard)),
      keys_key_(fmt::format("{}:{{s{}}}:keys", opts_.prefix, shard)),
      owner_key_(lease_key(opts_.prefix, shard)),
      shard_(shard) {}

void RedisLog::stage_key(const StoredKey& key) {
  pending_keys_.emplace_back(reinterpret_cast<const char*>(&key.kid), 8);
  std::string v(reinterpret_cast<const char*>(key.key.data()), key.key.size());
  v.append(key.subject);
  pending_keys_.push_back(std::move(v));
}

Status RedisLog::load_keys(const std::function<void(StoredKey&&)>& fn, RecoveryReport& report) {
  if (Status s = ensure_connected(); !s) return s;
  std::string cursor = "0";
  do {
    auto r = run(ctx_, {"HSCAN", keys_key_, cursor, "COUNT", "10000"});
    if (!r) {
      drop_connection();
      return r.status();
    }
    redisReply* x = r->get();
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 ||
        x->element[1]->type != REDIS_REPLY_ARRAY)
      return unavailable(fmt::format("{}: HSCAN: {}", keys_key_, reply_text(x)));
    cursor.assign(x->element[0]->str, x->element[0]->len);
    redisReply* kv = x->element[1];
    for (std::size_t i = 0; i + 1 < kv->elements; i += 2) {
      const redisReply* f = kv->element[i];
      const redisReply* v = kv->element[i + 1];
      if (f->len != 8 || v->len < 32) {
        report.problems.push_back(fmt::format("{}: malformed key entry skipped", keys_key_));
        continue;
      }
      StoredKey k;
      std::memcpy(&k.kid, f->str, 8);
      std::memcpy(k.key.data(), v->str, 32);
      k.subject.assign(v->str + 32, v->len - 32);
      fn(std::move(k));
      ++report.keys;
    }
  } while (cursor != "0");
  // Keys that went to the spool and may not be in Redis yet (read-only here;
  // replay() opens the spool and repairs a torn tail).
  if (!opts_.spool_dir.empty() && has_segments(opts_.spool_dir)) {
    RecoveryReport srep;
    if (Status s = scan_keys(opts_.spool_dir, fn, srep); !s) return s;
    report.keys += srep.keys;
  }
  return Status::ok();
}

Status RedisLog::erase_keys(const std::vector<std::uint64_t>& kids) {
  if (kids.empty()) return Status::ok();
  // Staged (not yet written) keys are dropped first.
  for (std::size_t i = 0; i + 1 < pending_keys_.size();) {
    std::uint64_t kid = 0;
    std::memcpy(&kid, pending_keys_[i].data(), 8);
    if (std::find(kids.begin(), kids.end(), kid) != kids.end())
      pending_keys_.erase(pending_keys_.begin() + static_cast<std::ptrdiff_t>(i),
                          pending_keys_.begin() + static_cast<std::ptrdiff_t>(i + 2));
    else
      i += 2;
  }
  if (spool_) {
    if (Status s = spool_->erase_keys(kids); !s) return s;
    std::erase_if(spool_keys_, [&](const SpoolKey& k) {
      std::uint64_t kid = 0;
      std::memcpy(&kid, k.field.data(), 8);
      return std::find(kids.begin(), kids.end(), kid) != kids.end();
    });
    update_spool_bytes();
  }
  if (Status s = ensure_connected(); !s) return s;
  std::vector<std::string> fields;
  fields.reserve(kids.size());
  std::vector<std::string_view> args{"HDEL"};
  for (auto kid : kids) fields.emplace_back(reinterpret_cast<const char*>(&kid), 8);
  for (const auto& f : fields) args.push_back(f);
  auto r = fenced(ctx_, args, keys_key_);  // only while this node holds the shard's lease
  if (!r) {
    drop_connection();
    return r.status();
  }
  if ((*r)->type == REDIS_REPLY_ERROR)
    return unavailable(fmt::format("{}: HDEL: {}", keys_key_, reply_text(r->get())));
  // The AOF still replays the old HSET until it is rewritten. "Already in
  // progress" is fine: Redis schedules another rewrite after it.
  auto w = run(ctx_, {"BGREWRITEAOF"});
  if (w && (*w)->type == REDIS_REPLY_ERROR)
    spdlog::warn("{}: BGREWRITEAOF after erasure: {}", where(opts_), reply_text(w->get()));
  return Status::ok();
}

RedisLog::~RedisLog() {
  drop_connection();
}

Result<std::unique_ptr<RedisLog>> RedisLog::open(const RedisOptions& opts, int shard) {
  std::unique_ptr<RedisLog> log(new RedisLog(opts, shard));
  if (Status s = log->ensure_connected(); !s) return s;
  return log;
}

void RedisLog::drop_connection() {
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
}

Status RedisLog::ensure_connected() {
  // On a cluster a redirection (MOVED after a failover or resharding) means
  // the slot's master changed: connect to the new one.
  if (ctx_ && ctx_->err == 0 &&
      (!opts_.cluster() || redis_cluster_redirects_seen() == redirects_at_connect_))
    return Status::ok();
  drop_connection();
  const std::int64_t now = mono_ns();
  if (last_connect_fail_ns_ != 0 &&
      now - last_connect_fail_ns_ < std::int64_t{opts_.reconnect_backoff_ms} * 1'000'000)
    return unavailable(fmt::format("{} is unreachable (retrying every {} ms)", where(opts_),
                                   opts_.reconnect_backoff_ms));
  redirects_at_connect_ = redis_cluster_redirects_seen();
  auto c = redis_connect_for(opts_, stream_key_);
  if (!c) {
    last_connect_fail_ns_ = now;
    return c.status();
  }
  if (last_connect_fail_ns_ != 0) spdlog::info("{}: connected again", where(opts_));
  last_connect_fail_ns_ = 0;
  ctx_ = *c;
  return Status::ok();
}

Status RedisLog::replay(std::uint64_t after_seq,
                        const std::function<void(const JournalRecord&)>& fn,
                        RecoveryReport& report) {
  if (Status s = ensure_connected(); !s) return s;
  last_seq_ = after_seq;
  // The stream remembers the highest id it ever generated, trimmed or not:
  // new ids must be above it.
  {
    auto r = run(ctx_, {"XINFO", "STREAM", stream_key_});
    if (!r) return r.status();
    const redisReply* x = r->get();
    if (x->type == REDIS_REPLY_ARRAY) {
      for (std::size_t i = 0; i + 1 < x->elements; i += 2) {
        if (x->element[i]->type != REDIS_REPLY_STRING) continue;
        if (std::string_view(x->element[i]->str, x->element[i]->len) != "last-generated-id")
          continue;
        std::uint64_t seq = 0;
        const redisReply* v = x->element[i + 1];
        if (v->type == REDIS_REPLY_STRING && parse_stream_id(std::string_view(v->str, v->len), seq))
          last_seq_ = std::max(last_seq_, seq);
      }
    }  // an error reply: no such key yet, a new shard
  }
  std::string from = fmt::format("({}-0", after_seq);  // exclusive start (Redis 6.2+)
  const std::string count = std::to_string(opts_.replay_batch);
  for (;;) {
    auto r = run(ctx_, {"XRANGE", stream_key_, from, "+", "COUNT", count});
    if (!r) return r.status();
    const redisReply* x = r->get();
    if (x->type == REDIS_REPLY_ERROR)
      return unavailable(fmt::format("XRANGE {}: {}", stream_key_, reply_text(x)));
    if (x->type != REDIS_REPLY_ARRAY || x->elements == 0) break;
    std::string_view last_id;
    for (std::size_t i = 0; i < x->elements; ++i) {
      const redisReply* e = x->element[i];
      if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
          e->element[0]->type != REDIS_REPLY_STRING)
        return Status(ErrorCode::kInternal, fmt::format("{}: malformed stream entry", stream_key_));
      last_id = std::string_view(e->element[0]->str, e->element[0]->len);
      JournalRecord rec;
      if (!parse_stream_id(last_id, rec.seq))
        return Status(ErrorCode::kInternal,
                      fmt::format("{}: entry id {} is not <seq>-0", stream_key_, last_id));
      const redisReply* f = e->element[1];
      bool have_t = false, have_d = false;
      for (std::size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
        std::string_view name(f->element[k]->str, f->element[k]->len);
        std::string_view value(f->element[k + 1]->str, f->element[k + 1]->len);
        if (name == "t") {
          int t = 0;
          have_t = parse_int(value, t) && t >= 1 && t <= 255 && (t & 0x7f) >= 1 &&
                   (t & 0x7f) <= static_cast<int>(RecordType::kEventBinary);  // 0x80: sealed
          rec.type = static_cast<RecordType>(t);
        } else if (name == "r") {
          if (!parse_int(value, rec.recv_time)) have_t = false;
        } else if (name == "d") {
          rec.payload = value;
          have_d = true;
        }
      }
      if (!have_t || !have_d) {
        // Never apply half a record: stop here, report exactly where.
        report.problems.push_back(fmt::format(
            "{}: entry {} is malformed; recovery stopped before it", stream_key_, last_id));
        return Status::ok();
      }
      fn(rec);
      ++report.records;
      last_seq_ = std::max(last_seq_, rec.seq);
    }
    from = fmt::format("({}", last_id);
  }
  return replay_spool(after_seq, fn, report);
}

Status RedisLog::replay_spool(std::uint64_t after_seq,
                              const std::function<void(const JournalRecord&)>& fn,
                              RecoveryReport& report) {
  if (opts_.spool_dir.empty() || !has_segments(opts_.spool_dir)) return Status::ok();
  // Records acked from the spool before a stop or crash: those Redis does not
  // hold yet (ids above the stream's last one) are applied after the stream's
  // tail; the drain then pushes the whole spool, skipping what Redis has.
  auto j = Journal::open(spool_journal_options(opts_));
  if (!j) return j.status();
  spool_ = std::move(j.value());
  const std::uint64_t in_redis = std::max(last_seq_, after_seq);
  std::uint64_t first = 0, applied = 0, skipped = 0;
  RecoveryReport rep;
  Status s = spool_->replay(
      0,
      [&](const JournalRecord& r) {
        if (first == 0) first = r.seq;
        if (r.seq > in_redis) {
          fn(r);
          ++applied;
        } else {
          ++skipped;
        }
      },
      rep);
  if (!s) return s;
  for (auto& p : rep.problems) report.problems.push_back(fmt::format("spool: {}", p));
  report.bytes_dropped += rep.bytes_dropped;
  report.records += applied;
  if (first == 0) {  // only damage or empty segments: nothing acked is in there
    (void)spool_->remove_all();
    spool_.reset();
    return Status::ok();
  }
  RecoveryReport krep;
  if (Status ks = spool_->load_keys(
          [&](StoredKey&& k) {
            SpoolKey sk;
            sk.field.assign(reinterpret_cast<const char*>(&k.kid), 8);
            sk.value.assign(reinterpret_cast<const char*>(k.key.data()), 32);
            sk.value.append(k.subject);
            spool_keys_.push_back(std::move(sk));
          },
          krep);
      !ks)
    return ks;
  for (auto& p : krep.problems) report.problems.push_back(fmt::format("spool: {}", p));
  spool_first_seq_ = first;
  drained_seq_ = first - 1;
  last_seq_ = std::max(last_seq_, spool_->last_seq());
  spool_started_ns_ = last_progress_ns_ = mono_ns();
  drain_started_ns_ = 0;
  spool_cause_ = "records left from the previous run";
  stats_.active.store(true);
  update_spool_bytes();
  spdlog::warn(
      "shard {}: spool {} holds records {} to {} from the previous run: {} replayed after the "
      "redis stream, {} already in redis; draining them to redis before any snapshot",
      shard_, opts_.spool_dir, first, spool_->last_seq(), applied, skipped);
  return Status::ok();
}

std::uint64_t RedisLog::append(RecordType type, TimeUs recv_time, std::string_view payload) {
  const std::uint64_t seq = ++last_seq_;
  pending_.push_back({seq, type, recv_time, arena_.size(), payload.size()});
  arena_.append(payload);
  return seq;
}

Status RedisLog::commit() {
  if (pending_.empty()) return Status::ok();
  struct Clear {
    RedisLog& l;
    ~Clear() {
      l.pending_.clear();
      l.arena_.clear();
    }
  } clear{*this};
  // Order: once a commit went to the spool, every later one does too until the
  // drain has caught up, so Redis receives the records in sequence order.
  if (stats_.refused.load(std::memory_order_relaxed))
    return unavailable(
        fmt::format("redis refused the drain of the spool {}: nothing more is acked for this "
                    "shard until an operator acts (docs/operations.md, \"Spool\")",
                    opts_.spool_dir));
  if (spool_) return commit_to_spool(Status::ok());
  Status s = commit_redis();
  if (s || s.code() != ErrorCode::kUnavailable || opts_.spool_max_bytes == 0 ||
      opts_.spool_dir.empty())
    return s;
  return commit_to_spool(s);
}

Status RedisLog::commit_redis() {
  if (Status s = ensure_connected(); !s) return s;
  if (!lease_value_.empty()) return commit_fenced();
  // MULTI, the batch's new keys, one XADD per record, EXEC: one round trip, all or nothing.
  redisAppendCommand(ctx_, "MULTI");
  const bool with_keys = !pending_keys_.empty();
  if (with_keys) {
    std::vector<const char*> kargv{"HSET", keys_key_.data()};
    std::vector<std::size_t> klens{4, keys_key_.size()};
    for (const auto& k : pending_keys_) {
      kargv.push_back(k.data());
      klens.push_back(k.size());
    }
    redisAppendCommandArgv(ctx_, static_cast<int>(kargv.size()), kargv.data(), klens.data());
  }
  char id[32], type[4], recv[24];
  for (const auto& p : pending_) {
    auto idn = fmt::format_to_n(id, sizeof id - 1, "{}-0", p.seq).size;
    auto tn = fmt::format_to_n(type, sizeof type - 1, "{}", static_cast<int>(p.type)).size;
    auto rn = fmt::format_to_n(recv, sizeof recv - 1, "{}", p.recv).size;
    const char* argv[] = {"XADD", stream_key_.data(),      id, "t", type, "r", recv,
                          "d",    arena_.data() + p.offset};
    const std::size_t lens[] = {4, stream_key_.size(), idn, 1, tn, 1, rn, 1, p.size};
    redisAppendCommandArgv(ctx_, 9, argv, lens);
  }
  redisAppendCommand(ctx_, "EXEC");
  Status failed;
  const std::size_t replies = pending_.size() + 2 + (with_keys ? 1 : 0);
  for (std::size_t i = 0; i < replies; ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK) {
      Status s = unavailable(fmt::format("{}: {} (batch of {} records not confirmed)", where(opts_),
                                         ctx_->errstr, pending_.size()));
      drop_connection();
      return s;
    }
    auto r = wrap(raw);
    if (i + 1 < replies) {
      if (r->type == REDIS_REPLY_ERROR && failed.is_ok())
        failed = unavailable(fmt::format("{}: {}", stream_key_, reply_text(r.get())));
      continue;
    }
    // EXEC: nil or an error when the transaction was discarded, else one reply per XADD.
    if (!failed.is_ok()) return failed;
    if (r->type != REDIS_REPLY_ARRAY)
      return unavailable(fmt::format("{}: EXEC: {}", stream_key_, reply_text(r.get())));
    for (std::size_t k = 0; k < r->elements; ++k)
      if (r->element[k]->type == REDIS_REPLY_ERROR)
        return unavailable(fmt::format("{}: XADD: {}", stream_key_, reply_text(r->element[k])));
  }
  pending_keys_.clear();
  return Status::ok();
}

Status RedisLog::commit_fenced() {
  // One EVAL: the owner check and every XADD of the batch, atomically. The
  // script text is sent each time (a few hundred bytes next to the batch);
  // Redis caches its compiled form.
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  std::vector<std::string> nums;          // ids, types, receive times (stable storage)
  nums.reserve(pending_.size() * 3 + 1);  // no reallocation: argv points into it
  argv.reserve(8 + pending_keys_.size() + pending_.size() * 4);
  lens.reserve(argv.capacity());
  auto add = [&](std::string_view a) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  };
  add("EVAL");
  add(kFencedAppend);
  add("3");
  add(stream_key_);
  add(owner_key_);
  add(keys_key_);
  add(lease_value_);
  // The batch's new customer keys (field, value pairs), written by the same script.
  add(nums.emplace_back(std::to_string(pending_keys_.size())));
  for (const auto& k : pending_keys_) add(k);
  for (const auto& p : pending_) {
    add(nums.emplace_back(fmt::format("{}-0", p.seq)));
    add(nums.emplace_back(std::to_string(static_cast<int>(p.type))));
    add(nums.emplace_back(std::to_string(p.recv)));
    add(std::string_view(arena_.data() + p.offset, p.size));
  }
  auto r = wrap(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (!r) {
    Status s = unavailable(fmt::format("{}: {} (batch of {} records not confirmed)", where(opts_),
                                       ctx_->errstr, pending_.size()));
    drop_connection();
    return s;
  }
  if (lease_refused(r.get()))
    return Status(ErrorCode::kWrongNode,
                  fmt::format("{}: this node no longer holds the lease on {} ({})", where(opts_),
                              stream_key_, reply_text(r.get())));
  if (r->type == REDIS_REPLY_ERROR)
    return unavailable(fmt::format("{}: {}", stream_key_, reply_text(r.get())));
  pending_keys_.clear();
  return Status::ok();
}

Result<ReplyPtr> RedisLog::fenced(redisContext* c, const std::vector<std::string_view>& cmd,
                                  const std::string& key) {
  if (lease_value_.empty()) {
    std::vector<std::string_view> args{cmd.front(), key};
    args.insert(args.end(), cmd.begin() + 1, cmd.end());
    return run(c, args);
  }
  std::vector<std::string_view> args{"EVAL", kFencedWrite, "2", owner_key_, key, lease_value_};
  args.insert(args.end(), cmd.begin(), cmd.end());
  return run(c, args);
}

void RedisLog::remove_through(std::uint64_t seq) {
  if (!opts_.trim) return;
  if (!ensure_connected()) return;  // trimmed at the next snapshot instead
  const std::string min = fmt::format("{}-0", seq + 1);
  auto r = fenced(ctx_, {"XTRIM", "MINID", min}, stream_key_);
  if (!r) {
    spdlog::warn("{}: cannot trim {}: {}", where(opts_), stream_key_, r.status().detail());
    drop_connection();
  } else if ((*r)->type == REDIS_REPLY_ERROR) {
    spdlog::warn("{}: cannot trim {}: {}", where(opts_), stream_key_, reply_text(r->get()));
  }
}

Result<bool> RedisLog::read_snapshot(std::uint64_t& seq, std::string& body) {
  if (Status s = ensure_connected(); !s) return s;
  auto r = run(ctx_, {"GET", snapshot_key_});
  if (!r) return r.status();
  const redisReply* x = r->get();
  if (x->type == REDIS_REPLY_NIL) return false;
  if (x->type != REDIS_REPLY_STRING)
    return Status(ErrorCode::kInternal,
                  fmt::format("{}: GET {}: {}", where(opts_), snapshot_key_, reply_text(x)));
  std::string_view v(x->str, x->len);
  if (v.size() < kSnapshotMagic.size() + 12 || !v.starts_with(kSnapshotMagic))
    return Status(ErrorCode::kInternal,
                  fmt::format("{}: {} is not a StorePulse snapshot", where(opts_), snapshot_key_));
  std::uint64_t s = 0;
  std::uint32_t crc = 0;
  std::memcpy(&s, v.data() + 4, 8);
  std::memcpy(&crc, v.data() + 12, 4);
  std::string_view b = v.substr(16);
  if (crc32_of(b) != crc)
    return Status(ErrorCode::kInternal,
                  fmt::format("{}: {} fails its checksum", where(opts_), snapshot_key_));
  seq = s;
  body.assign(b);
  return true;
}

Status RedisLog::write_snapshot(std::uint64_t seq, const std::string& body) {
  // Runs on the snapshot thread: its own connection.
  auto c = redis_connect_for(opts_, snapshot_key_);
  if (!c) return c.status();
  std::string v;
  v.reserve(body.size() + 16);
  v.append(kSnapshotMagic);
  const std::uint32_t crc = crc32_of(body);
  v.append(reinterpret_cast<const char*>(&seq), 8);
  v.append(reinterpret_cast<const char*>(&crc), 4);
  v.append(body);
  auto r = fenced(*c, {"SET", v}, snapshot_key_);
  Status s;
  if (!r)
    s = r.status();
  else if (lease_refused(r->get()))
    s = Status(ErrorCode::kWrongNode, fmt::format("{}: SET {}: not written, {}", where(opts_),
                                                  snapshot_key_, reply_text(r->get())));
  else if ((*r)->type == REDIS_REPLY_ERROR)
    s = unavailable(
        fmt::format("{}: SET {}: {}", where(opts_), snapshot_key_, reply_text(r->get())));
  redisFree(*c);
  return s;
}

std::string lease_key(const std::string& prefix, int shard) {
  return fmt::format("{}:{{s{}}}:owner", prefix, shard);
}

Result<std::string> acquire_lease(redisContext* c, const RedisOptions& o, int shard,
                                  const std::string& lease_value) {
  const std::string key = lease_key(o.prefix, shard);
  const std::string ttl = std::to_string(o.lease_ttl_ms);
  const std::string node(lease_value.substr(0, lease_value.rfind('/') + 1));
  auto r = run(c, {"EVAL", kAcquireLease, "1", key, lease_value, ttl, node});
  if (!r) return r.status();
  const redisReply* x = r->get();
  if (x->type != REDIS_REPLY_STRING)
    return unavailable(fmt::format("{}: lease {}: {}", where(o), key, reply_text(x)));
  std::string_view v(x->str, x->len);
  if (v.empty()) return std::string();
  // "<holder>/<token> <pttl>"
  const auto space = v.rfind(' ');
  long long pttl = 0;
  (void)parse_int(v.substr(space + 1), pttl);
  return fmt::format("{} for {:.1f} s more", holder_name(v.substr(0, space)),
                     static_cast<double>(std::max(0LL, pttl)) / 1000.0);
}

Result<bool> renew_lease(redisContext* c, const RedisOptions& o, int shard,
                         const std::string& lease_value) {
  const std::string key = lease_key(o.prefix, shard);
  const std::string ttl = std::to_string(o.lease_ttl_ms);
  auto r = run(c, {"EVAL", kRenewLease, "1", key, lease_value, ttl});
  if (!r) return r.status();
  const redisReply* x = r->get();
  if (x->type != REDIS_REPLY_INTEGER)
    return unavailable(fmt::format("{}: renew {}: {}", where(o), key, reply_text(x)));
  return x->integer == 1;
}

// ---- Local spool ---------------------------------------------------------------

void RedisLog::update_spool_bytes() {
  const std::uint64_t now = spool_ ? spool_->disk_bytes() : 0;
  if (now >= spool_bytes_counted_)
    opts_.spool_node_bytes->fetch_add(now - spool_bytes_counted_);
  else
    opts_.spool_node_bytes->fetch_sub(spool_bytes_counted_ - now);
  spool_bytes_counted_ = now;
  stats_.bytes.store(now, std::memory_order_relaxed);
  const std::uint64_t last = spool_ ? spool_->last_seq() : 0;
  stats_.records.store(spool_ && last > drained_seq_ ? last - drained_seq_ : 0,
                       std::memory_order_relaxed);
}

Status RedisLog::commit_to_spool(const Status& cause) {
  // The batch keeps the sequence numbers it was given: a record that did land
  // in Redis (lost reply) is recognised by its id when the spool drains.
  std::uint64_t bytes = 0;
  for (const auto& p : pending_) bytes += kSpoolRecordHeader + p.size;
  for (std::size_t i = 0; i + 1 < pending_keys_.size(); i += 2)
    bytes += 48 + pending_keys_[i + 1].size() - 32;
  const bool starting = spool_ == nullptr;
  auto refuse = [&](Status why) {
    // Seqs of a batch that never reached Redis are given back while spooling,
    // so the spool's records stay contiguous.
    if (spool_) last_seq_ = spool_->last_seq();
    if (!cause.is_ok())
      return Status(ErrorCode::kUnavailable,
                    fmt::format("{}; not spooled: {}", cause.detail(), why.detail()));
    return why;
  };
  // Reserve the batch's bytes in the node's budget first: shards spool
  // concurrently, and the bound holds for all of them together.
  std::uint64_t node = opts_.spool_node_bytes->load();
  do {
    if (node + bytes > opts_.spool_max_bytes)
      return refuse(Status(
          ErrorCode::kUnavailable,
          fmt::format("redis spool full ({} of {} bytes on this node, redis.spool_max_bytes); "
                      "{} is still unreachable or draining",
                      node, opts_.spool_max_bytes, where(opts_))));
  } while (!opts_.spool_node_bytes->compare_exchange_weak(node, node + bytes));
  spool_bytes_counted_ += bytes;  // update_spool_bytes() settles it against the files
  struct Settle {
    RedisLog& l;
    ~Settle() { l.update_spool_bytes(); }
  } settle{*this};
  if (starting) {
    // A fresh spool starting at this batch's first seq. Leftover segments were
    // drained already (deleted after the drain, or replayed at start).
    auto j = Journal::open(spool_journal_options(opts_));
    if (!j) return refuse(j.status());
    std::unique_ptr<Journal> jr = std::move(j.value());
    if (Status rm = jr->remove_all(); !rm) return refuse(rm);
    auto j2 = Journal::open(spool_journal_options(opts_));
    if (!j2) return refuse(j2.status());
    spool_ = std::move(j2.value());
    RecoveryReport rep;
    spool_first_seq_ = pending_.front().seq;
    if (Status rs = spool_->replay(
            spool_first_seq_ - 1, [](const JournalRecord&) {}, rep);
        !rs) {
      spool_.reset();
      return refuse(rs);
    }
    drained_seq_ = spool_first_seq_ - 1;
  }
  if (spool_->last_seq() + 1 != pending_.front().seq)  // contiguous, or never written
    return refuse(Status(ErrorCode::kInternal,
                         fmt::format("spool {}: record {} does not follow {}", opts_.spool_dir,
                                     pending_.front().seq, spool_->last_seq())));
  for (std::size_t i = 0; i + 1 < pending_keys_.size(); i += 2) {
    StoredKey k;
    std::memcpy(&k.kid, pending_keys_[i].data(), 8);
    std::memcpy(k.key.data(), pending_keys_[i + 1].data(), 32);
    k.subject.assign(pending_keys_[i + 1], 32);
    spool_->stage_key(k);
  }
  for (const auto& p : pending_)
    spool_->append(p.type, p.recv, std::string_view(arena_).substr(p.offset, p.size));
  if (Status s = spool_->commit(); !s) {
    if (starting) {
      (void)spool_->remove_all();
      spool_.reset();
    }
    return refuse(s);
  }
  for (std::size_t i = 0; i + 1 < pending_keys_.size(); i += 2)
    spool_keys_.push_back({std::move(pending_keys_[i]), std::move(pending_keys_[i + 1]), false});
  pending_keys_.clear();
  stats_.spooled_total.fetch_add(pending_.size(), std::memory_order_relaxed);
  update_spool_bytes();
  if (starting) {
    spool_started_ns_ = mono_ns();
    drain_started_ns_ = 0;
    last_progress_ns_ = spool_started_ns_;
    spool_cause_ = cause.is_ok() ? std::string("redis unavailable") : cause.detail();
    stats_.active.store(true);
    spdlog::warn(
        "shard {}: redis unreachable ({}); acking from the local spool {} from record {} on "
        "(bound {} bytes per node, fsync {})",
        shard_, spool_cause_, opts_.spool_dir, spool_first_seq_, opts_.spool_max_bytes,
        fsync_policy_name(opts_.spool_fsync));
  }
  return Status::ok();
}

void RedisLog::log_spool_progress(bool force) {
  const std::int64_t now = mono_ns();
  if (!force && now - last_progress_ns_ < 5'000'000'000) return;
  last_progress_ns_ = now;
  spdlog::warn("shard {}: spool holds {} records ({} bytes) not yet in redis, for {:.1f} s; {}",
               shard_, stats_.records.load(), stats_.bytes.load(),
               static_cast<double>(now - spool_started_ns_) / 1e9,
               drain_started_ns_
                   ? fmt::format("draining, {} pushed so far", stats_.drained_total.load())
                   : fmt::format("{} still unreachable", where(opts_)));
}

Status RedisLog::tick() {
  if (!spool_) return Status::ok();
  if (Status s = spool_->tick(); !s) return s;
  Status d = drain_step();
  log_spool_progress(false);
  return d;
}

Status RedisLog::sync() {
  return spool_ ? spool_->sync() : Status::ok();
}

Status RedisLog::drain_step() {
  if (stats_.refused.load()) {
    const std::int64_t now = mono_ns();
    if (now - last_refusal_log_ns_ >= 10'000'000'000) {
      last_refusal_log_ns_ = now;
      spdlog::error(
          "shard {}: the spool {} holds {} acked records that redis refused (see above); they "
          "are kept on disk: restart this node once it is the shard's only writer to drain them "
          "(docs/operations.md, \"Spool\")",
          shard_, opts_.spool_dir, stats_.records.load());
    }
    return Status::ok();
  }
  if (Status c = ensure_connected(); !c) return Status::ok();  // still down: progress lines say so
  // Keys first (with or before the records sealed under them), then records.
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  std::vector<std::string> nums;
  nums.reserve(opts_.drain_batch_records * 3 + 2);
  argv.reserve(8 + 2 * opts_.drain_batch_records + 4 * opts_.drain_batch_records + 64);
  lens.reserve(argv.capacity());
  auto add = [&](std::string_view a) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  };
  add("EVAL");
  add(kDrain);
  add("3");
  add(stream_key_);
  add(owner_key_);
  add(keys_key_);
  add(lease_value_);
  std::vector<std::size_t> key_idx;
  for (std::size_t i = 0; i < spool_keys_.size() && key_idx.size() < opts_.drain_batch_records; ++i)
    if (!spool_keys_[i].pushed) key_idx.push_back(i);
  add(nums.emplace_back(std::to_string(key_idx.size() * 2)));
  for (auto i : key_idx) {
    add(spool_keys_[i].field);
    add(spool_keys_[i].value);
  }
  // Records, unless this step is all keys (records must not overtake them).
  std::string records;  // owns the payloads read from the spool files
  struct Rec {
    std::uint64_t seq;
    int type;
    TimeUs recv;
    std::size_t off, size;
  };
  std::vector<Rec> recs;
  const bool keys_left = key_idx.size() == opts_.drain_batch_records;
  if (!keys_left) {
    Status rs =
        spool_->read_committed(drained_seq_, opts_.drain_batch_bytes, opts_.drain_batch_records,
                               [&](const JournalRecord& r) {
                                 recs.push_back({r.seq, static_cast<int>(r.type), r.recv_time,
                                                 records.size(), r.payload.size()});
                                 records.append(r.payload);
                               });
    if (!rs) {
      spdlog::error("shard {}: cannot read the spool: {}", shard_, rs.detail());
      return rs;
    }
  }
  if (key_idx.empty() && recs.empty()) {
    if (drained_seq_ >= spool_->last_seq()) finish_drain();
    return Status::ok();
  }
  for (const auto& r : recs) {
    add(nums.emplace_back(fmt::format("{}-0", r.seq)));
    add(nums.emplace_back(std::to_string(r.type)));
    add(nums.emplace_back(std::to_string(r.recv)));
    add(std::string_view(records).substr(r.off, r.size));
  }
  if (drain_started_ns_ == 0) {
    drain_started_ns_ = mono_ns();
    spdlog::info("shard {}: {} is back; draining the spool ({} records, {} bytes)", shard_,
                 where(opts_), stats_.records.load(), stats_.bytes.load());
  }
  auto r = wrap(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (!r) {
    spdlog::warn("shard {}: spool drain step not confirmed: {}", shard_, ctx_->errstr);
    drop_connection();
    return Status::ok();
  }
  if (r->type == REDIS_REPLY_ERROR) {
    const std::string why = reply_text(r.get());
    if (lease_refused(r.get()) || why.starts_with("CONFLICT")) {
      stats_.refused.store(true);
      last_refusal_log_ns_ = mono_ns();
      spdlog::error(
          "shard {}: redis REFUSED the spool drain at record {}: {}. The spool {} keeps its {} "
          "acked "
          "records; nothing more is acked for this shard on this node until an operator acts "
          "(docs/operations.md, \"Spool\")",
          shard_, recs.empty() ? drained_seq_ : recs.front().seq, why, opts_.spool_dir,
          stats_.records.load());
      if (lease_refused(r.get()))
        return Status(ErrorCode::kWrongNode, fmt::format("{}: lease on {} lost while spooling ({})",
                                                         where(opts_), stream_key_, why));
      return Status(ErrorCode::kInternal, why);
    }
    spdlog::warn("shard {}: spool drain step failed: {}", shard_,
                 why);  // e.g. OOM: retried next tick
    return Status::ok();
  }
  for (auto i : key_idx) spool_keys_[i].pushed = true;
  if (!recs.empty()) {
    drained_seq_ = recs.back().seq;
    stats_.drained_total.fetch_add(recs.size(), std::memory_order_relaxed);
  }
  if (drained_seq_ >= spool_->last_seq()) {
    finish_drain();
  } else {
    spool_->remove_segments_through(drained_seq_);
    update_spool_bytes();
  }
  return Status::ok();
}

void RedisLog::finish_drain() {
  const std::int64_t now = mono_ns();
  const std::uint64_t n = drained_seq_ + 1 - spool_first_seq_;
  if (Status s = spool_->remove_all(); !s)
    spdlog::warn("shard {}: spool drained, but {} (a restart re-checks and skips what redis has)",
                 shard_, s.detail());
  spool_.reset();
  spool_keys_.clear();
  update_spool_bytes();
  const std::int64_t drain_ns = now - (drain_started_ns_ ? drain_started_ns_ : now);
  const std::int64_t outage_ns = now - (spool_started_ns_ ? spool_started_ns_ : now);
  stats_.last_drain_ms.store(static_cast<std::uint64_t>(drain_ns / 1'000'000));
  stats_.last_outage_ms.store(static_cast<std::uint64_t>(outage_ns / 1'000'000));
  stats_.drains_total.fetch_add(1);
  stats_.active.store(false);
  spdlog::info(
      "shard {}: spool drained: {} records (from {} to {}) are in redis; drain took {:.3f} s, "
      "spooled for {:.1f} s",
      shard_, n, spool_first_seq_, drained_seq_, static_cast<double>(drain_ns) / 1e9,
      static_cast<double>(outage_ns) / 1e9);
  drain_started_ns_ = spool_started_ns_ = 0;
}

std::string RedisLog::describe() const {
  return fmt::format("redis stream {} at {}:{}", stream_key_, opts_.host, opts_.port);
}

}  // namespace storepulse::store
