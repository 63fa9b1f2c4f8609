// xapid: the XenAPI daemon of one host. main() parses the options and runs one host_node.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "gateway/rpc/dispatch.hpp"
#include "gateway/host_node.hpp"
#include "gateway/logging.hpp"
#include "pool/join.hpp"
#include "pool/master_duties.hpp"
#include "storage/database.hpp"

// jemalloc's settings (read at the first allocation): freed memory goes back to the system
// within about a second, by a background thread, not when some later allocation happens to
// purge — a burst of large request bodies must not leave the daemon holding them.
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
}

namespace {

const char* usage =
    "usage: xapid --data-dir DIR [--listen ADDR:PORT] [--https-listen ADDR:PORT] [--unix-socket PATH]\n"
    "             [--raft-listen ADDR:PORT] [--peer-listen ADDR:PORT]\n"
    "             [--backend sim|libxl]\n"
    "             [--threads N] [--root-password-file FILE] [--session-idle-seconds N] [--config FILE]\n"
    "       xapid --coverage        print which RPCs are implemented, then exit\n"
    "       xapid --data-dir DIR --export-checkpoint FILE   write the stopped host's database\n"
    "                       as the pool's checkpoint bytes (every member of a pool that has\n"
    "                       applied the same entries writes the same bytes), then exit\n"
    "  --data-dir DIR       where the host keeps its database and logs (created if missing)\n"
    "  --listen ADDR:PORT   XML-RPC and JSON-RPC over HTTP (default 127.0.0.1:8080)\n"
    "  --https-listen ADDR:PORT   the same over TLS (off by default), with DIR/xapid.pem and\n"
    "                       DIR/xapid.key, made self-signed on first boot\n"
    "  --unix-socket PATH   the local API socket (default DIR/xapid.sock)\n"
    "  --metrics-listen ADDR:PORT   GET /metrics without credentials, for a scraper on the\n"
    "                       management network (off by default; the API's /metrics asks for them)\n"
    "  --raft-listen ADDR:PORT   the pool's replicated log between hosts (default: --listen's\n"
    "                       address, its port + 2); keep it across restarts\n"
    "  --peer-listen ADDR:PORT   the pool's hosts call each other here, over TLS (default:\n"
    "                       --listen's address, its port + 1)\n"
    "  --host-dead-seconds N   the master marks a member that has not answered this long as\n"
    "                       not live (default 600)\n"
    "  --backend sim|libxl  the hypervisor: simulated (default) or libxenlight\n"
    "  --threads N          threads serving connections (default: one less than the CPUs, 1 to 8)\n"
    "  --root-password-file FILE  root's password on first boot (else $XAPID_ROOT_PASSWORD, else\n"
    "                       one is generated into DIR/root-password)\n"
    "  --session-idle-seconds N   sessions unused this long end (default 86400)\n"
    "  --failed-login-alert-seconds N   failed logins are summed up in a FAILED_LOGIN_ATTEMPTS\n"
    "                       message this often (default 3600)\n"
    "  --message-limit N    the pool keeps this many messages, the oldest dropped first (default\n"
    "                       10000, as xapi's message_limit)\n"
    "  --perfmon-interval-seconds N   thresholds in other_config:perfmon are checked this\n"
    "                       often (default 300, at least 5)\n"
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
    "  --sim-migration-mib-per-s N  the simulated link live migration copies a guest's memory\n"
    "                       over (default 1024)\n"
    "  --config FILE        NAME = VALUE lines for any option above; the command line wins\n";

struct options {
  xapid::gateway::host_options host;
  bool coverage = false;
  std::string export_checkpoint;  // a file: write the database's checkpoint there and exit
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
  if (name == "data-dir") o.host.data_dir = value;
  else if (name == "listen") o.host.listen = value;
  else if (name == "https-listen") o.host.https_listen = value;
  else if (name == "metrics-listen") o.host.metrics_listen = value;
  else if (name == "raft-listen") o.host.raft_listen = value;
  else if (name == "peer-listen") o.host.peer_listen = value;
  else if (name == "unix-socket") o.host.unix_socket = value;
  else if (name == "backend") o.host.backend = value;
  else if (name == "root-password-file") o.host.root_password_file = value;
  else if (name == "threads") { if (!number(1, 256, n)) return false; o.host.threads = static_cast<int>(n); }
  else if (name == "failed-login-alert-seconds") { if (!number(1, 1L << 30, n)) return false; o.host.failed_login_alert_seconds = n; }
  else if (name == "message-limit") { if (!number(1, 1L << 24, n)) return false; o.host.message_limit = n; }
  else if (name == "perfmon-interval-seconds") { if (!number(5, 1L << 30, n)) return false; o.host.perfmon_interval_seconds = n; }
  else if (name == "host-dead-seconds") { if (!number(1, 1L << 30, n)) return false; o.host.host_dead_seconds = n; }
  else if (name == "session-idle-seconds") { if (!number(1, 1L << 40, n)) return false; o.host.session_idle_seconds = n; }
  else if (name == "http-read-timeout-seconds") { if (!number(1, 3600, n)) return false; o.host.http_read_timeout_s = n; }
  else if (name == "http-idle-timeout-seconds") { if (!number(1, 86400, n)) return false; o.host.http_idle_timeout_s = n; }
  else if (name == "http-max-body-mib") { if (!number(1, 4096, n)) return false; o.host.http_max_body_mib = n; }
  else if (name == "sim-cpus") { if (!number(1, 4096, n)) return false; o.host.sim_cpus = n; }
  else if (name == "sim-memory-mib") { if (!number(2048, 1L << 30, n)) return false; o.host.sim_memory_mib = n; }
  else if (name == "sim-operation-ms") { if (!number(0, 3600000, n)) return false; o.host.sim_operation_ms = n; }
  else if (name == "sim-migration-mib-per-s") { if (!number(1, 1L << 30, n)) return false; o.host.sim_migration_mib_per_s = n; }
  else if (name == "sim-fault-seed") { if (!number(0, 1L << 62, n)) return false; o.host.sim_fault_seed = n; }
  else if (name == "sim-fault-probability" || name == "sim-crash-probability" || name == "sim-hang-probability") {
    char* end = nullptr;
    double p = std::strtod(value.c_str(), &end);
    if (value.empty() || *end || !(p >= 0 && p <= 1)) return error = name + " must be a number from 0 to 1", false;
    (name == "sim-fault-probability" ? o.host.sim_fault_probability
     : name == "sim-crash-probability" ? o.host.sim_crash_probability : o.host.sim_hang_probability) = p;
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
    } else if (a == "--export-checkpoint" && i + 1 < argc) {
      o.export_checkpoint = argv[++i];
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
  if (o.host.data_dir.empty()) return error = "--data-dir is required", false;
  if (o.host.backend != "sim" && o.host.backend != "libxl") return error = "--backend must be sim or libxl", false;
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

// The database of a stopped host, as the pool's snapshots carry it: replicas compared byte for
// byte (a running daemon holds the database's lock, and is refused).
int export_checkpoint(const std::string& data_dir, const std::string& file) {
  spdlog::set_level(spdlog::level::warn);
  if (!std::filesystem::is_directory(data_dir + "/db"))
    return std::fprintf(stderr, "xapid: %s holds no database (no %s/db)\n", data_dir.c_str(), data_dir.c_str()), 1;
  auto db = xapid::storage::database::open({data_dir + "/db"});
  if (!db) return std::fprintf(stderr, "xapid: %s\n", db.error().c_str()), 1;
  const std::string bytes = (*db)->export_checkpoint();
  // It holds every row — sessions (their refs are bearer tokens) and secrets among them: a new
  // file only root reads, never one a link points at.
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return std::fprintf(stderr, "xapid: cannot create %s: %s\n", file.c_str(), std::strerror(errno)), 1;
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n <= 0 && errno != EINTR) break;
    if (n > 0) written += static_cast<std::size_t>(n);
  }
  const bool complete = written == bytes.size() && ::fsync(fd) == 0;
  ::close(fd);
  if (!complete) return std::fprintf(stderr, "xapid: cannot write %s\n", file.c_str()), 1;
  std::printf("generation %llu, log index %llu, %zu bytes\n", static_cast<unsigned long long>((*db)->current_generation()),
              static_cast<unsigned long long>((*db)->applied_log_index()), bytes.size());
  return 0;
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
std::string take_password_from_environment() {
  std::string password;
  if (char* v = std::getenv("XAPID_ROOT_PASSWORD")) {
    password = v;
    std::memset(v, 0, std::strlen(v));
    ::unsetenv("XAPID_ROOT_PASSWORD");
  }
  return password;
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
  opt.host.root_password = take_password_from_environment();
  if (!opt.export_checkpoint.empty()) return export_checkpoint(opt.host.data_dir, opt.export_checkpoint);
  if (opt.coverage) {
    // The coverage is that of a host set up exactly as a real one, on a scratch data dir.
    std::string pattern = (std::filesystem::temp_directory_path() / "xapid-coverage-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) return 1;
    opt.host.data_dir = pattern;
    opt.host.root_password = "coverage";
    spdlog::set_level(spdlog::level::off);
    int rc = 0;
    {
      auto node = xapid::gateway::host_node::open(opt.host);
      if (node) print_coverage((*node)->rpcs());
      else rc = (std::fprintf(stderr, "xapid: %s\n", node.error().c_str()), 1);
    }
    std::error_code ec;
    std::filesystem::remove_all(pattern, ec);
    return rc;
  }
  raise_descriptor_limit();
  if (auto st = xapid::gateway::make_private_data_dir(opt.host.data_dir); !st) {
    std::fprintf(stderr, "xapid: %s\n", st.error().c_str());
    return 1;
  }
  xapid::gateway::install_logging();
  opt.host.stop_on_signals = true;
  auto node = xapid::gateway::host_node::open(opt.host);
  if (!node) {
    spdlog::error("xapid.start.failed reason=\"{}\"", node.error());
    // Ejected from its pool while it was down: it starts again, alone (pool/master_duties); or
    // taken back by its master while it waited for one (pool/emergency): it starts as its member.
    reboot = xapid::pool::ejection_marked(opt.host.data_dir) || xapid::pool::membership_accepted(opt.host.data_dir);
    return reboot ? 0 : 1;
  }
  if (auto st = (*node)->run(); !st) {
    spdlog::error("xapid.start.failed reason=\"{}\"", st.error());
    return 1;
  }
  reboot = (*node)->reboot_requested();
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
