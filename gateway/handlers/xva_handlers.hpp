// The HTTP handlers of VM export and import (seed 003 sections 3.5 and 5.1): GET /export streams
// a halted or suspended VM with its disks as an XVA archive in XenServer's layout (ova.xml with
// the VM's, disks', devices' and networks' records, then 1 MiB chunks with SHA-1 checksums); PUT
// /import creates a VM and its disks from such a stream, all or nothing; /export_metadata and
// /import_metadata do the same without the disks (the VM is put onto disks already here, by
// their uuids). Each authenticates by
// session_id or HTTP basic credentials (root, or a PAM user with a role) and reports progress
// on task_id when given.
#pragma once

#include <string>

#include "actors/object_actors.hpp"
#include "actors/storage_repos.hpp"
#include "gateway/http/http_server.hpp"
#include "gateway/auth/logins.hpp"
#include "gateway/auth/sessions.hpp"
#include "gateway/api/tasks.hpp"

namespace xapid::gateway {

struct xva_context {
  storage::database& db;
  session_manager& sessions;
  login_guard& logins;
  task_manager& tasks;
  actors::storage_repos& repos;
  actors::host_actors& actors;
  clock& clk;
  std::string host;  // this host's ref
};

void register_xva_handlers(http_server& server, xva_context& ctx);

}  // namespace xapid::gateway
