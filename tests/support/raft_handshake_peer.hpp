// The Raft handshake of storage/raft_transport.hpp written again from its description, on plain
// blocking sockets and OpenSSL, so that a test can speak it right or wrong from outside the
// transport: a member without the secret, another pool, garbage, a peer that stalls.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace xapid::testing {

// "a.b.c.d:port" as a socket address.
inline sockaddr_in ipv4_socket_address(const std::string& address) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  const auto colon = address.rfind(':');
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
  ::inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr);
  return a;
}

// One blocking TCP connection.
class raw_connection {
 public:
  explicit raw_connection(int fd) : fd_(fd) {}
  // Connects to "a.b.c.d:port"; connected() says whether it could.
  explicit raw_connection(const std::string& address) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    const sockaddr_in a = ipv4_socket_address(address);
    if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~raw_connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  raw_connection(raw_connection&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // `n` bytes, or fewer: the peer closed the connection, or `limit` passed.
  std::string receive(std::size_t n, std::chrono::milliseconds limit) {
    std::string out;
    const auto until = std::chrono::steady_clock::now() + limit;
    while (out.size() < n) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[512];
      const ssize_t got = ::recv(fd_, buf, std::min(sizeof buf, n - out.size()), 0);
      if (got <= 0) break;
      out.append(buf, static_cast<std::size_t>(got));
    }
    return out;
  }
  // Whether the peer closes the connection (end of stream or reset) within `limit` (0: has
  // closed it already); bytes it sends meanwhile are read and dropped.
  bool closed_by_peer(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0))) <= 0) return false;
      char buf[512];
      if (::recv(fd_, buf, sizeof buf, 0) <= 0) return true;
    }
  }

 private:
  int fd_;
};

// A listening socket that accepts by hand (a peer that answers as the test says).
class raw_listener {
 public:
  explicit raw_listener(const std::string& address) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    const sockaddr_in a = ipv4_socket_address(address);
    const int on = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~raw_listener() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool listening() const { return fd_ >= 0; }
  raw_connection accept(std::chrono::milliseconds limit) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) return raw_connection(-1);
    return raw_connection(::accept(fd_, nullptr, nullptr));
  }

 private:
  int fd_;
};

// The messages of one handshake, from C's side (secret, pool and ids as the test chooses).
struct raft_handshake {
  std::string secret;   // 32 bytes
  std::string pool_id;  // 16 bytes
  std::uint64_t client_id = 0;
  std::string client_address;
  std::string nc = random_bytes(32);

  static std::string random_bytes(std::size_t n) {
    static std::mt19937_64 rng{std::random_device{}()};
    std::string out(n, '\0');
    for (auto& c : out) c = static_cast<char>(rng());
    return out;
  }
  static std::string big_endian(std::uint64_t v, std::size_t n) {
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>(v >> (8 * (n - 1 - i)));
    return out;
  }
  std::string hmac(const std::string& message) const {
    unsigned char out[32];
    unsigned int len = 0;
    ::HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(message.data()),
           message.size(), out, &len);
    return std::string(reinterpret_cast<const char*>(out), len);
  }

  std::string hello() const {
    return "XRAFT001" + pool_id + big_endian(client_id, 8) + big_endian(client_address.size(), 2) + client_address + nc;
  }
  // What S must answer after Ns (32 bytes), and what C proves after it.
  std::string server_answer(std::uint64_t server_id, const std::string& ns) const {
    return hmac("S" + pool_id + big_endian(client_id, 8) + big_endian(server_id, 8) + nc + ns);
  }
  std::string proof(std::uint64_t server_id, const std::string& ns) const {
    return hmac("C" + pool_id + big_endian(client_id, 8) + client_address + big_endian(server_id, 8) + nc + ns);
  }
};

}  // namespace xapid::testing
