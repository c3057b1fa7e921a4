#pragma once
// Category and brand affinity: spend-weighted, halving every 90 days without a
// purchase. Profiles decay it at each update, rules decay it to the evaluation
// time (`affinity(category)`), both with this one half-life.
#include <cmath>

#include "storepulse/common/time.hpp"

namespace storepulse {

inline constexpr double kAffinityHalfLifeDays = 90.0;

/// `value` as of `from`, decayed to `to` (unchanged when `from` is 0, never
/// set, or `to` is not later).
inline double decay_affinity(double value, TimeUs from, TimeUs to) {
  if (from == 0 || to <= from) return value;
  const double days = static_cast<double>(to - from) / static_cast<double>(kUsPerDay);
  return value * std::exp2(-days / kAffinityHalfLifeDays);
}

}  // namespace storepulse
