// A simulated Xen host: domids, memory accounting that refuses what does not fit, state
// changes, suspend images as real files, and seeded fault injection. Its domains are kept in a
// state file, so they survive a restart of xapid as real domains survive a toolstack restart.
#pragma once

#include <cstdint>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>

#include "xen/backend.hpp"

namespace xapid::xen {

struct sim_options {
  int cpu_count = 4;                                      // default 4
  std::int64_t memory_total_bytes = std::int64_t{16} << 30;  // default 16 GiB
  std::int64_t dom0_memory_bytes = std::int64_t{1} << 30;    // held by the control domain, default 1 GiB
  std::string state_file;       // where domains are kept across restarts; "" keeps them in memory only
  std::uint64_t fault_seed = 1;  // the fault plan's PRNG seed
  double fault_probability = 0;  // chance that an operation fails with an injected fault, default 0
  int operation_ms = 0;  // how long building, shutting down, suspending and resuming a domain take, default 0
  double crash_probability = 0;  // chance per running domain per tick() that its guest crashes, default 0
  double hang_probability = 0;   // chance that a guest ignores a clean shutdown or reboot, default 0
};

class sim_backend final : public backend {
 public:
  // Loads the domains of options.state_file when it exists.
  static result<std::unique_ptr<sim_backend>, std::string> open(sim_options options);

  host_info host() override;
  backend_result<int> create(const domain_config& config) override;
  backend_result<void> unpause(int domid) override;
  backend_result<void> pause(int domid) override;
  backend_result<void> shutdown(int domid, shutdown_reason reason, const std::atomic<bool>* cancelled) override;
  backend_result<void> destroy(int domid) override;
  backend_result<void> suspend(int domid, const std::string& path) override;
  backend_result<int> resume(const domain_config& config, const std::string& path) override;
  backend_result<void> set_memory_target(int domid, std::int64_t bytes) override;
  backend_result<void> set_vcpus(int domid, int vcpus) override;
  std::vector<domain_info> list() override;
  backend_result<void> plug_disk(int domid, const disk& d) override;
  backend_result<void> unplug_disk(int domid, const std::string& device) override;
  backend_result<void> plug_nic(int domid, const nic& n) override;
  backend_result<void> unplug_nic(int domid, int index) override;
  // The simulated agent reports a running guest; its address is derived from the VM's uuid.
  std::optional<guest_report> guest(int domid) override;
  // Its boot banner, then what happened to domains (the last 1,000 events).
  std::string dmesg() override;
  void stop_waiting() override;

  // What a guest does on its own: shuts itself down, reboots, or crashes.
  backend_result<void> guest_stops(int domid, shutdown_reason reason);
  // Simulated time passes: each running guest may crash (crash_probability, seeded).
  void tick();

 private:
  explicit sim_backend(sim_options options);
  std::int64_t used_locked() const;
  backend_result<std::map<int, domain_info>::iterator> find_locked(int domid);
  backend_result<void> injected_fault(const char* operation);
  void takes_time() const;  // the simulated duration of a slow operation, outside the lock
  backend_result<int> build_locked(const domain_config& config, std::int64_t memory);
  void save_locked();
  void log_locked(std::string line);

  sim_options options_;
  std::mutex mu_;
  std::condition_variable destroyed_;  // a guest that ignores a shutdown waits for its domain to go
  bool stopping_ = false;             // ... or for the daemon to stop
  std::mt19937_64 faults_;
  std::map<int, domain_info> domains_;
  // Plugged devices: "vbd/xvda", "vif/0" per domid (simulated hotplug only checks for clashes).
  std::map<int, std::set<std::string>> devices_;
  int next_domid_ = 1;  // domid 0 is the control domain
  std::deque<std::string> messages_;
};

}  // namespace xapid::xen
