#pragma once
// A deliberately naive WebSocket client on a plain POSIX socket: the handshake
// is written by hand and frames are built byte by byte, so tests can send what a
// well-behaved library (Beast) refuses to produce: unmasked frames, oversized
// control frames, invalid UTF-8, frames cut off in the middle, raw HTTP with
// duplicated headers. Single-threaded; every read has a timeout so a test never
// hangs on a server that stays silent.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace storepulse::test {

/// WebSocket opcodes (RFC 6455 §5.2).
enum class WsOp : std::uint8_t {
  kCont = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA
};

struct RawFrame {
  std::uint8_t opcode = 0;
  bool fin = true;
  std::string payload;
  /// For a close frame: the status code, or 0 when the frame carried none.
  int close_code() const {
    if (opcode != 0x8 || payload.size() < 2) return 0;
    return (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
  }
};

class RawSocket {
 public:
  /// Connects to 127.0.0.1:port. `rcvbuf` > 0 shrinks the receive buffer before
  /// connecting (the window is negotiated at SYN time), to play a slow reader.
  explicit RawSocket(unsigned short port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawSocket() { close(); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  /// Writes all of `bytes`; false if the peer is gone (EPIPE/ECONNRESET).
  bool write_all(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Writes what fits without blocking; returns bytes written, -1 if the peer is gone.
  ssize_t write_some_nonblocking(std::string_view bytes) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return n;
  }

  /// Reads exactly `n` bytes into `out`, waiting at most `timeout` in total.
  bool read_exact(std::size_t n, std::string& out, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pending_.size() < n) {
      if (!fill(deadline)) return false;
    }
    out.assign(pending_, 0, n);
    pending_.erase(0, n);
    return true;
  }

  /// Reads until `delim` (included) appears; false on timeout / close.
  bool read_until(std::string_view delim, std::string& out, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto at = pending_.find(delim);
      if (at != std::string::npos) {
        out.assign(pending_, 0, at + delim.size());
        pending_.erase(0, at + delim.size());
        return true;
      }
      if (!fill(deadline)) return false;
    }
  }

  /// Everything the peer sends until it closes or `timeout` passes.
  std::string read_all(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fill(deadline)) {
    }
    std::string out;
    out.swap(pending_);
    return out;
  }

  /// True when the peer closed the connection (EOF or reset) within `timeout`.
  /// Data arriving meanwhile is discarded.
  bool wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      pending_.clear();
      if (!fill(deadline)) return peer_closed_;
    }
  }
  bool peer_closed() const { return peer_closed_; }

 private:
  // One recv() with the remaining time; false on timeout, EOF or error.
  bool fill(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r <= 0) return false;
    char buf[16384];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      peer_closed_ = true;
      return false;
    }
    pending_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool peer_closed_ = false;
  std::string pending_;
};

/// Builds one frame. `mask` = false produces the unmasked client frame RFC 6455
/// forbids; `rsv` sets the reserved bits (no extension is negotiated, so any is illegal).
inline std::string ws_frame(WsOp op, std::string_view payload, bool fin = true, bool mask = true,
                            std::uint8_t rsv = 0) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | (rsv << 4) | static_cast<std::uint8_t>(op)));
  const std::uint8_t mbit = mask ? 0x80 : 0;
  const std::uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(mbit | n));
  } else if (n <= 0xFFFF) {
    f.push_back(static_cast<char>(mbit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(mbit | 127));
    for (int s = 56; s >= 0; s -= 8) f.push_back(static_cast<char>((n >> s) & 0xFF));
  }
  const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (mask) f.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < n; ++i)
    f.push_back(mask ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
  return f;
}

/// A WebSocket connection over RawSocket with a hand-written upgrade.
class RawWs {
 public:
  RawWs(unsigned short port, const std::string& path, const std::string& bearer = "",
        int rcvbuf = 0)
      : sock_(port, rcvbuf) {
    if (!sock_.connected()) return;
    std::string req = "GET " + path +
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n";
    if (!bearer.empty()) req += "Authorization: Bearer " + bearer + "\r\n";
    req += "\r\n";
    std::string head;
    if (!sock_.write_all(req) || !sock_.read_until("\r\n\r\n", head, std::chrono::seconds(5)))
      return;
    // RFC 6455 §1.3: the accept value for this fixed key is fixed too.
    upgraded_ = head.rfind("HTTP/1.1 101", 0) == 0 &&
                head.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos;
  }
  bool ok() const { return upgraded_; }
  RawSocket& socket() { return sock_; }

  bool send(WsOp op, std::string_view payload, bool fin = true, bool mask = true) {
    return sock_.write_all(ws_frame(op, payload, fin, mask));
  }
  bool send_text(std::string_view payload) { return send(WsOp::kText, payload); }
  bool send_bytes(std::string_view bytes) { return sock_.write_all(bytes); }

  /// Next frame from the server (servers never mask), or nullopt on timeout / EOF.
  std::optional<RawFrame> read_frame(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::string h;
    if (!sock_.read_exact(2, h, timeout)) return std::nullopt;
    RawFrame f;
    f.fin = (static_cast<unsigned char>(h[0]) & 0x80) != 0;
    f.opcode = static_cast<unsigned char>(h[0]) & 0x0F;
    std::uint64_t n = static_cast<unsigned char>(h[1]) & 0x7F;
    std::string ext;
    if (n == 126) {
      if (!sock_.read_exact(2, ext, timeout)) return std::nullopt;
      n = (static_cast<unsigned char>(ext[0]) << 8) | static_cast<unsigned char>(ext[1]);
    } else if (n == 127) {
      if (!sock_.read_exact(8, ext, timeout)) return std::nullopt;
      n = 0;
      for (char c : ext) n = (n << 8) | static_cast<unsigned char>(c);
    }
    if (n > (64u << 20)) return std::nullopt;  // not a frame this server would send
    if (!sock_.read_exact(static_cast<std::size_t>(n), f.payload, timeout)) return std::nullopt;
    return f;
  }

  /// Next data message (pings from the server are skipped), or nullopt.
  std::optional<std::string> read_text(
      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    for (;;) {
      auto f = read_frame(timeout);
      if (!f) return std::nullopt;
      if (f->opcode == 0x1) return f->payload;
      if (f->opcode == 0x8) {
        last_close_ = f->close_code();
        return std::nullopt;
      }
    }
  }

  /// Reads until the server's close frame and returns its code; 0 if the
  /// connection ended (or timed out) without one; -1 when it timed out open.
  int await_close(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return -1;
      auto f = read_frame(left);
      if (!f) return sock_.peer_closed() ? 0 : -1;
      if (f->opcode == 0x8) return f->close_code();
    }
  }
  int last_close() const { return last_close_; }

 private:
  RawSocket sock_;
  bool upgraded_ = false;
  int last_close_ = 0;
};

}  // namespace storepulse::test
