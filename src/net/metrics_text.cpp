#include "net/metrics_text.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "storepulse/protocol/event.hpp"

namespace storepulse::net {

std::string render_metrics(engine::Engine& engine) {
  Metrics& m = engine.metrics();
  std::string o;
  o += "# HELP storepulse_events_total Events applied, by type and channel.\n";
  o += "# TYPE storepulse_events_total counter\n";
  for (int t = 0; t < Metrics::kTypes; ++t) {
    for (int c = 0; c < Metrics::kChannels; ++c) {
      o += fmt::format("storepulse_events_total{{type=\"{}\",channel=\"{}\"}} {}\n",
                       protocol::event_type_name(static_cast<protocol::EventType>(t)),
                       protocol::channel_name(static_cast<protocol::Channel>(c)),
                       m.events[static_cast<std::size_t>(t * Metrics::kChannels + c)].load());
    }
  }
  o += "# HELP storepulse_errors_total Error replies, by wire code.\n";
  o += "# TYPE storepulse_errors_total counter\n";
  for (ErrorCode c : kAllWireErrors)
    o += fmt::format("storepulse_errors_total{{code=\"{}\"}} {}\n", error_code_name(c),
                     m.errors[static_cast<std::size_t>(c)].load());
  o += "# HELP storepulse_queue_depth Work items waiting for each shard.\n";
  o += "# TYPE storepulse_queue_depth gauge\n";
  for (int s = 0; s < engine.shard_count(); ++s)
    o += fmt::format("storepulse_queue_depth{{shard=\"{}\"}} {}\n", s, engine.queue_depth(s));
  o += "# HELP storepulse_shard_serving 1 while this node serves the shard (owned, recovered, "
       "lease held).\n";
  o += "# TYPE storepulse_shard_serving gauge\n";
  for (int s = 0; s < engine.shard_count(); ++s)
    o += fmt::format("storepulse_shard_serving{{shard=\"{}\"}} {}\n", s, engine.serving(s) ? 1 : 0);
  o += "# HELP storepulse_event_latency_seconds Hand-off to reply, per event (shard queue + "
       "journal + apply + rules).\n";
  o += "# TYPE storepulse_event_latency_seconds histogram\n";
  std::uint64_t cum = 0;
  for (std::size_t i = 0; i < LatencyHistogram::kBoundsUs.size(); ++i) {
    cum += m.event_latency.bucket(i);
    o += fmt::format("storepulse_event_latency_seconds_bucket{{le=\"{}\"}} {}\n",
                     LatencyHistogram::kBoundsUs[i] / 1e6, cum);
  }
  cum += m.event_latency.bucket(LatencyHistogram::kBoundsUs.size());
  o += fmt::format("storepulse_event_latency_seconds_bucket{{le=\"+Inf\"}} {}\n", cum);
  o += fmt::format("storepulse_event_latency_seconds_sum {}\n",
                   static_cast<double>(m.event_latency.sum_ns()) / 1e9);
  o += fmt::format("storepulse_event_latency_seconds_count {}\n", cum);
  auto gauge = [&](std::string_view name, std::string_view help, std::string_view type, auto v) {
    o += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, v);
  };
  gauge("storepulse_duplicates_total", "Re-sent messageIds acked without applying.", "counter",
        m.duplicates.load());
  gauge("storepulse_receipt_mismatch_total",
        "Orders whose stated total does not add up to their lines (kept; the total wins).",
        "counter", m.receipt_mismatches.load());
  gauge("storepulse_segment_ignored_total",
        "Segment calls acked with nothing to keep (group: traits of a company, not a customer).",
        "counter", m.segment_ignored.load());
  gauge("storepulse_actions_total", "Actions sent in replies.", "counter", m.actions.load());
  gauge("storepulse_connections", "Open connections.", "gauge", m.connections.load());
  // Not storepulse_connections_total: a counter of that name belongs to the
  // family of the gauge above, which Prometheus parsers refuse (issue 19).
  gauge("storepulse_connections_accepted_total", "Accepted connections.", "counter",
        m.connections_total.load());
  gauge("storepulse_slow_readers_closed_total", "Connections closed for not reading replies.",
        "counter", m.slow_readers_closed.load());
  gauge("storepulse_policy_closed_total",
        "Web connections closed with 1008 for staying over their rate limit.", "counter",
        m.policy_closed.load());
  gauge("storepulse_connections_refused_total",
        "Connections or upgrades refused by a per-address or per-visitor cap or the Origin "
        "allowlist.",
        "counter", m.connections_refused.load());
  gauge("storepulse_journal_commits_total", "Group commits.", "counter", m.journal_commits.load());
  gauge("storepulse_snapshots_total", "Snapshots written.", "counter", m.snapshots.load());
  gauge("storepulse_profiles", "Profiles in memory.", "gauge", engine.profile_count());
  gauge("storepulse_cross_node_steps_skipped_total",
        "Cross-shard identity steps (links, merges) not carried out because the other shard is "
        "served by another node.",
        "counter", engine.cross_node_steps_skipped());
  const engine::SpoolSummary sp = engine.spool_summary();
  gauge("storepulse_redis_spool_bytes",
        "Bytes in the local Redis spool of this node (bound: redis.spool_max_bytes).", "gauge",
        sp.bytes);
  gauge("storepulse_redis_spool_max_bytes", "redis.spool_max_bytes (0: no spool on this node).",
        "gauge", sp.max_bytes);
  gauge("storepulse_redis_spool_records", "Acked records in the local spool not yet in Redis.",
        "gauge", sp.records);
  gauge("storepulse_redis_spooled_total",
        "Records acked from the local spool while Redis was unreachable.", "counter",
        sp.spooled_total);
  gauge("storepulse_redis_spool_drained_total", "Spooled records pushed to Redis by the drain.",
        "counter", sp.drained_total);
  gauge("storepulse_redis_spool_drains_total", "Spools drained to empty.", "counter",
        sp.drains_total);
  gauge("storepulse_redis_spool_last_drain_seconds",
        "Last drain, from Redis answering again to the spool being empty (longest over shards).",
        "gauge", static_cast<double>(sp.last_drain_ms) / 1000.0);
  gauge("storepulse_redis_spool_last_outage_seconds",
        "Last spooling period, from the first spooled commit to the spool being empty (longest "
        "over shards).",
        "gauge", static_cast<double>(sp.last_outage_ms) / 1000.0);
  o += "# HELP storepulse_shard_spooling 1 while the shard acks from the local spool (Redis "
       "unreachable or "
       "draining).\n# TYPE storepulse_shard_spooling gauge\n";
  for (int s = 0; s < engine.shard_count(); ++s)
    o += fmt::format(
        "storepulse_shard_spooling{{shard=\"{}\"}} {}\n", s,
        std::find(sp.spooling.begin(), sp.spooling.end(), s) != sp.spooling.end() ? 1 : 0);
  gauge("storepulse_redis_spool_refused_shards",
        "Shards whose spool drain Redis refused (lease lost or conflict): "
        "acked records kept on disk, operator needed.",
        "gauge", sp.refused.size());
  if (auto rules = engine.rules()) rules->append_prometheus(o);
  return o;
}

}  // namespace storepulse::net
