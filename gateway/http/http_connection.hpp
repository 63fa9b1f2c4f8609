// An HTTP connection of http_server (read a request, answer it, repeat) and the server's shared
// state it reaches (http_server::impl): private to http_server.cpp, which accepts the
// connections; a header of their own so each file keeps one job.
#pragma once

#include "gateway/http/http_server.hpp"
#include "gateway/http/http_head.hpp"
#include "common/clock.hpp"
#include "common/log_host.hpp"

#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace xapid::gateway {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace http_internal {

using executor = net::io_context::executor_type;
using tcp_socket = net::basic_stream_socket<net::ip::tcp, executor>;
using unix_socket = net::basic_stream_socket<net::local::stream_protocol, executor>;
using clock_type = std::chrono::steady_clock;

// What the server's sweeper needs of a connection: when it must have made progress by, and a
// way to cut it off then.
struct timed_connection {
  static constexpr std::int64_t never = 0;
  std::atomic<std::int64_t> deadline{never};  // clock_type ticks
  void expire_after(std::chrono::steady_clock::duration d) {
    deadline.store((monotonic_now() + d).time_since_epoch().count(), std::memory_order_relaxed);
  }
  void expire_never() { deadline.store(never, std::memory_order_relaxed); }
  // Since when the connection has waited for a request with nothing of it yet (0: it has not):
  // such connections are the first to go when descriptors run short.
  std::atomic<std::int64_t> idle_since{0};
  // Shuts the socket down, so that whatever the connection waits for fails and it closes.
  virtual void cut_off() = 0;

 protected:
  ~timed_connection() = default;
};

}  // namespace http_internal
using namespace http_internal;  // (a private header, included by http_server.cpp alone)

struct http_server::impl : std::enable_shared_from_this<impl> {
  net::io_context& io;
  handler on_request;
  http_limits limits;
  std::optional<net::ip::tcp::acceptor> tcp_acceptor;
  std::optional<net::local::stream_protocol::acceptor> unix_acceptor;
  std::optional<net::ip::tcp::acceptor> tls_acceptor;
  std::optional<net::ssl::context> tls;
  std::atomic<bool> stopped{false};
  std::map<std::pair<std::string, std::string>, stream_handler> streams;  // (method, path)
  std::atomic<int> streaming{0};
  static constexpr int max_streams = 16;
  std::atomic<std::size_t> body_bytes_in_flight{0};  // counted as in http_limits
  std::atomic<std::size_t> answer_bytes_waiting{0};  // of answers the clients have not read yet
  std::atomic<long> dropped_answers{0};
  void note_dropped_answer() {
    if (dropped_answers.fetch_add(1) % 1000 == 0)
      spdlog::warn("http.answer.dropped reason=\"unread answers over budget\" dropped={} waiting_bytes={}",
                   dropped_answers.load(), answer_bytes_waiting.load());
  }

  // Timeouts: every connection says by when it must have made progress, and one timer cuts off
  // those that have not (no timer per connection to set and cancel on every request).
  std::mutex live_mu;
  std::unordered_set<timed_connection*> live;
  net::steady_timer sweep_timer;
  static constexpr auto sweep_period = std::chrono::milliseconds(250);

  impl(net::io_context& io_, handler h, http_limits l)
      : io(io_), on_request(std::move(h)), limits(l), sweep_timer(io_), descriptor_limit(open_file_limit()) {}

  // Descriptors: when connections come near the process's limit, or accepting fails for lack
  // of one, the connections that have waited longest for a request are closed, so that idle
  // clients cannot lock everyone else out.
  const std::size_t descriptor_limit;
  static std::size_t open_file_limit() {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 1u << 20;
    return static_cast<std::size_t>(rl.rlim_cur);
  }
  // Descriptors kept for everything but connections: the database, logs, disk images, transfers.
  std::size_t connection_budget() const {
    const std::size_t reserve = 64 + descriptor_limit / 16;
    return descriptor_limit > 2 * reserve ? descriptor_limit - reserve : descriptor_limit / 2;
  }
  void shed_idle(std::size_t how_many) {
    std::vector<std::pair<std::int64_t, timed_connection*>> idle;
    std::lock_guard lock(live_mu);
    for (auto* c : live)
      if (auto since = c->idle_since.load(std::memory_order_relaxed)) idle.emplace_back(since, c);
    how_many = std::min(how_many, idle.size());
    std::partial_sort(idle.begin(), idle.begin() + static_cast<std::ptrdiff_t>(how_many), idle.end());
    for (std::size_t i = 0; i < how_many; ++i) idle[i].second->cut_off();
    if (how_many) spdlog::warn("http.idle_connections.shed count={} live={} limit={}", how_many, live.size(), descriptor_limit);
  }
  // After an accept: above the budget, the oldest idle connections make room (a sixteenth of
  // the budget at a time, so that shedding is not paid on every accept).
  void keep_within_budget() {
    std::size_t n;
    {
      std::lock_guard lock(live_mu);
      n = live.size();
    }
    if (n > connection_budget()) shed_idle(n - connection_budget() + connection_budget() / 16);
  }

  void sweep_soon() {
    sweep_timer.expires_after(sweep_period);
    sweep_timer.async_wait([weak = weak_from_this()](beast::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->stopped) return;
      const auto now = monotonic_now().time_since_epoch().count();
      {
        std::lock_guard lock(self->live_mu);
        for (auto* c : self->live) {
          auto d = c->deadline.load(std::memory_order_relaxed);
          if (d != timed_connection::never && d <= now) c->cut_off();
        }
      }
      self->sweep_soon();
    });
  }

  const stream_handler* stream_route(std::string_view method, std::string_view target) const {
    auto path = target.substr(0, target.find('?'));
    auto it = streams.find({std::string(method), std::string(path)});
    return it == streams.end() ? nullptr : &it->second;
  }

  template <class Acceptor>
  void accept(Acceptor& acceptor, bool is_unix, bool is_tls);

  static constexpr auto accept_retry_after = std::chrono::milliseconds(100);
  std::mutex accept_log_mu;
  clock_type::time_point accept_logged{};
  long accept_failures = 0;  // since the last line about them
  void note_accept_failure(const beast::error_code& ec) {
    std::lock_guard lock(accept_log_mu);
    ++accept_failures;
    const auto now = monotonic_now();
    if (now - accept_logged < std::chrono::seconds(10)) return;
    spdlog::warn("http.accept.failed error=\"{}\" failures={} retry_ms={}", ec.message(), accept_failures,
                 accept_retry_after.count());
    accept_logged = now;
    accept_failures = 0;
  }
};

namespace http_internal {

// One connection: read a request, answer it, repeat while the client keeps the connection alive.
// Socket is a tcp or unix socket; with Tls, an ssl::stream over it that first shakes hands and
// ends with a TLS shutdown.
//
// The connection's context is run by several threads and there is no strand: instead, a
// connection has at most one thing outstanding at a time — a wait for bytes, a write, a held-back
// answer, or the call itself — and each step starts the next, so its handlers never overlap.
// Requests are parsed with Beast's parser fed from the connection's buffer. On a plain socket
// the answer is written at once without blocking, from the handler that made it (it usually
// fits the socket's buffer: one sendmsg, no completion handed through the scheduler, which
// would wake another thread); only the rest of a larger answer, and everything over TLS, goes
// through Asio's asynchronous writes.
template <class Socket, bool Tls>
class connection final : public std::enable_shared_from_this<connection<Socket, Tls>>,
                         public timed_connection,
                         public client_watch {
 public:
  using stream_type = std::conditional_t<Tls, net::ssl::stream<Socket>, Socket>;

  template <class... Args>
  connection(std::shared_ptr<http_server::impl> server, bool is_unix, Args&&... stream_args)
      : stream_(std::forward<Args>(stream_args)...), server_(std::move(server)), is_unix_(is_unix) {
    // Unparsed bytes are at most a header (or a chunk line and trailer, held to the same limit)
    // and one read beyond it: a client cannot make the connection buffer more.
    buffer_.max_size(server_->limits.max_header_bytes + 2 * read_chunk);
    // A chunk's extensions count, with the header, against the header limit.
    on_chunk_line_ = [this](std::uint64_t, beast::string_view extensions, beast::error_code& ec) {
      if (header_bytes_ + extensions.size() > server_->limits.max_header_bytes) ec = http::error::header_limit;
    };
  }

  ~connection() {
    uncount_body();
    uncount_answer();
    std::lock_guard lock(server_->live_mu);
    server_->live.erase(this);
  }

  void start() {
    {
      std::lock_guard lock(server_->live_mu);
      server_->live.insert(this);
    }
    peer_ = "local";
    if constexpr (std::is_same_v<Socket, tcp_socket>) {
      beast::error_code ec;
      auto ep = socket().remote_endpoint(ec);
      if (!ec) peer_ = ep.address().to_string();
    }
    if constexpr (Tls) {
      expire_after(server_->limits.read_timeout);
      stream_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return self->close();
        self->next_request();
      });
    } else {
      beast::error_code ec;
      socket().non_blocking(true, ec);
      if (ec) return close();
      next_request();
    }
  }

  void cut_off() override {
    std::lock_guard lock(fd_mu_);
    if (socket().is_open()) ::shutdown(socket().native_handle(), SHUT_RDWR);
  }

 private:
  // Until the first byte of a request arrives the connection is idle (idle timeout); from then
  // on the whole request must arrive within the read timeout, so a client that trickles bytes
  // cannot hold the connection for longer.
  void next_request() {
    parser_.emplace();
    parser_->on_chunk_header(on_chunk_line_);
    // The body's limit is set once the headers say where the request goes (a stream has none).
    // (Not boost::none: this Beast compares a content length against it and always fails.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser_->header_limit(static_cast<std::uint32_t>(server_->limits.max_header_bytes));
    header_checked_ = false;
    header_bytes_ = 0;
    header_ended_line_ = false;
    started_ = buffer_.size() > 0;
    if (started_) {
      expire_after(server_->limits.read_timeout);
    } else {
      expire_after(server_->limits.idle_timeout);
      idle_since.store(monotonic_now().time_since_epoch().count(), std::memory_order_relaxed);
    }
    parse();
  }

  // Feeds the parser what has arrived; reads more while the request is incomplete. Whatever a
  // library throws on the way (Beast refuses a field over 64 KiB by throwing) ends this
  // connection with an answer, never the process.
  void parse() {
    try {
      parse_buffered();
    } catch (const std::length_error&) {
      fail_safely(http::status::request_header_fields_too_large, "request headers too large");
    } catch (const std::exception&) {
      fail_safely(http::status::bad_request, "malformed HTTP request");
    }
  }

  void parse_buffered() {
    while (buffer_.size() > 0) {
      beast::error_code ec;
      const bool header_was_done = parser_->is_header_done();
      std::size_t used = parser_->put(buffer_.data(), ec);
      if (!header_was_done) {
        // Beast takes the header a few whole lines at a time (and no body byte with them): these
        // are its bytes.
        header_bytes_ += used;
        if (!plain_header({static_cast<const char*>(buffer_.data().data()), used}, header_ended_line_))
          return answer_error(http::status::bad_request, "malformed HTTP request");
        if (header_bytes_ > server_->limits.max_header_bytes)
          return answer_error(http::status::request_header_fields_too_large, "request headers too large");
        if (parser_->is_header_done()) header_field_bytes_ = field_bytes(parser_->get());
      }
      buffer_.consume(used);
      if (ec == http::error::need_more) {
        // What waits unparsed after the header is a chunk's size line or the trailer: both
        // count, with the header, against the header limit (Beast bounds neither).
        if (header_checked_ && header_bytes_ + buffer_.size() > server_->limits.max_header_bytes)
          return answer_error(http::status::request_header_fields_too_large, "request headers too large");
        break;
      }
      if (ec) return on_read_error(ec);
      if (parser_->is_header_done() && !header_checked_) {
        header_checked_ = true;
        if (!on_header()) return;
        parser_->eager(true);
        if (waits_for_continue()) return send_continue();
      }
      if (header_checked_ && !count_body()) {
        uncount_body();
        return answer_error(http::status::service_unavailable, "too many large request bodies at once: try again");
      }
      if (parser_->is_done()) {
        // The trailer's fields joined the header's: together they are held to its limit.
        if (header_bytes_ + field_bytes(parser_->get()) - header_field_bytes_ > server_->limits.max_header_bytes)
          return answer_error(http::status::request_header_fields_too_large, "request headers too large");
        return on_request();
      }
      if (used == 0) break;
    }
    read_more();
  }

  // The bytes of a message's fields as they would be written ("name: value\r\n").
  static std::size_t field_bytes(const http::request<http::string_body>& req) {
    std::size_t n = 0;
    for (const auto& f : req) n += f.name_string().size() + f.value().size() + 4;
    return n;
  }

  // Answers an error, or closes if even that throws (out of memory).
  void fail_safely(http::status status, const char* why) {
    try {
      answer_error(status, why);
    } catch (const std::exception&) {
      close_socket();
    }
  }

  // Asio tries the read at once (after an answer, that speculative recv usually finds nothing)
  // and otherwise reads when epoll says the socket is ready, handing the bytes to the handler.
  void read_more() {
    const std::size_t room = beast::read_size(buffer_, read_chunk);
    if (room == 0) return answer_error(http::status::request_header_fields_too_large, "request headers too large");
    stream_.async_read_some(buffer_.prepare(room), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
      if (ec) return self->on_eof_or_error(ec);
      self->buffer_.commit(n);
      self->arrived();
    });
  }

  static constexpr std::size_t read_chunk = 65536;

  void arrived() {
    if (!started_) {
      started_ = true;
      idle_since.store(0, std::memory_order_relaxed);
      expire_after(server_->limits.read_timeout);
    }
    parse();
  }

  // The connection ended (or broke) while a request was wanted: nothing to answer unless part
  // of one had come.
  void on_eof_or_error(beast::error_code ec) {
    if (ec != net::error::eof && ec != net::ssl::error::stream_truncated) return close();
    if (!started_) return close();
    parser_->put_eof(ec);
    if (ec) return on_read_error(ec);
    if (parser_->is_done()) return on_request();
    close();
  }

  // The headers are in: a stream route takes the connection, a body too large is refused, and
  // so is any framing two parties could read differently (request smuggling): a transfer
  // coding other than exactly "chunked", or one beside a Content-Length.
  bool on_header() {
    const auto& req = parser_->get();
    if (req.count(http::field::transfer_encoding) > 0 &&
        (req.count(http::field::transfer_encoding) > 1 || req.count(http::field::content_length) > 0 ||
         !beast::iequals(req[http::field::transfer_encoding], "chunked"))) {
      answer_error(http::status::bad_request, "unsupported Transfer-Encoding");
      return false;
    }
    auto method = req.method_string();
    auto target = req.target();
    if (const auto* route = server_->stream_route({method.data(), method.size()}, {target.data(), target.size()})) {
      start_stream(*route);
      return false;
    }
    if (auto length = parser_->content_length(); length && *length > server_->limits.max_body_bytes) {
      answer_error(http::status::payload_too_large, "request body too large");
      return false;
    }
    parser_->body_limit(server_->limits.max_body_bytes);
    return true;
  }

  // Counts what the body holds beyond its free part against the server's budget; false when
  // that went over it.
  bool count_body() {
    const std::size_t size = parser_->get().body().size();
    const std::size_t over = size > http_limits::free_body_bytes ? size - http_limits::free_body_bytes : 0;
    if (over <= body_counted_) return true;
    const std::size_t more = over - body_counted_;
    body_counted_ = over;
    return server_->body_bytes_in_flight.fetch_add(more) + more <= server_->limits.max_body_bytes_in_flight;
  }
  void uncount_body() {
    if (body_counted_ == 0) return;
    server_->body_bytes_in_flight.fetch_sub(body_counted_);
    body_counted_ = 0;
  }

  // A client that asked whether to send its body (Expect: 100-continue, as curl does for large
  // ones) and has sent none of it yet is told to go on, rather than left to its own timeout.
  bool waits_for_continue() {
    const auto& req = parser_->get();
    return req.version() == 11 && buffer_.size() == 0 && !parser_->is_done() &&
           beast::iequals(req[http::field::expect], "100-continue");
  }
  static constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";
  void send_continue() {
    net::async_write(stream_, net::buffer(continue_line.data(), continue_line.size()),
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->close();
                       self->parse();
                     });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::body_limit) return answer_error(http::status::payload_too_large, "request body too large");
    if (ec == http::error::header_limit) return answer_error(http::status::request_header_fields_too_large,
                                                             "request headers too large");
    // Anything else is a malformed request.
    return answer_error(http::status::bad_request, "malformed HTTP request");
  }

  // The handler may answer before it returns (most calls do) or later from any thread; `phase`
  // tells the two apart without a lock, so that the answer is written by exactly one thread and
  // only after the handler has returned.
  struct pending_call {
    std::thread::id handler_thread = std::this_thread::get_id();
    std::atomic<int> phase{running};
    bool answered_inline = false;  // only the handler's thread touches it
    std::optional<http_response> answer;
    static constexpr int running = 0, returned = 1, answered_late = 2, abandoned = 3;
  };

  void on_request() {
    auto& req = parser_->get();
    http_request in;
    in.method = std::string(req.method_string());
    in.target = std::string(req.target());
    in.content_type = std::string(req[http::field::content_type]);
    in.body = std::move(req.body());
    in.from_unix_socket = is_unix_;
    in.peer = peer_;
    in.connection = this->weak_from_this();
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    expire_never();  // the call itself decides how long it takes (event.from waits)
    auto call = std::make_shared<pending_call>();
    try {
      call_handler(std::move(in), call);
    } catch (const std::exception& e) {
      // The handler failed before answering: a late answer, if one ever comes, is dropped.
      spdlog::error("http.handler.failed error=\"{}\"", e.what());
      call->phase.store(pending_call::abandoned, std::memory_order_release);
      return fail_safely(http::status::internal_server_error, "internal error");
    }
    uncount_body();  // the handler has taken the body
    // A late answer that came before this exchange is written here; one after it, by its poster.
    const int before = call->phase.exchange(pending_call::returned, std::memory_order_acq_rel);
    if (call->answered_inline || before == pending_call::answered_late) respond(std::move(*call->answer));
  }

  void call_handler(http_request in, const std::shared_ptr<pending_call>& call) {
    server_->on_request(std::move(in), [self = this->shared_from_this(), call](http_response out) {
      if (std::this_thread::get_id() == call->handler_thread &&
          call->phase.load(std::memory_order_acquire) == pending_call::running) {
        call->answer = std::move(out);  // before the handler returned: written below
        call->answered_inline = true;
        return;
      }
      call->answer = std::move(out);
      if (call->phase.exchange(pending_call::answered_late, std::memory_order_acq_rel) == pending_call::returned)
        net::post(self->socket().get_executor(), [self, call] { self->respond(std::move(*call->answer)); });
    });
  }

  // While a call waits, nothing reads the connection: a readiness wait notices the client
  // closing it (a peek sees the end), without taking any byte of a request it may send next.
  // Asio's reactor locks per descriptor, so this wait may be started while another thread
  // writes the call's answer.
  void on_client_gone(std::function<void()> gone) override {
    socket().async_wait(net::socket_base::wait_read, [self = this->shared_from_this(), gone = std::move(gone)](
                                                         beast::error_code ec) {
      if (ec == net::error::operation_aborted) return;  // closed by us: the call ended anyway
      if (ec) return gone();
      char byte;
      const ssize_t n = ::recv(self->socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) gone();
    });
  }

  void respond(http_response out) {
    ++answers_;
    pieces_ = std::move(out.pieces);
    if (!pieces_) {
      body_ = std::move(out.body);
      return start_answer(out, body_);
    }
    answering_ = std::move(out);  // its head goes with the first piece
    first_piece();
  }

  void first_piece() {
    if (std::optional<std::string_view> first = pieces_->next(when_made(&connection::first_piece)))
      start_answer(*std::exchange(answering_, std::nullopt), *first);
  }

  // A body's maker calls this once it has made the piece asked for: `then` runs on the event
  // loop, if the connection is still sending that answer.
  std::function<void()> when_made(void (connection::*then)()) {
    return [self = this->shared_from_this(), then, answer = answers_] {
      net::post(self->socket().get_executor(), [self, then, answer] {
        if (self->pieces_ && self->answers_ == answer) ((*self).*then)();
      });
    };
  }

  void start_answer(const http_response& out, std::string_view first) {
    bool keep_alive = keep_alive_ && !server_->stopped;
    // A body in pieces is sent as it is made: chunked, or to an HTTP/1.0 client up to the
    // connection's end. One that was all in its first piece has a length like any other.
    const bool streamed = pieces_ && !pieces_->finished();
    chunked_ = streamed && version_ != 10;
    if (streamed && !chunked_) keep_alive = false;
    head_ = response_head(out.status, out.content_type, streamed ? std::nullopt : std::optional(first.size()), version_,
                          keep_alive, chunked_);
    keep_alive_ = keep_alive;
    frame(first);
    if (out.delay.count() > 0) {
      delay_.emplace(socket().get_executor());
      delay_->expires_after(out.delay);
      delay_->async_wait([self = this->shared_from_this()](beast::error_code) { self->send(); });
      return;
    }
    send();
  }

  void answer_error(http::status status, const char* why) {
    version_ = 11;
    keep_alive_ = false;
    respond(http_response{static_cast<unsigned>(status), "text/plain", why, {}});
  }

  // Sets what goes next: `piece` of the body, after the head (if not sent yet), framed as a
  // chunk when the body is chunked (the last one followed by the empty chunk that ends it).
  void frame(std::string_view piece) {
    piece_ = piece;
    tail_ = {};
    if (!chunked_) return;
    if (!piece.empty()) {
      char line[24];
      const int n = std::snprintf(line, sizeof line, "%zx\r\n", piece.size());
      head_.append(line, static_cast<std::size_t>(n));
      tail_ = "\r\n";
    }
    if (pieces_->finished()) tail_ = piece.empty() ? "0\r\n\r\n" : "\r\n0\r\n\r\n";
  }

  // The answer's next part in head_, piece_ and tail_, still to go from `written_` on.
  std::array<net::const_buffer, 3> unsent() const {
    std::array<net::const_buffer, 3> parts{net::buffer(head_), net::buffer(piece_.data(), piece_.size()),
                                           net::buffer(tail_.data(), tail_.size())};
    std::size_t skip = written_;
    for (auto& part : parts) {
      const std::size_t n = std::min(skip, part.size());
      part += n;
      skip -= n;
    }
    return parts;
  }

  void send() {
    expire_after(server_->limits.read_timeout);  // each part must go within it: a slow reader's progress
    written_ = 0;
    const std::size_t total = head_.size() + piece_.size() + tail_.size();
    if constexpr (Tls) {
      // One buffer, so that head and body travel in one TLS record rather than two.
      std::string one;
      one.reserve(total);
      one.append(head_).append(piece_).append(tail_);
      body_ = std::move(one);
      piece_ = body_;
      head_.clear();
      tail_ = {};
    } else {
      // Usually the whole answer fits in the socket's buffer: write it now.
      while (written_ < total) {
        beast::error_code ec;
        std::size_t n = socket().write_some(unsent(), ec);
        if (ec == net::error::would_block) break;
        if (ec) return close();
        written_ += n;
      }
      if (written_ == total) return sent({});
    }
    // What the client has not taken yet waits in memory: all such answers together are held to
    // a budget, so that clients that ask and never read cannot exhaust memory; an answer that
    // would go over it is dropped with its connection.
    const std::size_t waiting = total - written_;
    if (server_->answer_bytes_waiting.fetch_add(waiting) + waiting > server_->limits.max_body_bytes_in_flight) {
      server_->answer_bytes_waiting.fetch_sub(waiting);
      server_->note_dropped_answer();
      return close();
    }
    answer_counted_ = waiting;
    net::async_write(stream_, unsent(), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->uncount_answer();
      self->sent(ec);
    });
  }

  // A body in pieces: the next one is asked for now that the last has gone, from the event loop,
  // so that other connections are served between two pieces (and a piece made at once, when its
  // body makes them here, is a short step of this thread).
  void next_piece() {
    net::post(socket().get_executor(), [self = this->shared_from_this()] {
      if (self->pieces_) self->take_piece();  // else closed meanwhile
    });
  }
  void take_piece() {
    if (std::optional<std::string_view> piece = pieces_->next(when_made(&connection::take_piece))) {
      head_.clear();
      frame(*piece);
      send();
    }
  }

  void uncount_answer() { server_->answer_bytes_waiting.fetch_sub(std::exchange(answer_counted_, 0)); }

  void sent(beast::error_code ec) {
    if (!ec && pieces_ && !pieces_->finished()) return next_piece();
    // An idle keep-alive connection keeps nothing of its last answer (1,500 idle connections
    // held 0.8 MB each of an event.from answer; a body in pieces holds its snapshot).
    std::string().swap(body_);
    pieces_.reset();
    piece_ = {};
    if (ec || !keep_alive_) return close();
    // A pipelined request already buffered starts from the event loop, not deeper in this stack.
    if (buffer_.size() > 0)
      return net::post(socket().get_executor(), [self = this->shared_from_this()] { self->next_request(); });
    next_request();
  }

  // Ends the connection within 5 s: the TLS shutdown first, then a lingering close.
  void close() {
    pieces_.reset();  // and the snapshot an answer in pieces holds
    idle_since.store(0, std::memory_order_relaxed);
    expire_after(std::chrono::seconds(5));
    if constexpr (Tls)
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->linger(); });
    else
      linger();
  }

  // The client may still be sending (a body refused part way): closing with its bytes unread
  // would reset the connection, and the reset can destroy the answer before the client reads
  // it. So the sending side is shut and what still comes is read and dropped until the client
  // closes too, or the deadline cuts it off.
  void linger() {
    beast::error_code ignored;
    socket().shutdown(net::socket_base::shutdown_send, ignored);
    buffer_.clear();
    socket().async_read_some(buffer_.prepare(read_chunk), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close_socket();
      self->linger();  // nothing committed: the bytes are dropped
    });
  }

  void close_socket() {
    expire_never();
    std::lock_guard lock(fd_mu_);
    beast::error_code ignored;
    socket().close(ignored);
  }

  // The connection leaves the event loop: a thread of its own runs the handler with blocking
  // reads and writes (a bulk transfer), then closes the connection.
  class stream_io final : public http_stream {
   public:
    stream_io(connection& c, http::request_parser<http::buffer_body>& p) : c_(c), parser_(p) {
      method_ = std::string(p.get().method_string());
      target_ = std::string(p.get().target());
    }
    const std::string& method() const override { return method_; }
    const std::string& target() const override { return target_; }
    std::string header(const std::string& name) const override { return std::string(parser_.get()[name]); }
    bool from_unix_socket() const override { return c_.is_unix_; }
    const std::string& peer() const override { return c_.peer_; }
    // Each read and write must make progress within the read timeout, or the sweeper cuts the
    // connection off: a stalled transfer gives back its slot.
    long read_body(char* buf, std::size_t n) override {
      if (parser_.is_done()) return 0;
      auto& body = parser_.get().body();
      body.data = buf;
      body.size = n;
      beast::error_code ec;
      c_.expire_after(c_.server_->limits.read_timeout);
      try {
        http::read(c_.stream_, c_.buffer_, parser_, ec);
      } catch (const std::exception&) {
        return -1;  // a trailer field beyond what Beast holds
      }
      c_.expire_never();  // the handler's own work between reads has no deadline
      if (ec && ec != http::error::need_buffer) return -1;
      return static_cast<long>(n - body.size);
    }
    bool send_head(unsigned status, const std::string& content_type) override {
      std::string head = response_head(status, content_type, std::nullopt, 11, false);
      return write(head.data(), head.size());
    }
    bool write(const char* data, std::size_t n) override {
      beast::error_code ec;
      c_.expire_after(c_.server_->limits.read_timeout);
      net::write(c_.stream_, net::buffer(data, n), ec);
      c_.expire_never();
      return !ec;
    }

   private:
    connection& c_;
    http::request_parser<http::buffer_body>& parser_;
    std::string method_, target_;
  };

  void start_stream(const http_server::stream_handler& route) {
    if (++server_->streaming > http_server::impl::max_streams) {
      --server_->streaming;
      return answer_error(http::status::service_unavailable, "too many transfers in progress");
    }
    expire_never();
    beast::error_code ignored;
    socket().non_blocking(false, ignored);  // the transfer's thread blocks on it
    auto self = this->shared_from_this();
    std::thread(carry_log_host([self, &route, go_on = waits_for_continue()] {
      if (go_on) {  // an upload with Expect: 100-continue (curl -T)
        beast::error_code ec;
        net::write(self->stream_, net::buffer(continue_line.data(), continue_line.size()), ec);
      }
      http::request_parser<http::buffer_body> body_parser(std::move(*self->parser_));
      body_parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // a disk may be large; it is read as it comes
      stream_io io(*self, body_parser);
      try {
        route(io);
      } catch (const std::exception& e) {
        spdlog::error("http.stream.failed target={} error=\"{}\"", io.target(), e.what());
      }
      beast::error_code ignored;
      self->expire_after(std::chrono::seconds(5));
      if constexpr (Tls) self->stream_.shutdown(ignored);
      --self->server_->streaming;
      // Back to the event loop for the lingering close (an upload refused part way).
      net::post(self->socket().get_executor(), [self] {
        self->expire_after(std::chrono::seconds(5));
        self->linger();
      });
    })).detach();
  }

  Socket& socket() {
    if constexpr (Tls)
      return stream_.next_layer();
    else
      return stream_;
  }

  stream_type stream_;
  std::mutex fd_mu_;  // closing the socket vs the sweeper shutting it down
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool header_checked_ = false;
  std::size_t header_bytes_ = 0;  // of the current request's header
  std::size_t header_field_bytes_ = 0;  // of its fields alone (field_bytes), to tell the trailer's
  bool header_ended_line_ = false;  // the header's bytes so far end a line (obs-fold check)
  std::function<void(std::uint64_t, beast::string_view, beast::error_code&)> on_chunk_line_;
  std::size_t body_counted_ = 0;  // of the body being read, against the server's budget
  std::size_t answer_counted_ = 0;  // of the answer being written, against the server's budget
  bool started_ = false;  // a byte of the current request has come
  unsigned version_ = 11;
  bool keep_alive_ = false;
  std::string head_, body_;
  std::unique_ptr<http_body_pieces> pieces_;  // of the answer being sent, when in pieces
  std::optional<http_response> answering_;    // its status and headers, until its first piece is made
  unsigned long answers_ = 0;                 // answers begun: a piece made for an earlier one is ignored
  bool chunked_ = false;                      // the answer's pieces are sent as chunks
  std::string_view piece_, tail_;             // of body_ or the last piece; "\r\n" after a chunk
  std::size_t written_ = 0;
  std::optional<net::steady_timer> delay_;
  std::shared_ptr<http_server::impl> server_;
  bool is_unix_;
  std::string peer_;
};

}  // namespace http_internal

}  // namespace xapid::gateway
