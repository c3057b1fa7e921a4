// The website widget, demo shop and dashboard in a real headless browser:
// starts the real server (web_root = web/, a test rule that nudges 2 s after
// an add to cart) and runs tests/browser/shop.test.mjs (playwright-core driving
// Debian's /usr/bin/chromium). Screenshots land in <build>/tests/browser-screenshots.
//
// Needs `chromium` (scripts/deps installs it) and tests/browser/node_modules
// (scripts/test runs `npm ci --prefix tests/browser` from the committed lockfile).
// Without them the test warns and passes, so a bare `ctest` on a machine
// without a browser still works; CI goes through scripts/test and runs it.
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

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= p.size()) {
    const auto end = p.find(':', start);
    const std::string dir =
        p.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!dir.empty()) {
      const fs::path cand = fs::path(dir) / name;
      if (::access(cand.c_str(), X_OK) == 0) return cand.string();
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return {};
}

/// Runs argv with inherited stdout/stderr; returns the exit code, or -1 on a
/// timeout (the child is killed) or a signal.
int run_with_timeout(std::vector<std::string> args, std::chrono::seconds limit) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setpgid(0, 0);  // own group: a timeout kills node and Chromium together
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int st = 0;
    const pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

TEST_CASE("widget - demo shop and dashboard in headless Chromium", "[browser]") {
  const fs::path src = STOREPULSE_SOURCE_DIR;
  const char* env_chromium = std::getenv("STOREPULSE_CHROMIUM");
  const std::string chromium = env_chromium && *env_chromium ? env_chromium : "/usr/bin/chromium";
  const fs::path modules = src / "tests/browser/node_modules/playwright-core";
  const std::string node = find_in_path("node");
  if (::access(chromium.c_str(), X_OK) != 0 || !fs::exists(modules) || node.empty()) {
    WARN("browser test SKIPPED: needs "
         << chromium << " (apt-get install chromium; scripts/deps), node, and " << modules.string()
         << " (npm ci --prefix tests/browser; scripts/test does both)");
    SUCCEED();
    return;
  }

  TempDir dir;
  const std::string rules_dir = dir / "rules";
  fs::create_directories(rules_dir);
  {
    // The shipped abandoned-cart rule waits 2 h and holds 10 % out; the test
    // rule waits 2 s and holds nobody out, so every run sees the nudge.
    std::ofstream r(rules_dir + "/abandoned-cart-test.yaml");
    r << "rule: abandoned-cart-test\n"
         "description: Browser test - nudge a web shopper 2 seconds after the last add to cart.\n"
         "on: Product Added\n"
         "wait: 2s\n"
         "cancel_on: [Order Completed]\n"
         "if: cart.value >= 20\n"
         "then:\n"
         "  - web: \"Still thinking about {cart.top.name|your basket}? It's waiting in your "
         "cart.\"\n"
         "    offer:\n"
         "      kind: reminder\n"
         "      productId: \"{cart.top.productId}\"\n"
         "priority: 50\n"
         "cooldown: 1d\n"
         "holdout: 0%\n"
         "enabled: true\n";
  }
  const std::string config = dir / "browser.toml";
  {
    std::ofstream c(config);
    c << "[server]\nweb_root = \"" << (src / "web").string() << "\"\n"
      << "[rules]\ndir = \"" << rules_dir << "\"\n";
  }
  // Last --config and last --rules win over the ones ServerProcess passes first.
  ServerProcess server(dir / "data", {"--config", config, "--rules", rules_dir});

  const fs::path out = fs::current_path() / "browser-screenshots";
  fs::create_directories(out);
  const auto t0 = std::chrono::steady_clock::now();
  const int rc =
      run_with_timeout({node, (src / "tests/browser/shop.test.mjs").string(), "--port",
                        std::to_string(server.port()), "--token", kAdminToken, "--pos-key", kPosKey,
                        "--out", out.string(), "--chromium", chromium},
                       std::chrono::seconds(200));
  const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO("node tests/browser/shop.test.mjs exit code " << rc << " after " << secs
                                                     << " s; screenshots in " << out.string());
  REQUIRE(rc == 0);
  CHECK(fs::exists(out / "shop.png"));
  CHECK(fs::exists(out / "dashboard.png"));
}
