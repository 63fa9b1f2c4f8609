// The objects a host has from its first boot: the pool (with this host as master) and the host.
// The host's uuid is chosen once and kept in DIR/inventory, so a restart finds the same host.
// (The full first boot — CPUs, metrics, control domain, network, SR, templates — comes with the
// host lifecycle.)
#pragma once

#include <string>

#include "proto/api/convert.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

struct host_identity {
  std::string pool;
  std::string host;
};

api::api_result<host_identity> ensure_pool_and_host(storage::database& db, const std::string& data_dir,
                                                    const std::string& address);

}  // namespace xapid::gateway
