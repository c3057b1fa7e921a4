// Several nodes against one Redis: two real servers, each serving half of the
// shards under a lease in Redis, a client that routes each customer to the node
// owning its shard, and a failover where node A is killed with SIGKILL under
// load and node B claims A's shards. Afterwards every event is applied exactly
// once: none acked by A is lost, none re-sent after the failover counts twice.
#include <atomic>
#include <catch2/catch.hpp>
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

constexpr int kShards = 4;

// The routing function as docs/protocol.md states it (written from the doc,
// not from the engine's code): FNV-1a 64 of the customer key, mod shards, with
// StorePulse's start value 1469598103934665603 (not the standard FNV basis).
int shard_for(const std::string& key) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<int>(h % kShards);
}

std::string node_config(const std::string& dir, const RedisProcess& redis, const std::string& node,
                        const std::string& owned) {
  const std::string path = dir + "/" + node + ".toml";
  std::ofstream c(path);
  c << "[engine]\nshards = " << kShards << "\nowned_shards = \"" << owned << "\"\nnode_id = \""
    << node << "\"\n[store]\nkind = \"redis\"\n[redis]\nurl = \"" << redis.url()
    << "\"\nprefix = \"two\"\nlease_ttl = \"1s\"\nconnect_timeout = \"500ms\"\ncommand_timeout = "
       "\"2s\"\n";
  return path;
}

std::string order(const std::string& mid, const std::string& customer) {
  return fmt::format(
      R"({{"type":"track","event":"Order Completed","messageId":"{}","userId":"{}","properties":{{"total":1}}}})",
      mid, customer);
}

}  // namespace

TEST_CASE(
    "two nodes share one redis: each serves its shards and refuses the others with wrong_node",
    "[redis][two-node]") {
  TempDir dir;
  std::filesystem::create_directories(dir / "redis");
  RedisProcess redis(dir / "redis");
  ServerProcess a(dir / "data-a", {"--config", node_config(dir.str(), redis, "node-a", "0-1")});
  ServerProcess b(dir / "data-b", {"--config", node_config(dir.str(), redis, "node-b", "2-3")});

  // The shard map a client routes by.
  auto map = http_request(a.port(), http::verb::get, "/v1/admin/shards", kAdminToken);
  REQUIRE(map.status == 200);
  CHECK(has(map.body, R"("node":"node-a")"));
  CHECK(has(map.body, R"("shards":4)"));
  CHECK(has(map.body, R"("hash":"fnv1a64")"));
  CHECK(has(map.body, R"("serving":[0,1])"));
  CHECK(has(http_request(b.port(), http::verb::get, "/v1/admin/shards", kAdminToken).body,
            R"("serving":[2,3])"));

  // A customer of shard 2 sent to node A: a clear error, no state anywhere.
  std::string on_b;
  for (int i = 0; on_b.empty(); ++i)
    if (shard_for(fmt::format("W{}", i)) == 2) on_b = fmt::format("W{}", i);
  WsClient pos_a(a.port(), "/v1/pos", kPosKey);
  REQUIRE(pos_a.ok());
  const std::string r = pos_a.request(order("wrong-1", on_b));
  CHECK(has(r, R"("code":"wrong_node")"));
  CHECK(has(r, "shard 2"));
  CHECK(has(r, "serves shards 0-1"));
  CHECK(frequency_of(b.port(), on_b) == 0);
  const auto metrics = http_request(a.port(), http::verb::get, "/metrics");
  CHECK(has(metrics.body, "storepulse_errors_total{code=\"wrong_node\"} 1\n"));
  CHECK(has(metrics.body, "storepulse_shard_serving{shard=\"2\"} 0\n"));
  CHECK(has(metrics.body, "storepulse_shard_serving{shard=\"1\"} 1\n"));
  auto misdirected = http_request(a.port(), http::verb::get, "/v1/profiles/" + on_b, kAdminToken);
  CHECK(misdirected.status == 421);
  CHECK(has(misdirected.body, "wrong_node"));
  // Sent to its owner, the same event is applied once.
  WsClient pos_b(b.port(), "/v1/pos", kPosKey);
  REQUIRE(pos_b.ok());
  CHECK(has(pos_b.request(order("wrong-1", on_b)), "\"ack\""));
  CHECK(frequency_of(b.port(), on_b) == 1);

  // A third node cannot serve shards whose lease a live node holds.
  const ServeExit third =
      serve_until_exit(node_config(dir.str(), redis, "node-c", "1-2"), dir / "data-c");
  CHECK(third.code != 0);
  CHECK_THAT(third.output, Catch::Contains("shard 1 is leased by node node-a"));
  // ... nor can a live node's shards be claimed.
  auto claim =
      http_request(b.port(), http::verb::post, "/v1/admin/shards/claim?shards=0-1", kAdminToken);
  CHECK(claim.status == 409);
  CHECK(has(claim.body, "leased by node node-a"));
}

TEST_CASE(
    "two nodes share one redis: node A killed under load and node B takes over - 0 lost 0 twice",
    "[redis][two-node][durability]") {
  TempDir dir;
  std::filesystem::create_directories(dir / "redis");
  RedisProcess redis(dir / "redis");
  ServerProcess a(dir / "data-a", {"--config", node_config(dir.str(), redis, "node-a", "0-1")});
  ServerProcess b(dir / "data-b", {"--config", node_config(dir.str(), redis, "node-b", "2-3")});

  constexpr int kClients = 4, kPerClient = 250, kCustomers = 24;
  std::array<std::atomic<unsigned short>, kShards> owner_port;
  for (int s = 0; s < kShards; ++s)
    owner_port[static_cast<std::size_t>(s)] = s < 2 ? a.port() : b.port();
  std::mutex mu;
  std::map<std::string, std::string> customer_of;  // messageId -> customer
  std::set<std::string> acked;
  std::atomic<int> acks_on_a{0}, misrouted{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::map<unsigned short, std::unique_ptr<WsClient>> conns;
      for (int i = 0; i < kPerClient; ++i) {
        const int n = c * kPerClient + i;
        const std::string cust = fmt::format("T{}", n % kCustomers);
        const std::string mid = fmt::format("two-{}", n);
        {
          std::lock_guard<std::mutex> lk(mu);
          customer_of[mid] = cust;
        }
        const unsigned short port = owner_port[static_cast<std::size_t>(shard_for(cust))].load();
        auto& conn = conns[port];
        if (!conn) {
          try {
            conn = std::make_unique<WsClient>(port, "/v1/pos", kPosKey);
          } catch (const std::exception&) {
            continue;  // node A is gone: this event stays unacked
          }
        }
        if (!conn->ok()) continue;
        beast::error_code ec;
        conn->stream().write(asio::buffer(order(mid, cust)), ec);
        if (ec) continue;
        auto r = conn->read();
        if (!r) continue;
        if (has(*r, "wrong_node")) ++misrouted;
        if (has(*r, "\"ack\"")) {
          std::lock_guard<std::mutex> lk(mu);
          acked.insert(mid);
          if (port == a.port()) ++acks_on_a;
        }
      }
    });
  }
  while (acks_on_a.load() < 150) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  a.kill9();
  const auto killed_at = std::chrono::steady_clock::now();
  for (auto& t : clients) t.join();
  CHECK(misrouted.load() == 0);  // the client's copy of the shard function routes like the nodes

  // Failover: B claims A's shards once A's lease (1 s) has run out; until then
  // the claim answers 409 naming the holder.
  int refused = 0;
  HttpReply claim;
  for (;;) {
    claim =
        http_request(b.port(), http::verb::post, "/v1/admin/shards/claim?shards=0-1", kAdminToken);
    if (claim.status == 200) break;
    INFO(claim.body);
    REQUIRE(claim.status == 409);
    REQUIRE(has(claim.body, "node-a"));
    REQUIRE(++refused < 100);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double failover_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  CHECK(has(claim.body, R"("claimed":[0,1])"));
  CHECK(has(claim.body, R"("serving":"0-3")"));
  CHECK(has(http_request(b.port(), http::verb::get, "/v1/admin/shards", kAdminToken).body,
            R"("serving":[0,1,2,3])"));

  // Before any re-send: everything acked (by A or B) is there, nothing twice.
  std::map<std::string, int> acked_per, sent_per;
  for (const auto& [mid, cust] : customer_of) {
    ++sent_per[cust];
    if (acked.count(mid)) ++acked_per[cust];
  }
  for (const auto& [cust, sent] : sent_per) {
    INFO(cust);
    const int freq = frequency_of(b.port(), cust);
    CHECK(freq >= acked_per[cust]);  // 0 lost
    CHECK(freq <= sent);             // 0 applied twice
  }
  // The client re-sends everything unacked to the new owner: each ends up once.
  const std::size_t unacked = customer_of.size() - acked.size();
  WsClient pos(b.port(), "/v1/pos", kPosKey);
  REQUIRE(pos.ok());
  for (const auto& [mid, cust] : customer_of)
    if (!acked.count(mid)) REQUIRE(has(pos.request(order(mid, cust)), "\"ack\""));
  for (const auto& [cust, sent] : sent_per) {
    INFO(cust);
    CHECK(frequency_of(b.port(), cust) == sent);
  }
  std::printf(
      "two-node failover: %zu events, %d acked by node A before kill -9, %zu acked before the "
      "failover, "
      "%zu re-sent after it; claim refused %d times, shards served again %.2f s after the kill\n",
      customer_of.size(), acks_on_a.load(), acked.size(), unacked, refused, failover_s);
  CHECK(acks_on_a.load() >= 150);
  // And B survives its own restart with all four shards (same node id, new process).
  b.kill9();
  ServerProcess b2(dir / "data-b", {"--config", node_config(dir.str(), redis, "node-b", "0-3")});
  for (const auto& [cust, sent] : sent_per) {
    INFO(cust);
    CHECK(frequency_of(b2.port(), cust) == sent);
  }
}
