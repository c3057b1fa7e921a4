#include "storepulse/common/metrics.hpp"

namespace storepulse {

double LatencyHistogram::quantile_us(double q) const {
  const std::uint64_t n = count();
  if (n == 0) return 0;
  const auto target = static_cast<std::uint64_t>(q * static_cast<double>(n) + 0.5);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += bucket(i);
    if (seen >= target && seen > 0)
      return i < kBoundsUs.size() ? kBoundsUs[i] : kBoundsUs.back() * 10;
  }
  return kBoundsUs.back() * 10;
}

}  // namespace storepulse
