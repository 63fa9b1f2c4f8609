// Load for the event fan-out benchmark (event_fanout_bench.py): many watchers each wait on
// event.from over a keep-alive connection of their own, and a writer changes one object again
// and again; or, for the ceiling, the same number of connections each fetching a static file
// from nginx once per round. One thread and epoll, so that 100 watchers cost the client little
// and the time of each answer is taken as it arrives.
//
// Usage:
//   event_fanout_load watch HOST PORT SESSION TOKEN OBJECT_REF WATCHERS CHANGES FORMAT CPU_PID
//     FORMAT: xml, json or mixed (every other watcher JSON). Each change is a
//     VM.set_name_description of OBJECT_REF by the writer, once every watcher is waiting; each
//     watcher's answer is checked to hold one event, and it waits again from its new token.
//   event_fanout_load get HOST PORT PATH CONNECTIONS ROUNDS CPU_PID
// Prints one line of key=value: the CPU the process CPU_PID used meanwhile (cpu_ms, from
// /proc/PID/stat), the writer's call latency and each watcher's wake-up (the time from the
// writer's answer to the watcher's answer; and, since a writer slowed by the fan-out makes that
// look shorter, from when the writer sent its call) as p50/p99/max in microseconds, and the
// bytes of one watcher's answer body.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "event_fanout_load: %s\n", what.c_str());
  std::exit(2);
}

double cpu_ms(const std::string& pid) {
  std::ifstream f("/proc/" + pid + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(all.substr(all.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::atol(field.c_str());
    if (i == 15) stime = std::atol(field.c_str());
  }
  return static_cast<double>(utime + stime) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int connect_to(const std::string& host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  for (std::size_t off = 0; off < bytes.size();) {
    ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
    if (n <= 0) die("write");
    off += static_cast<std::size_t>(n);
  }
}

std::string post(const std::string& path, const std::string& type, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: bench\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// The body of a whole answer at the start of `in` (taken out of it), or false while incomplete.
// Content-Length and chunked bodies both.
bool take_answer(std::string& in, std::string& body) {
  std::size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::string head = in.substr(0, end);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (head.find("transfer-encoding: chunked") != std::string::npos) {
    std::string out;
    std::size_t at = end + 4;
    for (;;) {
      std::size_t line = in.find("\r\n", at);
      if (line == std::string::npos) return false;
      std::size_t size = std::strtoul(in.c_str() + at, nullptr, 16);
      if (size == 0) {
        std::size_t trailer_end = in.find("\r\n", line + 2);
        if (trailer_end == std::string::npos) return false;
        body = std::move(out);
        in.erase(0, trailer_end + 2);
        return true;
      }
      if (in.size() < line + 2 + size + 2) return false;
      out.append(in, line + 2, size);
      at = line + 2 + size + 2;
    }
  }
  std::size_t length_at = head.find("content-length:");
  std::size_t length = length_at == std::string::npos ? 0 : std::strtoul(head.c_str() + length_at + 15, nullptr, 10);
  if (in.size() < end + 4 + length) return false;
  body = in.substr(end + 4, length);
  in.erase(0, end + 4 + length);
  return true;
}

struct percentiles {
  std::vector<long> us;
  std::string text(const char* name) {
    std::sort(us.begin(), us.end());
    auto at = [&](double p) { return us.empty() ? 0L : us[std::min(us.size() - 1, static_cast<std::size_t>(p * us.size()))]; };
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s_p50_us=%ld %s_p99_us=%ld %s_max_us=%ld", name, at(0.5), name, at(0.99), name,
                  us.empty() ? 0L : us.back());
    return buf;
  }
};

long micros(clock_type::duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); }

std::string xml_string(const std::string& s) { return "<param><value><string>" + s + "</string></value></param>"; }

struct watcher {
  int fd = -1;
  bool json = false;
  std::string token;
  std::string in;
  bool waiting = false;  // its event.from is out
  clock_type::time_point answered;
};

std::string event_from(const watcher& w, const std::string& session) {
  if (w.json)
    return post("/jsonrpc", "application/json",
                R"({"jsonrpc":"2.0","method":"event.from","params":[")" + session + R"(",["vm"],")" + w.token +
                    R"(",60.0],"id":1})");
  return post("/", "text/xml",
              "<?xml version=\"1.0\"?><methodCall><methodName>event.from</methodName><params>" + xml_string(session) +
                  "<param><value><array><data><value><string>vm</string></value></data></array></value></param>" +
                  xml_string(w.token) + "<param><value><double>60</double></value></param></params></methodCall>");
}

// The new token of an event.from answer, after checking it holds exactly one event.
std::string token_of(const watcher& w, const std::string& body) {
  const std::string marker = w.json ? "\"token\":\"" : "<name>token</name><value><string>";
  std::size_t at = body.find(marker);
  const std::string op = w.json ? "\"operation\":" : "<name>operation</name>";
  std::size_t first_op = body.find(op);
  if (at == std::string::npos || first_op == std::string::npos || body.find(op, first_op + 1) != std::string::npos)
    die("not an answer of one event: " + body.substr(0, 400));
  at += marker.size();
  return body.substr(at, body.find(w.json ? '"' : '<', at) - at);
}

int watch(char** argv) {
  const std::string host = argv[2], session = argv[4], token = argv[5], object = argv[6], format = argv[9], pid = argv[10];
  const int port = std::atoi(argv[3]);
  const int watchers = std::atoi(argv[7]);
  const int changes = std::atoi(argv[8]);

  int ep = epoll_create1(0);
  std::vector<watcher> ws(static_cast<std::size_t>(watchers));
  for (std::size_t i = 0; i < ws.size(); ++i) {
    ws[i].fd = connect_to(host, port);
    ws[i].json = format == "json" || (format == "mixed" && i % 2 == 1);
    ws[i].token = token;
    epoll_event ev{EPOLLIN, {.u64 = i}};
    epoll_ctl(ep, EPOLL_CTL_ADD, ws[i].fd, &ev);
  }
  int writer = connect_to(host, port);
  std::string writer_in;

  percentiles write_lat, wake, since_sent;
  std::size_t answer_bytes = 0;
  double cpu_before = 0;
  for (int change = -1; change < changes; ++change) {  // change -1 warms up, unmeasured
    for (auto& w : ws) {
      send_all(w.fd, event_from(w, session));
      w.waiting = true;
    }
    // Every watcher is parked well before the change (its call is a parse and a look).
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    if (change == 0) cpu_before = cpu_ms(pid);
    const auto sent = clock_type::now();
    send_all(writer, post("/", "text/xml",
                          "<?xml version=\"1.0\"?><methodCall><methodName>VM.set_name_description</methodName><params>" +
                              xml_string(session) + xml_string(object) + xml_string("change " + std::to_string(change)) +
                              "</params></methodCall>"));
    std::string body;
    for (char buf[65536]; !take_answer(writer_in, body);) {
      ssize_t got = read(writer, buf, sizeof buf);
      if (got <= 0) die("read (writer)");
      writer_in.append(buf, static_cast<std::size_t>(got));
    }
    const auto committed = clock_type::now();
    if (body.find("Success") == std::string::npos) die("the change failed: " + body);
    if (change >= 0) write_lat.us.push_back(micros(committed - sent));

    for (int open = watchers; open > 0;) {
      epoll_event events[128];
      int n = epoll_wait(ep, events, 128, 10000);
      if (n <= 0) die("a watcher was not woken within 10 s");
      for (int e = 0; e < n; ++e) {
        watcher& w = ws[events[e].data.u64];
        char buf[65536];
        ssize_t got = read(w.fd, buf, sizeof buf);
        if (got <= 0) die("read (the server closed a watcher's connection)");
        w.in.append(buf, static_cast<std::size_t>(got));
        while (take_answer(w.in, body)) {
          if (!w.waiting) die("an answer nobody waited for");
          w.waiting = false;
          w.answered = clock_type::now();
          w.token = token_of(w, body);
          answer_bytes = std::max(answer_bytes, body.size());
          --open;
        }
      }
    }
    if (change >= 0)
      for (auto& w : ws) {
        wake.us.push_back(std::max(0L, micros(w.answered - committed)));
        since_sent.us.push_back(micros(w.answered - sent));
      }
  }
  const double cpu_after = cpu_ms(pid);
  std::printf("cpu_ms=%.0f changes=%d watchers=%d %s %s %s answer_bytes=%zu\n", cpu_after - cpu_before, changes,
              watchers, write_lat.text("write").c_str(), wake.text("wake").c_str(), since_sent.text("sent").c_str(),
              answer_bytes);
  return 0;
}

int get(char** argv) {
  const std::string host = argv[2], path = argv[4], pid = argv[7];
  const int port = std::atoi(argv[3]);
  const int conns = std::atoi(argv[5]);
  const int rounds = std::atoi(argv[6]);
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: bench\r\n\r\n";
  int ep = epoll_create1(0);
  std::vector<int> fds;
  std::vector<std::string> ins(static_cast<std::size_t>(conns));
  for (int i = 0; i < conns; ++i) {
    fds.push_back(connect_to(host, port));
    epoll_event ev{EPOLLIN, {.u64 = static_cast<std::uint64_t>(i)}};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds.back(), &ev);
  }
  double cpu_before = 0;
  std::size_t answer_bytes = 0;
  for (int round = -1; round < rounds; ++round) {
    if (round == 0) cpu_before = cpu_ms(pid);
    for (int fd : fds) send_all(fd, request);
    for (int open = conns; open > 0;) {
      epoll_event events[128];
      int n = epoll_wait(ep, events, 128, 10000);
      if (n <= 0) die("no answer within 10 s");
      for (int e = 0; e < n; ++e) {
        std::string& in = ins[events[e].data.u64];
        char buf[65536];
        ssize_t got = read(fds[events[e].data.u64], buf, sizeof buf);
        if (got <= 0) die("read (the server closed a connection)");
        in.append(buf, static_cast<std::size_t>(got));
        for (std::string body; take_answer(in, body); --open) answer_bytes = body.size();
      }
    }
  }
  std::printf("cpu_ms=%.0f rounds=%d connections=%d answer_bytes=%zu\n", cpu_ms(pid) - cpu_before, rounds, conns,
              answer_bytes);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 11 && std::strcmp(argv[1], "watch") == 0) return watch(argv);
  if (argc == 8 && std::strcmp(argv[1], "get") == 0) return get(argv);
  std::fprintf(stderr,
               "usage: event_fanout_load watch HOST PORT SESSION TOKEN OBJECT_REF WATCHERS CHANGES FORMAT CPU_PID\n"
               "       event_fanout_load get HOST PORT PATH CONNECTIONS ROUNDS CPU_PID\n");
  return 2;
}
