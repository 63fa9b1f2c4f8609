// One host's part in the pool's HA (every host runs one): while the pool's replica says HA is
// enabled, the host is *armed* — it renews its lease in the statefile, heartbeats every other
// host through their peer services, judges (ha/liveness_judge) who is alive, and fences itself
// when it can reach neither the statefile nor a majority. The master also holds the master lease
// (block 1 of the statefile), taken once the previous holder's lease stood still for T, and only
// the holder's judgement of dead hosts is acted upon (ha/failover).
//
// Threads, so that one stuck step never holds up another: the statefile's renewals and reads
// (a write can stall on a failing SR), the heartbeats, and a watchdog that only reads the
// judgement every 100 ms. Each step that would add evidence of this host's own life checks
// first that it has not already passed its fencing time (a process stopped and continued must
// not renew a lease the pool has taken since): it fences instead.
//
// The armed mark (DIR/ha-armed) says the host was armed when its daemon last ran: a daemon
// killed while armed is a host whose watchdog reboots it, so at the next start its domains are
// gone (host_node destroys them before it reconciles).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/periodic_thread.hpp"
#include "ha/liveness_judge.hpp"
#include "ha/statefile.hpp"
#include "ha/watchdog.hpp"
#include "pool/peer_client.hpp"
#include "pool/peer_service.hpp"
#include "storage/database.hpp"

namespace xapid::ha {

inline constexpr int fenced_exit_code = 99;  // a fenced daemon's exit status (its supervisor must not start it at once)

struct host_side {
  storage::database* db = nullptr;
  std::string host_ref;
  std::string data_dir;
  pool::peer_client* peers = nullptr;
  // Where the statefile VDI's bytes are on this host (its SR's PBD plugged here).
  std::function<api::api_result<std::string>(const storage::state&, const std::string& vdi)> statefile_path;
  // Opens a statefile (the simulator gives its own); default open_statefile.
  std::function<result<std::unique_ptr<block_device>, std::string>(const std::string& path)> open;
  std::function<bool()> leads;                          // this host is the pool's ready master
  // The host uuids of the log's other voters; empty when this host is no voter.
  std::function<std::optional<std::vector<std::string>>()> other_voters;
  // Restarts this host as the pool's only voter (pool::recover_alone): called once, when it is no
  // master, holds the master lease and the log's other voter is dead — a pool of two (with more
  // voters, those that come back could elect among themselves in the old configuration).
  std::function<bool(const std::string& why)> recover_alone;  // false: it could not
  std::function<void(const std::string& why)> fence;   // destroys the domains and ends the daemon
  // Raises a pool message about this host (HA_STATEFILE_LOST: name, priority, body).
  std::function<void(const std::string& name, std::int64_t priority, const std::string& body)> alert;
  // A hardware watchdog to pet while armed (a real host's /dev/watchdog; never on a simulated
  // one): its timeout is 0.3 T, so a daemon that stops petting at its fencing time (0.6 T) has
  // its host rebooted before the pool judges it dead (T).
  std::string watchdog_device;
};

// What the master's failover reads of its monitor.
struct ha_view {
  bool armed = false;
  bool master_lease = false;                 // this host holds the master lease now
  std::vector<std::string> dead;             // host refs judged dead
  std::chrono::milliseconds timeout{0};
};

class ha_monitor {
 public:
  explicit ha_monitor(host_side side);
  ~ha_monitor();
  ha_monitor(const ha_monitor&) = delete;
  ha_monitor& operator=(const ha_monitor&) = delete;

  // The peer service's Ping from the member whose host uuid this is: a heartbeat towards this
  // host. Answers this host's report (hosts heard, ms ago) while armed.
  std::optional<pool::ha_report> heartbeat_from(const std::string& host_uuid);
  ha_view view();
  bool armed();  // armed, and not restarting to recover alone (whatever its judgement)
  // host.emergency_ha_disable: this host disarms and stays so while the pool's HA keeps this
  // statefile (it no longer fences — nor renews, so the pool will judge it dead). HA_NOT_ENABLED
  // when it is not armed.
  api::status emergency_disable();

  static bool was_armed(const std::string& data_dir);
  static void clear_armed_mark(const std::string& data_dir);

 private:
  struct armed_state;
  void check();  // arms or disarms by the replica
  std::optional<std::string> arm(const storage::state& s, const std::string& vdi, ha_timing timing,
                                 const std::string& pool_uuid);
  void disarm();
  void renew();
  void heartbeats();
  void watch();

  host_side side_;
  std::mutex mu_;  // guards armed_'s judge and lease fields
  std::shared_ptr<armed_state> armed_;
  std::atomic<bool> recovering_{false};  // restarting to recover the pool alone: no longer armed
  std::mutex arming_mu_;  // check() and emergency_disable(): one arms or disarms at a time
  std::string armed_vdi_;
  std::string excluded_vdi_;  // the statefile this host left by emergency_ha_disable
  std::chrono::milliseconds armed_timeout_{0};
  std::unique_ptr<hardware_watchdog> hardware_;  // the watchdog thread's, while armed
  std::unique_ptr<periodic_thread> renewer_, heart_, watchdog_;
  std::unique_ptr<periodic_thread> checker_;  // last: it arms once the rest is made
};

}  // namespace xapid::ha
