#include "gateway/http/http_server.hpp"
#include "gateway/http/http_connection.hpp"

namespace xapid::gateway {

template <class Acceptor>
void http_server::impl::accept(Acceptor& acceptor, bool is_unix, bool is_tls) {
  using protocol = typename Acceptor::protocol_type;
  acceptor.async_accept(io, [self = shared_from_this(), &acceptor, is_unix, is_tls](
                                beast::error_code ec,
                                net::basic_stream_socket<protocol, executor> socket) {
    if (self->stopped) return;
    if (ec) {
      // Out of descriptors (or memory), the failure repeats at once for as long as it lasts:
      // idle connections make room, and the next try waits a little; it is said at most every
      // ten seconds.
      self->note_accept_failure(ec);
      if (ec == net::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system)
        self->shed_idle(std::max<std::size_t>(16, self->connection_budget() / 16));
      auto pause = std::make_shared<net::steady_timer>(self->io, accept_retry_after);
      return pause->async_wait([self, pause, &acceptor, is_unix, is_tls](beast::error_code) {
        if (!self->stopped) self->accept(acceptor, is_unix, is_tls);
      });
    }
    if constexpr (std::is_same_v<protocol, net::ip::tcp>) {
      if (is_tls)
        std::make_shared<connection<tcp_socket, true>>(self, false, std::move(socket), *self->tls)->start();
      else
        std::make_shared<connection<tcp_socket, false>>(self, false, std::move(socket))->start();
    } else {
      std::make_shared<connection<unix_socket, false>>(self, is_unix, std::move(socket))->start();
    }
    self->keep_within_budget();
    self->accept(acceptor, is_unix, is_tls);
  });
}

http_server::http_server(net::io_context& io, handler h, http_limits limits)
    : impl_(std::make_shared<impl>(io, std::move(h), limits)) {
  impl_->sweep_soon();
}

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
  impl_->sweep_timer.cancel();
}

}  // namespace xapid::gateway
