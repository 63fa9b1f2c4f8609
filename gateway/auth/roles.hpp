// Roles as xapi has them: every permission (an RPC, named in lower case: "vm.start") is a role
// object, and the six roles of all_roles() have as subroles the permissions they grant. They
// exist from first boot; role.* and subject.*_roles RPCs answer from them.
#pragma once

#include "gateway/rpc/dispatch.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

// Creates the role objects when the database has none.
api::status ensure_roles(storage::database& db);

void register_role_rpcs(dispatcher& d, storage::database& db);

// The permission (role name) of an RPC: its wire name in lower case.
std::string permission_name(const api::method_desc& m);

// The index in api::all_roles() of the most powerful of a subject's roles (npos: none).
std::size_t subject_role_level(const storage::state& snap, const api::subject& s);

// The index in api::all_roles() of the role named `name` ("pool-operator").
std::size_t role_index(std::string_view name);

}  // namespace xapid::gateway
