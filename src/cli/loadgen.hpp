#pragma once
// Private to `storepulse loadgen` (and its tests): the latency histogram and the
// run itself, kept out of include/ because nothing else should depend on them.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace storepulse::cli {

/// HdrHistogram-style log-linear histogram of non-negative integer values
/// (the load generator records nanoseconds).
///
/// Values below 2^kSubBits are counted exactly; above, each power-of-two range
/// [2^m, 2^(m+1)) is split into 2^kSubBits equal sub-buckets, so every recorded
/// value is known to within a relative error of 2^-kSubBits (~0.1 %) at a fixed
/// memory cost (~450 KB) and O(1) record, whatever the spread of the values.
/// That is why it is used instead of keeping every sample: an open-loop run at
/// 100k/s for minutes would need hundreds of MB of samples to sort.
///
/// Not thread-safe: each connection group records into its own and the
/// results are merged after the io threads have stopped.
class LatencyHistogram {
 public:
  static constexpr int kSubBits = 10;
  static constexpr std::uint64_t kSubCount = std::uint64_t{1} << kSubBits;

  LatencyHistogram();

  void record(std::uint64_t value, std::uint64_t count = 1);
  void merge(const LatencyHistogram& other);

  std::uint64_t count() const { return total_; }
  std::uint64_t min() const { return total_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  double mean() const { return total_ == 0 ? 0.0 : sum_ / static_cast<double>(total_); }

  /// Value at quantile q in [0, 1]: the highest value equivalent to the bucket
  /// holding the ceil(q * count)-th smallest value (as HdrHistogram reports),
  /// never above the largest value recorded. 0 when empty.
  std::uint64_t quantile(double q) const;

  /// Bucket arithmetic, public for the tests.
  static std::size_t index_of(std::uint64_t value);
  static std::uint64_t lowest_equivalent(std::size_t index);
  static std::uint64_t highest_equivalent(std::size_t index);

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
  double sum_ = 0;
};

struct LoadgenOptions {
  std::string url;  // ws://HOST:PORT[/PATH]; the path is replaced per endpoint when --mix is given
  std::string key;
  double rate = 1000;      // events/s over all connections (open loop)
  double duration_s = 10;  // sending time; the drain after it is not counted as sending
  int connections = 1;
  int threads = 1;  // io threads; connection i belongs to group i % threads
  std::string events_file;
  int simulate_customers = 0;
  int swipe_customers = 10000;  // default source: Card Swiped for C0..C(N-1)
  std::string mix;              // "pos=0.8,web=0.2": share of connections per endpoint
  bool closed_loop = false;
  int in_flight = 1;   // closed loop: outstanding events per connection
  double drain_s = 5;  // wait this long for the last replies
  int server_pid = 0;  // when > 0: report its CPU time over the run
};

struct LoadgenReport {
  std::string mode;  // "open" | "closed"
  double target_rate = 0;
  double elapsed_s = 0;  // first intended send to last reply
  int connections = 0;
  std::uint64_t sent = 0;
  std::uint64_t replies = 0;  // matched replies (ok + error)
  std::uint64_t ok = 0;       // ack / actions / anything that is not an error (an echo)
  std::uint64_t actions = 0;
  std::uint64_t timeouts = 0;  // sent, never answered within the drain
  std::uint64_t unmatched =
      0;  // replies without one of our messageIds; errors among them are in `errors`
  std::map<std::string, std::uint64_t> errors;  // error code -> count
  LatencyHistogram latency_ns;
  double server_cpu_s = -1;  // -1 when no --server-pid

  double throughput() const { return elapsed_s > 0 ? static_cast<double>(replies) / elapsed_s : 0; }
  std::uint64_t error_count() const;
  std::string to_json() const;
  std::string to_text() const;
};

/// Parses "pos=0.8,web=0.2" into endpoint path -> share (shares normalised to 1).
/// Throws std::runtime_error naming the bad part.
std::vector<std::pair<std::string, double>> parse_mix(const std::string& mix);

/// Connects, runs, drains, returns the figures. Throws on set-up failures
/// (bad URL, refused upgrade, unreadable event file).
LoadgenReport run_loadgen(const LoadgenOptions& options);

/// utime + stime of a process in seconds, from /proc/<pid>/stat; -1 if unreadable.
double process_cpu_seconds(int pid);

}  // namespace storepulse::cli
