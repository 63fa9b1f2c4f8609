// The rows a joining host brings into the pool database: the create operations of the one
// transaction, committed on the master, that makes the host a member. Its rows keep their refs
// and uuids, so the joined host's files (its SR's directory, its simulated domains) still name
// them; a reference to anything not brought along becomes OpaqueRef:NULL (or leaves its set),
// so every reference points at a row of the resulting database.
#pragma once

#include <vector>

#include "storage/log_entry.hpp"
#include "storage/state.hpp"

namespace xapid::pool {

// What is brought, from `joiner` (the joining host's whole database, a pool of one):
//  - its host (its pool's master), with its host_metrics and host_CPUs;
//  - its local (unshared) SRs, their PBDs on the host, their VDIs;
//  - its physical PIFs, with their metrics;
//  - its networks: one with the bridge of a pool network is that network (the joiner's PIFs
//    and VIFs on it point at the pool's), any other is brought as it is;
//  - its VMs but the default templates: the control domain, halted VMs, custom templates and
//    snapshots, with their metrics, consoles, VBDs, VIFs (with their metrics) and crashdumps.
// Not brought: its pool object, default templates, roles, subjects, sessions, tasks, messages,
// and anything not listed (blobs, appliances, protection policies, VLANs, bonds). The copies
// lose what belonged to the joiner's own database (their current and allowed operations).
// The operations are in an order in which each row's references exist when it is created.
// A ref or uuid the pool database already has (the host joined twice, or ids that collide) is
// INTERNAL_ERROR naming it; a joiner without a host is HOST_STILL_BOOTING.
api::api_result<std::vector<storage::op>> join_objects(const storage::state& joiner, const storage::state& pool);

}  // namespace xapid::pool
