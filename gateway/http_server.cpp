#include "gateway/http_server.hpp"

#include <atomic>
#include <cstdio>
#include <optional>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
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
  std::atomic<bool> stopped{false};

  impl(net::io_context& io_, handler h, http_limits l) : io(io_), on_request(std::move(h)), limits(l) {}

  template <class Acceptor>
  void accept(Acceptor& acceptor, bool is_unix);
};

namespace {

// One connection: read a request, answer it, repeat while the client keeps the connection alive.
template <class Protocol>
class connection : public std::enable_shared_from_this<connection<Protocol>> {
 public:
  using stream_type = beast::basic_stream<Protocol>;

  connection(typename Protocol::socket socket, std::shared_ptr<http_server::impl> server, bool is_unix)
      : stream_(std::move(socket)), server_(std::move(server)), is_unix_(is_unix) {}

  void start() { read_next(); }

 private:
  void read_next() {
    parser_.emplace();
    parser_->body_limit(server_->limits.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(server_->limits.max_header_bytes));
    // Until the first byte arrives the connection is idle; the whole request must then arrive
    // within the read timeout. One deadline covers both, set to the shorter when data is pending.
    stream_.expires_after(buffer_.size() ? server_->limits.read_timeout : server_->limits.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_header(ec);
                            });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    stream_.expires_after(server_->limits.read_timeout);
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
    server_->on_request(std::move(in), [self = this->shared_from_this(), version, keep_alive](http_response out) {
      // Back onto this connection's strand, whichever thread answered.
      net::post(self->stream_.get_executor(), [self, version, keep_alive, out = std::move(out)]() mutable {
        self->respond(version, keep_alive, std::move(out));
      });
    });
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
    stream_.expires_after(server_->limits.read_timeout);
    http::async_write(stream_, *res, [self = this->shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec || !res->keep_alive()) return self->close();
      self->read_next();
    });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(Protocol::socket::shutdown_send, ignored);
    stream_.close();
  }

  stream_type stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<net::steady_timer> delay_;
  std::shared_ptr<http_server::impl> server_;
  bool is_unix_;
};

}  // namespace

template <class Acceptor>
void http_server::impl::accept(Acceptor& acceptor, bool is_unix) {
  using protocol = typename Acceptor::protocol_type;
  acceptor.async_accept(net::make_strand(io), [self = shared_from_this(), &acceptor, is_unix](
                                                  beast::error_code ec, typename protocol::socket socket) {
    if (self->stopped) return;
    if (!ec) {
      std::make_shared<connection<protocol>>(std::move(socket), self, is_unix)->start();
    } else {
      spdlog::warn("http.accept.failed error={}", ec.message());
    }
    self->accept(acceptor, is_unix);
  });
}

http_server::http_server(net::io_context& io, handler h, http_limits limits)
    : impl_(std::make_shared<impl>(io, std::move(h), limits)) {}

http_server::~http_server() { stop(); }

result<void, std::string> http_server::listen_tcp(const std::string& address, unsigned short port) {
  beast::error_code ec;
  auto addr = net::ip::make_address(address, ec);
  if (ec) return fail("invalid listen address " + address + ": " + ec.message());
  net::ip::tcp::endpoint ep(addr, port);
  auto& a = impl_->tcp_acceptor.emplace(impl_->io);
  if (a.open(ep.protocol(), ec); ec) return fail("socket: " + ec.message());
  if (a.set_option(net::socket_base::reuse_address(true), ec); ec) return fail("reuse_address: " + ec.message());
  if (a.bind(ep, ec); ec) return fail("bind " + address + ":" + std::to_string(port) + ": " + ec.message());
  if (a.listen(net::socket_base::max_listen_connections, ec); ec) return fail("listen: " + ec.message());
  impl_->accept(a, false);
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
  impl_->accept(a, true);
  return ok_v;
}

unsigned short http_server::tcp_port() const noexcept {
  beast::error_code ec;
  return impl_->tcp_acceptor ? impl_->tcp_acceptor->local_endpoint(ec).port() : 0;
}

void http_server::stop() {
  if (impl_->stopped.exchange(true)) return;
  beast::error_code ignored;
  if (impl_->tcp_acceptor) impl_->tcp_acceptor->close(ignored);
  if (impl_->unix_acceptor) impl_->unix_acceptor->close(ignored);
}

}  // namespace xapid::gateway
