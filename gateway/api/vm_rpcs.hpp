// The VM lifecycle RPCs (VM.start ... VM.destroy) and VBD/VIF hotplug: each decodes its
// parameters against the generated signature and hands the operation to actors::vm_lifecycle,
// under the key of its Async task (or of a fresh one) in current_operations. Registered after
// the implicit RPCs, they replace VM.destroy, VBD.destroy and VIF.destroy.
#pragma once

#include <set>
#include <string_view>

#include "actors/messages.hpp"
#include "actors/vm_lifecycle.hpp"
#include "gateway/rpc/dispatch.hpp"
#include "gateway/api/tasks.hpp"

namespace xapid::gateway {

// The clean stops (clean_shutdown, shutdown, clean_reboot) wait for the guest; `tasks` lets
// task.cancel end that wait for their Async form.
// Each operation that succeeds raises xapi's message of it (VM_STARTED, VM_SHUTDOWN, ...).
void register_vm_rpcs(dispatcher& d, actors::vm_lifecycle& vms, id_source& ids, task_manager& tasks,
                      actors::message_log& messages);

}  // namespace xapid::gateway
