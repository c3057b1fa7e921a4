#pragma once
// Starts the real `storepulse serve` binary on a free loopback port, and small
// synchronous WebSocket / HTTP clients to talk to it.
#include <fmt/format.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.hpp"

namespace storepulse::test {

inline constexpr const char* kPosKey = "test-terminal-key-0001";
inline constexpr const char* kAdminToken = "test-admin-token-0001";

class ServerProcess {
 public:
  explicit ServerProcess(std::string data_dir, std::vector<std::string> extra = {})
      : data_dir_(std::move(data_dir)), extra_(std::move(extra)) {
    start();
  }
  ~ServerProcess() { stop(); }

  void start() {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      ::setenv("STOREPULSE_POS_KEYS", kPosKey, 1);
      ::setenv("STOREPULSE_ADMIN_TOKEN", kAdminToken, 1);
      std::vector<std::string> args = {
          STOREPULSE_BINARY, "serve",
          "--config",        std::string(STOREPULSE_SOURCE_DIR) + "/config/storepulse.toml",
          "--rules",         std::string(STOREPULSE_SOURCE_DIR) + "/rules",
          "--port",          "0",
          "--data-dir",      data_dir_};
      args.insert(args.end(), extra_.begin(), extra_.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = ::fdopen(out[0], "r");
    char line[1024];
    port_ = 0;
    startup_output_.clear();
    while (std::fgets(line, sizeof line, out_)) {
      std::string s(line);
      startup_output_ += s;
      // http:// or https:// (TLS configured)
      auto at = s.find("listening on http");
      if (at != std::string::npos && (at = s.find("://127.0.0.1:", at)) != std::string::npos) {
        port_ = static_cast<unsigned short>(std::stoi(s.substr(at + 13)));
        break;
      }
    }
    REQUIRE(port_ != 0);
    // Under ctest every server's log is kept (STOREPULSE_TEST_LOG_DIR), and the
    // last test of the run checks that none holds a phone, email or birthday.
    FILE* keep = nullptr;
    if (const char* d = std::getenv("STOREPULSE_TEST_LOG_DIR"); d && *d) {
      const std::string path = std::string(d) + "/server-" + std::to_string(pid_) + ".log";
      keep = std::fopen(path.c_str(), "a");
      if (keep) std::fputs(startup_output_.c_str(), keep);
    }
    // Keep reading what the server logs: a full pipe would block its threads.
    drain_ = std::thread([this, f = out_, keep] {
      char buf[4096];
      while (std::fgets(buf, sizeof buf, f)) {
        if (keep) std::fputs(buf, keep);
        std::lock_guard lock(log_mu_);
        if (log_.size() < kMaxLogKept) log_ += buf;
      }
      if (keep) std::fclose(keep);
    });
  }
  /// What the server printed after its "listening on" line so far (the first
  /// kMaxLogKept bytes), e.g. to wait for a log line.
  std::string log() const {
    std::lock_guard lock(log_mu_);
    return log_;
  }

  /// SIGKILL: no drain, no final snapshot.
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    reap();
  }
  /// SIGTERM and wait: the graceful path. The server must exit 0: a crash,
  /// a sanitizer report (ASan, UBSan, LeakSanitizer: non-zero exit) or an
  /// error on the way down fails the test that ran it.
  void stop() {
    if (pid_ <= 0) return;
    const pid_t pid = pid_;
    ::kill(pid_, SIGTERM);
    const int st = reap();
    if (std::uncaught_exceptions() == 0) {
      INFO("storepulse serve (pid " << pid << ") after SIGTERM: wait status " << st
                                    << "; its log is in STOREPULSE_TEST_LOG_DIR under ctest");
      CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
    }
  }
  /// SIGTERM, then wait at most `limit` for the process to exit. Returns its
  /// exit status (0 = clean), or -1 when it had not exited by then (it is then
  /// killed with SIGKILL, so a hung shutdown fails a test instead of hanging it).
  int stop_within(std::chrono::milliseconds limit) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + limit;
    int st = 0;
    for (;;) {
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() >= until) {
        kill9();
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    finish();
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  unsigned short port() const { return port_; }
  /// What the server printed up to and including its "listening on" line
  /// (start-up warnings).
  const std::string& startup_output() const { return startup_output_; }
  /// The server's process id while it runs (-1 after stop), e.g. to read
  /// /proc/<pid>/status in memory-bound tests.
  pid_t pid() const { return pid_; }

 private:
  int reap() {
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    finish();
    return st;
  }
  void finish() {
    if (drain_.joinable()) drain_.join();  // EOF: the server is gone
    if (out_) {
      std::fclose(out_);
      out_ = nullptr;
    }
  }
  std::string data_dir_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::thread drain_;
  unsigned short port_ = 0;
  std::string startup_output_;
  static constexpr std::size_t kMaxLogKept = 4u << 20;
  mutable std::mutex log_mu_;
  std::string log_;
};

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

/// Synchronous WebSocket client with a receive timeout.
class WsClient {
 public:
  /// Returns the HTTP status of a refused upgrade in `refused_status`.
  /// `headers` are added to the upgrade request (e.g. Origin).
  WsClient(unsigned short port, const std::string& path, const std::string& key = "",
           std::vector<std::pair<std::string, std::string>> headers = {})
      : ws_(ioc_) {
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    ws_.next_layer().connect(ep);
    timeval tv{10, 0};
    ::setsockopt(ws_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ws_.set_option(websocket::stream_base::decorator([key, headers](websocket::request_type& req) {
      if (!key.empty()) req.set(http::field::authorization, "Bearer " + key);
      for (const auto& [name, value] : headers) req.set(name, value);
    }));
    ws_.read_message_max(64 << 20);
    websocket::response_type res;
    beast::error_code ec;
    ws_.handshake(res, "127.0.0.1", path, ec);
    status_ = res.result_int();
    ok_ = !ec;
  }
  bool ok() const { return ok_; }
  int status() const { return status_; }
  void send(const std::string& msg, bool text = true) {
    ws_.text(text);
    ws_.write(asio::buffer(msg));
  }
  /// Next message, or nullopt on close/timeout.
  std::optional<std::string> read() {
    beast::flat_buffer b;
    beast::error_code ec;
    ws_.read(b, ec);
    if (ec) {
      last_error_ = ec;
      return std::nullopt;
    }
    return beast::buffers_to_string(b.data());
  }
  std::string request(const std::string& msg) {
    send(msg);
    auto r = read();
    REQUIRE(r);
    return *r;
  }
  beast::error_code last_error() const { return last_error_; }
  websocket::stream<asio::ip::tcp::socket>& stream() { return ws_; }

 private:
  asio::io_context ioc_;
  websocket::stream<asio::ip::tcp::socket> ws_;
  int status_ = 0;
  bool ok_ = false;
  beast::error_code last_error_;
};

struct ServeExit {
  int code = -1;       // exit status
  std::string output;  // stdout and stderr together
};

/// Runs `storepulse serve` with `config` to the end, for the cases where it
/// must refuse to start: its exit status and what it printed.
inline ServeExit serve_until_exit(const std::string& config, const std::string& data_dir,
                                  const std::string& extra_args = "") {
  const std::string cmd = fmt::format(
      "STOREPULSE_POS_KEYS=k {} serve --config {} --rules {}/rules --port 0 --data-dir {} {} 2>&1",
      STOREPULSE_BINARY, config, STOREPULSE_SOURCE_DIR, data_dir, extra_args);
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  ServeExit r;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) r.output += buf;
  const int rc = ::pclose(p);
  r.code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return r;
}

/// A server started on a config file of its own (written with `mode`, as an
/// operator would), in a temporary folder that also holds its data.
class ConfiguredServer {
 public:
  explicit ConfiguredServer(const std::string& toml, mode_t mode = 0600) {
    const std::string path = dir_ / "server.toml";
    std::ofstream(path) << toml;
    ::chmod(path.c_str(), mode);
    srv_ =
        std::make_unique<ServerProcess>(dir_ / "data", std::vector<std::string>{"--config", path});
  }
  unsigned short port() const { return srv_->port(); }
  ServerProcess& process() { return *srv_; }

 private:
  TempDir dir_;
  std::unique_ptr<ServerProcess> srv_;
};

struct HttpReply {
  int status = 0;
  std::string body;
};

/// Sends `req` (Host and length filled in) to 127.0.0.1:port and reads the reply.
inline HttpReply http_send(unsigned short port, http::request<http::string_body> req) {
  asio::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  s.expires_after(std::chrono::seconds(20));
  req.set(http::field::host, "127.0.0.1");
  req.prepare_payload();
  http::write(s, req);
  beast::flat_buffer b;
  http::response<http::string_body> res;
  http::read(s, b, res);
  return {static_cast<int>(res.result_int()), res.body()};
}

inline HttpReply http_request(unsigned short port, http::verb verb, const std::string& target,
                              const std::string& token = "", const std::string& body = "") {
  http::request<http::string_body> req(verb, target, 11);
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) {
    req.body() = body;
    req.set(http::field::content_type, "application/json");
  }
  return http_send(port, std::move(req));
}

inline bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace storepulse::test
