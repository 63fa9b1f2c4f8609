// host_node's components, for the files that build and wire them (host_node.cpp, host_ha.cpp,
// host_peer_service.cpp); nothing else includes this.
#pragma once

#include "gateway/host_node.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "actors/first_boot.hpp"
#include "common/log_host.hpp"
#include "pool/emergency.hpp"
#include "pool/join.hpp"
#include "pool/liveness.hpp"
#include "ha/failover.hpp"
#include "ha/ha_monitor.hpp"
#include "gateway/api/ha_rpcs.hpp"
#include "actors/placement.hpp"
#include "pool/read_fence.hpp"
#include "pool/master_duties.hpp"
#include "pool/membership.hpp"
#include "pool/peer_client.hpp"
#include "pool/peer_service.hpp"
#include "pool/peer_tls.hpp"
#include "pool/pool_log.hpp"
#include "pool/call_forwarding.hpp"
#include "gateway/rpc/call_routes.hpp"
#include "pool/voters.hpp"
#include "gateway/rpc/dispatch.hpp"
#include "gateway/api/event_rpcs.hpp"
#include "gateway/auth/external_auth.hpp"
#include "gateway/api/host_rpcs.hpp"
#include "gateway/api/message_rpcs.hpp"
#include "gateway/api/metrics_rpcs.hpp"
#include "gateway/handlers/metrics_handlers.hpp"
#include "metrics/legacy_metrics.hpp"
#include "metrics/simulated_load.hpp"
#include "gateway/api/pool_rpcs.hpp"
#include "xapid/api/rbac.hpp"
#include "gateway/http/http_server.hpp"
#include "gateway/rpc/implicit_rpcs.hpp"
#include "gateway/logging.hpp"
#include "gateway/auth/logins.hpp"
#include "gateway/api/object_rules.hpp"
#include "gateway/auth/passwords.hpp"
#include "gateway/auth/roles.hpp"
#include "gateway/rpc/rpc_endpoint.hpp"
#include "gateway/auth/session_rpcs.hpp"
#include "gateway/auth/sessions.hpp"
#include "gateway/api/sr_rpcs.hpp"
#include "gateway/api/tasks.hpp"
#include "gateway/http/tls_certificate.hpp"
#include "gateway/api/vm_rpcs.hpp"
#include "gateway/handlers/xva_handlers.hpp"
#include "storage/database.hpp"
#include "xen/libxl_backend.hpp"
#include "xen/libxl_config.hpp"
#include "xen/sim_backend.hpp"

namespace xapid::gateway {


// The components in the order they are built; they are destroyed in the reverse order, so
// each outlives everything that holds a reference to it.
struct host_node::parts {
  host_options opt;
  // The name this host's log lines carry, and its log file: the last to go.
  std::shared_ptr<const std::string> log_name;
  std::unique_ptr<host_log> log;
  std::string listen_host;
  gateway::dispatcher rpcs;
  // The pool: this host's identity in it, its TLS identity towards the other hosts, the
  // addresses it serves them on, its calls to them, its part of the log.
  pool::member_identity identity;
  pool::host_tls tls;
  std::string fingerprint, raft_address, peer_address;
  std::optional<pool::peer_client> peers;
  std::optional<pool::call_forwarder> forwarder;  // calls this host sends on to the host that runs them
  std::atomic<bool> calls_open{false};  // calls sent on by the other hosts are taken once this host serves
  std::atomic<bool> joins_open{false};  // a join is taken once this host serves
  std::atomic<storage::database*> db_for_peers{nullptr};
  std::shared_ptr<storage::raft_sequencer> pool_log;
  std::optional<pool::voter_keeper> voters;  // goes in wait(), after the log has stopped, before the database
  std::unique_ptr<storage::database> db;
  std::optional<pool::liveness_watch> liveness;  // the master's pings of the members (it commits)
  std::optional<pool::read_fence> fence;         // a member's calls wait for its replica to be fresh
  std::unique_ptr<xen::backend> hypervisor;
  xen::sim_backend* simulator = nullptr;  // when the host is simulated: its time passes each second
  std::string host;
  root_account root;
  std::optional<login_guard> logins;
  real_clock clock;
  std::optional<session_manager> sessions;
  std::optional<task_manager> tasks;
  std::optional<actors::host_actors> actors;
  std::atomic<actors::host_actors*> actors_for_peers{nullptr};  // once made: Ping answers its operations
  std::optional<actors::storage_repos> repos;
  std::optional<actors::message_log> messages;
  std::optional<actors::vm_lifecycle> vms;
  std::optional<metrics::collector> collector;
  std::optional<metrics::alarm_watch> alarms;  // perfmon: thresholds on the collector's archives
  std::optional<actors::host_operations> host_ops;
  // HA: this host's lease and judgement, and the master's failover (ha/); the peer service's
  // Pings are heartbeats once the monitor is made.
  std::optional<ha::ha_monitor> ha;
  std::atomic<ha::ha_monitor*> ha_for_peers{nullptr};
  std::optional<ha::failover> ha_failover;
  std::optional<ha_context> ha_ctx;
  std::mutex ha_session_mu;
  std::string ha_session;  // the master's root session for the starts it sends to other hosts
  std::function<void(bool)> power_off;
  std::optional<host_context> host_ctx;
  std::optional<event_rpcs> events;
  std::optional<pool_context> pool_ctx;
  std::unique_ptr<pool::peer_service> peer_service;

  std::optional<boost::asio::io_context> io;
  std::optional<http_server> server;
  std::optional<http_server> scrape_server;  // --metrics-listen: /metrics alone, no credentials
  std::optional<xva_context> xva;
  std::optional<metrics_context> metrics_ctx;
  std::optional<boost::asio::steady_timer> sweep, login_report;
  std::function<void()> schedule_sweep, schedule_login_report;
  std::optional<boost::asio::signal_set> signals;
  std::optional<boost::asio::steady_timer> power_timer;

  std::atomic<bool> reboot{false};
  std::atomic<bool> can_restart{false};  // power_off is set: the host serves
  std::mutex observe_mu;
  std::condition_variable observe_cv;
  bool stopping = false;
  bool left_pool = false;  // the observer saw this host leave the pool
  std::thread observer;
  std::vector<std::thread> serving;
  bool served = false, wound_down = false;
};

// This host as the pool's emergency operations see it (pool/emergency).
pool::emergency_side emergency_side(host_node::parts& p);
// Destroys every guest's domain (fencing, a stop while HA is armed).
bool destroy_guest_domains(xen::backend& hv);  // whether every guest domain is gone
// HA's monitor and failover on this host (host_ha.cpp).
void start_ha(host_node::parts& p);
// The service the pool's other hosts call, on --peer-listen (host_peer_service.cpp).
result<void, std::string> start_peer_service(host_node::parts& p);

}  // namespace xapid::gateway
