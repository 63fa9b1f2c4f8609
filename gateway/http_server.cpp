#include "gateway/http_server.hpp"

#include <atomic>
#include <thread>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace xapid::gateway {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

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

  std::vector<net::io_context*> connection_contexts;  // each run by one thread
  std::atomic<unsigned> next_context{0};

  impl(net::io_context& io_, handler h, http_limits l, std::vector<net::io_context*> contexts)
      : io(io_), on_request(std::move(h)), limits(l), connection_contexts(std::move(contexts)) {
    if (connection_contexts.empty()) connection_contexts.push_back(&io);
  }

  // The context the next connection lives on, in turn.
  net::io_context& pick_context() { return *connection_contexts[next_context++ % connection_contexts.size()]; }

  const stream_handler* stream_route(std::string_view method, std::string_view target) const {
    auto path = target.substr(0, target.find('?'));
    auto it = streams.find({std::string(method), std::string(path)});
    return it == streams.end() ? nullptr : &it->second;
  }

  template <class Acceptor>
  void accept(Acceptor& acceptor, bool is_unix, bool is_tls);
};

namespace {

// One connection: read a request, answer it, repeat while the client keeps the connection alive.
// Stream is beast::basic_stream<tcp or local> for plain connections, or an ssl_stream over a
// tcp_stream for TLS (which first shakes hands and ends with a TLS shutdown).
template <class Stream, bool Tls>
class connection : public std::enable_shared_from_this<connection<Stream, Tls>> {
 public:
  static constexpr bool tls = Tls;

  template <class... Args>
  connection(std::shared_ptr<http_server::impl> server, bool is_unix, Args&&... stream_args)
      : stream_(std::forward<Args>(stream_args)...), server_(std::move(server)), is_unix_(is_unix) {}

  void start() {
    if constexpr (tls) {
      lowest().expires_after(server_->limits.read_timeout);
      stream_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return self->close();
        self->read_next();
      });
    } else {
      read_next();
    }
  }

 private:
  // Until the first byte of a request arrives the connection is idle (idle timeout); from then
  // on the whole request must arrive within the read timeout, so a client that trickles bytes
  // cannot hold the connection for longer.
  void read_next() {
    if (buffer_.size() == 0) {
      lowest().expires_after(server_->limits.idle_timeout);
      stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
        if (ec) return self->on_read_error(ec);
        self->buffer_.commit(n);
        self->read_header();
      });
      return;
    }
    read_header();
  }

  void read_header() {
    parser_.emplace();
    // The body's limit is set once the headers say where the request goes (a stream has none).
    // (Not boost::none: this Beast compares a content length against it and always fails.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser_->header_limit(static_cast<std::uint32_t>(server_->limits.max_header_bytes));
    lowest().expires_after(server_->limits.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_header(ec);
                            });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    auto method = parser_->get().method_string();
    auto target = parser_->get().target();
    if (const auto* route = server_->stream_route({method.data(), method.size()}, {target.data(), target.size()}))
      return start_stream(*route);
    if (auto length = parser_->content_length(); length && *length > server_->limits.max_body_bytes)
      return answer_error(http::status::payload_too_large, "request body too large");
    parser_->body_limit(server_->limits.max_body_bytes);
    // The deadline set when the request began still runs: headers and body share it.
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_body(ec);
    });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::body_limit) return answer_error(http::status::payload_too_large, "request body too large");
    if (ec == http::error::header_limit) return answer_error(http::status::request_header_fields_too_large,
                                                             "request headers too large");
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted)
      return close();
    // Anything else is a malformed request.
    return answer_error(http::status::bad_request, "malformed HTTP request");
  }

  void on_body(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    auto& req = parser_->get();
    http_request in;
    in.method = std::string(req.method_string());
    in.target = std::string(req.target());
    in.content_type = std::string(req[http::field::content_type]);
    in.body = std::move(req.body());
    in.from_unix_socket = is_unix_;
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive();
    handler_thread_ = std::this_thread::get_id();
    in_handler_ = true;
    server_->on_request(std::move(in), [self = this->shared_from_this(), version, keep_alive](http_response out) {
      // Most calls answer at once, on this connection's thread: write straight away. A call
      // that answers later, from another thread, goes back to the connection's thread first.
      if (self->in_handler_ && std::this_thread::get_id() == self->handler_thread_)
        return self->respond(version, keep_alive, std::move(out));
      net::post(self->stream_.get_executor(), [self, version, keep_alive, out = std::move(out)]() mutable {
        self->respond(version, keep_alive, std::move(out));
      });
    });
    in_handler_ = false;
  }

  void respond(unsigned version, bool keep_alive, http_response out) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(out.status), version);
    res->set(http::field::server, "xapid");
    if (!out.content_type.empty()) res->set(http::field::content_type, out.content_type);
    res->keep_alive(keep_alive && !server_->stopped);
    res->body() = std::move(out.body);
    res->prepare_payload();
    if (out.delay.count() > 0) {
      delay_.emplace(stream_.get_executor());
      delay_->expires_after(out.delay);
      delay_->async_wait([self = this->shared_from_this(), res](beast::error_code) { self->write(res); });
      return;
    }
    write(res);
  }

  void answer_error(http::status status, const char* why) {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::server, "xapid");
    res->set(http::field::content_type, "text/plain");
    res->keep_alive(false);
    res->body() = why;
    res->prepare_payload();
    write(res);
  }

  void write(std::shared_ptr<http::response<http::string_body>> res) {
    lowest().expires_after(server_->limits.read_timeout);
    http::async_write(stream_, *res, [self = this->shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec || !res->keep_alive()) return self->close();
      self->read_next();
    });
  }

  void close() {
    if constexpr (tls) {
      lowest().expires_after(std::chrono::seconds(5));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->lowest().close(); });
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(net::socket_base::shutdown_send, ignored);
      stream_.close();
    }
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
    long read_body(char* buf, std::size_t n) override {
      if (parser_.is_done()) return 0;
      auto& body = parser_.get().body();
      body.data = buf;
      body.size = n;
      beast::error_code ec;
      http::read(c_.stream_, c_.buffer_, parser_, ec);
      if (ec && ec != http::error::need_buffer) return -1;
      return static_cast<long>(n - body.size);
    }
    bool send_head(unsigned status, const std::string& content_type) override {
      std::string head = "HTTP/1.1 " + std::to_string(status) + " " +
                         std::string(http::obsolete_reason(static_cast<http::status>(status))) +
                         "\r\nServer: xapid\r\nConnection: close\r\n";
      if (!content_type.empty()) head += "Content-Type: " + content_type + "\r\n";
      head += "\r\n";
      return write(head.data(), head.size());
    }
    bool write(const char* data, std::size_t n) override {
      beast::error_code ec;
      net::write(c_.stream_, net::buffer(data, n), ec);
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
    lowest().expires_never();
    auto self = this->shared_from_this();
    std::thread([self, &route] {
      http::request_parser<http::buffer_body> body_parser(std::move(*self->parser_));
      body_parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // a disk may be large; it is read as it comes
      stream_io io(*self, body_parser);
      route(io);
      beast::error_code ignored;
      if constexpr (tls) self->stream_.shutdown(ignored);
      self->lowest().close();
      --self->server_->streaming;
    }).detach();
  }

  auto& lowest() { return beast::get_lowest_layer(stream_); }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<net::steady_timer> delay_;
  // While on_request runs, a responder called on the same thread may write at once; a responder
  // on any other thread (a call that waited) posts to the connection's context.
  std::atomic<bool> in_handler_{false};
  std::thread::id handler_thread_;
  std::shared_ptr<http_server::impl> server_;
  bool is_unix_;
};

}  // namespace

template <class Acceptor>
void http_server::impl::accept(Acceptor& acceptor, bool is_unix, bool is_tls) {
  using protocol = typename Acceptor::protocol_type;
  acceptor.async_accept(pick_context(), [self = shared_from_this(), &acceptor, is_unix, is_tls](
                                                  beast::error_code ec, typename protocol::socket socket) {
    if (self->stopped) return;
    if (ec) {
      spdlog::warn("http.accept.failed error={}", ec.message());
    } else if constexpr (std::is_same_v<protocol, net::ip::tcp>) {
      if (is_tls)
        std::make_shared<connection<beast::ssl_stream<beast::tcp_stream>, true>>(self, false, std::move(socket), *self->tls)
            ->start();
      else
        std::make_shared<connection<beast::basic_stream<protocol>, false>>(self, false, std::move(socket))->start();
    } else {
      std::make_shared<connection<beast::basic_stream<protocol>, false>>(self, is_unix, std::move(socket))->start();
    }
    self->accept(acceptor, is_unix, is_tls);
  });
}

http_server::http_server(net::io_context& io, handler h, http_limits limits,
                         std::vector<net::io_context*> connection_contexts)
    : impl_(std::make_shared<impl>(io, std::move(h), limits, std::move(connection_contexts))) {}

http_server::~http_server() { stop(); }

void http_server::add_stream_route(const std::string& method, const std::string& path, stream_handler h) {
  impl_->streams[{method, path}] = std::move(h);
}

namespace {

// Opens, binds and starts listening on ADDR:PORT.
result<void, std::string> open_tcp_acceptor(net::ip::tcp::acceptor& a, const std::string& address, unsigned short port) {
  beast::error_code ec;
  auto addr = net::ip::make_address(address, ec);
  if (ec) return fail("invalid listen address " + address + ": " + ec.message());
  net::ip::tcp::endpoint ep(addr, port);
  if (a.open(ep.protocol(), ec); ec) return fail("socket: " + ec.message());
  if (a.set_option(net::socket_base::reuse_address(true), ec); ec) return fail("reuse_address: " + ec.message());
  if (a.bind(ep, ec); ec) return fail("bind " + address + ":" + std::to_string(port) + ": " + ec.message());
  if (a.listen(net::socket_base::max_listen_connections, ec); ec) return fail("listen: " + ec.message());
  return ok_v;
}

}  // namespace

result<void, std::string> http_server::listen_tcp(const std::string& address, unsigned short port) {
  auto& a = impl_->tcp_acceptor.emplace(impl_->io);
  if (auto r = open_tcp_acceptor(a, address, port); !r) return r;
  impl_->accept(a, false, false);
  return ok_v;
}

result<void, std::string> http_server::listen_unix(const std::string& path) {
  std::remove(path.c_str());  // a socket file left by a previous run
  beast::error_code ec;
  auto& a = impl_->unix_acceptor.emplace(impl_->io);
  net::local::stream_protocol::endpoint ep(path);
  if (a.open(ep.protocol(), ec); ec) return fail("socket: " + ec.message());
  if (a.bind(ep, ec); ec) return fail("bind " + path + ": " + ec.message());
  if (a.listen(net::socket_base::max_listen_connections, ec); ec) return fail("listen: " + ec.message());
  impl_->accept(a, true, false);
  return ok_v;
}

result<void, std::string> http_server::listen_tls(const std::string& address, unsigned short port,
                                                  const std::string& cert_file, const std::string& key_file) {
  auto& ctx = impl_->tls.emplace(net::ssl::context::tls_server);
  ctx.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                  net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
  beast::error_code ec;
  if (ctx.use_certificate_chain_file(cert_file, ec); ec) return fail("certificate " + cert_file + ": " + ec.message());
  if (ctx.use_private_key_file(key_file, net::ssl::context::pem, ec); ec)
    return fail("private key " + key_file + ": " + ec.message());
  auto& a = impl_->tls_acceptor.emplace(impl_->io);
  if (auto r = open_tcp_acceptor(a, address, port); !r) return r;
  impl_->accept(a, false, true);
  return ok_v;
}

unsigned short http_server::tcp_port() const noexcept {
  beast::error_code ec;
  return impl_->tcp_acceptor ? impl_->tcp_acceptor->local_endpoint(ec).port() : 0;
}

unsigned short http_server::tls_port() const noexcept {
  beast::error_code ec;
  return impl_->tls_acceptor ? impl_->tls_acceptor->local_endpoint(ec).port() : 0;
}

void http_server::stop() {
  if (impl_->stopped.exchange(true)) return;
  beast::error_code ignored;
  if (impl_->tcp_acceptor) impl_->tcp_acceptor->close(ignored);
  if (impl_->unix_acceptor) impl_->unix_acceptor->close(ignored);
  if (impl_->tls_acceptor) impl_->tls_acceptor->close(ignored);
}

}  // namespace xapid::gateway
