#pragma once
// A real `redis-server` on a free loopback port, in its own folder, with the
// settings docs/operations.md asks for (appendonly yes, appendfsync always).
// Tests that need Redis fail (not skip) when redis-server is missing: scripts/
// test installs it.
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace storepulse::test {

inline unsigned short free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

class RedisProcess {
 public:
  /// `dir` holds the AOF; the same dir and port can be started again after kill9().
  /// `extra`: more redis-server arguments (e.g. a TLS port).
  explicit RedisProcess(std::string dir, std::vector<std::string> extra = {})
      : dir_(std::move(dir)), extra_(std::move(extra)) {
    start();
  }
  ~RedisProcess() { stop(); }

  void start() {
    for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) {
      if (port_ == 0 || attempt > 0) port_ = free_loopback_port();
      pid_ = ::fork();
      REQUIRE(pid_ >= 0);
      if (pid_ == 0) {
        const std::string port = std::to_string(port_);
        std::vector<std::string> args = {"redis-server",
                                         "--port",
                                         port,
                                         "--bind",
                                         "127.0.0.1",
                                         "--dir",
                                         dir_,
                                         "--appendonly",
                                         "yes",
                                         "--appendfsync",
                                         "always",
                                         "--save",
                                         "",
                                         "--daemonize",
                                         "no",
                                         "--loglevel",
                                         "warning",
                                         "--logfile",
                                         dir_ + "/redis.log"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execvp("redis-server", argv.data());
        ::_exit(127);
      }
      if (!wait_ready()) {
        ::kill(pid_, SIGKILL);
        int st;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
      }
    }
    REQUIRE(pid_ > 0);
  }
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  unsigned short port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  /// One command on a fresh connection; the reply as text ("" for nil, the
  /// count for integers, elements joined by '\n' for arrays).
  std::string command(const std::vector<std::string>& args) const {
    redisContext* c = redisConnect("127.0.0.1", port_);
    REQUIRE(c);
    REQUIRE(c->err == 0);
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    REQUIRE(r);
    std::string out = text(r);
    freeReplyObject(r);
    redisFree(c);
    return out;
  }

 private:
  static std::string text(const redisReply* r) {
    switch (r->type) {
      case REDIS_REPLY_INTEGER: return std::to_string(r->integer);
      case REDIS_REPLY_NIL: return "";
      case REDIS_REPLY_ARRAY: {
        std::string s;
        for (std::size_t i = 0; i < r->elements; ++i) s += (i ? "\n" : "") + text(r->element[i]);
        return s;
      }
      default: return std::string(r->str, r->len);
    }
  }
  bool wait_ready() {
    for (int i = 0; i < 200; ++i) {
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) return false;  // exited (port taken?)
      redisContext* c = redisConnect("127.0.0.1", port_);
      if (c && c->err == 0) {
        auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
        const bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
        redisFree(c);
        if (ok) return true;
      } else if (c) {
        redisFree(c);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }
  std::string dir_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  unsigned short port_ = 0;
};

}  // namespace storepulse::test
