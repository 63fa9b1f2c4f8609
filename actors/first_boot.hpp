// The objects a host has from its first boot, as a XenServer host has them: the host with its
// CPUs and metrics, the control domain, the management network and its PIF, a console, a local
// SR (a directory of disk images, DIR/sr/UUID); and, when the database holds no pool yet, a new
// pool with this host as master (the local SR its default) and the VM templates of
// actors/templates.json. The host's uuid is chosen once and kept in DIR/inventory, so a restart
// finds the same host.
#pragma once

#include <string>

#include "proto/api/convert.hpp"
#include "storage/database.hpp"
#include "xen/backend.hpp"

namespace xapid::actors {

struct host_identity {
  std::string pool;
  std::string host;
};

// The host's uuid as DIR/inventory keeps it; empty before the first boot.
std::string installation_uuid(const std::string& data_dir);

api::api_result<host_identity> ensure_pool_and_host(storage::database& db, const std::string& data_dir,
                                                    const std::string& address, const xen::host_info& hardware);

}  // namespace xapid::actors
