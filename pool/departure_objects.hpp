// The rows that leave the pool database with a host (pool.eject, host.destroy): the operations of
// one transaction, the mirror of join_objects. What was the host's own goes:
//  - its host row, host_metrics, CPUs, crashdumps, patches, PCI devices and PGPUs;
//  - its PIFs with their metrics, and the VLANs, bonds and tunnels made of them;
//  - its PBDs, and the SRs that only it could reach (as xapi's SR.forget: their VDIs, and the
//    VBDs of those VDIs, go; the disks' contents are the host's business);
//  - its control domain and anything still resident on it, with their devices and metrics;
//  - its sessions and tasks.
// Every remaining reference to a row that goes becomes OpaqueRef:NULL (a VM's affinity, a
// suspended VM's image on the host's SR) or leaves its set or map. Halted VMs, templates,
// networks and shared SRs stay with the pool.
#pragma once

#include <optional>
#include <string>

#include "storage/database.hpp"

namespace xapid::pool {

// Adds them to `t`; false (and nothing added) when `host` is not a live host row. The
// transaction fails if the host's row changed after `s` was read, or a VM became resident on
// it (OPERATION_NOT_ALLOWED: the caller checks again).
bool departure_objects(const storage::state& s, const std::string& host, storage::transaction& t);

// Why `host` may not leave the pool now (pool.eject), or nothing: a VM not halted resident on it
// (OPERATION_NOT_ALLOWED "VM resident on host", as xapi), or a suspended VM whose memory image
// is on storage that would leave with it.
std::optional<api::api_error> departure_refused(const storage::state& s, const std::string& host);

}  // namespace xapid::pool
