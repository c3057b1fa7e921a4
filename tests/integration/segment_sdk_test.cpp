// The Segment HTTP Tracking API with the real SDK: starts the real server with
// a write key in its config and runs tests/sdk/segment.test.mjs, which sends
// through @segment/analytics-node 3.1.0 (from npm, tests/sdk/package-lock.json)
// and checks the profile over GET /v1/profiles/{id}.
//
// Needs node and tests/sdk/node_modules (scripts/test runs `npm ci --prefix
// tests/sdk`). Without them the test warns and passes, so a bare `ctest` on a
// machine without npm still works; CI goes through scripts/test and runs it.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "support/server_process.hpp"
#include "support/temp_dir.hpp"

using namespace storepulse::test;
namespace fs = std::filesystem;

namespace {

constexpr const char* kWriteKey = "segment-write-key-for-tests";

std::string find_node() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    const std::string p = std::string(dir) + "/node";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return {};
}

int run_node(std::vector<std::string> args, std::chrono::seconds limit) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

TEST_CASE(
    "segment API: @segment/analytics-node identify, order, page and alias land in the profile",
    "[sdk]") {
  const fs::path src = STOREPULSE_SOURCE_DIR;
  const fs::path modules = src / "tests/sdk/node_modules/@segment/analytics-node";
  const std::string node = find_node();
  if (node.empty() || !fs::exists(modules)) {
    WARN("Segment SDK test SKIPPED: needs node and " << modules.string()
                                                     << " (npm ci --prefix tests/sdk; scripts/test "
                                                        "does it)");
    SUCCEED();
    return;
  }
  TempDir dir;
  const std::string config = dir / "segment.toml";
  std::ofstream(config) << "[ingest]\nwrite_keys = [\"" << kWriteKey << "\"]\n";
  ServerProcess server(dir / "data", {"--config", config});
  const int rc =
      run_node({node, (src / "tests/sdk/segment.test.mjs").string(), "--port",
                std::to_string(server.port()), "--write-key", kWriteKey, "--token", kAdminToken},
               std::chrono::seconds(90));
  INFO("node tests/sdk/segment.test.mjs exit code " << rc);
  REQUIRE(rc == 0);
}
