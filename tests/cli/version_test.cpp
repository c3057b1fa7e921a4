// `storepulse --version`: the version and the git commit the binary was built from.
#include <catch2/catch.hpp>
#include <regex>

#include "cli_run.hpp"

using storepulse::testing::run_cli;

TEST_CASE("storepulse --version prints the version and the commit - exit 0") {
  auto r = run_cli("--version", "version");
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(std::regex_match(
      r.out,
      std::regex(R"(storepulse \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)\n)")));
  // Help names it too.
  auto h = run_cli("--help", "version-help");
  CHECK(h.out.find("--version") != std::string::npos);
}
