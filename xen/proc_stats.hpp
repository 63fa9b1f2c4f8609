// The kernel's statistics files a Xen control domain reads for the host's and its guests'
// counters, parsed: /proc/net/dev (every interface's bytes), /proc/loadavg, and the names of
// block backends in sysfs (vbd-DOMID-DEVID). Pure functions of the text, tested on recorded input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xen/backend.hpp"

namespace xapid::xen {

// Each interface of /proc/net/dev with its received (in) and sent (out) bytes.
std::vector<device_counters> parse_net_dev(std::string_view text);
// The first field of /proc/loadavg; nullopt when it is not a number.
std::optional<double> parse_loadavg(std::string_view text);

// A block backend's directory name "vbd-DOMID-DEVID": its domain and the guest's device name
// ("xvda" for Xen's 202:0, "hda" for 3:0; else the number).
struct block_backend {
  int domid;
  std::string device;
};
std::optional<block_backend> parse_block_backend(std::string_view name);

// Physical CPUs' busy time (ns) from Xen's idle time per CPU (xc_getcpuinfo's idletime, ns) read
// at monotonic time `now_ns`: now − idle, never below `previous` (the two clocks are read a
// moment apart, and a counter must not go back). Both clocks advance a nanosecond a nanosecond,
// so the busy fraction between two readings is right whatever their offset.
std::vector<std::uint64_t> busy_from_idle(std::uint64_t now_ns, const std::vector<std::uint64_t>& idle_ns,
                                          const std::vector<std::uint64_t>& previous);

// The guest agent's free memory (xenstore data/meminfo_free: KiB as decimal text) in bytes;
// nullopt when it is not a plain count.
std::optional<std::int64_t> parse_meminfo_kib(std::string_view text);

// A guest's NIC of dom0's "vifDOMID.N": its domain and index.
std::optional<std::pair<int, int>> parse_vif_name(std::string_view name);

}  // namespace xapid::xen
