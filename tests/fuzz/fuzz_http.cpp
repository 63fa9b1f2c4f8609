// Fuzzes the HTTP connection code with whole requests (headers, chunked bodies, trailers,
// pipelined requests, uploads to a streamed route), through a real server on a unix socket:
// whatever arrives, the server must neither crash (the sanitizers watch) nor answer with
// anything but HTTP status lines, and must go on serving the next client.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>

#include "gateway/http/http_server.hpp"

namespace {

using namespace xapid::gateway;

struct fixture {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  std::unique_ptr<http_server> server;
  std::thread runner;
  std::string path;

  fixture() {
    http_limits limits;
    limits.max_body_bytes = 1u << 16;
    limits.max_body_bytes_in_flight = 1u << 18;
    limits.max_header_bytes = 1u << 12;
    limits.read_timeout = std::chrono::seconds(2);
    limits.idle_timeout = std::chrono::seconds(2);
    server = std::make_unique<http_server>(
        io,
        [](http_request req, http_server::responder respond) {
          // Answer at once, or later from another thread, as the API's calls do.
          if (req.body.size() % 2)
            return respond({200, "text/plain", "odd " + std::to_string(req.body.size())});
          std::thread([respond, n = req.body.size()] { respond({200, "text/plain", "even " + std::to_string(n)}); }).detach();
        },
        limits);
    server->add_stream_route("PUT", "/import", [](http_stream& s) {
      char buf[4096];
      long total = 0, n;
      while ((n = s.read_body(buf, sizeof buf)) > 0) total += n;
      std::string body = "read " + std::to_string(total) + (n < 0 ? " broken" : "");
      if (s.send_head(n < 0 ? 400 : 200, "text/plain")) s.write(body.data(), body.size());
    });
    char dir[] = "/tmp/fuzz-http-XXXXXX";
    if (!::mkdtemp(dir)) std::abort();
    path = std::string(dir) + "/sock";
    if (!server->listen_unix(path)) std::abort();
    runner = std::thread([this] { io.run(); });
  }
};

fixture& the_server() {
  static fixture* f = new fixture();  // lives for the process: libFuzzer exits without destructors
  return *f;
}

// Sends `data`, then reads until the server closes (or 3 s pass). Returns what came back.
std::string exchange(const std::string& path, const std::uint8_t* data, std::size_t size) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
  std::string out;
  std::size_t sent = 0;
  bool shut = false;
  char buf[65536];
  for (int idle = 0; idle < 30;) {
    if (sent == size && !shut) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (sent < size ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, 100) <= 0) {
      ++idle;
      continue;
    }
    if (p.revents & POLLOUT) {
      ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
      else sent = size;  // the server stopped reading: it has refused the request
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fixture& f = the_server();
  std::string answer = exchange(f.path, data, size);
  if (!answer.empty() && answer.compare(0, 7, "HTTP/1.") != 0) {
    std::fprintf(stderr, "answer does not start with a status line: %.200s\n", answer.c_str());
    std::abort();
  }
  // The server still serves: a plain request gets its answer.
  static const std::string probe = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx";
  std::string again = exchange(f.path, reinterpret_cast<const std::uint8_t*>(probe.data()), probe.size());
  if (again.compare(0, 15, "HTTP/1.1 200 OK") != 0) {
    std::fprintf(stderr, "the server no longer serves: %.200s\n", again.c_str());
    std::abort();
  }
  return 0;
}
