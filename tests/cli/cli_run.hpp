#pragma once
// Runs the built storepulse binary and captures stdout / stderr / exit code.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace storepulse::testing {

struct CliRun {
  int code = -1;
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline CliRun run_cli(const std::string& args, const std::string& tag) {
  const std::string o = "/tmp/storepulse_cli_test_" + tag + ".out",
                    e = "/tmp/storepulse_cli_test_" + tag + ".err";
  std::string cmd = std::string(STOREPULSE_BINARY) + " " + args + " >" + o + " 2>" + e;
  int st = std::system(cmd.c_str());
  CliRun r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(o);
  r.err = slurp(e);
  return r;
}

}  // namespace storepulse::testing
