// The host's own RPCs: enable/disable, shutdown/reboot (the daemon stops, or starts again) and
// evacuation — the operations and their rules are actors::host_operations' — and its clock,
// log, the hypervisor's messages, and its free memory.
#pragma once

#include <functional>
#include <string>

#include "actors/host_operations.hpp"
#include "common/clock.hpp"
#include "gateway/rpc/dispatch.hpp"
#include "storage/database.hpp"
#include "xen/backend.hpp"

namespace xapid::gateway {

struct host_context {
  storage::database& db;
  xen::backend& hypervisor;
  actors::host_operations& operations;
  clock& clk;
  std::string host;      // this host's ref
  std::string log_file;  // what host.get_log answers the end of
  // Stops the daemon once the current answer is sent; `reboot` starts it again.
  std::function<void(bool reboot)> power;
};

void register_host_rpcs(dispatcher& d, host_context& ctx);

}  // namespace xapid::gateway
