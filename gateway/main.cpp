// xapid: the XenAPI daemon of one host. main() is the one place that wires the components.
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "gateway/dispatch.hpp"
#include "gateway/http_server.hpp"
#include "gateway/rpc_endpoint.hpp"

namespace {

const char* usage =
    "usage: xapid --data-dir DIR [--listen ADDR:PORT] [--unix-socket PATH] [--backend sim|libxl]\n"
    "             [--threads N]\n"
    "       xapid --coverage        print which RPCs are implemented, then exit\n"
    "  --data-dir DIR       where the host keeps its database and logs (created if missing)\n"
    "  --listen ADDR:PORT   XML-RPC and JSON-RPC over HTTP (default 127.0.0.1:8080)\n"
    "  --unix-socket PATH   the local API socket (default DIR/xapid.sock)\n"
    "  --backend sim|libxl  the hypervisor: simulated (default) or libxenlight\n"
    "  --threads N          threads serving connections (default 2)\n";

struct options {
  std::string data_dir;
  std::string listen = "127.0.0.1:8080";
  std::string unix_socket;
  std::string backend = "sim";
  int threads = 2;
  bool coverage = false;
};

bool parse_args(int argc, char** argv, options& o, std::string& error) {
  std::map<std::string, std::string*> with_value = {
      {"--data-dir", &o.data_dir}, {"--listen", &o.listen}, {"--unix-socket", &o.unix_socket},
      {"--backend", &o.backend}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--coverage") {
      o.coverage = true;
    } else if (a == "--threads" && i + 1 < argc) {
      o.threads = std::atoi(argv[++i]);
      if (o.threads < 1 || o.threads > 256) return error = "--threads must be 1..256", false;
    } else if (auto it = with_value.find(a); it != with_value.end() && i + 1 < argc) {
      *it->second = argv[++i];
    } else {
      return error = "unknown or incomplete option " + a, false;
    }
  }
  if (o.coverage) return true;
  if (o.data_dir.empty()) return error = "--data-dir is required", false;
  if (o.backend != "sim" && o.backend != "libxl") return error = "--backend must be sim or libxl", false;
  return true;
}

void print_coverage(const xapid::gateway::dispatcher& d) {
  std::size_t implemented = 0, total = 0;
  std::printf("%-60s %-18s %s\n", "RPC", "kind", "implemented");
  for (const auto& row : d.coverage()) {
    ++total;
    implemented += row.implemented;
    std::printf("%-60.*s %-18.*s %s\n", static_cast<int>(row.method->wire_name.size()), row.method->wire_name.data(),
                static_cast<int>(to_string(row.method->kind).size()), to_string(row.method->kind).data(),
                row.implemented ? "yes" : "no");
  }
  std::printf("%zu of %zu RPCs implemented\n", implemented, total);
}

void setup_logging(const std::string& data_dir) {
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto file = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(data_dir + "/xapid.log", 16u << 20, 5);
  auto logger = std::make_shared<spdlog::logger>("xapid", spdlog::sinks_init_list{console, file});
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  std::string error;
  if (!parse_args(argc, argv, opt, error)) {
    std::fprintf(stderr, "xapid: %s\n%s", error.c_str(), usage);
    return 2;
  }
  xapid::gateway::dispatcher dispatcher;
  if (opt.coverage) {
    print_coverage(dispatcher);
    return 0;
  }
  if (opt.backend == "libxl") {
    std::fprintf(stderr, "xapid: --backend libxl is not built yet; use --backend sim\n");
    return 2;
  }

  std::error_code ec;
  std::filesystem::create_directories(opt.data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "xapid: cannot create data dir %s: %s\n", opt.data_dir.c_str(), ec.message().c_str());
    return 1;
  }
  setup_logging(opt.data_dir);
  if (opt.unix_socket.empty()) opt.unix_socket = opt.data_dir + "/xapid.sock";

  boost::asio::io_context io(opt.threads);
  xapid::gateway::http_server server(io, [&](const xapid::gateway::http_request& req) {
    return xapid::gateway::serve_rpc(dispatcher, req);
  });

  auto colon = opt.listen.rfind(':');
  if (colon == std::string::npos) {
    spdlog::error("xapid.start.failed reason=\"--listen needs ADDR:PORT\" value={}", opt.listen);
    return 2;
  }
  std::string host = opt.listen.substr(0, colon);
  int port = std::atoi(opt.listen.c_str() + colon + 1);
  if (port < 0 || port > 65535) {
    spdlog::error("xapid.start.failed reason=\"port out of range\" value={}", opt.listen);
    return 2;
  }
  if (auto r = server.listen_tcp(host, static_cast<unsigned short>(port)); !r) {
    spdlog::error("xapid.start.failed listen={} reason=\"{}\"", opt.listen, r.error());
    return 1;
  }
  if (auto r = server.listen_unix(opt.unix_socket); !r) {
    spdlog::error("xapid.start.failed unix_socket={} reason=\"{}\"", opt.unix_socket, r.error());
    return 1;
  }
  ::chmod(opt.unix_socket.c_str(), 0600);

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code&, int sig) {
    spdlog::info("xapid.stop signal={}", sig);
    server.stop();
    io.stop();
  });

  spdlog::info("xapid.ready listen={}:{} unix_socket={} backend={} data_dir={}", host, server.tcp_port(),
               opt.unix_socket, opt.backend, opt.data_dir);
  std::vector<std::thread> pool;
  for (int i = 1; i < opt.threads; ++i) pool.emplace_back([&] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  spdlog::info("xapid.stopped");
  return 0;
}
