// The pool's HA switch (ha/): pool.enable_ha and pool.disable_ha, run on the master (routed
// there). Enabling checks as xapi does, makes (or reuses) the statefile VDI on the chosen shared
// SR, writes its header (the hosts' lease slots), commits the pool's and hosts' HA fields, and
// answers once every host has renewed its lease there — else HA is off again and the answer
// says which host could not. Disabling clears pool.ha_enabled; each host disarms when its
// replica says so. The statefile VDI and the HA fields stay, as xapi leaves them. The planning
// calls (ha/planning) and the rule that refuses what would break the failover plan (VM.start of
// a new protected VM, host.disable) answer from any host.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "actors/storage_repos.hpp"
#include "gateway/rpc/dispatch.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

struct ha_context {
  storage::database& db;
  actors::storage_repos& repos;
  std::string host;  // this host's ref
  std::chrono::seconds arm_wait{30};  // how long enable_ha waits for every host's first renewal
  // pool.ha_prevent_restarts_for on the master (its failover), host.emergency_ha_disable here
  // (its monitor); set once the host serves.
  std::function<void(std::chrono::seconds)> prevent_restarts;
  std::function<api::status()> emergency_disable;
};

void register_ha_rpcs(dispatcher& d, ha_context& ctx);

}  // namespace xapid::gateway
