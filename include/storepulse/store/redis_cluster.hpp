#pragma once
// Redis Cluster for the store: the hash slot of a key, the slot map a cluster
// reports (CLUSTER SLOTS), and a connection that sends each command to the
// master serving its slot and follows the cluster's redirections (MOVED: the
// slot has a new owner, remember it; ASK: for this one command, ask the node
// importing the slot, after ASKING) — the Redis Cluster specification,
// "Redirection and resharding". Every shard key carries the `{sN}` hash tag,
// so one shard's stream, snapshot, keys and lease sit in one slot and its
// group commit stays one atomic script on one node.
//
// Synchronous and single-threaded, like RedisLog's own connection: one
// ClusterConnection per user, never shared between threads.
#include <hiredis/hiredis.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storepulse/common/status.hpp"
#include "storepulse/store/redis_log.hpp"

namespace storepulse::store {

inline constexpr int kClusterSlots = 16384;

/// The hash slot of `key`: CRC16 (XMODEM) mod 16384 of its hash tag — the
/// bytes between the first '{' and the first '}' after it, when there are
/// some — else of the whole key.
std::uint16_t key_slot(std::string_view key);

struct ClusterAddress {
  std::string host;
  int port = 0;
  std::string str() const { return host + ":" + std::to_string(port); }
  bool operator==(const ClusterAddress&) const = default;
};

/// "host:port" (IPv6 in brackets or not: the last ':' splits) -> address.
Result<ClusterAddress> parse_cluster_address(std::string_view s);

/// Which master serves each of the 16384 slots.
class ClusterSlots {
 public:
  /// From a CLUSTER SLOTS reply: [[start, end, [host, port, id, ...], replicas...], ...].
  /// A master listed without a host ("" or "?") is the node asked, on `asked_host`.
  static Result<ClusterSlots> parse(const redisReply& r, const std::string& asked_host = {});

  /// The master serving `slot`; null when the map names none.
  const ClusterAddress* master(std::uint16_t slot) const;
  /// Records a MOVED: `slot` is served by `to` from now on.
  void assign(std::uint16_t slot, const ClusterAddress& to);
  /// Slots with a master (16384 on a healthy cluster).
  std::size_t covered() const;
  /// Every master the map names, once each.
  std::vector<ClusterAddress> masters() const;

 private:
  static constexpr std::uint16_t kNone = 0xFFFF;
  std::vector<std::uint16_t> slot_node_ = std::vector<std::uint16_t>(kClusterSlots, kNone);
  std::vector<ClusterAddress> nodes_;
  std::uint16_t node_index(const ClusterAddress& a);
};

/// A redirection error: `MOVED 3999 127.0.0.1:6381` or `ASK 3999 127.0.0.1:6381`.
struct ClusterRedirect {
  bool ask = false;
  std::uint16_t slot = 0;
  ClusterAddress to;
};
/// nullopt for any other error text.
std::optional<ClusterRedirect> parse_redirect(std::string_view error);

struct ClusterOptions {
  /// Where to read the slot map first (`[redis] nodes`); any node of the
  /// cluster will do, the map names the rest.
  std::vector<ClusterAddress> seeds;
  /// AUTH (user, password), TLS and timeouts, the same for every node
  /// (its host and port are ignored). command_timeout_ms bounds a command
  /// with its redirections and retries too.
  RedisOptions node;
  int max_redirects = 5;
};

using ClusterReply = std::unique_ptr<redisReply, void (*)(void*)>;

class ClusterConnection {
 public:
  explicit ClusterConnection(ClusterOptions opts);
  ~ClusterConnection();
  ClusterConnection(const ClusterConnection&) = delete;
  ClusterConnection& operator=(const ClusterConnection&) = delete;

  /// Reads the slot map from the first seed, then any master it knew, that
  /// answers. `unavailable` naming every node tried when none does.
  Status refresh();

  /// Runs `args` (every key in `slot`) on the slot's master. MOVED updates the
  /// map and retries there; ASK sends ASKING and the command to the importing
  /// node, once; at most max_redirects of them. A lost connection, CLUSTERDOWN
  /// or TRYAGAIN (failover or resharding under way) reconnects, re-reads the
  /// map and retries until command_timeout_ms has passed. The reply may be a
  /// Redis error (a script's own error, say): the caller reads it.
  /// `unavailable` when no node answered in time.
  Result<ClusterReply> command(std::uint16_t slot, const std::vector<std::string_view>& args);

  const ClusterSlots& slots() const { return slots_; }
  /// Redirections followed so far (tests, metrics).
  std::uint64_t redirects() const { return redirects_; }
  /// For tests: pretend the map says `slot` is served by `to`.
  void assign_for_test(std::uint16_t slot, const ClusterAddress& to) { slots_.assign(slot, to); }

 private:
  Result<redisContext*> node(const ClusterAddress& a);
  void drop(const ClusterAddress& a);

  ClusterOptions opts_;
  ClusterSlots slots_;
  bool have_map_ = false;
  std::map<std::string, redisContext*> conns_;  // "host:port" -> open connection
  std::uint64_t redirects_ = 0;
};

}  // namespace storepulse::store
