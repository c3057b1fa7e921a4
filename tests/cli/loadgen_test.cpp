// storepulse loadgen: the latency histogram against distributions whose
// quantiles are known in closed form, and one short real run against the server.
#include "cli/loadgen.hpp"

#include <catch2/catch.hpp>
#include <cmath>

#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using storepulse::cli::LatencyHistogram;

namespace {
// The histogram promises a relative error of 2^-kSubBits per value.
constexpr double kRelativeError = 1.0 / static_cast<double>(LatencyHistogram::kSubCount);

bool close_to(double got, double want) {
  return std::abs(got - want) <= want * 2 * kRelativeError + 1.0;
}
}  // namespace

TEST_CASE("histogram buckets bound every value within the promised relative error") {
  const std::uint64_t values[] = {0,
                                  1,
                                  1023,
                                  1024,
                                  1025,
                                  4097,
                                  123456789,
                                  std::uint64_t{1} << 40,
                                  (std::uint64_t{1} << 62) + 12345,
                                  UINT64_MAX};
  for (std::uint64_t v : values) {
    const auto i = LatencyHistogram::index_of(v);
    const auto lo = LatencyHistogram::lowest_equivalent(i);
    const auto hi = LatencyHistogram::highest_equivalent(i);
    CHECK(lo <= v);
    CHECK(v <= hi);
    CHECK(static_cast<double>(hi - lo) <= static_cast<double>(lo) * kRelativeError);
  }
  // Buckets are contiguous: the next bucket starts one above this one's end.
  for (std::size_t i = 0; i < 40000; i += 37)
    CHECK(LatencyHistogram::lowest_equivalent(i + 1) ==
          LatencyHistogram::highest_equivalent(i) + 1);
}

TEST_CASE("histogram values below the sub-bucket count are exact") {
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 1000; ++v) h.record(v);
  CHECK(h.count() == 1000);
  CHECK(h.min() == 1);
  CHECK(h.max() == 1000);
  CHECK(h.quantile(0.5) == 500);
  CHECK(h.quantile(0.99) == 990);
  CHECK(h.quantile(0.999) == 999);
  CHECK(h.quantile(1.0) == 1000);
  CHECK(h.mean() == Approx(500.5));
}

TEST_CASE("histogram quantiles of a uniform distribution") {
  // 1..1,000,000 once each: the q-quantile is q * 1e6.
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 1'000'000; ++v) h.record(v);
  for (double q : {0.5, 0.9, 0.99, 0.999})
    CHECK(close_to(static_cast<double>(h.quantile(q)), q * 1e6));
  CHECK(h.max() == 1'000'000);
  CHECK(h.quantile(1.0) == 1'000'000);
}

TEST_CASE("histogram quantiles of an exponential distribution (latency-like long tail)") {
  // Deterministic inverse-CDF samples: value_i = -mean * ln(1 - u_i), u_i = (i + 0.5) / n.
  // The q-quantile is -mean * ln(1 - q).
  constexpr double kMean = 50'000;  // 50 µs in ns
  constexpr int kN = 200'000;
  LatencyHistogram h;
  for (int i = 0; i < kN; ++i) {
    const double u = (i + 0.5) / kN;
    h.record(static_cast<std::uint64_t>(-kMean * std::log(1 - u)));
  }
  for (double q : {0.5, 0.9, 0.99, 0.999})
    CHECK(close_to(static_cast<double>(h.quantile(q)), -kMean * std::log(1 - q)));
  CHECK(h.mean() == Approx(kMean).epsilon(0.01));
}

TEST_CASE("histogram merge equals recording everything in one") {
  LatencyHistogram a, b, all;
  for (std::uint64_t v = 0; v < 50'000; ++v) {
    const std::uint64_t x = v * v % 7'000'003;
    (v % 2 ? a : b).record(x);
    all.record(x);
  }
  a.merge(b);
  CHECK(a.count() == all.count());
  CHECK(a.min() == all.min());
  CHECK(a.max() == all.max());
  for (double q : {0.1, 0.5, 0.9, 0.99, 0.999}) CHECK(a.quantile(q) == all.quantile(q));
  LatencyHistogram empty;
  CHECK(empty.quantile(0.5) == 0);
  CHECK(empty.max() == 0);
}

TEST_CASE("loadgen: --mix shares are parsed and normalised") {
  const auto m = storepulse::cli::parse_mix("pos=3,web=1");
  REQUIRE(m.size() == 2);
  CHECK(m[0].first == "/v1/pos");
  CHECK(m[0].second == Approx(0.75));
  CHECK(m[1].first == "/v1/web");
  CHECK_THROWS(storepulse::cli::parse_mix("till=1"));
  CHECK_THROWS(storepulse::cli::parse_mix("pos=abc"));
}

TEST_CASE("loadgen against the real server: open loop at a fixed rate - then closed loop") {
  storepulse::test::TempDir dir;
  storepulse::test::ServerProcess srv(dir.str());
  storepulse::cli::LoadgenOptions o;
  o.url = fmt::format("ws://127.0.0.1:{}/v1/pos", srv.port());
  o.key = storepulse::test::kPosKey;
  o.rate = 2000;
  o.duration_s = 1.5;
  o.connections = 2;
  o.simulate_customers = 200;  // real shoppers: identifies, orders, web and store events
  const auto open = storepulse::cli::run_loadgen(o);
  // The schedule is fixed by rate x duration, whatever the server does.
  CHECK(open.sent == 3000);
  CHECK(open.replies == open.sent);
  CHECK(open.error_count() == 0);
  CHECK(open.timeouts == 0);
  CHECK(open.unmatched == 0);
  CHECK(open.latency_ns.count() == open.sent);
  CHECK(open.latency_ns.quantile(0.5) > 0);
  CHECK(open.throughput() == Approx(2000).epsilon(0.2));
  CHECK(storepulse::test::has(open.to_json(), R"("errorCount":0)"));

  // Closed loop on the default source (card swipes), with the server's CPU.
  o.closed_loop = true;
  o.in_flight = 4;
  o.duration_s = 1.0;
  o.simulate_customers = 0;
  o.server_pid = 0;
  const auto closed = storepulse::cli::run_loadgen(o);
  CHECK(closed.replies == closed.sent);
  CHECK(closed.replies > 100);
  CHECK(closed.error_count() == 0);
  CHECK(closed.timeouts == 0);
  CHECK(closed.ok == closed.replies);
}
