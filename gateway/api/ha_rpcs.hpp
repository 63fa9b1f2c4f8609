// The pool's HA switch (ha/): pool.enable_ha and pool.disable_ha, run on the master (routed
// there). Enabling checks as xapi does, makes (or reuses) the statefile VDI on the chosen shared
// SR, writes its header (the hosts' lease slots), commits the pool's and hosts' HA fields, and
// answers once every host has renewed its lease there — else HA is off again and the answer
// says which host could not. Disabling clears pool.ha_enabled; each host disarms when its
// replica says so. The statefile VDI and the HA fields stay, as xapi leaves them.
#pragma once

#include <chrono>
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
};

void register_ha_rpcs(dispatcher& d, ha_context& ctx);

}  // namespace xapid::gateway
