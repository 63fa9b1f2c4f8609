// The kernel's statistics files a Xen control domain reads for the host's and its guests'
// counters, parsed: /proc/net/dev (every interface's bytes), /proc/loadavg, and the names of
// block backends in sysfs (vbd-DOMID-DEVID). Pure functions of the text, tested on recorded input.
#pragma once

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

// A guest's NIC of dom0's "vifDOMID.N": its domain and index.
std::optional<std::pair<int, int>> parse_vif_name(std::string_view name);

}  // namespace xapid::xen
