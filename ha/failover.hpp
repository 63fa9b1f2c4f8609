// What the master does under HA (xapi's restart_auto_run_vms), once a second while it holds the
// master lease: a host its monitor judges dead is marked so (host_metrics.live false, the
// HA_HOST_FAILED alert) and its VMs are reset to Halted (force_state_reset: they cannot be
// running there, the host fenced itself before it could be judged dead); then every protected
// VM that is halted — ha_restart_priority "restart" and ha_always_run, whoever halted it but a
// user — is started where placement allows, by `order` (lowest first, negative last; each group
// after the one before has finished, VM.start's own start_delay included), and the
// "best-effort" VMs reset here after them. A start that fails is tried again two minutes later,
// and raises HA_PROTECTED_VM_RESTART_FAILED once per VM.
#pragma once

#include <chrono>
#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "common/periodic_thread.hpp"
#include "ha/ha_monitor.hpp"
#include "storage/database.hpp"

namespace xapid::ha {

struct failover_side {
  storage::database* db = nullptr;
  ha_monitor* monitor = nullptr;
  std::function<api::status(const std::string& vm)> reset;  // the VM of a dead host: Halted, nowhere
  std::function<api::status(const std::string& vm)> start;  // VM.start, placed by the pool's rules
  // An alert on an object (name, priority, class, uuid, body).
  std::function<void(const std::string& name, std::int64_t priority, api::cls cls, const std::string& uuid,
                     const std::string& body)>
      alert;
  // Calls back the members that are not in the log (pool::call_back_members): the hosts that
  // return after this one recovered the pool alone. Run aside, every 10 s.
  std::function<void()> call_back;
};

class failover {
 public:
  explicit failover(failover_side side, std::chrono::milliseconds period = std::chrono::seconds(1));
  ~failover();
  failover(const failover&) = delete;
  failover& operator=(const failover&) = delete;

  void step();
  // pool.ha_prevent_restarts_for: no failover step until then (0: at once again).
  void prevent_restarts_for(std::chrono::seconds s);

 private:
  void declare_dead(const storage::state& s, const std::string& host);
  void restart(const storage::state& s);

  failover_side side_;
  std::set<std::string> best_effort_;  // VMs reset here whose priority is best-effort
  std::map<std::string, std::chrono::steady_clock::time_point> last_try_;  // VM -> its last failed start
  std::set<std::string> alerted_;
  std::future<void> calling_back_;
  std::atomic<std::int64_t> prevented_until_ns_{0};  // monotonic
  std::chrono::steady_clock::time_point called_back_{};
  std::unique_ptr<periodic_thread> thread_;  // last
};

}  // namespace xapid::ha
