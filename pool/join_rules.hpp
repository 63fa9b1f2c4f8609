// What the master checks before a host joins its pool (xapi's pre-join checks, seed era, in
// xapi's order): pure functions of the joining host's database and the pool's. Every failing
// check is reported, not only the first: the first is the API's answer, the rest go to the
// task's or the log's detail.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "storage/state.hpp"

namespace xapid::pool {

// The host a database belongs to: its pool's master (a host that is not a member of another
// pool is the master of its pool of one). Nothing when the database has no pool or master yet.
std::optional<std::string> master_host(const storage::state& s);

// The checks, each with the seed's error:
//  1. the joining host has a management PIF (HOST_STILL_BOOTING: its first boot is not done);
//     without even its host row nothing else can be checked, and this is the only failure
//  2. HA is off on both pools (HA_IS_ENABLED)
//  3. the joining host is not the pool's master (OPERATION_NOT_ALLOWED "Host cannot become
//     slave of itself") nor a member ("Host is already part of a pool")
//  4. the joining host knows no other host (JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS)
//  5. no VM but its control domain is Running, Paused or Suspended
//     (JOINING_HOST_CANNOT_HAVE_RUNNING_OR_SUSPENDED_VMS; xapi refuses Running only, the issue
//     all three: a suspended VM's memory image would be in a pool that never ran it). Snapshots
//     are not VMs of the host: a checkpoint's Suspended state passes
//  6. no VM has operations in progress (JOINING_HOST_CANNOT_HAVE_VMS_WITH_CURRENT_OPERATIONS)
//  7. the same product and platform version as the master
//     (POOL_JOINING_HOST_MUST_HAVE_SAME_PRODUCT_VERSION)
//  8. unless forced: the same software (HOSTS_NOT_HOMOGENEOUS "software version differs") and
//     CPUs of the same vendor and features (HOSTS_NOT_HOMOGENEOUS "CPUs differ") as the master
//  9. no shared SR (JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS)
// 10. its management PIF, if any, is physical (POOL_JOINING_HOST_MUST_HAVE_PHYSICAL_MANAGEMENT_NIC)
// 11. the master's external authentication type and service name
//     (POOL_JOINING_EXTERNAL_AUTH_MISMATCH)
// A pool database without a master host is INTERNAL_ERROR, alone.
std::vector<api::api_error> join_failures(const storage::state& joiner, const storage::state& pool, bool force);

}  // namespace xapid::pool
