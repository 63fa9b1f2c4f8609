// xapid: the XenAPI daemon of one host. main() is the one place that wires the components.
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/steady_timer.hpp>

#include "gateway/dispatch.hpp"
#include "gateway/event_rpcs.hpp"
#include "gateway/external_auth.hpp"
#include "gateway/first_boot.hpp"
#include "gateway/host_rpcs.hpp"
#include "gateway/http_server.hpp"
#include "gateway/implicit_rpcs.hpp"
#include "gateway/logins.hpp"
#include "gateway/object_rules.hpp"
#include "gateway/passwords.hpp"
#include "gateway/roles.hpp"
#include "gateway/rpc_endpoint.hpp"
#include "gateway/session_rpcs.hpp"
#include "gateway/sr_rpcs.hpp"
#include "gateway/sessions.hpp"
#include "gateway/tasks.hpp"
#include "gateway/tls_certificate.hpp"
#include "gateway/vm_rpcs.hpp"
#include "gateway/xva_handlers.hpp"
#include "storage/database.hpp"
#include "xen/libxl_backend.hpp"
#include "xen/libxl_config.hpp"
#include "xen/sim_backend.hpp"

namespace {

const char* usage =
    "usage: xapid --data-dir DIR [--listen ADDR:PORT] [--https-listen ADDR:PORT] [--unix-socket PATH]\n"
    "             [--backend sim|libxl]\n"
    "             [--threads N] [--root-password-file FILE] [--session-idle-seconds N] [--config FILE]\n"
    "       xapid --coverage        print which RPCs are implemented, then exit\n"
    "  --data-dir DIR       where the host keeps its database and logs (created if missing)\n"
    "  --listen ADDR:PORT   XML-RPC and JSON-RPC over HTTP (default 127.0.0.1:8080)\n"
    "  --https-listen ADDR:PORT   the same over TLS (off by default), with DIR/xapid.pem and\n"
    "                       DIR/xapid.key, made self-signed on first boot\n"
    "  --unix-socket PATH   the local API socket (default DIR/xapid.sock)\n"
    "  --backend sim|libxl  the hypervisor: simulated (default) or libxenlight\n"
    "  --threads N          threads serving connections (default: one less than the CPUs, 1 to 8)\n"
    "  --root-password-file FILE  root's password on first boot (else $XAPID_ROOT_PASSWORD, else\n"
    "                       one is generated into DIR/root-password)\n"
    "  --session-idle-seconds N   sessions unused this long end (default 86400)\n"
    "  --http-read-timeout-seconds N   a request must arrive within this (default 30)\n"
    "  --http-idle-timeout-seconds N   a keep-alive connection may idle this long (default 300)\n"
    "  --http-max-body-mib N           the largest request body (default 64); four times this\n"
    "                                  for all large bodies being read at once\n"
    "  --sim-cpus N         the simulated host's CPUs (default 4)\n"
    "  --sim-memory-mib N   the simulated host's memory (default 16384, of which 1024 for dom0)\n"
    "  --sim-fault-probability P   chance that a simulated operation fails (default 0)\n"
    "  --sim-fault-seed N   seed of the simulated faults (default 1)\n"
    "  --sim-crash-probability P   chance per second that a running simulated guest crashes (default 0)\n"
    "  --sim-hang-probability P    chance that a simulated guest ignores a clean shutdown (default 0)\n"
    "  --sim-operation-ms N how long the simulated host takes to build, shut down, suspend or\n"
    "                       resume a domain (default 0)\n"
    "  --config FILE        NAME = VALUE lines for any option above; the command line wins\n";

struct options {
  std::string data_dir;
  std::string listen = "127.0.0.1:8080";
  std::string https_listen;
  std::string unix_socket;
  std::string backend = "sim";
  std::string root_password_file;
  // Serving threads only parse, read the database and write answers (calls that wait have
  // threads of their own): one CPU stays for the rest of dom0 and the clients beside it.
  int threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()) - 1, 1, 8);
  long session_idle_seconds = 24 * 3600;
  long http_read_timeout_s = 30;
  long http_idle_timeout_s = 300;
  long http_max_body_mib = 64;
  long sim_cpus = 4;
  long sim_memory_mib = 16384;
  double sim_fault_probability = 0;
  double sim_crash_probability = 0;
  double sim_hang_probability = 0;
  long sim_fault_seed = 1;
  long sim_operation_ms = 0;
  bool coverage = false;
};

// Every option is NAME VALUE on the command line (--NAME) or a "NAME = VALUE" line of a
// --config file; the command line wins.
bool apply_option(options& o, const std::string& name, const std::string& value, std::string& error) {
  auto number = [&](long lo, long hi, long& out) {
    char* end = nullptr;
    long v = std::strtol(value.c_str(), &end, 10);
    if (value.empty() || *end || v < lo || v > hi)
      return error = name + " must be a number from " + std::to_string(lo) + " to " + std::to_string(hi), false;
    out = v;
    return true;
  };
  long n = 0;
  if (name == "data-dir") o.data_dir = value;
  else if (name == "listen") o.listen = value;
  else if (name == "https-listen") o.https_listen = value;
  else if (name == "unix-socket") o.unix_socket = value;
  else if (name == "backend") o.backend = value;
  else if (name == "root-password-file") o.root_password_file = value;
  else if (name == "threads") { if (!number(1, 256, n)) return false; o.threads = static_cast<int>(n); }
  else if (name == "session-idle-seconds") { if (!number(1, 1L << 40, n)) return false; o.session_idle_seconds = n; }
  else if (name == "http-read-timeout-seconds") { if (!number(1, 3600, n)) return false; o.http_read_timeout_s = n; }
  else if (name == "http-idle-timeout-seconds") { if (!number(1, 86400, n)) return false; o.http_idle_timeout_s = n; }
  else if (name == "http-max-body-mib") { if (!number(1, 4096, n)) return false; o.http_max_body_mib = n; }
  else if (name == "sim-cpus") { if (!number(1, 4096, n)) return false; o.sim_cpus = n; }
  else if (name == "sim-memory-mib") { if (!number(2048, 1L << 30, n)) return false; o.sim_memory_mib = n; }
  else if (name == "sim-operation-ms") { if (!number(0, 3600000, n)) return false; o.sim_operation_ms = n; }
  else if (name == "sim-fault-seed") { if (!number(0, 1L << 62, n)) return false; o.sim_fault_seed = n; }
  else if (name == "sim-fault-probability" || name == "sim-crash-probability" || name == "sim-hang-probability") {
    char* end = nullptr;
    double p = std::strtod(value.c_str(), &end);
    if (value.empty() || *end || !(p >= 0 && p <= 1)) return error = name + " must be a number from 0 to 1", false;
    (name == "sim-fault-probability" ? o.sim_fault_probability
     : name == "sim-crash-probability" ? o.sim_crash_probability : o.sim_hang_probability) = p;
  }
  else return error = "unknown option " + name, false;
  return true;
}

bool read_config(const std::string& path, options& o, std::string& error) {
  std::ifstream in(path);
  if (!in) return error = "cannot read the config file " + path, false;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    auto trim = [](std::string t) {
      t.erase(0, t.find_first_not_of(" \t\r"));
      t.erase(t.find_last_not_of(" \t\r") + 1);
      return t;
    };
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    auto eq = line.find('=');
    if (eq == std::string::npos)
      return error = path + ":" + std::to_string(number) + ": expected NAME = VALUE", false;
    if (!apply_option(o, trim(line.substr(0, eq)), trim(line.substr(eq + 1)), error))
      return error = path + ":" + std::to_string(number) + ": " + error, false;
  }
  return true;
}

bool parse_args(int argc, char** argv, options& o, std::string& error) {
  std::vector<std::pair<std::string, std::string>> given;
  std::string config;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--coverage") {
      o.coverage = true;
    } else if (a.rfind("--", 0) == 0 && i + 1 < argc) {
      if (a == "--config") config = argv[++i];
      else given.emplace_back(a.substr(2), argv[++i]);
    } else {
      return error = "unknown or incomplete option " + a, false;
    }
  }
  if (!config.empty() && !read_config(config, o, error)) return false;
  for (const auto& [name, value] : given)
    if (!apply_option(o, name, value, error)) return false;
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

std::size_t implemented_count(const xapid::gateway::dispatcher& d) {
  auto rows = d.coverage();
  return static_cast<std::size_t>(std::count_if(rows.begin(), rows.end(), [](const auto& r) { return r.implemented; }));
}

std::string local_hostname() {
  char buf[256] = {};
  return ::gethostname(buf, sizeof buf - 1) == 0 ? std::string(buf) : std::string("localhost");
}

// The data dir holds session references in its database log, the root password's hash and the
// TLS key: only root may enter it (0700), and everything in it is made 0600 / 0700 from its
// first byte (the umask, set before anything is created). A directory shared with others (the
// sticky bit of /tmp) is refused rather than closed to them.
xapid::result<void, std::string> make_private_data_dir(const std::string& dir) {
  ::umask(077);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return xapid::fail("cannot create data dir " + dir + ": " + ec.message());
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return xapid::fail("data dir " + dir + " is not a directory");
  if (st.st_mode & S_ISVTX) return xapid::fail("data dir " + dir + " is shared (sticky bit): give xapid a directory of its own");
  if (::chmod(dir.c_str(), 0700) != 0) return xapid::fail("cannot make data dir " + dir + " private: " + std::strerror(errno));
  return xapid::ok_v;
}

// Every connection is a descriptor: the soft limit (often 1,024) is raised to the hard one, so
// that a crowd of idle clients does not lock everyone out (idle ones are also shed near it).
void raise_descriptor_limit() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &rl);  // best effort: the old limit still works
  }
}

// The root password given in the environment is read once: its bytes are wiped from the
// process's environment block, which /proc/PID/environ shows to anyone who may read it.
void forget_password_in_environment() {
  if (char* v = std::getenv("XAPID_ROOT_PASSWORD")) {
    std::memset(v, 0, std::strlen(v));
    ::unsetenv("XAPID_ROOT_PASSWORD");
  }
}

void setup_logging(const std::string& data_dir) {
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto file = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(data_dir + "/xapid.log", 16u << 20, 5);
  auto logger = std::make_shared<spdlog::logger>("xapid", spdlog::sinks_init_list{console, file});
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace

// Runs the daemon until it is stopped; `reboot` says whether it should start again (host.reboot).
int run(int argc, char** argv, bool& reboot) {
  options opt;
  std::string error;
  if (!parse_args(argc, argv, opt, error)) {
    std::fprintf(stderr, "xapid: %s\n%s", error.c_str(), usage);
    return 2;
  }
  xapid::gateway::dispatcher dispatcher;
  std::string coverage_dir;
  if (opt.coverage) {
    // The coverage is that of a daemon set up exactly as a real one, on a scratch data dir.
    std::string pattern = (std::filesystem::temp_directory_path() / "xapid-coverage-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) return 1;
    coverage_dir = opt.data_dir = pattern;
    spdlog::set_level(spdlog::level::off);
    ::setenv("XAPID_ROOT_PASSWORD", "coverage", 1);
  }
  if (opt.backend == "libxl") {
    if (!xapid::xen::xen_hypervisor_present()) {
      std::fprintf(stderr,
                   "xapid: --backend libxl needs a Xen control domain, and this is not one "
                   "(/proc/xen/capabilities does not say control_d); use --backend sim\n");
      return 2;
    }
  }

  std::error_code ec;
  if (auto st = make_private_data_dir(opt.data_dir); !st) {
    std::fprintf(stderr, "xapid: %s\n", st.error().c_str());
    return 1;
  }
  raise_descriptor_limit();
  if (!opt.coverage) setup_logging(opt.data_dir);
  if (opt.unix_socket.empty()) opt.unix_socket = opt.data_dir + "/xapid.sock";

  auto colon = opt.listen.rfind(':');
  std::string listen_host = colon == std::string::npos ? opt.listen : opt.listen.substr(0, colon);

  // The database, the objects of a first boot, root's password, sessions, and the RPCs.
  auto opened = xapid::storage::database::open({opt.data_dir + "/db"});
  if (!opened) {
    spdlog::error("xapid.start.failed reason=\"{}\"", opened.error());
    return 1;
  }
  auto& db = *opened.value();
  // The hypervisor: libxenlight on a Xen host, else the simulated host, whose domains live in
  // DIR/sim-state across restarts.
  std::unique_ptr<xapid::xen::backend> hypervisor;
  xapid::xen::sim_backend* simulator = nullptr;  // when the host is simulated: its time passes each second
  if (opt.backend == "libxl") {
    auto xl = xapid::xen::libxl_backend::open();
    if (!xl) {
      spdlog::error("xapid.start.failed reason=\"libxl: {}\"", xl.error());
      return 1;
    }
    hypervisor = std::move(xl).value();
  } else {
    xapid::xen::sim_options sim;
    sim.state_file = opt.data_dir + "/sim-state";
    sim.cpu_count = static_cast<int>(opt.sim_cpus);
    sim.memory_total_bytes = std::int64_t{opt.sim_memory_mib} << 20;
    sim.fault_probability = opt.sim_fault_probability;
    sim.fault_seed = static_cast<std::uint64_t>(opt.sim_fault_seed);
    sim.operation_ms = static_cast<int>(opt.sim_operation_ms);
    sim.crash_probability = opt.sim_crash_probability;
    sim.hang_probability = opt.sim_hang_probability;
    auto simulated = xapid::xen::sim_backend::open(sim);
    if (!simulated) {
      spdlog::error("xapid.start.failed reason=\"{}\"", simulated.error());
      return 1;
    }
    simulator = simulated.value().get();
    hypervisor = std::move(simulated).value();
  }
  auto identity = xapid::gateway::ensure_pool_and_host(db, opt.data_dir, listen_host, hypervisor->host());
  if (!identity) {
    spdlog::error("xapid.start.failed reason=\"first boot: {}\"", identity.error().description().at(0));
    return 1;
  }
  if (auto st = xapid::gateway::ensure_roles(db); !st) {
    spdlog::error("xapid.start.failed reason=\"first boot: roles: {}\"", st.error().description().at(0));
    return 1;
  }
  auto credentials = xapid::gateway::load_or_create_root_password(opt.data_dir, opt.root_password_file);
  forget_password_in_environment();
  if (!credentials) {
    spdlog::error("xapid.start.failed reason=\"{}\"", credentials.error());
    return 1;
  }
  if (!credentials->generated_file.empty())
    spdlog::warn("xapid.root_password.generated file={} (read it once, then delete it)", credentials->generated_file);
  xapid::gateway::root_account root;
  root.data_dir = opt.data_dir;
  root.hash = credentials->hash;
  xapid::gateway::login_guard logins(db, identity->host, root);

  xapid::real_clock clock;
  xapid::gateway::session_manager sessions(db, clock, identity->host,
                                           {std::chrono::seconds(opt.session_idle_seconds), 500});
  if (auto st = sessions.clear_stale(); !st) {
    spdlog::error("xapid.start.failed reason=\"clearing old sessions: {}\"", st.error().description().at(0));
    return 1;
  }
  dispatcher.set_session_check([&](const std::string& ref) { return sessions.validate(ref); });
  xapid::gateway::register_session_rpcs(dispatcher, sessions, db, root, logins);
  // Every implicit RPC over storage; the RPCs with behaviour registered after replace theirs.
  xapid::gateway::register_implicit_rpcs(dispatcher, db);
  xapid::gateway::task_manager tasks(db, clock, identity->host);
  if (auto st = tasks.clear_stale(); !st) {
    spdlog::error("xapid.start.failed reason=\"clearing old tasks: {}\"", st.error().description().at(0));
    return 1;
  }
  // The objects' actors, the storage repositories, and the VM lifecycle over the hypervisor.
  xapid::actors::host_actors actors(db);
  xapid::actors::storage_repos repos(db, actors, clock, identity->host, opt.data_dir);
  if (auto st = repos.start(); !st) {
    spdlog::error("xapid.start.failed reason=\"storage: {}\"", st.error().description().at(0));
    return 1;
  }
  xapid::actors::vm_lifecycle vms(db, *hypervisor, actors, repos, clock, identity->host);
  if (auto st = vms.reconcile(); !st) {
    spdlog::error("xapid.start.failed reason=\"reconciling VMs with the hypervisor: {}\"", st.error().description().at(0));
    return 1;
  }
  xapid::gateway::register_object_rules(dispatcher, db, repos, identity->host);
  xapid::gateway::register_sr_rpcs(dispatcher, repos, db.ids());
  xapid::gateway::register_vm_rpcs(dispatcher, vms, db.ids(), tasks);
  // host.shutdown and host.reboot stop the daemon once their answer is on its way.
  std::function<void(bool)> power_off;
  xapid::gateway::host_context host_ctx{db, *hypervisor, actors, clock, identity->host, opt.data_dir + "/xapid.log",
                                        [&](bool again) { power_off(again); }};
  xapid::gateway::register_host_rpcs(dispatcher, host_ctx);
  xapid::gateway::register_role_rpcs(dispatcher, db);
  xapid::gateway::register_external_auth_rpcs(dispatcher, db);
  xapid::gateway::event_rpcs events(db, clock, dispatcher, [&](const std::string& ref) { return sessions.validate(ref); });
  events.register_with(dispatcher);
  sessions.on_end([&](const std::string& ref) { events.session_ended(ref); });
  xapid::gateway::register_task_rpcs(dispatcher, tasks, db);
  dispatcher.set_task_hooks({[&](const std::string& session, const std::string& name) { return tasks.create(session, name); },
                             [&](const std::string& task, const xapid::wire::response& r) { tasks.complete(task, r); }});
  if (opt.coverage) {
    print_coverage(dispatcher);
    opened.value().reset();
    std::filesystem::remove_all(coverage_dir, ec);
    return 0;
  }

  // The serving threads all run `io`: a connection's handlers never overlap (see http_server),
  // so no strand is needed and any free thread serves any ready connection.
  boost::asio::io_context io(opt.threads);
  xapid::gateway::http_limits limits;
  limits.read_timeout = std::chrono::seconds(opt.http_read_timeout_s);
  limits.idle_timeout = std::chrono::seconds(opt.http_idle_timeout_s);
  limits.max_body_bytes = static_cast<std::size_t>(opt.http_max_body_mib) << 20;
  limits.max_body_bytes_in_flight = 4 * limits.max_body_bytes;
  xapid::gateway::http_server server(
      io,
      [&](xapid::gateway::http_request req, xapid::gateway::http_server::responder respond) {
        xapid::gateway::serve_rpc(dispatcher, req, respond);
      },
      limits);
  // VM export and import stream on threads of their own.
  xapid::gateway::xva_context xva{db, sessions, logins, tasks, repos, actors, clock, identity->host};
  xapid::gateway::register_xva_handlers(server, xva);

  if (colon == std::string::npos) {
    spdlog::error("xapid.start.failed reason=\"--listen needs ADDR:PORT\" value={}", opt.listen);
    return 2;
  }
  const std::string& host = listen_host;
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
  if (!opt.https_listen.empty()) {
    auto c = opt.https_listen.rfind(':');
    int tls_port = c == std::string::npos ? -1 : std::atoi(opt.https_listen.c_str() + c + 1);
    if (tls_port < 0 || tls_port > 65535) {
      spdlog::error("xapid.start.failed reason=\"--https-listen needs ADDR:PORT\" value={}", opt.https_listen);
      return 2;
    }
    std::string tls_host = opt.https_listen.substr(0, c);
    auto files = xapid::gateway::ensure_tls_certificate(opt.data_dir, local_hostname(), tls_host);
    if (!files) {
      spdlog::error("xapid.start.failed reason=\"{}\"", files.error());
      return 1;
    }
    if (auto r = server.listen_tls(tls_host, static_cast<unsigned short>(tls_port), files->certificate, files->key); !r) {
      spdlog::error("xapid.start.failed https_listen={} reason=\"{}\"", opt.https_listen, r.error());
      return 1;
    }
    spdlog::info("xapid.tls listen={}:{} certificate={}", tls_host, server.tls_port(), files->certificate);
  }

  // Idle sessions end within a minute of their timeout.
  boost::asio::steady_timer sweep(io);
  unsigned long sweeps = 0;
  std::function<void()> schedule_sweep = [&] {
    sweep.expires_after(std::chrono::seconds(60));
    sweep.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      if (std::size_t n = sessions.expire_idle()) spdlog::info("session.expired count={}", n);
      if (std::size_t n = tasks.collect_finished(std::chrono::hours(1))) spdlog::info("task.collected count={}", n);
      if (++sweeps % 60 == 0)
        if (auto n = logins.take_failures()) spdlog::warn("session.login.failed_last_hour count={}", n);
      schedule_sweep();
    });
  };
  schedule_sweep();

  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  auto stop = [&] {
    sweep.cancel();
    signals.cancel();
    server.stop();
    io.stop();
  };
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("xapid.stop signal={}", sig);
    stop();
  });
  boost::asio::steady_timer power_timer(io);
  power_off = [&](bool again) {
    spdlog::info("xapid.stop reason={}", again ? "host.reboot" : "host.shutdown");
    reboot = again;
    // A moment for the answer to reach the client, then the daemon stops.
    boost::asio::post(io, [&] {
      power_timer.expires_after(std::chrono::milliseconds(200));
      power_timer.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) stop();
      });
    });
  };

  spdlog::info("xapid.ready listen={}:{} unix_socket={} backend={} data_dir={} host={} rpcs_implemented={}", host,
               server.tcp_port(), opt.unix_socket, opt.backend, opt.data_dir, identity->host,
               implemented_count(dispatcher));
  // What guests do on their own (and their agents report) is noticed every second.
  std::mutex observe_mu;
  std::condition_variable observe_cv;
  bool stopping = false;
  std::thread observer([&] {
    std::unique_lock lock(observe_mu);
    while (!observe_cv.wait_for(lock, std::chrono::seconds(1), [&] { return stopping; })) {
      lock.unlock();
      if (simulator) simulator->tick();
      vms.observe();
      lock.lock();
    }
  });
  // A handler that throws (which none should) loses its own connection, not the serving thread.
  auto serve = [&] {
    for (;;) {
      try {
        io.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http.serve.failed error=\"{}\"", e.what());
      }
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < opt.threads; ++i) pool.emplace_back(serve);
  serve();
  for (auto& t : pool) t.join();
  {
    std::lock_guard lock(observe_mu);
    stopping = true;
  }
  observe_cv.notify_all();
  observer.join();
  // Waiting calls (event.from, a shutdown a guest ignores) wake and finish before the database
  // closes.
  events.stop();
  db.stop_waiters();
  hypervisor->stop_waiting();
  dispatcher.stop_blocking();
  spdlog::info("xapid.stopped");
  return 0;
}

int main(int argc, char** argv) {
  bool reboot = false;
  int rc = run(argc, argv, reboot);
  if (rc == 0 && reboot) {
    ::execv("/proc/self/exe", argv);
    std::fprintf(stderr, "xapid: cannot start again after host.reboot: %s\n", std::strerror(errno));
    return 1;
  }
  return rc;
}
