// Which host runs an object's operations: the one whose actor admits them, records them in
// current_operations and retires them. A VM's (and its devices') is the host it is resident on,
// else the master; a local SR's (and its VDIs') is the host of its PBD; a host's is itself;
// everything else's is the master. At start a host forgets the operations of exactly these
// objects (its previous run's, which nothing retires any more); in a pool, a call on an object
// is carried out on this host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "storage/state.hpp"

namespace xapid::actors {

std::string operations_host(const storage::state& s, std::size_t cls, const std::string& ref);
// The host of the pool a VM is resident on ("" for none).
std::string resident_host(const storage::state& s, const std::string& vm);

// Where a VM may run, as the pool database says (xapi's assert_can_boot_here), for any host of
// the pool, from any host: the VM is not a template; the host is enabled and live; each of the
// VM's disks (and a suspended VM's image) is on an SR with a plugged PBD on that host
// (VM_REQUIRES_SR); each network of its
// VIFs has a PIF on that host, or none anywhere and no running VM on it elsewhere (an internal
// network is one host's, as xapi's: VM_REQUIRES_NETWORK); unless `memory_check` is false, the
// VM's memory_dynamic_max fits the host's free memory (host_metrics) when it is not already
// there (halted, suspended, or running elsewhere: a migration). The hypervisor of the host
// that builds its domain checks the memory again.
api::status can_boot_on(const storage::state& s, const std::string& vm, const std::string& host, bool memory_check = true);
// A host's free memory as the pool database says (host_metrics.memory_free; 0 without metrics).
std::int64_t memory_free(const storage::state& s, const std::string& host);
// The hosts where can_boot_on passes, in the database's order.
std::vector<std::string> possible_hosts(const storage::state& s, const std::string& vm);
// The host VM.start and VM.resume run `vm` on when none is named: its affinity when that one
// can, else the one with the most free memory (the lowest ref among equals); when none can,
// the affinity's reason, else the first host's. No host of `except` is chosen (hosts that
// refused it already: another start took their room meanwhile).
api::api_result<std::string> choose_host(const storage::state& s, const std::string& vm, const std::set<std::string>& except = {});

// Where host.evacuate sends each guest resident on `host` (xapi's evacuation plan): per VM, a
// host, or why it cannot leave — NO_HOSTS_AVAILABLE(vm) without another enabled and live host,
// why pool_migrate is refused now (VM_BAD_POWER_STATE: only a running VM migrates), the first
// host's placement error when none can run it, HOST_NOT_ENOUGH_FREE_MEMORY(vm) when none has
// the memory left once the guests before it are placed (most free memory first).
struct evacuation_plan {
  std::map<std::string, std::string> moves;                      // VM -> host
  std::map<std::string, std::vector<std::string>> stay;          // VM -> error description
};
evacuation_plan plan_evacuation(const storage::state& s, const std::string& host);
// The packing both plans use (and HA's failover plans, ha/planning): `vms` placed biggest
// (memory_dynamic_max) first, each on the host of `left` (host -> free memory) with the most
// memory left among those can_boot_on accepts, memory aside; the first host's reason when none
// can run it, HOST_NOT_ENOUGH_FREE_MEMORY(vm) when none has the memory left.
evacuation_plan pack(const storage::state& s, const std::vector<std::string>& vms, std::map<std::string, std::int64_t> left);
// Whether the pool sees `host` live (host_metrics.live; a host without metrics is not).
bool host_live(const storage::state& s, const std::string& host);

}  // namespace xapid::actors
