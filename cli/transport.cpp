#include "cli/transport.hpp"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <fstream>
#include <limits>
#include <vector>
#include <optional>
#include <sstream>

#include "common/hex.hpp"

namespace xapid::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// The SHA-256 of the server's certificate (DER), in hex; empty when there is none.
std::string peer_fingerprint(SSL* ssl_handle) {
  X509* cert = SSL_get1_peer_certificate(ssl_handle);
  if (!cert) return "";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  bool ok = X509_digest(cert, EVP_sha256(), digest, &length) == 1;
  X509_free(cert);
  return ok ? hex(std::string_view(reinterpret_cast<const char*>(digest), length)) : "";
}

// Trust on first use: the fingerprint pinned for `name` in `file`, compared, or pinned now.
result<void, std::string> check_pinned(const std::string& file, const std::string& name, const std::string& fingerprint) {
  if (fingerprint.empty()) return fail(std::string("the server at ") + name + " showed no certificate");
  if (file.empty())
    return fail("no home directory to keep the certificate of " + name + " in (SHA-256 " + fingerprint +
                "): give the server's certificate with --cert FILE");
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string host, pinned;
    if (!(fields >> host >> pinned) || host != name) continue;
    if (pinned == fingerprint) return ok_v;
    return fail("the certificate of " + name + " is not the one seen before (SHA-256 " + fingerprint + ", was " + pinned +
                "); if it was replaced on purpose, remove its line from " + file);
  }
  std::ofstream out(file, std::ios::app);
  out << name << ' ' << fingerprint << '\n';
  std::fprintf(stderr, "xe: trusting the certificate of %s on first use (SHA-256 %s)%s%s\n", name.c_str(), fingerprint.c_str(),
               out ? ", kept in " : "", out ? file.c_str() : "");
  return ok_v;
}

}  // namespace

std::string endpoint::describe() const {
  if (!socket_path.empty()) return socket_path;
  return host + ":" + std::to_string(port);
}

struct transport::impl {
  asio::io_context io;
  std::optional<asio::local::stream_protocol::socket> local;
  std::optional<tcp::socket> plain;
  std::optional<ssl::context> tls_context;
  std::optional<ssl::stream<tcp::socket>> tls;
  beast::flat_buffer buffer;
  bool open = false;

  void close() {
    beast::error_code ignored;
    if (local) (void)local->close(ignored);
    if (plain) (void)plain->close(ignored);
    if (tls) (void)tls->lowest_layer().close(ignored);
    local.reset();
    plain.reset();
    tls.reset();
    buffer.clear();
    open = false;
  }

  result<void, std::string> connect(const endpoint& where) {
    close();
    beast::error_code ec;
    if (!where.socket_path.empty()) {
      local.emplace(io);
      (void)local->connect(asio::local::stream_protocol::endpoint(where.socket_path), ec);
      if (ec) return fail("cannot connect: " + ec.message());
      open = true;
      return ok_v;
    }
    tcp::resolver resolver(io);
    auto addresses = resolver.resolve(where.host, std::to_string(where.port), ec);
    if (ec) return fail("cannot resolve the name: " + ec.message());
    if (!where.tls) {
      plain.emplace(io);
      asio::connect(*plain, addresses, ec);
      if (ec) return fail("cannot connect: " + ec.message());
      open = true;
      return ok_v;
    }
    if (!tls_context) {
      tls_context.emplace(ssl::context::tls_client);
      if (!where.cert_file.empty()) {
        (void)tls_context->load_verify_file(where.cert_file, ec);
        if (ec) return fail("cannot read the certificate " + where.cert_file + ": " + ec.message());
        tls_context->set_verify_mode(ssl::verify_peer);
      } else {
        tls_context->set_verify_mode(ssl::verify_none);  // pinned below instead (trust on first use)
      }
    }
    tls.emplace(io, *tls_context);
    if (!where.cert_file.empty()) tls->set_verify_callback(ssl::host_name_verification(where.host));
    boost::system::error_code parse_ec;
    (void)asio::ip::make_address(where.host, parse_ec);
    if (parse_ec) (void)SSL_set_tlsext_host_name(tls->native_handle(), where.host.c_str());  // SNI for names only
    asio::connect(tls->lowest_layer(), addresses, ec);
    if (ec) return fail("cannot connect: " + ec.message());
    (void)tls->handshake(ssl::stream_base::client, ec);
    if (ec) return fail("TLS failed: " + ec.message());
    if (where.cert_file.empty())
      if (auto pinned = check_pinned(where.known_hosts, where.describe(), peer_fingerprint(tls->native_handle())); !pinned)
        return fail(pinned.error());
    open = true;
    return ok_v;
  }

  template <class Stream>
  result<std::string, std::string> exchange(Stream& stream, const http::request<http::string_body>& request, bool& reusable) {
    beast::error_code ec;
    http::write(stream, request, ec);
    if (ec) return fail("sending the call failed: " + ec.message());
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_answer_bytes);
    http::read(stream, buffer, parser, ec);
    if (ec) return fail("reading the answer failed: " + ec.message());
    auto& answer = parser.get();
    reusable = answer.keep_alive();
    if (answer.result_int() != 200)
      return fail("the server answered HTTP " + std::to_string(answer.result_int()) + " " + std::string(answer.reason()));
    return std::move(answer.body());
  }

  // `f` with the connection's stream, whichever kind it is.
  template <class F>
  auto with_stream(F&& f) {
    if (local) return f(*local);
    if (plain) return f(*plain);
    return f(*tls);
  }

  result<std::string, std::string> exchange(const http::request<http::string_body>& request, bool& reusable) {
    return with_stream([&](auto& stream) { return exchange(stream, request, reusable); });
  }

  template <class Stream>
  result<void, std::string> download(Stream& stream, const http::request<http::empty_body>& request, const sink& take) {
    beast::error_code ec;
    http::write(stream, request, ec);
    if (ec) return fail("sending the request failed: " + ec.message());
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read_header(stream, buffer, parser, ec);
    if (ec) return fail("reading the answer failed: " + ec.message());
    const bool refused = parser.get().result_int() != 200;
    std::string refusal;
    char piece[1 << 16];
    while (!parser.is_done()) {
      parser.get().body().data = piece;
      parser.get().body().size = sizeof piece;
      http::read(stream, buffer, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return fail("the transfer broke off: " + ec.message());
      std::size_t got = sizeof piece - parser.get().body().size;
      if (refused) refusal.append(piece, std::min(got, std::size_t{4096} - std::min(refusal.size(), std::size_t{4096})));
      else if (got && !take(piece, got)) return fail(std::string("the transfer was stopped"));
    }
    if (refused) return fail("HTTP " + std::to_string(parser.get().result_int()) + ": " + refusal);
    return ok_v;
  }

  template <class Stream>
  result<std::string, std::string> upload(Stream& stream, const std::string& head, const source& give, bool chunked) {
    beast::error_code ec;
    asio::write(stream, asio::buffer(head), ec);
    std::vector<char> piece(1 << 16);
    // A server that refuses part way stops reading: its answer is read all the same.
    while (!ec) {
      long got = give(piece.data(), piece.size());
      if (got < 0) return fail(std::string("reading the file to send failed"));
      if (chunked) {
        char size_line[24];
        int n = std::snprintf(size_line, sizeof size_line, "%lx\r\n", got);
        asio::write(stream, asio::buffer(size_line, n), ec);
        if (!ec && got) asio::write(stream, asio::buffer(piece.data(), got), ec);
        if (!ec) asio::write(stream, asio::buffer("\r\n", 2), ec);
      } else if (got) {
        asio::write(stream, asio::buffer(piece.data(), got), ec);
      }
      if (got == 0) break;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    beast::error_code read_ec;
    http::read(stream, buffer, parser, read_ec);
    if (read_ec) return fail("sending failed: " + (ec ? ec : read_ec).message());
    if (parser.get().result_int() != 200)
      return fail("HTTP " + std::to_string(parser.get().result_int()) + ": " + parser.get().body());
    return std::move(parser.get().body());
  }
};

transport::transport(endpoint where) : where_(std::move(where)), impl_(std::make_unique<impl>()) {}
transport::~transport() = default;

result<std::string, std::string> transport::post(std::string_view path, std::string_view content_type, std::string_view body) {
  auto view = [](std::string_view s) { return beast::string_view(s.data(), s.size()); };  // Boost 1.74: not std's
  http::request<http::string_body> request{http::verb::post, view(path), 11};
  request.set(http::field::host, where_.socket_path.empty() ? where_.host : "localhost");
  request.set(http::field::user_agent, "xe");
  request.set(http::field::content_type, view(content_type));
  request.body() = std::string(body);
  request.prepare_payload();
  // A kept connection the server closed meanwhile fails at once: one more try on a new one.
  bool was_open = impl_->open;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!impl_->open)
      if (auto connected = impl_->connect(where_); !connected) return fail(connected.error());
    bool reusable = false;
    auto answer = impl_->exchange(request, reusable);
    if (answer || !was_open) {
      if (!answer || !reusable) impl_->close();
      return answer;
    }
    impl_->close();
    was_open = false;
  }
  return fail(std::string("unreachable"));
}

// Transfers go on a connection of their own, closed after: they may end part way.
result<void, std::string> transport::download(std::string_view path, const sink& take) {
  impl transfer;
  if (auto connected = transfer.connect(where_); !connected) return fail(connected.error());
  http::request<http::empty_body> request{http::verb::get, beast::string_view(path.data(), path.size()), 11};
  request.set(http::field::host, where_.socket_path.empty() ? where_.host : "localhost");
  request.set(http::field::user_agent, "xe");
  request.keep_alive(false);
  return transfer.with_stream([&](auto& stream) { return transfer.download(stream, request, take); });
}

result<std::string, std::string> transport::upload(std::string_view path, const source& give, std::optional<std::uint64_t> length) {
  impl transfer;
  if (auto connected = transfer.connect(where_); !connected) return fail(connected.error());
  std::string head = "PUT " + std::string(path) + " HTTP/1.1\r\nHost: " + (where_.socket_path.empty() ? where_.host : "localhost") +
                     "\r\nUser-Agent: xe\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n" +
                     (length ? "Content-Length: " + std::to_string(*length) : std::string("Transfer-Encoding: chunked")) + "\r\n\r\n";
  return transfer.with_stream([&](auto& stream) { return transfer.upload(stream, head, give, !length); });
}

}  // namespace xapid::cli
