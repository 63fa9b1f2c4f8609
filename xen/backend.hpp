// The hypervisor boundary: everything xapid asks of Xen goes through `backend`. Two
// implementations: sim_backend (a simulated host, the default) and, later, libxl_backend.
// Calls are synchronous and thread-safe; errors are values naming what went wrong.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace xapid::xen {

struct host_info {
  int cpu_count = 0;
  std::string cpu_vendor;
  std::string cpu_model;
  std::int64_t cpu_speed_mhz = 0;
  std::int64_t memory_total_bytes = 0;
  std::int64_t memory_free_bytes = 0;  // not held by any domain
  std::string xen_version;
};

struct disk {
  std::string device;  // "xvda", "hdc"
  std::string path;    // the image, or "" for an empty CD drive
  bool read_only = false;
  bool cdrom = false;
};

struct nic {
  int index = 0;
  std::string mac;
  std::string bridge;
};

struct domain_config {
  std::string uuid;  // the VM's uuid; a domain is found by it
  std::string name;
  bool hvm = false;
  std::int64_t memory_max_bytes = 0;
  std::int64_t memory_target_bytes = 0;
  int vcpus_max = 1;
  int vcpus = 1;
  std::string kernel, ramdisk, cmdline, bootloader;  // PV boot
  std::string boot_order;                            // HVM boot ("cd")
  std::map<std::string, std::string> platform;
  std::vector<disk> disks;
  std::vector<nic> nics;
};

enum class domain_state { running, paused, shutdown, crashed };

// Why a domain stopped (when state is shutdown): what the guest asked for.
enum class shutdown_reason { none, poweroff, reboot, suspend, crash, halt };

struct domain_info {
  int domid = -1;
  std::string uuid;
  domain_state state = domain_state::paused;
  shutdown_reason reason = shutdown_reason::none;
  std::int64_t memory_bytes = 0;
  int vcpus = 0;
};

// What the guest's agent reports once the guest has booted (PV tools in a real guest).
struct guest_report {
  std::map<std::string, std::string> os_version;  // name, distro, major, minor, uname
  std::map<std::string, std::string> pv_drivers_version;
  std::map<std::string, std::string> networks;  // "0/ip" -> address
  std::map<std::string, std::string> other;     // "feature-shutdown" -> "1", ...
};

// A device's byte counters since it was plugged: a disk's read and written, a NIC's received
// and sent (as the guest sees them).
struct device_counters {
  std::string name;  // "xvda", "0" (a VIF's index), "eth0"
  std::uint64_t in_bytes = 0, out_bytes = 0;  // disk: read, written; NIC: received, sent
};

// A domain's counters since it was built, as the hypervisor keeps them: rates are the
// collector's business (metrics/), which takes two readings.
struct domain_counters {
  int domid = -1;
  std::string uuid;
  std::vector<std::uint64_t> vcpu_time_ns;  // per online vCPU, time run
  std::int64_t memory_bytes = 0;
  std::optional<std::int64_t> memory_internal_free_bytes;  // when the guest's agent reports it
  std::vector<device_counters> disks, nics;
};

// The host's counters: physical CPUs' busy time, memory, load, its physical NICs.
struct host_counters {
  std::vector<std::uint64_t> cpu_busy_ns;  // per physical CPU
  std::int64_t memory_total_bytes = 0, memory_free_bytes = 0;
  double loadavg = 0;  // of the last minute
  std::vector<device_counters> nics;
};

// What the hypervisor refused, and why.
struct backend_error {
  // not_acknowledged: the guest ignored a clean shutdown or reboot request; cancelled: the
  // caller stopped waiting for it (task.cancel).
  enum class kind { not_enough_memory, no_such_domain, domain_exists, bad_state, not_acknowledged, cancelled, failed } what;
  std::string message;
  std::int64_t needed_bytes = 0;     // not_enough_memory
  std::int64_t available_bytes = 0;  // not_enough_memory
};

template <class T>
using backend_result = result<T, backend_error>;

class backend {
 public:
  virtual ~backend() = default;

  virtual host_info host() = 0;
  // Builds a domain, paused, holding its memory; answers its domid.
  virtual backend_result<int> create(const domain_config& config) = 0;
  virtual backend_result<void> unpause(int domid) = 0;
  virtual backend_result<void> pause(int domid) = 0;
  // Asks the guest to stop (clean shutdown/reboot) and waits until it reaches state shutdown
  // with the reason; gives up with `cancelled` once `*cancelled` turns true (when not null).
  virtual backend_result<void> shutdown(int domid, shutdown_reason reason, const std::atomic<bool>* cancelled) = 0;
  // Tears the domain down at once and frees its memory.
  virtual backend_result<void> destroy(int domid) = 0;
  // Saves a paused or running domain's state to `path` and destroys it.
  virtual backend_result<void> suspend(int domid, const std::string& path) = 0;
  // Rebuilds a domain from `path` (written by suspend), paused; answers its domid.
  virtual backend_result<int> resume(const domain_config& config, const std::string& path) = 0;
  // Live migration's copy, on the host the guest leaves: sends the running (or paused) domain's
  // memory towards its new host in rounds, the guest running meanwhile, until what it dirtied
  // since the last round is small; the domain is then paused for the last round. Answers the
  // bytes sent. Gives up with `cancelled` once `*cancelled` turns true (when not null).
  virtual backend_result<std::int64_t> send_memory(int domid, const std::atomic<bool>* cancelled) = 0;
  virtual backend_result<void> set_memory_target(int domid, std::int64_t bytes) = 0;
  virtual backend_result<void> set_vcpus(int domid, int vcpus) = 0;
  virtual std::vector<domain_info> list() = 0;
  // Devices of a live domain.
  virtual backend_result<void> plug_disk(int domid, const disk& d) = 0;
  virtual backend_result<void> unplug_disk(int domid, const std::string& device) = 0;
  virtual backend_result<void> plug_nic(int domid, const nic& n) = 0;
  virtual backend_result<void> unplug_nic(int domid, int index) = 0;
  // The guest agent's report, once there is one.
  virtual std::optional<guest_report> guest(int domid) = 0;
  // The counters of every live domain but the control domain, and of the host (read every 5 s).
  virtual std::vector<domain_counters> read_domain_counters() = 0;
  virtual host_counters read_host_counters() = 0;
  // The hypervisor's message buffer (xl dmesg).
  virtual std::string dmesg() = 0;
  // The daemon stops: calls waiting for a guest (a shutdown it has not acknowledged) give up
  // now, with not_acknowledged.
  virtual void stop_waiting() = 0;
};

}  // namespace xapid::xen
