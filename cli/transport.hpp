// xe's HTTP/1.1 client: POSTs a body to a host over its unix socket, plain TCP or TLS, and reads
// the answer back (Content-Length, chunked or up to the close), keeping the connection for the
// next call. TLS checks the server's certificate against --cert when given, else pins it on
// first use in ~/.xe-known-hosts and says so.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace xapid::cli {

// Where a host's API is: a unix socket, or HOST:PORT over TCP with or without TLS.
struct endpoint {
  std::string socket_path;  // non-empty: the local socket, and the rest is unused
  std::string host;
  unsigned port = 443;
  bool tls = true;
  std::string cert_file;    // a PEM certificate (or CA) the server's must verify against
  std::string known_hosts;  // the trust-on-first-use file, when cert_file is empty

  std::string describe() const;
};

class transport {
 public:
  explicit transport(endpoint where);
  ~transport();
  transport(const transport&) = delete;
  transport& operator=(const transport&) = delete;

  // The body of the answer to a POST of `body` to `path`; a failure says what went wrong
  // (connection, TLS, a status other than 200, an answer over `max_answer_bytes`), without
  // naming the endpoint (the caller does).
  result<std::string, std::string> post(std::string_view path, std::string_view content_type, std::string_view body);

  // A transfer's body, as the server streams it: GET `path`, each piece of the answer given to
  // `sink` as it arrives (false from it stops). A status other than 200 fails with its body.
  using sink = std::function<bool(const char*, std::size_t)>;
  result<void, std::string> download(std::string_view path, const sink& take);
  // PUT `path` with a body read from `source` (its bytes into the buffer, 0 at the end, < 0 on
  // an error): with a Content-Length when `length` is known, else chunked. The answer's body.
  using source = std::function<long(char*, std::size_t)>;
  result<std::string, std::string> upload(std::string_view path, const source& give, std::optional<std::uint64_t> length);

  const endpoint& where() const { return where_; }
  static constexpr std::size_t max_answer_bytes = std::size_t{1} << 30;  // 1 GiB: a 100,000-VM table

 private:
  struct impl;
  endpoint where_;
  std::unique_ptr<impl> impl_;
};

}  // namespace xapid::cli
