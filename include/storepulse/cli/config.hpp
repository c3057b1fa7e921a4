#pragma once
// The server's configuration: one TOML file (config/storepulse.toml documents
// every key), then environment variables for secrets, then command-line flags.
#include <string>
#include <utility>
#include <vector>

#include "storepulse/actions/sms_outbox.hpp"
#include "storepulse/engine/engine.hpp"
#include "storepulse/net/server.hpp"

namespace storepulse::cli {

struct Config {
  net::ServerOptions server;
  engine::EngineOptions engine;
  actions::SmsOptions sms;  // [sms]; sms.dir is set from data_dir by serve
  std::string rules_dir = "rules";
  std::string models_dir =
      "models";  // [models] dir: clv.json, segments.json, baskets.json (each optional)
  std::string log_level = "info";
  std::string source;            // file it was read from
  bool secrets_in_file = false;  // auth keys / token were read from the file itself
};

/// Reads and validates a config file. Throws std::runtime_error naming the file,
/// key and what is wrong (e.g. "config/storepulse.toml: store.fsync: expected
/// always, interval or never, got 'sometimes'"). Relative paths in the file are
/// taken relative to the current directory.
Config load_config(const std::string& path);

/// Every section and key load_config accepts (any other is an error), in file
/// order; config/storepulse.toml documents each of them (a test checks both ways).
const std::vector<std::pair<std::string, std::vector<std::string>>>& known_config_keys();

/// Applies the secrets of the environment: STOREPULSE_POS_KEYS (comma-separated,
/// added), STOREPULSE_WRITE_KEYS (comma-separated, replaces ingest.write_keys),
/// STOREPULSE_ADMIN_TOKEN, STOREPULSE_REDIS_URL / _PASSWORD and the SMS ones.
void apply_env(Config& cfg);

}  // namespace storepulse::cli
