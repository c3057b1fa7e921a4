#pragma once
// TLS to Redis (`rediss://`). Debian 12's hiredis (0.14) has no TLS, so the
// store talks plain RESP to a tunnel inside this process: a Unix socket in a
// private (0700) folder whose every connection is carried to Redis over TLS
// (OpenSSL through Asio: certificate chain and host name verified, SNI, an
// optional client certificate for `tls-auth-clients yes`). One tunnel per
// Redis endpoint and process, started on first use, stopped at exit.
#include <memory>
#include <string>

#include "storepulse/common/status.hpp"

namespace storepulse::store {

struct RedisTlsOptions {
  bool enabled = false;   // rediss:// in the url
  std::string ca_file;    // trust these CAs instead of the system store
  std::string cert_file;  // client certificate (PEM), with key_file
  std::string key_file;
  std::string
      server_name;  // name checked in the certificate and sent as SNI; empty: the url's host
};

class RedisTlsTunnel {
 public:
  /// The tunnel to host:port with these settings, started if it is not
  /// running. Fails on unreadable certificate files (not on an unreachable
  /// Redis: that shows when a connection through it is made).
  static Result<std::shared_ptr<RedisTlsTunnel>> for_endpoint(const std::string& host, int port,
                                                              const RedisTlsOptions& tls,
                                                              int connect_timeout_ms);
  ~RedisTlsTunnel();
  RedisTlsTunnel(const RedisTlsTunnel&) = delete;
  RedisTlsTunnel& operator=(const RedisTlsTunnel&) = delete;

  /// The Unix socket to give hiredis.
  const std::string& socket_path() const;
  /// Why the last connection to Redis failed (TCP connect, TLS handshake,
  /// certificate), empty if none has; for the store's error messages.
  std::string last_error() const;
  /// Connections carried since start.
  std::uint64_t connections() const;

  struct Impl;

 private:
  explicit RedisTlsTunnel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace storepulse::store
