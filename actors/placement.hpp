// Which host runs an object's operations: the one whose actor admits them, records them in
// current_operations and retires them. A VM's (and its devices') is the host it is resident on,
// else the master; a local SR's (and its VDIs') is the host of its PBD; a host's is itself;
// everything else's is the master. At start a host forgets the operations of exactly these
// objects (its previous run's, which nothing retires any more); in a pool, a call on an object
// is carried out on this host.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "storage/state.hpp"

namespace xapid::actors {

std::string operations_host(const storage::state& s, std::size_t cls, const std::string& ref);

// Where a VM may run, as the pool database says (xapi's assert_can_boot_here), for any host of
// the pool, from any host: the VM is not a template; the host is enabled and live; each of the
// VM's disks (and a suspended VM's image) is on an SR with a plugged PBD on that host
// (VM_REQUIRES_SR); each network of its
// VIFs has a PIF on that host, or none anywhere (an internal network: VM_REQUIRES_NETWORK); a
// halted or suspended VM's memory_dynamic_max fits the host's free memory (host_metrics). The
// hypervisor of the host that boots it checks the memory again.
api::status can_boot_on(const storage::state& s, const std::string& vm, const std::string& host);
// The hosts where can_boot_on passes, in the database's order.
std::vector<std::string> possible_hosts(const storage::state& s, const std::string& vm);
// The host VM.start and VM.resume run `vm` on when none is named: its affinity when that one
// can, else the one with the most free memory (the lowest ref among equals); when none can,
// the affinity's reason, else the first host's.
api::api_result<std::string> choose_host(const storage::state& s, const std::string& vm);
// Whether the pool sees `host` live (host_metrics.live; a host without metrics is not).
bool host_live(const storage::state& s, const std::string& host);

}  // namespace xapid::actors
