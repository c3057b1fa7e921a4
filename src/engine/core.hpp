#pragma once
// A core: one thread and the shards it owns (shard s on core s % cores). The
// thread is either the engine's own (EngineOptions::cores) or lent by the
// caller (Engine::use_external_cores: the server's io threads, the backtest).
// Everything a core's shards hold is touched by that thread only; other
// threads reach it through each shard's lock-free inbox and one wake-up.
#include <concurrentqueue.h>
// After concurrentqueue.h, which defines the macros it uses.
#include <lightweightsemaphore.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace storepulse::engine {

class Shard;

struct Core {
  int index = 0;
  std::vector<Shard*> shards;  // fixed at construction
  /// Asks the core's thread for a turn (any thread, non-blocking).
  std::function<void()> waker;
  /// Set by the first producer of a batch, cleared by the core before it
  /// drains: one wake-up per batch, never one per event.
  std::atomic<bool> wake_posted{false};
  /// Core thread only: a shard of this core has work queued by this thread.
  bool local_pending = false;
  std::int64_t last_tick_ns = 0;
  // The engine's own thread (not external cores).
  std::thread thread;
  moodycamel::LightweightSemaphore sem;
  std::atomic<bool> stop{false};

  /// Producers on other threads, after enqueuing on one of this core's shards.
  void wake() {
    if (!wake_posted.exchange(true, std::memory_order_acq_rel) && waker) waker();
  }
};

/// The core the calling thread runs (Engine::enter_core), or null.
Core*& current_core();

}  // namespace storepulse::engine
