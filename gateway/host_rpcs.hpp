// The host's own RPCs: enable/disable, shutdown/reboot (the daemon stops, or starts again),
// evacuation (on a one-host pool a running VM has nowhere to go: NO_HOSTS_AVAILABLE), its
// clock, log, the hypervisor's messages, and its free memory. Shutdown, reboot and evacuate are
// operations of the host's actor, so they exclude each other.
#pragma once

#include <functional>
#include <string>

#include "actors/object_actors.hpp"
#include "common/clock.hpp"
#include "gateway/dispatch.hpp"
#include "storage/database.hpp"
#include "xen/backend.hpp"

namespace xapid::gateway {

struct host_context {
  storage::database& db;
  xen::backend& hypervisor;
  actors::host_actors& actors;
  clock& clk;
  std::string host;      // this host's ref
  std::string log_file;  // what host.get_log answers the end of
  // Stops the daemon once the current answer is sent; `reboot` starts it again.
  std::function<void(bool reboot)> power;
};

void register_host_rpcs(dispatcher& d, host_context& ctx);

}  // namespace xapid::gateway
