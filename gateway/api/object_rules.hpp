// The rules of classes whose destructors and custom setters the generic implicit RPCs serve:
// what xapi checks before it lets each of them change anything (xapi_<class>.ml), so that no
// generic call destroys what xapi protects — a live host, a network under a running VM, a
// physical PIF — or sets what only the storage manager may (a VDI's size). Each rule is a
// guard in front of the generic handler (dispatcher::guard), or a handler of its own where
// xapi does more than one row's change (network.destroy takes the network's idle VIFs with it).
// The checks read a snapshot before the commit, as the per-class RPCs do (see ARCHITECTURE.md).
#pragma once

#include "actors/storage_repos.hpp"
#include "gateway/rpc/dispatch.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

// After register_implicit_rpcs.
void register_object_rules(dispatcher& d, storage::database& db, actors::storage_repos& repos, const std::string& this_host);

}  // namespace xapid::gateway
