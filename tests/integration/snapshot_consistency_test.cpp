// A snapshot written while events arrive is the state at exactly the log
// position it names, for both stores: the real server takes snapshots every
// 50 ms under load (history kept: store.archive_segments), the test captures
// each snapshot as it appears, and afterwards restores every captured snapshot
// + the log tail after its position in a fresh server and compares every
// profile with what a replay of the full log gives.
#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <sstream>

#include "storepulse/store/snapshot.hpp"
#include "support/redis_process.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse::test;
namespace fs = std::filesystem;
namespace http = boost::beast::http;

namespace {

constexpr int kCustomers = 16, kClients = 2, kPerClient = 700;

struct Capture {
  std::uint64_t seq = 0;
  std::string raw;  // snapshot.bin bytes or the Redis snapshot value
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Position named by a captured snapshot: SPS1 | u64 seq | … for Redis; the
/// file format is read back through store::read_snapshot.
std::uint64_t seq_of_file(const std::string& raw, const std::string& scratch) {
  fs::create_directories(scratch);
  std::ofstream(scratch + "/snapshot.bin", std::ios::binary) << raw;
  std::uint64_t seq = 0;
  std::string body;
  auto r = storepulse::store::read_snapshot(scratch, seq, body);
  REQUIRE(r.is_ok());
  REQUIRE(*r);
  return seq;
}
std::uint64_t seq_of_redis(const std::string& raw) {
  REQUIRE(raw.size() >= 16);
  REQUIRE(raw.compare(0, 4, "SPS1") == 0);
  std::uint64_t seq = 0;
  std::memcpy(&seq, raw.data() + 4, 8);
  return seq;
}

/// Every profile as JSON, without `recentEvents` (a ring of what this process
/// applied, not persisted state).
std::map<std::string, std::string> profiles(unsigned short port) {
  std::map<std::string, std::string> out;
  for (int c = 0; c < kCustomers; ++c) {
    const std::string id = fmt::format("S{}", c);
    auto p = http_request(port, http::verb::get, "/v1/profiles/" + id, kAdminToken);
    REQUIRE(p.status == 200);
    const auto at = p.body.find(",\"recentEvents\":");
    REQUIRE(at != std::string::npos);
    out[id] = p.body.substr(0, at);
  }
  return out;
}

/// Sends kClients x kPerClient events (orders and cart adds) while `poll`
/// captures snapshots; returns when all are acked.
void load(unsigned short port, const std::function<void()>& poll) {
  std::atomic<bool> done{false};
  std::thread poller([&] {
    while (!done.load()) {
      poll();
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
  });
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      // No REQUIRE off the test thread: Catch2 v2 is not thread-safe.
      WsClient pos(port, "/v1/pos", kPosKey);
      if (!pos.ok()) {
        ++failed;
        return;
      }
      for (int i = 0; i < kPerClient; ++i) {
        const int n = c * kPerClient + i;
        const std::string json =
            n % 3 == 0
                ? fmt::format(
                      R"({{"type":"track","event":"Product Added","messageId":"snap-{}","userId":"S{}","properties":{{"productId":"P{}","name":"Item {}","category":"C{}","price":{}.50,"quantity":1}}}})",
                      n, n % kCustomers, n % 7, n % 7, n % 4, 3 + n % 11)
                : fmt::format(
                      R"({{"type":"track","event":"Order Completed","messageId":"snap-{}","userId":"S{}","properties":{{"orderId":"O{}","total":{}.25,"products":[{{"productId":"P{}","category":"C{}","brand":"B{}","price":{}.25,"quantity":1}}]}}}})",
                      n, n % kCustomers, n, 5 + n % 40, n % 7, n % 4, n % 3, 5 + n % 40);
        // Paced (~0.3 ms per event) so that a run spans many 50 ms snapshot intervals.
        std::this_thread::sleep_for(std::chrono::microseconds(300));
        pos.send(json);
        auto r = pos.read();  // ack, or actions when a rule fired (also an ack)
        if (!r || !(has(*r, "\"ack\"") || has(*r, "\"actions\""))) {
          ++failed;
          return;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  done.store(true);
  poller.join();
  REQUIRE(failed.load() == 0);
}

/// GET without Catch assertions (runs on the poller thread).
std::string get_value(unsigned short port, const std::string& key) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (!c) return {};
  std::string out;
  if (!c->err)
    if (auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", key.data(), key.size()))) {
      if (r->type == REDIS_REPLY_STRING) out.assign(r->str, r->len);
      freeReplyObject(r);
    }
  redisFree(c);
  return out;
}

void add_capture(std::vector<Capture>& caps, std::string raw, std::uint64_t seq) {
  if (raw.empty() || (!caps.empty() && caps.back().raw == raw)) return;
  caps.push_back({seq, std::move(raw)});
}

void check_captures(const std::vector<Capture>& caps, std::uint64_t last_seq) {
  // Snapshots taken mid-stream, not only at the end.
  std::size_t mid = 0;
  for (const auto& c : caps)
    if (c.seq > 0 && c.seq < last_seq) ++mid;
  INFO("captured " << caps.size() << " snapshots, last log position " << last_seq);
  REQUIRE(mid >= 3);
}

/// A server restored from capture `c` (its data laid out by the caller) reports
/// snapshot@seq plus the tail, and holds exactly the profiles of the full replay.
void check_restored(const ServerProcess& restored, const Capture& c, std::uint64_t last_seq,
                    const std::map<std::string, std::string>& want) {
  CHECK_THAT(
      restored.startup_output(),
      Catch::Contains(fmt::format("snapshot@{} + {} journal records", c.seq, last_seq - c.seq)));
  const auto got = profiles(restored.port());
  for (const auto& [id, json] : want) {
    INFO(id);
    CHECK(got.at(id) == json);
  }
}

void print_positions(const char* store, const std::vector<Capture>& caps, std::uint64_t last_seq) {
  std::printf("%s snapshot consistency: %zu snapshots captured under load at positions", store,
              caps.size());
  for (const auto& c : caps) std::printf(" %llu", static_cast<unsigned long long>(c.seq));
  std::printf(" of %llu; each + its tail == full replay\n",
              static_cast<unsigned long long>(last_seq));
}

const char* kSnapshotEvery =
    "snapshot_interval = \"50ms\"\nsnapshot_min_records = 1\narchive_segments = true\n";

}  // namespace

TEST_CASE(
    "embedded store: snapshots written while events arrive match a full replay at their position",
    "[durability][snapshot]") {
  TempDir dir;
  const std::string config = dir / "embedded.toml";
  std::ofstream(config) << "[store]\nfsync = \"never\"\nsegment_bytes = 65536\n" << kSnapshotEvery;
  const std::string data = dir / "data";
  const std::string shard = data + "/shard-000";
  std::vector<Capture> caps;
  int scratch = 0;
  {
    ServerProcess srv(data, {"--config", config, "--shards", "1"});
    load(srv.port(), [&] {
      std::string raw = read_file(shard + "/snapshot.bin");  // renamed into place: whole or old
      add_capture(caps, std::move(raw), 0);
    });
    for (auto& c : caps) c.seq = seq_of_file(c.raw, dir / fmt::format("scratch-{}", scratch++));
    srv.kill9();  // no final snapshot: the log holds everything after the last one
  }
  const std::uint64_t last_seq = kClients * kPerClient;
  check_captures(caps, last_seq);

  // The full log: live segments plus the archived ones.
  auto lay_out = [&](const std::string& to, const std::string* snapshot) {
    fs::create_directories(to + "/shard-000");
    fs::copy_file(data + "/storepulse.meta", to + "/storepulse.meta");
    for (const auto& from : {shard, shard + "/archive"})
      for (const auto& e : fs::directory_iterator(from))
        if (e.path().extension() == ".log")
          fs::copy_file(e.path(), to + "/shard-000/" + e.path().filename().string());
    // The customer keys the sealed records open with (privacy.encrypt_journal).
    if (fs::exists(shard + "/keys.bin"))
      fs::copy_file(shard + "/keys.bin", to + "/shard-000/keys.bin");
    if (snapshot) std::ofstream(to + "/shard-000/snapshot.bin", std::ios::binary) << *snapshot;
  };
  lay_out(dir / "full", nullptr);
  std::map<std::string, std::string> want;
  {
    ServerProcess full(dir / "full", {"--config", config, "--shards", "1"});
    CHECK_THAT(full.startup_output(),
               Catch::Contains(fmt::format("snapshot@0 + {} journal records", last_seq)));
    want = profiles(full.port());
    full.kill9();
  }
  for (std::size_t i = 0; i < caps.size(); ++i) {
    INFO("snapshot " << i << " at log position " << caps[i].seq);
    const std::string to = dir / fmt::format("restore-{}", i);
    lay_out(to, &caps[i].raw);
    ServerProcess restored(to, {"--config", config, "--shards", "1"});
    check_restored(restored, caps[i], last_seq, want);
    restored.kill9();
  }
  print_positions("embedded", caps, last_seq);
}

TEST_CASE(
    "redis store: snapshots written while events arrive match a full replay at their position",
    "[durability][snapshot][redis]") {
  TempDir dir;
  fs::create_directories(dir / "redis");
  RedisProcess redis(dir / "redis");
  const std::string config = dir / "redis.toml";
  std::ofstream(config) << "[store]\nkind = \"redis\"\n"
                        << kSnapshotEvery << "[redis]\nurl = \"" << redis.url()
                        << "\"\nprefix = \"snapc\"\n";
  const std::string key = "snapc:{s0}:snapshot";
  std::vector<Capture> caps;
  {
    ServerProcess srv(dir / "data", {"--config", config, "--shards", "1"});
    load(srv.port(), [&] { add_capture(caps, get_value(redis.port(), key), 0); });
    for (auto& c : caps) c.seq = seq_of_redis(c.raw);
    srv.kill9();
  }
  const std::uint64_t last_seq = kClients * kPerClient;
  check_captures(caps, last_seq);
  CHECK(redis.command({"XLEN", "snapc:{s0}:log"}) == std::to_string(last_seq));  // not trimmed

  redis.command({"DEL", key});
  std::map<std::string, std::string> want;
  {
    ServerProcess full(dir / "data", {"--config", config, "--shards", "1"});
    CHECK_THAT(full.startup_output(),
               Catch::Contains(fmt::format("snapshot@0 + {} journal records", last_seq)));
    want = profiles(full.port());
    full.kill9();
  }
  for (std::size_t i = 0; i < caps.size(); ++i) {
    INFO("snapshot " << i << " at log position " << caps[i].seq);
    redis.command({"SET", key, caps[i].raw});
    ServerProcess restored(dir / "data", {"--config", config, "--shards", "1"});
    check_restored(restored, caps[i], last_seq, want);
    restored.kill9();
  }
  print_positions("redis", caps, last_seq);
}
