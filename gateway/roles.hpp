// Roles as xapi has them: every permission (an RPC, named in lower case: "vm.start") is a role
// object, and the six roles of all_roles() have as subroles the permissions they grant. They
// exist from first boot; role.* and subject.*_roles RPCs answer from them.
#pragma once

#include "gateway/dispatch.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

// Creates the role objects when the database has none.
api::status ensure_roles(storage::database& db);

void register_role_rpcs(dispatcher& d, storage::database& db);

// The permission (role name) of an RPC: its wire name in lower case.
std::string permission_name(const api::method_desc& m);

}  // namespace xapid::gateway
