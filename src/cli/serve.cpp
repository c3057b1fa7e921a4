// storepulse serve: runs the engine and the HTTP/WebSocket server until SIGINT/SIGTERM.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <thread>

#include "storepulse/cli/commands.hpp"
#include "storepulse/cli/config.hpp"
#include "storepulse/models/live_models.hpp"
#include "storepulse/rules/rule_book.hpp"
#include "storepulse/rules/rule_watch.hpp"

namespace storepulse::cli {
namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop.store(true);
}
std::atomic<bool> g_reload_tls{false};
void on_sighup(int) {
  g_reload_tls.store(true);
}

// The rules folder changed: load it whole and swap it in, or, when it does not
// load, keep the running book and mark it with the problems (GET /v1/rules,
// /metrics, one log line per problem as file:line:col: message).
void reload_rules(const std::string& dir, engine::Engine& engine,
                  std::shared_ptr<rules::RuleBook>& running) {
  rules::RuleLoadResult res = rules::load_rules(dir);
  if (!res.errors.empty()) {
    spdlog::error("rules change in {} rejected ({} problem{}), the previous rules keep running:",
                  dir, res.errors.size(), res.errors.size() == 1 ? "" : "s");
    for (const auto& e : res.errors) spdlog::error("rules: {}", e.str());
    running->set_rejected_change(std::move(res.errors));
    return;
  }
  std::size_t enabled = 0;
  for (const auto& r : res.rules->rules()) enabled += r->enabled;
  spdlog::info("rules reloaded from {}: {} rules ({} enabled): {}", dir, res.rules->rules().size(),
               enabled, fmt::join(res.rules->rule_names(), ", "));
  running = res.rules;
  engine.set_rules(running);
}

struct ServeFlags {
  std::string config = "config/storepulse.toml";
  int port = -1;
  std::string host;
  std::string data_dir;
  std::string fsync;
  std::string rules_dir;
  std::string models_dir;
  int shards = 0;
};

int serve(const ServeFlags& f) {
  Config cfg = load_config(f.config);
  apply_env(cfg);
  if (f.port >= 0) cfg.server.port = static_cast<std::uint16_t>(f.port);
  if (!f.host.empty()) cfg.server.host = f.host;
  if (!f.data_dir.empty()) cfg.engine.data_dir = f.data_dir;
  if (!f.rules_dir.empty()) cfg.rules_dir = f.rules_dir;
  if (!f.models_dir.empty()) cfg.models_dir = f.models_dir;
  if (f.shards > 0) cfg.engine.shards = f.shards;
  if (!f.fsync.empty() && !store::parse_fsync_policy(f.fsync, cfg.engine.fsync))
    throw std::runtime_error(
        fmt::format("--fsync: expected always, interval or never, got '{}'", f.fsync));
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  struct stat st {};
  // Group counts too: a shared "staff" group is how secrets usually leak on a host.
  if (::stat(f.config.c_str(), &st) == 0 && (st.st_mode & 077) && cfg.secrets_in_file)
    spdlog::warn(
        "config {} holds secrets and is accessible to group or other users (mode {:03o}): chmod "
        "600 {}",
        f.config, st.st_mode & 0777, f.config);
  if (!cfg.server.tls_key.empty() && ::stat(cfg.server.tls_key.c_str(), &st) == 0 &&
      (st.st_mode & 077))
    spdlog::warn("TLS key {} is accessible to group or other users (mode {:03o}): chmod 600 {}",
                 cfg.server.tls_key, st.st_mode & 0777, cfg.server.tls_key);
  if (cfg.server.pos_keys.empty())
    spdlog::warn(
        "no terminal keys (auth.pos_keys / STOREPULSE_POS_KEYS): /v1/pos and POST /v1/events "
        "refuse everyone");
  if (cfg.server.admin_token.empty())
    spdlog::warn(
        "no admin token (auth.admin_token / STOREPULSE_ADMIN_TOKEN): admin endpoints refuse "
        "everyone");

  // Watched from before the first load, so an edit made while it loads is not missed.
  rules::RuleFolderWatch rule_watch(cfg.rules_dir);
  std::vector<std::string> notes;
  // load_rule_set loads a RuleBook (rule_book.hpp); the reload below marks it
  // when a later change is rejected.
  auto rules =
      std::static_pointer_cast<rules::RuleBook>(rules::load_rule_set(cfg.rules_dir, notes));
  for (const auto& n : notes) spdlog::info("rules: {}", n);
  spdlog::info("rules: watching {} for changes ({})", cfg.rules_dir,
               rule_watch.inotify() ? "inotify, and a scan every 250 ms" : "a scan every 250 ms");

  Metrics metrics;
  engine::Engine engine(cfg.engine, rules, metrics);
  // Models: a missing folder or file means "no such model" (fields stay 0/null);
  // a file that does not load is logged and the previous model of its kind runs on.
  auto load_models = [&](const models::ModelSet* previous) {
    std::vector<std::string> notes, errors;
    auto set = models::load_models(cfg.models_dir, previous, notes, errors);
    for (const auto& n : notes) spdlog::info("models: {}", n);
    for (const auto& e : errors) spdlog::error("models: {}", e);
    if (set->empty() && errors.empty())
      spdlog::info("models: none in {} (segment/clv/pAlive stay unset)", cfg.models_dir);
    return set;
  };
  engine.set_models(load_models(nullptr));
  net::Server server(cfg.server, engine);
  // The SMS outbox journals beside the shards and follows the same fsync policy.
  cfg.sms.dir = cfg.engine.data_dir + "/sms";
  cfg.sms.fsync = cfg.engine.fsync;
  if (cfg.sms.format == actions::GatewayFormat::kJson) {
    if (!cfg.sms.gateway_url.empty() && cfg.sms.gateway_secret.empty())
      throw std::runtime_error(
          "sms.gateway_url is set but there is no sms.gateway_secret (or STOREPULSE_SMS_SECRET) to "
          "sign with");
    if (cfg.sms.gateway_secret.empty())
      spdlog::warn(
          "no sms.gateway_secret / STOREPULSE_SMS_SECRET: SMS callbacks (/v1/sms/status, "
          "/v1/sms/inbound) refuse everyone");
  } else {
    if (!cfg.sms.gateway_url.empty() &&
        (cfg.sms.account_sid.empty() || cfg.sms.auth_token.empty() || cfg.sms.from.empty()))
      throw std::runtime_error(
          "sms.gateway_url is set (gateway_format twilio) but sms.account_sid / "
          "STOREPULSE_SMS_ACCOUNT_SID, "
          "sms.auth_token / STOREPULSE_SMS_AUTH_TOKEN or sms.from is missing");
    if (cfg.sms.auth_token.empty() || cfg.sms.public_url.empty())
      spdlog::warn(
          "no sms.auth_token / STOREPULSE_SMS_AUTH_TOKEN or no sms.public_url: SMS callbacks "
          "(/v1/sms/status, /v1/sms/inbound) refuse everyone{}",
          cfg.sms.public_url.empty() ? " and sends carry no StatusCallback" : "");
  }
  auto opened = actions::SmsOutbox::open(cfg.sms);
  if (!opened)
    throw std::runtime_error(
        fmt::format("sms outbox {}: {}", cfg.sms.dir, opened.status().detail()));
  std::unique_ptr<actions::SmsOutbox> outbox = std::move(opened).value();
  server.set_sms_outbox(outbox.get());
  // Runs on shard threads: only hand-offs here, no I/O (the outbox's submit
  // takes a short lock; the server's push posts to the sessions' io threads).
  engine.set_action_sink([&server, &outbox](const protocol::Action& a) {
    if (a.channel == "web") {
      if (!server.push(a)) spdlog::debug("push {} for {}: no open web session", a.rule, a.customer);
    } else if (a.channel == "sms") {
      // The firing's event time makes the idempotency id: a firing replayed
      // after a crash is not texted twice.
      outbox->submit(actions::SmsRequest{a.rule, a.customer, a.phone, a.text, a.at});
    }
  });
  // Before anything starts: a SIGTERM that arrives during recovery or right
  // after the "listening" line (a supervisor's stop) must take the graceful
  // path below (drain, final snapshots), not the default action that ends the
  // process at once.
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  outbox->start();
  engine.start();
  std::signal(SIGHUP, on_sighup);  // before start: a reload request is never fatal
  server.start();
  const std::string base = fmt::format("{}:{}", cfg.server.host, server.port());
  const char* s = server.tls() ? "s" : "";
  fmt::print(
      "storepulse listening on http{}://{} (ws{}://{}/v1/pos, ws{}://{}/v1/web, POST /v1/events, "
      "/healthz, /metrics) — {} shards, fsync {}, data in {}{}\n",
      s, base, s, base, s, base, cfg.engine.shards, store::fsync_policy_name(cfg.engine.fsync),
      cfg.engine.data_dir,
      !server.tls()                ? ""
      : cfg.server.tls_allow_plain ? "; TLS and plain on the same port"
                                   : "; TLS only");
  std::fflush(stdout);

  auto model_stamp = models::models_stamp(cfg.models_dir);
  while (!g_stop.load()) {
    // Returns as soon as inotify reports a rule file written, moved or deleted
    // (after it settles), else after 250 ms; a signal also ends the wait.
    if (rule_watch.wait_for_change(std::chrono::milliseconds(250)))
      reload_rules(cfg.rules_dir, engine, rules);
    if (g_stop.load()) break;
    if (g_reload_tls.exchange(false)) {
      if (!server.tls())
        spdlog::info("SIGHUP: no [tls] configured, nothing to reload");
      else if (Status st = server.reload_tls(); !st)
        spdlog::error("SIGHUP: TLS certificate not reloaded, the previous one stays in use: {}",
                      st.detail());
      else
        spdlog::info("SIGHUP: TLS certificate and key reloaded from {}", cfg.server.tls_cert);
    }
    // Models follow the same watch: a changed file is reloaded and swapped in
    // whole; workers take the new snapshot before their next batch.
    if (auto now_models = models::models_stamp(cfg.models_dir); now_models != model_stamp) {
      model_stamp = now_models;
      engine.set_models(load_models(engine.models().get()));
      spdlog::info("models reloaded from {}", cfg.models_dir);
    }
  }
  spdlog::info("stopping: draining queues and writing snapshots");
  server.stop();
  engine.stop();
  outbox->stop();  // after the engine: the shards' last SMS still reach its journal
  spdlog::info("stopped");
  return 0;
}

}  // namespace

void register_serve(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ServeFlags>();
  auto* cmd = app.add_subcommand("serve", "Run the engine: WebSocket + HTTP on one port");
  // Last --config wins, so wrappers and tests can override the default file.
  cmd->add_option("--config", flags->config, "Config file (TOML)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--port", flags->port,
                  "Port to listen on (0 = any free port); overrides server.port");
  cmd->add_option("--host", flags->host, "Address to bind; overrides server.host");
  cmd->add_option("--data-dir", flags->data_dir,
                  "Journal and snapshot folder; overrides store.data_dir");
  cmd->add_option("--fsync", flags->fsync, "always|interval|never; overrides store.fsync");
  cmd->add_option("--rules", flags->rules_dir, "Rules folder; overrides rules.dir")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--models", flags->models_dir, "Models folder; overrides models.dir")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--shards", flags->shards, "Shard workers; overrides engine.shards");
  cmd->callback([flags, &exit_code] {
    try {
      exit_code = serve(*flags);
    } catch (const std::exception& e) {
      fmt::print(stderr, "storepulse serve: {}\n", e.what());
      exit_code = 1;
    }
  });
}

}  // namespace storepulse::cli
