// One host's whole daemon as an object: its database, hypervisor backend, actors, storage
// repositories, sessions, tasks, dispatcher and HTTP listeners, built from host_options,
// started and stopped. Several run side by side in one process (tests start three), each with
// its own data dir and addresses; xapid's main() parses options and runs one.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <thread>

#include "common/result.hpp"

namespace xapid::storage {
class database;
class raft_sequencer;
}

namespace xapid::xen {
class sim_world;
}

namespace xapid::gateway {

class dispatcher;

// The data dir holds session references in its database log, the root password's hash and the
// TLS key: it is made (if missing) and closed to everyone but root (0700), and the process's
// umask becomes 077, so everything in it is 0600 / 0700 from its first byte. A directory shared
// with others (the sticky bit of /tmp) is refused rather than closed to them.
result<void, std::string> make_private_data_dir(const std::string& dir);

struct host_options {
  std::string data_dir;
  std::string listen = "127.0.0.1:8080";  // ADDR:PORT (port 0: any free one)
  std::string https_listen;               // off when empty
  std::string metrics_listen;             // GET /metrics without credentials; off when empty
  // The pool's Raft traffic (ARCHITECTURE.md, "The pool's order"): default the address of
  // `listen` with its port + 2. It is part of the pool's configuration: keep it across restarts.
  std::string raft_listen;
  // The service the pool's hosts call each other on (gRPC over TLS): default the address of
  // `listen` with its port + 1.
  std::string peer_listen;
  std::string unix_socket;                // default DIR/xapid.sock
  std::string backend = "sim";            // sim or libxl
  std::string root_password_file;
  std::string root_password;  // first boot, when no file is given; else one is generated
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
  long sim_migration_mib_per_s = 1024;  // live migration's simulated link
  // Simulated hosts of one process may share a world (the host is in it under its --listen
  // address); by default a host's world is its own, kept in DIR/sim-state.
  std::shared_ptr<xen::sim_world> sim_world;
  // Failed logins are summed up in a FAILED_LOGIN_ATTEMPTS message this often (xapi's
  // failed_login_alert_freq, default 3600).
  long failed_login_alert_seconds = 3600;
  // Messages the pool keeps (xapi's message_limit); past it (and a hundredth more) the oldest go.
  long message_limit = 10000;
  // perfmon's thresholds (other_config:perfmon) are looked at this often (xapi's 300 s).
  long perfmon_interval_seconds = 300;
  // The master marks a member dead (host_metrics.live) once it has not answered this long
  // (xapi's host_assumed_dead_interval).
  long host_dead_seconds = 600;
  bool stop_on_signals = false;  // SIGTERM/SIGINT stop this host (the daemon's one host)
};

class host_node {
 public:
  // Makes the data dir private (0700), opens the database and builds every component, ready to
  // serve. Errors say what failed.
  static result<std::unique_ptr<host_node>, std::string> open(host_options options);
  ~host_node();  // stops, and waits for everything to wind down
  host_node(const host_node&) = delete;
  host_node& operator=(const host_node&) = delete;

  // Listens on the configured addresses and starts the serving threads and the observer.
  result<void, std::string> serve();
  // The same, with the calling thread as one of the serving threads, until the host stops
  // (then as wait()): how the daemon runs its one host.
  result<void, std::string> run();
  // Asks the host to stop (from any thread, once or many times); wait() returns then.
  void stop();
  // Until the host is stopped (stop(), a signal, host.shutdown or host.reboot); then waiting
  // calls are woken and finish, and the threads are joined.
  void wait();

  bool reboot_requested() const noexcept;  // host.reboot asked for the daemon to start again
  unsigned short tcp_port() const;
  const std::string& host_ref() const noexcept;
  const host_options& options() const noexcept;
  gateway::dispatcher& rpcs() noexcept;
  storage::database& database() noexcept;
  storage::raft_sequencer& pool_log() noexcept;

 // Its components, defined in host_node_parts.hpp for the files that build them.
  struct parts;

 private:
  host_node();
  result<void, std::string> start_serving(int threads);
  void serve_here();
  std::unique_ptr<parts> p_;
};

}  // namespace xapid::gateway
