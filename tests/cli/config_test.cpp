// Config keys of the Segment API ([ingest] write_keys, STOREPULSE_WRITE_KEYS).
#include "storepulse/cli/config.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "support/temp_dir.hpp"

using namespace storepulse;

namespace {

std::string write_config(const storepulse::test::TempDir& dir, const std::string& text) {
  const std::string path = dir / "c.toml";
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("config: ingest.write_keys from the file, and STOREPULSE_WRITE_KEYS replaces them") {
  storepulse::test::TempDir dir;
  ::unsetenv("STOREPULSE_WRITE_KEYS");
  auto cfg = cli::load_config(write_config(dir, "[ingest]\nwrite_keys = [\"wk_file_key_1\"]\n"));
  CHECK(cfg.server.write_keys == std::vector<std::string>{"wk_file_key_1"});
  CHECK(cfg.secrets_in_file);
  ::setenv("STOREPULSE_WRITE_KEYS", "wk_env_key_1, wk_env_key_2", 1);
  cli::apply_env(cfg);
  ::unsetenv("STOREPULSE_WRITE_KEYS");
  CHECK(cfg.server.write_keys == std::vector<std::string>{"wk_env_key_1", "wk_env_key_2"});
}

TEST_CASE("config: a bad write key is refused, naming the key") {
  storepulse::test::TempDir dir;
  for (const char* bad :
       {"[ingest]\nwrite_keys = \"wk_not_an_array\"\n", "[ingest]\nwrite_keys = [\"short\"]\n",
        "[ingest]\nwrite_keys = [\"has:colon:inside\"]\n", "[ingest]\nwrite_keys = [42]\n"}) {
    INFO(bad);
    CHECK_THROWS_WITH(cli::load_config(write_config(dir, bad)),
                      Catch::Contains("ingest.write_keys"));
  }
  CHECK_THROWS_WITH(cli::load_config(write_config(dir, "[ingest]\nwritekeys = []\n")),
                    Catch::Contains("writekeys"));
  cli::Config cfg;
  ::setenv("STOREPULSE_WRITE_KEYS", "ok_key_long_enough,short", 1);
  CHECK_THROWS_WITH(cli::apply_env(cfg), Catch::Contains("STOREPULSE_WRITE_KEYS"));
  ::unsetenv("STOREPULSE_WRITE_KEYS");
}
