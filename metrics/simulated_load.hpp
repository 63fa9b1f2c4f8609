// Tests and demonstrations drive a simulated guest through its VM: other_config
// "xapid-sim-load" = "cpu=0.8,disk_read=0,disk_write=1048576,net_rx=1024,net_tx=1024" (a vCPU's
// fraction, bytes per second); keys left out keep the idle guest's values, a malformed pair
// is ignored. Only the simulated backend has loads; a real guest does what it does.
#pragma once

#include <optional>
#include <string>

#include "storage/state.hpp"
#include "xen/sim_backend.hpp"

namespace xapid::metrics {

std::optional<xen::sim_load> parse_sim_load(const std::string& text);
// Gives each running VM resident on `host` the load its other_config asks for.
void apply_simulated_loads(const storage::state& s, const std::string& host, xen::sim_backend& sim);

}  // namespace xapid::metrics
