#include "cli/transport.hpp"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <fstream>
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
      if (ec) return fail("cannot connect to " + where.socket_path + ": " + ec.message());
      open = true;
      return ok_v;
    }
    tcp::resolver resolver(io);
    auto addresses = resolver.resolve(where.host, std::to_string(where.port), ec);
    if (ec) return fail("cannot resolve " + where.host + ": " + ec.message());
    if (!where.tls) {
      plain.emplace(io);
      asio::connect(*plain, addresses, ec);
      if (ec) return fail("cannot connect to " + where.describe() + ": " + ec.message());
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
    if (ec) return fail("cannot connect to " + where.describe() + ": " + ec.message());
    (void)tls->handshake(ssl::stream_base::client, ec);
    if (ec) return fail("TLS with " + where.describe() + " failed: " + ec.message());
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

  result<std::string, std::string> exchange(const http::request<http::string_body>& request, bool& reusable) {
    if (local) return exchange(*local, request, reusable);
    if (plain) return exchange(*plain, request, reusable);
    return exchange(*tls, request, reusable);
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

}  // namespace xapid::cli
