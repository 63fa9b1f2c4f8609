// This host's performance data (seed 003, 5.2): every 5 s the hypervisor's counters become data
// sources with xapi's rrdd names — per VM cpuN (per vCPU, 0..1), memory (bytes),
// memory_internal_free (KiB, when the guest's agent reports it), vbd_<dev>_read/_write and
// vif_<n>_rx/_tx (bytes/s); for the host cpuN, cpu_avg, memory_total_kib, memory_free_kib,
// loadavg, pif_<dev>_rx/_tx, xapi_memory_usage_kib, xapi_open_fds; per SR this host keeps
// (its local SRs; the shared ones on the master) size and physical_utilisation (bytes) —
// archived per VM, per SR and for the host (metrics::rrd) and kept in DIR/rrd as XML (at stop,
// hourly and on host.backup_rrds; a VM's when its domain goes, an SR's when this host no longer
// keeps it). Only the VMs running here and the SRs kept here have archives in memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "metrics/perfmon.hpp"
#include "metrics/rrd.hpp"
#include "storage/state.hpp"
#include "xen/backend.hpp"

namespace xapid::metrics {

// What a data source is, by its name (xapi's descriptions and units).
struct source_description {
  std::string description, units;
  double min = 0, max = 0;  // max 0: no known bound
};
source_description describe(const std::string& name);

// Whose archive: the host's, a VM's or an SR's (their files differ: DIR/rrd/host.xml,
// <uuid>.xml, sr-<uuid>.xml, so a VM and an SR with one uuid never share one).
enum class archive_kind : std::uint8_t { host, vm, sr };

// An SR's sizes as its record has them (bytes).
struct sr_reading {
  std::string uuid;
  double size = 0, utilisation = 0;
};

// Which archives an /rrd_updates answer spans (xapi's: the host when asked; every VM unless
// some are named; SRs only when named, or every one with "all").
struct archive_selection {
  bool host = false;
  std::vector<std::string> vms;  // empty: every VM's
  bool all_srs = false;
  std::vector<std::string> srs;
};

class collector {
 public:
  // `dir` holds the archives (made if missing); `min_max` adds MIN and MAX archives to new ones.
  collector(xen::backend& hv, clock& clk, std::string host_uuid, std::string dir, bool min_max = false);

  // Reads the host's archive back from `dir` (VMs' are read when their domains appear).
  result<void, std::string> load();
  // Which SR each running VM's disk is on: VM uuid -> device ("xvda") -> SR uuid.
  using disk_srs = std::map<std::string, std::map<std::string, std::string>>;
  // One sample of every running domain, of the host and of the SRs it keeps; with `disks`, the
  // host's I/O per SR too (xapi's iostat: io_throughput_read/_write/_total_<first 8 of the
  // SR's uuid>, MiB/s, the sum of the disks on it of the VMs running here).
  void collect(const std::vector<sr_reading>& srs = {}, const disk_srs& disks = {});
  // Writes every archive in memory to `dir` (each through a temporary file and a rename, so a
  // full disk loses that write only; the archives in memory go on).
  result<void, std::string> save_all();

  // An archive: "" for the host's, else the VM's (or, with archive_kind::sr, the SR's) of that
  // uuid. `f` runs under the collector's lock. Answers false when there is none (a VM not
  // running here and never archived).
  bool with_rrd(const std::string& uuid, const std::function<void(const rrd&)>& f, archive_kind kind = archive_kind::vm);
  // The selected archives in memory, with their legend prefixes ("host:<uuid>:", "vm:<uuid>:",
  // "sr:<uuid>:"), under the lock; a named uuid with no archive here is left out (as xapi's).
  void with_all(const archive_selection& which,
                const std::function<void(const std::vector<std::pair<std::string, const rrd*>>&)>& f);
  // The rows after wall time `since` of each archive in memory (the host's, the VMs', the
  // SRs') in its AVERAGE archive of `step` seconds, oldest first; `newest` the latest row's time.
  struct recent_rows {
    std::vector<perfmon::object_rows> objects;
    std::int64_t newest = 0;
  };
  recent_rows rows_since(std::int64_t step, std::int64_t since);
  // forget_data_source_archives; false when there is no such source.
  bool forget(const std::string& uuid, const std::string& name);
  // A VM's archive moves with it when it migrates (as xapi's rrdd pushes it): its dump from the
  // host it leaves (none when it has none), taken up by the host it comes to, which keeps it
  // (in memory and in `dir`) in place of any it had.
  std::optional<std::string> export_archive(const std::string& uuid);
  result<void, std::string> import_archive(const std::string& uuid, std::string_view dump);

  // Whether archives made from now on have MIN and MAX beside AVERAGE (the pool's
  // other_config:create_min_max_in_new_VM_RRDs, looked at each collection).
  void set_min_max(bool on) noexcept { min_max_.store(on, std::memory_order_relaxed); }
  const std::string& host_uuid() const noexcept { return host_uuid_; }
  std::uint64_t samples() const noexcept { return samples_; }

 private:
  struct previous {
    int domid = -1;
    std::int64_t at_ns = 0;
    xen::domain_counters counters;
  };
  std::map<std::string, rrd>& kept(archive_kind kind) { return kind == archive_kind::sr ? srs_ : vms_; }
  // An object's archive in memory, read back from `dir` when it was kept here before.
  rrd* rrd_locked(archive_kind kind, const std::string& uuid);
  // Archives of objects no longer here leave memory, saved to `dir`.
  void retire_locked(archive_kind kind, const std::set<std::string>& present);
  result<void, std::string> save_locked(archive_kind kind, const std::string& uuid, const rrd& r);
  // Its file; nullopt for a uuid that cannot name one (a path's characters).
  std::optional<std::string> path_of(archive_kind kind, const std::string& uuid) const;
  // An archive read back from its file, when there is one.
  std::optional<rrd> read_back(archive_kind kind, const std::string& uuid) const;

  xen::backend& hv_;
  clock& clk_;
  std::string host_uuid_, dir_;
  std::atomic<bool> min_max_;
  std::mutex mu_;
  rrd host_;
  std::map<std::string, rrd> vms_;  // running here
  std::map<std::string, rrd> srs_;  // kept here
  std::map<std::string, previous> last_;  // by VM uuid
  std::optional<std::pair<std::int64_t, xen::host_counters>> last_host_;
  std::uint64_t samples_ = 0;
};

// The SRs this host keeps archives of: those plugged here, a shared one only on the pool's
// master (one archive per SR in the pool), with the sizes their records have.
std::vector<sr_reading> srs_kept_here(const storage::state& s, const std::string& host_ref);
// The disks of the VMs running on `host_ref`, by the SR each is on (collect's `disks`).
collector::disk_srs disk_srs_here(const storage::state& s, const std::string& host_ref);

}  // namespace xapid::metrics
