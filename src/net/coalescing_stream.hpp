#pragma once
// CoalescingStream: the layer under Beast's websocket::stream that turns the
// replies of a loop turn into one socket write per connection.
//
// Beast writes one message per async_write, each a send() of its own. Under
// load an io thread answers many events of a connection in one turn (a group
// commit's acks), so a server->client text frame is written here instead by
// our own frame writer (write_text: unmasked header + payload appended to the
// connection's outbox), and everything Beast itself writes through this layer
// (the 101 response, pongs, keep-alive pings, the close frame) is appended to
// the same outbox, whole, in call order: the bytes on the wire are in the
// order they were produced, so a control frame never lands inside a data
// frame and nothing follows the close frame. The io thread calls
// flush_pending() once per loop turn (run_io_thread), which starts at most one
// socket write per connection with all that accumulated; while a write is in
// flight, new bytes collect for the next one.
//
// Bounded: the caller checks queued_messages() against its send-queue limit
// (a reader that far behind is cut off, as before). Threads: one io thread per
// connection touches it; Beast's reads pass straight through.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace storepulse::net {

namespace detail {

/// The bytes of one connection not yet taken by the socket, shared between the
/// stream and its in-flight write (whose handler keeps it alive).
struct Outbox {
  std::string pending;  // appended since the last write started
  std::string writing;  // handed to the socket, until its write completes
  std::size_t pending_msgs = 0, writing_msgs = 0;  // data frames in each
  std::uint64_t writes = 0;                        // socket writes started
  bool in_flight = false;
  bool listed = false;             // in the io thread's flush list
  bool framing = false;            // the handshake is done: what Beast writes now are frames
  bool closed = false;             // Beast wrote its close frame (or teardown began): no data after
  boost::beast::error_code error;  // the socket write failed: all later writes fail
  std::function<void()> start;     // starts a socket write; empty once the stream is gone
  std::vector<std::function<void()>> on_drained;  // teardown waiting for the last bytes
  void drained() {
    auto fns = std::move(on_drained);
    on_drained.clear();
    for (auto& f : fns) f();
  }
};

/// The outboxes with bytes appended this turn, per io thread.
inline std::vector<std::shared_ptr<Outbox>>*& flush_list() {
  thread_local std::vector<std::shared_ptr<Outbox>>* list = nullptr;
  return list;
}

inline void append_frame_header(std::string& out, std::size_t n) {
  out.push_back(static_cast<char>(0x81));  // FIN + text; a server never masks
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>((n >> 8) & 0xFF));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> shift) & 0xFF));
  }
}

}  // namespace detail

/// The io thread's loop: collects connections with bytes to send and starts
/// their writes once per turn. One per io thread, installed for its lifetime.
class FlushList {
 public:
  FlushList() { detail::flush_list() = &list_; }
  ~FlushList() { detail::flush_list() = nullptr; }
  FlushList(const FlushList&) = delete;
  FlushList& operator=(const FlushList&) = delete;
  /// Starts a socket write on every connection that has bytes waiting and none
  /// in flight. Returns whether there were any.
  bool flush_pending() {
    if (list_.empty()) return false;
    swap_.swap(list_);
    for (auto& box : swap_) {
      box->listed = false;
      if (!box->in_flight && !box->pending.empty() && box->start) box->start();
    }
    swap_.clear();
    return true;
  }

 private:
  std::vector<std::shared_ptr<detail::Outbox>> list_, swap_;
};

template <class NextLayer>
class CoalescingStream {
 public:
  using next_layer_type = NextLayer;
  using executor_type = typename NextLayer::executor_type;

  template <class Arg>
  explicit CoalescingStream(Arg&& next)
      : next_(std::forward<Arg>(next)), box_(std::make_shared<detail::Outbox>()) {
    box_->start = [this] { start_write(); };
  }
  CoalescingStream(const CoalescingStream&) = delete;
  CoalescingStream& operator=(const CoalescingStream&) = delete;
  ~CoalescingStream() {
    // An in-flight write keeps the outbox (its buffer) alive, not this stream.
    box_->start = nullptr;
    box_->on_drained.clear();
  }

  executor_type get_executor() noexcept { return next_.get_executor(); }
  NextLayer& next_layer() noexcept { return next_; }
  const NextLayer& next_layer() const noexcept { return next_; }

  /// From now on Beast writes only frames (call after the handshake).
  void handshake_done() { box_->framing = true; }
  /// The object that owns this stream (the session): a socket write in flight
  /// keeps it alive, so the stream - and a TLS stream's engine, which the
  /// write uses - is not destroyed under it when the last other reference goes.
  void set_owner(std::weak_ptr<void> owner) { owner_ = std::move(owner); }

  /// Appends one text message as a single frame. False (nothing appended) once
  /// the connection is closing or its socket failed.
  bool write_text(std::string_view payload) {
    auto& b = *box_;
    if (b.closed || b.error) return false;
    detail::append_frame_header(b.pending, payload.size());
    b.pending.append(payload);
    ++b.pending_msgs;
    schedule();
    return true;
  }

  /// Data frames appended and not yet taken by the socket.
  std::size_t queued_messages() const { return box_->pending_msgs + box_->writing_msgs; }
  /// Socket writes started so far (each takes everything appended before it).
  std::uint64_t socket_writes() const { return box_->writes; }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return next_.async_read_some(buffers, std::forward<Token>(token));
  }

  /// Beast's writes: taken whole into the outbox, completed at once (posted).
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& bufs) {
          boost::beast::error_code ec = box_->error;
          std::size_t n = 0;
          if (!ec) {
            auto& b = *box_;
            const std::size_t before = b.pending.size();
            for (auto it = boost::asio::buffer_sequence_begin(bufs);
                 it != boost::asio::buffer_sequence_end(bufs); ++it) {
              const boost::asio::const_buffer cb(*it);
              b.pending.append(static_cast<const char*>(cb.data()), cb.size());
            }
            n = b.pending.size() - before;
            // A close frame (opcode 8): nothing may follow it.
            if (b.framing && n > 0 && (static_cast<unsigned char>(b.pending[before]) & 0x0F) == 0x8)
              b.closed = true;
            if (n > 0) schedule();
          }
          auto ex = boost::asio::get_associated_executor(handler, next_.get_executor());
          boost::asio::post(ex, boost::beast::bind_front_handler(std::move(handler), ec, n));
        },
        token, buffers);
  }

  /// Runs `fn` once every byte appended so far was taken by the socket (or the
  /// socket failed); at once when there is nothing left.
  void when_drained(std::function<void()> fn) {
    auto& b = *box_;
    b.closed = true;
    if (b.error || (!b.in_flight && b.pending.empty())) return fn();
    b.on_drained.push_back(std::move(fn));
    schedule();
  }

 private:
  void schedule() {
    auto& b = *box_;
    if (b.in_flight || b.listed) return;
    if (auto* list = detail::flush_list()) {
      b.listed = true;
      list->push_back(box_);
      return;
    }
    // Not on an io thread's loop (a test harness): write on the next handler.
    b.listed = true;
    boost::asio::post(next_.get_executor(), [box = box_] {
      box->listed = false;
      if (!box->in_flight && !box->pending.empty() && box->start) box->start();
    });
  }

  void start_write() {
    auto& b = *box_;
    b.writing.swap(b.pending);
    b.pending.clear();
    b.writing_msgs = b.pending_msgs;
    b.pending_msgs = 0;
    b.in_flight = true;
    ++b.writes;
    boost::asio::async_write(
        next_, boost::asio::buffer(b.writing),
        [box = box_, owner = owner_.lock()](boost::beast::error_code ec, std::size_t) {
          box->in_flight = false;
          box->writing.clear();
          box->writing_msgs = 0;
          if (ec) {
            box->error = ec;
            box->pending.clear();
            box->pending_msgs = 0;
            box->drained();
            return;
          }
          if (!box->pending.empty()) {
            if (box->start) box->start();
            return;
          }
          box->drained();
        });
  }

  NextLayer next_;
  std::shared_ptr<detail::Outbox> box_;
  std::weak_ptr<void> owner_;
};

/// Beast closes a WebSocket with teardown on its next layer: here after the
/// bytes already appended (the close frame among them) have gone out.
template <class NextLayer, class TeardownHandler>
void async_teardown(boost::beast::role_type role, CoalescingStream<NextLayer>& stream,
                    TeardownHandler&& handler) {
  auto h = std::make_shared<std::decay_t<TeardownHandler>>(std::forward<TeardownHandler>(handler));
  stream.when_drained([role, &stream, h] {
    using boost::beast::websocket::async_teardown;
    async_teardown(role, stream.next_layer(), std::move(*h));
  });
}

template <class NextLayer>
void teardown(boost::beast::role_type role, CoalescingStream<NextLayer>& stream,
              boost::beast::error_code& ec) {
  using boost::beast::websocket::teardown;
  teardown(role, stream.next_layer(), ec);
}

}  // namespace storepulse::net
