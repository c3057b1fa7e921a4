#pragma once
// Process-wide counters, written from io and shard threads with relaxed
// atomics (no locks), rendered as Prometheus text by the net stage.
#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "storepulse/common/status.hpp"

namespace storepulse {

/// Fixed log-spaced latency buckets (µs upper bounds), HdrHistogram-style
/// coarse: enough for p50/p99 on the dashboard without allocation.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 16> kBoundsUs = {
      10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1e6, 1e7};
  void record_ns(std::int64_t ns) {
    const double us = static_cast<double>(ns) / 1000.0;
    std::size_t i = 0;
    while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<std::uint64_t>(ns < 0 ? 0 : ns), std::memory_order_relaxed);
  }
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  std::uint64_t sum_ns() const { return sum_ns_.load(std::memory_order_relaxed); }
  std::uint64_t count() const {
    std::uint64_t n = 0;
    for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
    return n;
  }
  /// Upper bound (µs) of the bucket holding quantile q.
  double quantile_us(double q) const;

 private:
  std::array<std::atomic<std::uint64_t>, kBoundsUs.size() + 1> buckets_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

struct Metrics {
  static constexpr int kTypes = 4;     // protocol::EventType
  static constexpr int kChannels = 4;  // protocol::Channel
  std::array<std::atomic<std::uint64_t>, kTypes * kChannels> events{};
  std::array<std::atomic<std::uint64_t>, 16> errors{};  // by ErrorCode
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> receipt_mismatches{0};  // orders accepted with a total != lines
  std::atomic<std::uint64_t> segment_ignored{0};     // Segment group calls: acked, nothing to keep
  std::atomic<std::uint64_t> actions{0};
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> slow_readers_closed{0};
  std::atomic<std::uint64_t> policy_closed{
      0};  // /v1/web sessions closed 1008 for persistent flooding
  std::atomic<std::uint64_t> connections_refused{0};  // per-address / per-visitor caps, Origin
  std::atomic<std::uint64_t> journal_commits{0};
  std::atomic<std::uint64_t> snapshots{0};
  LatencyHistogram event_latency;  // io receive -> reply handed back to the session

  void count_event(int type, int channel) {
    events[static_cast<std::size_t>(type * kChannels + channel)].fetch_add(
        1, std::memory_order_relaxed);
  }
  void count_error(ErrorCode c) {
    errors[static_cast<std::size_t>(c)].fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace storepulse
