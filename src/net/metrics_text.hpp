#pragma once
#include <string>

#include "storepulse/engine/engine.hpp"

namespace storepulse::net {
/// Prometheus text exposition of the engine's metrics (GET /metrics).
std::string render_metrics(engine::Engine& engine);
}  // namespace storepulse::net
