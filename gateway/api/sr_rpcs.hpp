// The storage RPCs: SR (create, introduce, forget, destroy, scan, update, probe,
// get_supported_types, the custom setters), PBD (create, plug, unplug, destroy) and VDI (create,
// destroy, forget, resize, resize_online, update, snapshot, clone, copy, introduce), each handed to
// actors::storage_repos.
#pragma once

#include <set>
#include <string_view>

#include "actors/storage_repos.hpp"
#include "gateway/rpc/dispatch.hpp"

namespace xapid::gateway {

void register_sr_rpcs(dispatcher& d, actors::storage_repos& repos, id_source& ids);

}  // namespace xapid::gateway
