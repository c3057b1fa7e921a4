// config/storepulse.toml is the reference for the config: it names every key
// load_config accepts, under its section (set or commented out), and no key
// load_config would refuse.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "storepulse/cli/config.hpp"

TEST_CASE("config: storepulse.toml documents every known key - and no unknown one") {
  std::ifstream in(std::string(STOREPULSE_SOURCE_DIR) + "/config/storepulse.toml");
  REQUIRE(in);
  // "[section]" or "# [section]"; "key = …" or "# key = …" below it.
  const std::regex header(R"(^#?\s*\[(\w+)\]\s*$)");
  const std::regex assignment(R"(^#?\s*([a-z_]+)\s*=)");
  std::map<std::string, std::set<std::string>> documented;
  std::string section, line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, header)) {
      section = m[1];
      continue;
    }
    if (!section.empty() && std::regex_search(line, m, assignment))
      documented[section].insert(m[1]);
  }
  std::set<std::string> sections;
  for (const auto& [sect, keys] : storepulse::cli::known_config_keys()) {
    sections.insert(sect);
    for (const auto& k : keys) {
      INFO("[" << sect << "] " << k << " is accepted but not in config/storepulse.toml");
      CHECK(documented[sect].count(k) == 1);
    }
  }
  for (const auto& [sect, keys] : documented) {
    INFO("[" << sect << "] in config/storepulse.toml is not a section load_config knows");
    CHECK(sections.count(sect) == 1);
    for (const auto& k : keys) {
      bool known = false;
      for (const auto& [s, ks] : storepulse::cli::known_config_keys())
        if (s == sect)
          for (const auto& x : ks) known |= x == k;
      INFO("[" << sect << "] " << k << " is in config/storepulse.toml but load_config refuses it");
      CHECK(known);
    }
  }
}
