#pragma once
// A real Redis Cluster on loopback for tests: N masters (redis-server in
// cluster mode, each on a free port with its own folder), slots split evenly
// with CLUSTER ADDSLOTSRANGE, joined with CLUSTER MEET, ready once every node
// reports cluster_state:ok.
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/redis_process.hpp"
#include "support/temp_dir.hpp"

namespace storepulse::test {

class RedisClusterProcess {
 public:
  /// `masters` masters, then `replicas` replicas (replica k follows master k % masters).
  explicit RedisClusterProcess(int masters = 3, int replicas = 0) : masters_(masters) {
    for (int i = 0; i < masters + replicas; ++i) {
      dirs_.push_back(std::make_unique<TempDir>());
      nodes_.push_back(std::make_unique<RedisProcess>(
          dirs_.back()->str(),
          std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file",
                                   dirs_.back()->str() + "/nodes.conf", "--cluster-node-timeout",
                                   "2000", "--appendfsync", "everysec"}));
    }
    const int per = kSlots / masters;
    for (int i = 0; i < masters; ++i) {
      const int lo = i * per, hi = i == masters - 1 ? kSlots - 1 : (i + 1) * per - 1;
      REQUIRE(node(i).command(
                  {"CLUSTER", "ADDSLOTSRANGE", std::to_string(lo), std::to_string(hi)}) == "OK");
    }
    for (int i = 1; i < masters + replicas; ++i)
      REQUIRE(node(0).command({"CLUSTER", "MEET", "127.0.0.1", std::to_string(node(i).port())}) ==
              "OK");
    wait_ok();
    for (int k = 0; k < replicas; ++k) {
      const std::string master_id = id(k % masters);
      // The replica must know the master first (gossip from the MEET above).
      for (int t = 0; t < 200; ++t) {
        if (node(masters + k).command({"CLUSTER", "REPLICATE", master_id}) == "OK") break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    if (replicas > 0) wait_replicas_synced();
  }

  /// A replica (index) of master `m`, -1 if none.
  int replica_of(int m) {
    const std::string mid = id(m);
    for (int i = 0; i < size(); ++i) {
      const std::string nodes = node(i).command({"CLUSTER", "NODES"});
      auto at = nodes.find("myself,slave " + mid);
      if (at != std::string::npos) return i;
    }
    return -1;
  }

  /// Until every replica reports its link to the master up (20 s at most).
  void wait_replicas_synced() {
    for (int t = 0; t < 400; ++t) {
      bool ok = true;
      for (int i = masters_; i < size(); ++i)
        ok = ok && node(i).command({"INFO", "replication"}).find("master_link_status:up") !=
                       std::string::npos;
      if (ok) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL("redis cluster replicas did not sync");
  }

  RedisProcess& node(int i) { return *nodes_[static_cast<std::size_t>(i)]; }
  int size() const { return static_cast<int>(nodes_.size()); }
  std::string id(int i) { return node(i).command({"CLUSTER", "MYID"}); }

  /// Until every node says cluster_state:ok and knows every other node (20 s at most).
  void wait_ok() {
    for (int t = 0; t < 400; ++t) {
      bool ok = true;
      for (auto& n : nodes_) {
        const std::string info = n->command({"CLUSTER", "INFO"});
        ok = ok && info.find("cluster_state:ok") != std::string::npos &&
             info.find("cluster_known_nodes:" + std::to_string(nodes_.size())) != std::string::npos;
      }
      if (ok) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL("redis cluster did not reach cluster_state:ok");
  }

 private:
  static constexpr int kSlots = 16384;
  int masters_ = 0;
  std::vector<std::unique_ptr<TempDir>> dirs_;
  std::vector<std::unique_ptr<RedisProcess>> nodes_;
};

}  // namespace storepulse::test
