// Redis killed under load (SIGKILL, several seconds), then started again on the
// same port and AOF: the server keeps acking from its local spool, drains it
// when Redis is back, and no acked event is lost or applied twice — live and
// after the server itself is killed and restarted. Also: a full spool answers
// `unavailable` and acks nothing.
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "support/profiles.hpp"
#include "support/redis_process.hpp"
#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse::test;
namespace http = boost::beast::http;

namespace {

std::string spool_config(const TempDir& dir, const RedisProcess& redis,
                         std::uint64_t spool_max_bytes, const std::string& extra_redis_keys = "") {
  const std::string path = dir / "spool.toml";
  std::ofstream(path)
      << "[store]\nkind = \"redis\"\nsnapshot_interval = \"1s\"\nsnapshot_min_records = 100\n"
      << "[redis]\nurl = \"" << redis.url() << "\"\nprefix = \"spool\"\n"
      << "spool_max_bytes = " << spool_max_bytes << "\n"
      << extra_redis_keys;
  return path;
}

/// Waits (up to 10 s) until the spool is empty; the last /metrics body.
std::string wait_drained(unsigned short port) {
  std::string m;
  for (int i = 0; i < 200; ++i) {
    m = http_request(port, http::verb::get, "/metrics").body;
    if (metric_value(m, "storepulse_redis_spool_records") == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return m;
}

std::string metrics(unsigned short port) {
  return http_request(port, http::verb::get, "/metrics").body;
}

long rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  return -1;
}

}  // namespace

TEST_CASE(
    "redis spool: redis killed for seconds under load and restarted - 0 lost, 0 twice, spool "
    "bounded",
    "[redis][spool]") {
  constexpr int kClients = 4, kCustomers = 16;
  constexpr std::uint64_t kBound = 4ull << 20;  // small enough to fill during the outage
  TempDir dir;
  std::filesystem::create_directories(dir / "redis");
  RedisProcess redis(dir / "redis");
  const std::string config = spool_config(dir, redis, kBound);
  auto srv = std::make_unique<ServerProcess>(
      dir / "data", std::vector<std::string>{"--config", config, "--fsync", "always"});
  const unsigned short port = srv->port();

  std::mutex mu;
  std::map<std::string, std::set<std::string>> acked;  // customer -> messageIds acked
  std::atomic<bool> stop{false};
  std::atomic<int> acks{0}, errors{0};
  // Each client sends orders one after another and re-sends an order until it
  // is acked (same messageId), as a POS terminal does.
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      WsClient pos(port, "/v1/pos", kPosKey);
      if (!pos.ok()) return;  // no REQUIRE off the test thread; the ack counts below catch it
      for (int i = 0; !stop.load(); ++i) {
        const std::string cust = fmt::format("S{}", (c * 7919 + i) % kCustomers);
        const std::string mid = fmt::format("spool-{}-{}", c, i);
        for (;;) {
          beast::error_code ec;
          pos.stream().text(true);
          pos.stream().write(asio::buffer(order_json(mid, cust)), ec);
          if (ec) return;
          const auto r = pos.read();
          if (!r) return;
          if (acked_reply(*r)) {
            std::lock_guard<std::mutex> lk(mu);
            acked[cust].insert(mid);
            ++acks;
            break;
          }
          ++errors;
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      }
    });
  }
  auto wait_acks = [&](int n) {
    for (int i = 0; i < 2000 && acks.load() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(acks.load() >= n);
  };
  wait_acks(300);
  const long rss_before = rss_kib(srv->pid());
  redis.kill9();
  const int acks_at_kill = acks.load();
  double max_spool_bytes = 0;
  const auto outage_end = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  while (std::chrono::steady_clock::now() < outage_end) {
    max_spool_bytes =
        std::max(max_spool_bytes, metric_value(metrics(port), "storepulse_redis_spool_bytes"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const int acked_in_outage = acks.load() - acks_at_kill;
  const std::string during = metrics(port);
  const auto shards = http_request(port, http::verb::get, "/v1/admin/shards", kAdminToken);
  const long rss_outage = rss_kib(srv->pid());
  redis.start();  // same port, same AOF
  // Drained: nothing left in the spool, and one drain per shard that spooled.
  std::string after;
  for (int i = 0; i < 300; ++i) {
    after = metrics(port);
    if (metric_value(after, "storepulse_redis_spool_records") == 0 &&
        metric_value(after, "storepulse_redis_spool_drains_total") >= 1)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  wait_acks(acks.load() + 200);  // keeps acking after the drain, through Redis again
  stop = true;
  for (auto& t : clients) t.join();
  after = metrics(port);

  INFO(during);
  INFO(shards.body);
  CHECK(acked_in_outage > 100);  // acked while Redis was dead: from the spool
  CHECK(metric_value(during, "storepulse_redis_spooled_total") > 0);
  CHECK(has(shards.body, R"("spool":{"enabled":true,"maxBytes":4194304)"));
  CHECK_FALSE(has(shards.body, R"("spooling":[])"));
  CHECK(max_spool_bytes > 0);
  CHECK(max_spool_bytes <= static_cast<double>(kBound));
  CHECK(metric_value(after, "storepulse_redis_spool_records") == 0);
  CHECK(metric_value(after, "storepulse_redis_spool_bytes") == 0);
  CHECK(metric_value(after, "storepulse_redis_spool_refused_shards") == 0);
  const double drained = metric_value(after, "storepulse_redis_spool_drained_total");
  const double drain_s = metric_value(after, "storepulse_redis_spool_last_drain_seconds");
  const double outage_s = metric_value(after, "storepulse_redis_spool_last_outage_seconds");
  CHECK(drained >= metric_value(during, "storepulse_redis_spooled_total"));
  CHECK(drain_s >= 0);
  CHECK(drain_s < 5);
  CHECK(outage_s >= 3.5);
  std::printf(
      "redis spool: %d acked (%d while redis was dead, %d unavailable replies re-sent), %.0f "
      "records "
      "drained, spool peak %.0f bytes of %llu, drain took %.3f s after an outage of %.1f s, rss "
      "%ld -> %ld "
      "KiB during the outage\n",
      acks.load(), acked_in_outage, errors.load(), drained, max_spool_bytes,
      static_cast<unsigned long long>(kBound), drain_s, outage_s, rss_before, rss_outage);
  std::fflush(stdout);
  CHECK(rss_outage - rss_before < 200 * 1024);  // memory bounded: the spool is on disk

  auto check_counts = [&](unsigned short p, const char* when) {
    int lost = 0, twice = 0;
    for (const auto& [cust, mids] : acked) {
      const int freq = frequency_of(p, cust);
      lost += std::max(0, static_cast<int>(mids.size()) - freq);
      twice += std::max(0, freq - static_cast<int>(mids.size()));
    }
    std::printf("redis spool, %s: %d lost, %d applied twice\n", when, lost, twice);
    CHECK(lost == 0);
    CHECK(twice == 0);
  };
  check_counts(port, "live");
  // Every event was acked (clients re-send until acked), so the counts must equal the acks.
  srv->kill9();
  srv = std::make_unique<ServerProcess>(
      dir / "data", std::vector<std::string>{"--config", config, "--fsync", "always"});
  check_counts(srv->port(), "after kill -9 and restart");
  CHECK_FALSE(std::filesystem::exists(dir / "data/spool/shard-000/keys.bin"));
}

TEST_CASE(
    "redis spool: a full spool answers unavailable, acks nothing, and the event is applied once "
    "when re-sent",
    "[redis][spool]") {
  TempDir dir;
  std::filesystem::create_directories(dir / "redis");
  RedisProcess redis(dir / "redis");
  const std::string config = spool_config(dir, redis, 1 << 20);  // the smallest bound allowed
  ServerProcess srv(dir / "data", {"--config", config, "--shards", "1"});
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  REQUIRE(acked_reply(pos.request(order_json("full-0", "F1"))));
  redis.kill9();
  // ~8 KiB records. The journal keeps the decoded event (unknown fields are not
  // kept), so the bulk is in fields it keeps: eight products with long names.
  std::string pad = R"(,"products":[)";
  for (int p = 0; p < 8; ++p)
    pad += fmt::format(R"({}{{"productId":"p{}","name":"{}"}})", p ? "," : "", p,
                       std::string(1000, 'x'));
  pad += "]";
  int acked = 1;
  std::string refused_reply, refused_mid;
  for (int i = 1; i < 1000 && refused_mid.empty(); ++i) {
    const std::string mid = fmt::format("full-{}", i);
    const std::string r = pos.request(order_json(mid, "F1", pad));
    if (acked_reply(r))
      ++acked;
    else {
      refused_reply = r;
      refused_mid = mid;
    }
  }
  INFO(refused_reply);
  REQUIRE_FALSE(refused_mid.empty());
  CHECK(has(refused_reply, R"("code":"unavailable")"));
  CHECK(has(refused_reply, "spool full"));
  CHECK(acked > 50);                               // 1 MiB of ~8 KiB records
  CHECK(frequency_of(srv.port(), "F1") == acked);  // the refused order was not applied
  CHECK(metric_value(metrics(srv.port()), "storepulse_redis_spool_bytes") <= 1 << 20);
  redis.start();
  CHECK(metric_value(wait_drained(srv.port()), "storepulse_redis_spool_records") == 0);
  REQUIRE(acked_reply(pos.request(order_json(refused_mid, "F1", pad))));
  REQUIRE(acked_reply(pos.request(order_json(refused_mid, "F1", pad))));  // a duplicate now
  CHECK(frequency_of(srv.port(), "F1") == acked + 1);
}

TEST_CASE(
    "redis spool: a graceful stop while redis is down keeps the spool, and the restart replays and "
    "drains it",
    "[redis][spool]") {
  TempDir dir;
  std::filesystem::create_directories(dir / "redis");
  RedisProcess redis(dir / "redis");
  const std::string config = spool_config(dir, redis, 4u << 20);
  auto srv =
      std::make_unique<ServerProcess>(dir / "data", std::vector<std::string>{"--config", config});
  {
    WsClient pos(srv->port(), "/v1/pos", kPosKey);
    REQUIRE(pos.ok());
    for (int i = 0; i < 10; ++i)
      REQUIRE(acked_reply(pos.request(order_json(fmt::format("gs-a{}", i), "G1"))));
    redis.kill9();
    // Acked from the spool: Redis is dead.
    for (int i = 0; i < 25; ++i)
      REQUIRE(acked_reply(pos.request(order_json(fmt::format("gs-b{}", i), "G1"))));
    CHECK(frequency_of(srv->port(), "G1") == 35);
    CHECK(metric_value(metrics(srv->port()), "storepulse_redis_spool_records") >= 25);
  }
  // SIGTERM with Redis still down: the final snapshot cannot be written (it
  // would name records Redis lacks), but the stop must neither hang nor drop
  // the spool.
  CHECK(srv->stop_within(std::chrono::seconds(30)) == 0);
  CHECK(std::filesystem::exists(dir / "data/spool"));
  redis.start();
  srv = std::make_unique<ServerProcess>(dir / "data", std::vector<std::string>{"--config", config});
  CHECK(frequency_of(srv->port(), "G1") == 35);  // Redis' 10 + the spooled 25, once each
  CHECK(metric_value(wait_drained(srv->port()), "storepulse_redis_spool_records") == 0);
  // Drained into Redis: a kill -9 now and a restart read it all from Redis.
  srv->kill9();
  srv = std::make_unique<ServerProcess>(dir / "data", std::vector<std::string>{"--config", config});
  CHECK(frequency_of(srv->port(), "G1") == 35);
  WsClient pos(srv->port(), "/v1/pos", kPosKey);
  REQUIRE(acked_reply(pos.request(order_json("gs-b3", "G1"))));  // a spooled id: still a duplicate
  CHECK(frequency_of(srv->port(), "G1") == 35);
}

TEST_CASE(
    "redis spool: an erasure while spooling answers 503 and changes nothing on disk; once drained "
    "it erases",
    "[redis][spool]") {
  TempDir dir;
  std::filesystem::create_directories(dir / "redis");
  RedisProcess redis(dir / "redis");
  const std::string config = spool_config(dir, redis, 4u << 20);
  ServerProcess srv(dir / "data", {"--config", config});
  WsClient pos(srv.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  REQUIRE(acked_reply(pos.request(order_json("er-1", "E1"))));
  REQUIRE(acked_reply(pos.request(order_json("keep-1", "K1"))));
  redis.kill9();
  REQUIRE(acked_reply(pos.request(order_json("er-2", "E1"))));  // spooled
  auto del = http_request(srv.port(), http::verb::delete_, "/v1/profiles/E1", kAdminToken);
  INFO(del.body);
  CHECK(del.status == 503);
  CHECK(has(del.body, "spool is not drained"));
  redis.start();
  REQUIRE(metric_value(wait_drained(srv.port()), "storepulse_redis_spool_records") == 0);
  // The retry the 503 asked for: the key is destroyed now.
  del = http_request(srv.port(), http::verb::delete_, "/v1/profiles/E1", kAdminToken);
  INFO(del.body);
  CHECK(del.status == 200);
  CHECK(has(del.body, R"("erased":"E1")"));
  CHECK(http_request(srv.port(), http::verb::get, "/v1/profiles/E1", kAdminToken).status == 404);
  CHECK(frequency_of(srv.port(), "K1") == 1);
}

TEST_CASE(
    "redis spool: an outage longer than lease_ttl stops the shard with its spool kept; a restart "
    "drains it",
    "[redis][spool]") {
  TempDir dir;
  std::filesystem::create_directories(dir / "redis");
  RedisProcess redis(dir / "redis");
  const std::string config = spool_config(dir, redis, 4u << 20, "lease_ttl = \"600ms\"\n");
  auto srv = std::make_unique<ServerProcess>(
      dir / "data", std::vector<std::string>{"--config", config, "--shards", "1"});
  int acked = 0;
  {
    WsClient pos(srv->port(), "/v1/pos", kPosKey);
    REQUIRE(pos.ok());
    for (int i = 0; i < 5; ++i)
      acked += acked_reply(pos.request(order_json(fmt::format("ll-a{}", i), "L1")));
    redis.kill9();
    for (int i = 0; i < 20; ++i)
      acked += acked_reply(pos.request(order_json(fmt::format("ll-b{}", i), "L1")));
    REQUIRE(acked == 25);  // the last 20 from the spool
    // Dead for 5 lease lifetimes: when Redis is back the lease has expired, so
    // the drain is refused and the shard stops serving instead of writing
    // acked events under a lease it no longer holds.
    std::this_thread::sleep_for(std::chrono::seconds(3));
    redis.start();
    std::string m;
    for (int i = 0; i < 200; ++i) {
      m = metrics(srv->port());
      if (metric_value(m, "storepulse_redis_spool_refused_shards") >= 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    INFO(m);
    CHECK(metric_value(m, "storepulse_redis_spool_refused_shards") == 1);
    CHECK(metric_value(m, "storepulse_redis_spool_records") >= 20);  // kept
    const std::string r = pos.request(order_json("ll-c0", "L1"));
    INFO(r);
    CHECK_FALSE(acked_reply(r));  // not served any more: nothing is acked without the lease
  }
  CHECK(srv->stop_within(std::chrono::seconds(30)) == 0);
  // The restart takes the lease back, replays Redis plus the spool and drains it.
  srv = std::make_unique<ServerProcess>(
      dir / "data", std::vector<std::string>{"--config", config, "--shards", "1"});
  CHECK(frequency_of(srv->port(), "L1") == 25);
  const std::string m = wait_drained(srv->port());
  CHECK(metric_value(m, "storepulse_redis_spool_records") == 0);
  CHECK(metric_value(m, "storepulse_redis_spool_refused_shards") == 0);
  srv->kill9();
  srv = std::make_unique<ServerProcess>(
      dir / "data", std::vector<std::string>{"--config", config, "--shards", "1"});
  CHECK(frequency_of(srv->port(), "L1") == 25);  // all in Redis now
}
