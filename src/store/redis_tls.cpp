#include "storepulse/store/redis_tls.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

namespace storepulse::store {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;

struct RedisTlsTunnel::Impl {
  std::string host;
  int port = 0;
  std::string server_name;
  int connect_timeout_ms = 2000;
  std::string dir, path;
  asio::io_context ioc{1};
  ssl::context ctx{ssl::context::tls_client};
  std::optional<unix_socket::acceptor> acceptor;
  std::thread thread;
  mutable std::mutex mu;
  std::string last_error;
  std::atomic<std::uint64_t> connections{0};

  void fail(const std::string& what) {
    {
      std::lock_guard<std::mutex> lk(mu);
      if (last_error == what) return;  // one log line per distinct cause
      last_error = what;
    }
    spdlog::error("redis TLS to {}:{}: {}", host, port, what);
  }
  void succeeded() {
    std::lock_guard<std::mutex> lk(mu);
    if (!last_error.empty()) spdlog::info("redis TLS to {}:{}: connected again", host, port);
    last_error.clear();
  }
  void accept();
};

namespace {

/// One client connection: hiredis on the Unix side, Redis over TLS on the
/// other; bytes pumped both ways, each direction one read and one write in
/// flight (bounded by the two 16 KiB buffers). Either side closing closes both.
class Pipe : public std::enable_shared_from_this<Pipe> {
 public:
  Pipe(RedisTlsTunnel::Impl& t, unix_socket::socket local)
      : t_(t), local_(std::move(local)), remote_(t.ioc, t.ctx), resolver_(t.ioc), timer_(t.ioc) {}

  void start() {
    SSL* ssl = remote_.native_handle();
    boost::system::error_code ec;
    asio::ip::make_address(t_.server_name, ec);
    if (ec)
      SSL_set_tlsext_host_name(ssl, t_.server_name.c_str());  // SNI is for names, not addresses
    remote_.set_verify_mode(ssl::verify_peer);
    remote_.set_verify_callback(ssl::host_name_verification(t_.server_name));
    timer_.expires_after(std::chrono::milliseconds(t_.connect_timeout_ms));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
      if (e || self->up_) return;
      self->t_.fail(fmt::format("no TLS session within {} ms", self->t_.connect_timeout_ms));
      self->close();
    });
    resolver_.async_resolve(
        t_.host, std::to_string(t_.port),
        [self = shared_from_this()](const boost::system::error_code& e,
                                    tcp::resolver::results_type r) {
          if (e) return self->give_up("cannot resolve host: " + e.message());
          asio::async_connect(self->remote_.lowest_layer(), r,
                              [self](const boost::system::error_code& e2, const tcp::endpoint&) {
                                if (e2) return self->give_up("cannot connect: " + e2.message());
                                self->handshake();
                              });
        });
  }

 private:
  void handshake() {
    boost::system::error_code ignored;
    remote_.lowest_layer().set_option(tcp::no_delay(true), ignored);
    remote_.async_handshake(
        ssl::stream_base::client, [self = shared_from_this()](const boost::system::error_code& e) {
          if (e) {
            std::string why = e.message();
            const long v = SSL_get_verify_result(self->remote_.native_handle());
            // The name check fails without an OpenSSL reason of its own.
            if (v == X509_V_ERR_UNSPECIFIED)
              why = fmt::format("the certificate is not for '{}' (redis.tls_server_name)",
                                self->t_.server_name);
            else if (v != X509_V_OK)
              why = fmt::format("certificate not trusted: {}", X509_verify_cert_error_string(v));
            return self->give_up("TLS handshake failed: " + why);
          }
          self->up_ = true;
          self->timer_.cancel();
          self->t_.succeeded();
          self->t_.connections.fetch_add(1, std::memory_order_relaxed);
          self->pump(self->local_, self->remote_, self->up_buf_);    // hiredis -> Redis
          self->pump(self->remote_, self->local_, self->down_buf_);  // Redis -> hiredis
        });
  }

  void give_up(const std::string& why) {
    t_.fail(why);
    close();
  }

  /// One direction: read what `from` has, write all of it to `to`, again.
  template <class From, class To>
  void pump(From& from, To& to, std::array<char, 16384>& buf) {
    from.async_read_some(asio::buffer(buf), [self = shared_from_this(), &from, &to, &buf](
                                                const boost::system::error_code& e, std::size_t n) {
      if (e) return self->close();
      asio::async_write(to, asio::buffer(buf.data(), n),
                        [self, &from, &to, &buf](const boost::system::error_code& e2, std::size_t) {
                          if (e2) return self->close();
                          self->pump(from, to, buf);
                        });
    });
  }

  void close() {
    boost::system::error_code ignored;
    timer_.cancel();
    local_.close(ignored);
    remote_.lowest_layer().close(ignored);
  }

  RedisTlsTunnel::Impl& t_;
  unix_socket::socket local_;
  ssl::stream<tcp::socket> remote_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  bool up_ = false;
  std::array<char, 16384> up_buf_{}, down_buf_{};
};

void sweep_dead_tunnels(const std::filesystem::path& tmp) {
  constexpr std::string_view kPrefix = "storepulse-redis-tls-";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(tmp, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(kPrefix)) continue;
    const std::string rest = name.substr(kPrefix.size());
    const auto dash = rest.find('-');
    if (dash == std::string::npos) continue;
    const long pid = std::strtol(rest.substr(0, dash).c_str(), nullptr, 10);
    struct stat st {};
    if (pid <= 0 || ::stat(entry.path().c_str(), &st) != 0 || st.st_uid != ::getuid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code rm;
      std::filesystem::remove_all(entry.path(), rm);
    }
  }
}

}  // namespace

void RedisTlsTunnel::Impl::accept() {
  acceptor->async_accept([this](const boost::system::error_code& e, unix_socket::socket s) {
    if (e == asio::error::operation_aborted) return;
    if (!e) std::make_shared<Pipe>(*this, std::move(s))->start();
    accept();
  });
}

RedisTlsTunnel::RedisTlsTunnel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RedisTlsTunnel::~RedisTlsTunnel() {
  impl_->ioc.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  std::error_code ec;
  std::filesystem::remove_all(impl_->dir, ec);
}

const std::string& RedisTlsTunnel::socket_path() const {
  return impl_->path;
}

std::string RedisTlsTunnel::last_error() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->last_error;
}

std::uint64_t RedisTlsTunnel::connections() const {
  return impl_->connections.load(std::memory_order_relaxed);
}

Result<std::shared_ptr<RedisTlsTunnel>> RedisTlsTunnel::for_endpoint(const std::string& host,
                                                                     int port,
                                                                     const RedisTlsOptions& tls,
                                                                     int connect_timeout_ms) {
  // Process lifetime: the store's connections come and go (reconnects), the
  // tunnel stays; its destructor runs at exit.
  static std::mutex registry_mu;
  static std::map<std::string, std::shared_ptr<RedisTlsTunnel>> registry;
  const std::string key = fmt::format("{}:{}|{}|{}|{}|{}", host, port, tls.ca_file, tls.cert_file,
                                      tls.key_file, tls.server_name);
  std::lock_guard<std::mutex> lk(registry_mu);
  if (auto it = registry.find(key); it != registry.end()) return it->second;

  auto impl = std::make_unique<Impl>();
  impl->host = host;
  impl->port = port;
  impl->server_name = tls.server_name.empty() ? host : tls.server_name;
  impl->connect_timeout_ms = connect_timeout_ms;
  auto bad = [&](const std::string& what) {
    return Result<std::shared_ptr<RedisTlsTunnel>>(
        Status(ErrorCode::kBadField, fmt::format("redis TLS to {}:{}: {}", host, port, what)));
  };
  boost::system::error_code ec;
  impl->ctx.set_options(ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                        ssl::context::no_tlsv1_1);
  if (tls.ca_file.empty())
    impl->ctx.set_default_verify_paths(ec);
  else
    impl->ctx.load_verify_file(tls.ca_file, ec);
  if (ec) return bad(fmt::format("cannot load CA file '{}': {}", tls.ca_file, ec.message()));
  if (tls.cert_file.empty() != tls.key_file.empty())
    return bad("tls_cert and tls_key go together (a client certificate needs its key)");
  if (!tls.cert_file.empty()) {
    impl->ctx.use_certificate_chain_file(tls.cert_file, ec);
    if (ec)
      return bad(
          fmt::format("cannot load client certificate '{}': {}", tls.cert_file, ec.message()));
    impl->ctx.use_private_key_file(tls.key_file, ssl::context::pem, ec);
    if (ec) return bad(fmt::format("cannot load client key '{}': {}", tls.key_file, ec.message()));
  }

  // A private folder: only this user can reach the socket, so the tunnel
  // lends its client certificate to no one else on the machine. Its name
  // carries the pid: folders of processes that died (kill -9) are swept here.
  const auto tmp = std::filesystem::temp_directory_path();
  sweep_dead_tunnels(tmp);
  std::string tmpl = (tmp / fmt::format("storepulse-redis-tls-{}-XXXXXX", ::getpid())).string();
  if (!::mkdtemp(tmpl.data()))
    return bad(fmt::format("cannot create the tunnel folder under {}: {}",
                           std::filesystem::temp_directory_path().string(), std::strerror(errno)));
  impl->dir = tmpl;
  ::chmod(impl->dir.c_str(), 0700);
  impl->path = impl->dir + "/redis.sock";
  impl->acceptor.emplace(impl->ioc);
  impl->acceptor->open(unix_socket(), ec);
  if (!ec) impl->acceptor->bind(unix_socket::endpoint(impl->path), ec);
  if (!ec) impl->acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::filesystem::remove_all(impl->dir);
    return bad(fmt::format("cannot listen on {}: {}", impl->path, ec.message()));
  }
  impl->accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->ioc.run(); });
  std::shared_ptr<RedisTlsTunnel> t(new RedisTlsTunnel(std::move(impl)));
  spdlog::info("redis TLS to {}:{} (name checked: {}) through {}", host, port,
               t->impl_->server_name, t->socket_path());
  registry.emplace(key, t);
  return t;
}

}  // namespace storepulse::store
