// Simulated Xen hosts: a `sim_world` holds any number of hosts, each with its CPUs, memory,
// domains and devices; a `sim_backend` is one host's view of it (the `backend` a host node
// drives): domids, memory accounting that refuses what does not fit, state changes, suspend
// images as real files, and seeded fault injection. Several host nodes of one process (tests,
// the simulator of a pool) can share one world, where a guest can move from host to host. The
// world is kept in a state file, so domains survive a restart of xapid as real domains survive
// a toolstack restart.
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
#include <vector>

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
  // Live migration's link: bytes per second, default 1 GiB/s (about a 10 Gb/s network). A
  // migrating guest dirties a tenth of what a round sent while the round lasts.
  std::int64_t migration_bytes_per_second = std::int64_t{1} << 30;
  double crash_probability = 0;  // chance per running domain per tick() that its guest crashes, default 0
  double hang_probability = 0;   // chance that a guest ignores a clean shutdown or reboot, default 0
};

class sim_backend;

// What a simulated guest does each second, spread over its vCPUs, disks and NICs. A guest's
// load is idle (these defaults) until set (tests set it through the VM's other_config).
struct sim_load {
  double cpu = 0.02;  // of each vCPU, 0..1
  double disk_read_bytes = 0, disk_write_bytes = 4096;
  double net_rx_bytes = 1024, net_tx_bytes = 1024;
  bool operator==(const sim_load&) const = default;
};

class sim_world : public std::enable_shared_from_this<sim_world> {
 public:
  // Loads the hosts and domains of `state_file` when it exists ("": kept in memory only).
  static result<std::shared_ptr<sim_world>, std::string> open(std::string state_file);

  // Host `name`'s view, made with `options` (its state_file is ignored: the world's is used) on
  // its first use; a host already in the world (loaded from the file) keeps its domains. One
  // view per host at a time.
  result<std::unique_ptr<sim_backend>, std::string> attach(const std::string& name, sim_options options);
  // A guest moves: the domain of `uuid` on host `from` (running or paused) is rebuilt on host
  // `to`, in the same state, with its memory and devices; answers its domid there.
  backend_result<int> move_domain(const std::string& uuid, const std::string& from, const std::string& to);
  std::vector<std::string> hosts();

 private:
  friend class sim_backend;
  struct host_state {
    sim_options options;
    std::mt19937_64 faults;
    std::map<int, domain_info> domains;
    // Plugged devices: "vbd/xvda", "vif/0" per domid (simulated hotplug only checks for clashes).
    std::map<int, std::set<std::string>> devices;
    int next_domid = 1;  // domid 0 is the control domain
    std::deque<std::string> messages;
    bool stopping = false;  // its daemon stops: waits for its guests give up
    bool attached = false;
    // Activity: each guest's load (by VM uuid) and counters (by domid), advanced with time.
    struct activity {
      std::vector<std::uint64_t> vcpu_ns;
      std::map<std::string, std::pair<double, double>> devices;  // "vbd/xvda", "vif/0": in, out bytes
    };
    std::map<std::string, sim_load> loads;
    std::map<int, activity> activity_of;
    std::vector<std::uint64_t> pcpu_busy_ns;
    std::pair<double, double> pif_bytes{0, 0};
    std::int64_t advanced_ns = 0;  // monotonic time of the counters
    std::mt19937_64 noise{0x6d657472696373};  // the counters' own, so the fault plan stays as seeded
  };
  explicit sim_world(std::string state_file) : state_file_(std::move(state_file)) {}
  void save_locked();
  std::int64_t used_locked(const host_state& h) const;
  backend_result<int> build_locked(host_state& h, const domain_config& config, std::int64_t memory);

  std::string state_file_;
  std::mutex mu_;
  std::condition_variable destroyed_;  // a guest that ignores a shutdown waits for its domain to go
  std::map<std::string, host_state> hosts_;
};

class sim_backend final : public backend {
 public:
  // One host in a world of its own, kept in options.state_file.
  static result<std::unique_ptr<sim_backend>, std::string> open(sim_options options);
  ~sim_backend() override;

  host_info host() override;
  backend_result<int> create(const domain_config& config) override;
  backend_result<void> unpause(int domid) override;
  backend_result<void> pause(int domid) override;
  backend_result<void> shutdown(int domid, shutdown_reason reason, const std::atomic<bool>* cancelled) override;
  backend_result<void> destroy(int domid) override;
  backend_result<void> suspend(int domid, const std::string& path) override;
  backend_result<int> resume(const domain_config& config, const std::string& path) override;
  backend_result<std::int64_t> send_memory(int domid, const std::atomic<bool>* cancelled) override;
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

  std::vector<domain_counters> read_domain_counters() override;
  host_counters read_host_counters() override;
  // What the guest of VM `uuid` does from now on (also after a restart of its domain).
  void set_load(const std::string& uuid, const sim_load& load);

  // What a guest does on its own: shuts itself down, reboots, or crashes.
  backend_result<void> guest_stops(int domid, shutdown_reason reason);
  // Simulated time passes: each running guest may crash (crash_probability, seeded).
  void tick();

 private:
  friend class sim_world;
  sim_backend(std::shared_ptr<sim_world> world, sim_world::host_state& h) : world_(std::move(world)), h_(h) {}
  backend_result<std::map<int, domain_info>::iterator> find_locked(int domid);
  backend_result<void> injected_fault(const char* operation);
  void takes_time() const;  // the simulated duration of a slow operation, outside the lock
  void advance_counters_locked();  // the guests' activity up to now

  std::shared_ptr<sim_world> world_;
  sim_world::host_state& h_;  // the world's, as long as it lives (map nodes do not move)
};

}  // namespace xapid::xen
