// The VM lifecycle RPCs (VM.start ... VM.destroy) and VBD/VIF hotplug: each decodes its
// parameters against the generated signature and hands the operation to actors::vm_lifecycle,
// under the key of its Async task (or of a fresh one) in current_operations.
#pragma once

#include <set>
#include <string_view>

#include "actors/vm_lifecycle.hpp"
#include "gateway/dispatch.hpp"

namespace xapid::gateway {

void register_vm_rpcs(dispatcher& d, actors::vm_lifecycle& vms, id_source& ids);

// The implicit RPCs that vm_rpcs replaces (they have behaviour beyond a row change).
const std::set<std::string_view>& vm_rpcs_replacing_implicit();

}  // namespace xapid::gateway
