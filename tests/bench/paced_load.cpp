// Latency at a fixed offered rate (an open-loop load generator, as wrk2 is): requests are due
// at a steady rate spread over keep-alive connections, and each one's latency counts from when
// it was due, not from when a busy connection got round to sending it — so a server that
// stalls is charged for every request that waited behind the stall. wrk measures a closed loop
// (each connection sends as soon as its answer arrives), whose latency at 64 connections is
// mostly the queue it builds itself; this measures a server below saturation.
//
// Usage: paced_load HOST PORT PATH BODY_FILE CONTENT_TYPE RATE CONNECTIONS SECONDS
// (a GET without a body when BODY_FILE is "-"). Prints one line:
//   rate=<answers/s> p50_us=<> p99_us=<> max_us=<> late=<requests not answered at the end>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(2);
}

struct connection {
  int fd = -1;
  bool busy = false;                       // a request is on the wire
  clock_type::time_point sent_due;         // when the request on the wire was due
  std::deque<clock_type::time_point> due;  // requests due but waiting for this connection
  std::string in;
};

// The length of a whole answer at the start of `in`, or 0 while it is incomplete.
std::size_t whole_answer(const std::string& in) {
  std::size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  std::size_t length = 0;
  for (std::size_t line = in.find("\r\n") + 2; line < end; line = in.find("\r\n", line) + 2) {
    if (strncasecmp(in.data() + line, "content-length:", 15) == 0) {
      length = std::strtoul(in.data() + line + 15, nullptr, 10);
      break;
    }
  }
  return in.size() >= end + 4 + length ? end + 4 + length : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr, "usage: paced_load HOST PORT PATH BODY_FILE CONTENT_TYPE RATE CONNECTIONS SECONDS\n");
    return 2;
  }
  const std::string host = argv[1], path = argv[3], body_file = argv[4], content_type = argv[5];
  const int port = std::atoi(argv[2]);
  const double rate = std::atof(argv[6]);
  const int conns = std::atoi(argv[7]);
  const double seconds = std::atof(argv[8]);

  std::string request;
  if (body_file == "-") {
    request = "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
  } else {
    std::ifstream f(body_file, std::ios::binary);
    std::stringstream body;
    body << f.rdbuf();
    request = "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: " + content_type +
              "\r\nContent-Length: " + std::to_string(body.str().size()) + "\r\n\r\n" + body.str();
  }

  int ep = epoll_create1(0);
  std::vector<connection> cs(static_cast<std::size_t>(conns));
  for (std::size_t i = 0; i < cs.size(); ++i) {
    cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    if (connect(cs[i].fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
    int one = 1;
    setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    epoll_event ev{EPOLLIN, {.u64 = i}};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  int timer = timerfd_create(CLOCK_MONOTONIC, 0);
  epoll_event tev{EPOLLIN, {.u64 = cs.size()}};
  epoll_ctl(ep, EPOLL_CTL_ADD, timer, &tev);

  const auto interval = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(1.0 / rate));
  const auto start = clock_type::now();
  const auto warm_until = start + std::chrono::milliseconds(500);  // connections and caches settle
  const auto stop = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::uint32_t> latencies_us;
  latencies_us.reserve(static_cast<std::size_t>(rate * seconds));
  std::size_t next = 0;  // the next request to fall due

  auto send_request = [&](connection& c, clock_type::time_point due) {
    c.busy = true;
    c.sent_due = due;
    std::size_t off = 0;
    while (off < request.size()) {
      ssize_t n = write(c.fd, request.data() + off, request.size() - off);
      if (n < 0) die("write");
      off += static_cast<std::size_t>(n);
    }
  };

  epoll_event events[128];
  for (;;) {
    auto now = clock_type::now();
    // Everything due by now goes to its connection: sent if the connection is free, else queued.
    for (auto due = start + interval * next; due <= now && due < stop; due = start + interval * ++next) {
      connection& c = cs[next % cs.size()];
      if (c.busy) c.due.push_back(due);
      else send_request(c, due);
    }
    bool waiting = std::any_of(cs.begin(), cs.end(), [](const connection& c) { return c.busy; });
    if (now >= stop && !waiting) break;
    if (now >= stop + std::chrono::seconds(5)) break;  // whatever is still out is reported as late
    auto wake = start + interval * next;
    itimerspec its{};
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wake.time_since_epoch()).count();
    its.it_value.tv_sec = ns / 1000000000;
    its.it_value.tv_nsec = ns % 1000000000;
    if (wake < stop) timerfd_settime(timer, TFD_TIMER_ABSTIME, &its, nullptr);
    int n = epoll_wait(ep, events, 128, wake < stop ? -1 : 100);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int e = 0; e < n; ++e) {
      if (events[e].data.u64 == cs.size()) {
        std::uint64_t expirations;
        (void)read(timer, &expirations, sizeof expirations);
        continue;
      }
      connection& c = cs[events[e].data.u64];
      char buf[65536];
      ssize_t got = read(c.fd, buf, sizeof buf);
      if (got <= 0) die("read (the server closed a connection)");
      c.in.append(buf, static_cast<std::size_t>(got));
      while (std::size_t len = whole_answer(c.in)) {
        auto done = clock_type::now();
        c.in.erase(0, len);
        c.busy = false;
        if (c.sent_due >= warm_until)
          latencies_us.push_back(static_cast<std::uint32_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(done - c.sent_due).count()));
        if (!c.due.empty()) {
          send_request(c, c.due.front());
          c.due.pop_front();
        }
      }
    }
  }
  long late = 0;
  for (const auto& c : cs) late += static_cast<long>(c.due.size()) + (c.busy ? 1 : 0);
  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double p) {
    return latencies_us.empty() ? 0u : latencies_us[std::min(latencies_us.size() - 1, static_cast<std::size_t>(p * latencies_us.size()))];
  };
  double measured_s = std::chrono::duration<double>(stop - warm_until).count();
  std::printf("rate=%.0f p50_us=%u p99_us=%u max_us=%u late=%ld\n", static_cast<double>(latencies_us.size()) / measured_s,
              pct(0.50), pct(0.99), latencies_us.empty() ? 0u : latencies_us.back(), late);
  return 0;
}
