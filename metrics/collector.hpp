// This host's performance data (seed 003, 5.2): every 5 s the hypervisor's counters become data
// sources with xapi's rrdd names — per VM cpuN (per vCPU, 0..1), memory (bytes),
// memory_internal_free (KiB, when the guest's agent reports it), vbd_<dev>_read/_write and
// vif_<n>_rx/_tx (bytes/s); for the host cpuN, cpu_avg, memory_total_kib, memory_free_kib,
// loadavg, pif_<dev>_rx/_tx, xapi_memory_usage_kib, xapi_open_fds — archived per VM and for the
// host (metrics::rrd) and kept in DIR/rrd as XML (at stop, hourly and on host.backup_rrds; a
// VM's when its domain goes). Only the VMs running here have archives in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "metrics/rrd.hpp"
#include "xen/backend.hpp"

namespace xapid::metrics {

// What a data source is, by its name (xapi's descriptions and units).
struct source_description {
  std::string description, units;
  double min = 0, max = 0;  // max 0: no known bound
};
source_description describe(const std::string& name);

class collector {
 public:
  // `dir` holds the archives (made if missing); `min_max` adds MIN and MAX archives to new ones.
  collector(xen::backend& hv, clock& clk, std::string host_uuid, std::string dir, bool min_max = false);

  // Reads the host's archive back from `dir` (VMs' are read when their domains appear).
  result<void, std::string> load();
  // One sample of every running domain and of the host.
  void collect();
  // Writes every archive in memory to `dir` (each through a temporary file and a rename, so a
  // full disk loses that write only; the archives in memory go on).
  result<void, std::string> save_all();

  // An archive: "" for the host's, else a VM's uuid. `f` runs under the collector's lock.
  // Answers false when there is none (a VM not running here and never archived).
  bool with_rrd(const std::string& uuid, const std::function<void(const rrd&)>& f);
  // Every archive of a running VM (and the host's when `host`), with its legend prefix
  // ("host:<uuid>:", "vm:<uuid>:"), under the lock.
  void with_all(bool host, const std::vector<std::string>& only_vms,
                const std::function<void(const std::vector<std::pair<std::string, const rrd*>>&)>& f);
  // forget_data_source_archives; false when there is no such source.
  bool forget(const std::string& uuid, const std::string& name);
  // A VM's archive moves with it when it migrates (as xapi's rrdd pushes it): its dump from the
  // host it leaves (none when it has none), taken up by the host it comes to, which keeps it
  // (in memory and in `dir`) in place of any it had.
  std::optional<std::string> export_archive(const std::string& uuid);
  result<void, std::string> import_archive(const std::string& uuid, std::string_view dump);

  const std::string& host_uuid() const noexcept { return host_uuid_; }
  std::uint64_t samples() const noexcept { return samples_; }

 private:
  struct previous {
    int domid = -1;
    std::int64_t at_ns = 0;
    xen::domain_counters counters;
  };
  rrd* vm_rrd_locked(const std::string& uuid);
  result<void, std::string> save_locked(const std::string& uuid, const rrd& r);
  std::string path_of(const std::string& uuid) const;

  xen::backend& hv_;
  clock& clk_;
  std::string host_uuid_, dir_;
  bool min_max_;
  std::mutex mu_;
  rrd host_;
  std::map<std::string, rrd> vms_;  // running here
  std::map<std::string, previous> last_;  // by VM uuid
  std::optional<std::pair<std::int64_t, xen::host_counters>> last_host_;
  std::uint64_t samples_ = 0;
};

}  // namespace xapid::metrics
