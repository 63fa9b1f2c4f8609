// The HTTP/1.1 server every API request comes through: plain TCP, TLS and a unix socket, keep-alive,
// bounded request size and header bytes, idle and read timeouts. It knows nothing of XenAPI;
// a handler turns each request into a response, now or later (a long poll answers when it can).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>

#include "common/result.hpp"
#include "gateway/http/client_watch.hpp"

namespace xapid::gateway {

struct http_request {
  std::string method;  // "POST"
  std::string target;  // "/jsonrpc?x=y"
  std::string content_type;
  std::string body;
  bool from_unix_socket = false;  // a local peer, trusted by login (issue: sessions)
  std::string peer;               // the client's address ("local" for the unix socket)
  std::weak_ptr<client_watch> connection;  // to be told when the client goes (a call that waits)
};

// A body made a piece at a time while it is sent (a whole table's answer): the connection asks
// for the next piece once the last one is written, so a slow reader holds a few pieces, not the
// body. Sent chunked to HTTP/1.1 clients, and to HTTP/1.0 ones as a body that ends with the
// connection; a body that is all in its first piece goes with its length, as any.
class http_body_pieces {
 public:
  virtual ~http_body_pieces() = default;
  // The next piece, valid until the next call; empty once the body has all been given. Or, when
  // the pieces are made elsewhere (on other threads, ahead of their sending) and the next one is
  // not made yet: nullopt, and `made` is called once, from any thread, when it is — the
  // connection then asks again.
  virtual std::optional<std::string_view> next(std::function<void()> made) = 0;
  // Whether the piece last given was the body's last.
  virtual bool finished() const = 0;
};

struct http_response {
  unsigned status = 200;
  std::string content_type;
  std::string body;
  std::chrono::milliseconds delay{0};  // hold the answer back this long (a timer, not a thread)
  std::unique_ptr<http_body_pieces> pieces{};  // the body instead of `body`, when set
};

// A request whose body and answer stream (VM export and import): the handler runs on a thread
// of its own and reads and writes the connection directly. The connection closes afterwards.
class http_stream {
 public:
  virtual ~http_stream() = default;
  virtual const std::string& method() const = 0;
  virtual const std::string& target() const = 0;
  virtual std::string header(const std::string& name) const = 0;  // "" when absent
  virtual bool from_unix_socket() const = 0;
  virtual const std::string& peer() const = 0;  // the client's address ("local" for the unix socket)
  // Up to `n` bytes of the request body; 0 at its end; -1 on a broken connection.
  virtual long read_body(char* buf, std::size_t n) = 0;
  // The status line and headers; the body that follows ends when the connection closes.
  virtual bool send_head(unsigned status, const std::string& content_type) = 0;
  virtual bool write(const char* data, std::size_t n) = 0;
};

struct http_limits {
  std::size_t max_body_bytes = 64u << 20;  // default 64 MiB
  // All requests' bodies together, beyond the first `free_body_bytes` of each (RPC bodies are
  // small and never wait for room): more is answered 503 until some are done. Default 256 MiB.
  // The same bound holds the answers clients have not read yet: one beyond it is dropped with
  // its connection.
  std::size_t max_body_bytes_in_flight = 256u << 20;
  static constexpr std::size_t free_body_bytes = 64u << 10;
  std::size_t max_header_bytes = 16u << 10;  // all header lines together, default 16 KiB
  std::chrono::seconds read_timeout{30};   // to receive one whole request once it has started
  std::chrono::seconds idle_timeout{300};  // a keep-alive connection with no request, default 5 min
};

class http_server {
 public:
  // Called on an I/O thread; must not block. It answers by calling `respond` exactly once, from
  // any thread, at any later time.
  using responder = std::function<void(http_response)>;
  using handler = std::function<void(http_request, responder respond)>;
  using stream_handler = std::function<void(http_stream&)>;

  // Listens and serves on `io`, which any number of threads may run.
  http_server(boost::asio::io_context& io, handler h, http_limits limits = {});
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  // Requests to `path` (the target without its query) with `method` stream instead (see
  // http_stream); set before listening. At most `max_streams` run at once (default 16): more
  // are answered 503.
  void add_stream_route(const std::string& method, const std::string& path, stream_handler h);

  // Starts accepting on ADDR:PORT (port 0 picks one; see tcp_port()). Errors say why.
  result<void, std::string> listen_tcp(const std::string& address, unsigned short port);
  // Starts accepting HTTPS on ADDR:PORT with the PEM certificate (chain) and key given.
  result<void, std::string> listen_tls(const std::string& address, unsigned short port, const std::string& cert_file,
                                       const std::string& key_file);
  // Starts accepting on a unix socket at `path`, replacing a stale socket file.
  result<void, std::string> listen_unix(const std::string& path);
  unsigned short tcp_port() const noexcept;
  unsigned short tls_port() const noexcept;
  // Stops accepting; open connections end after their current request.
  void stop();

  struct impl;  // shared with the connections it accepted, so it outlives the server object

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace xapid::gateway
