// Which host runs an object's operations: the one whose actor admits them, records them in
// current_operations and retires them. A VM's (and its devices') is the host it is resident on,
// else the master; a local SR's (and its VDIs') is the host of its PBD; a host's is itself;
// everything else's is the master. At start a host forgets the operations of exactly these
// objects (its previous run's, which nothing retires any more); in a pool, a call on an object
// is carried out on this host.
#pragma once

#include <cstddef>
#include <string>

#include "storage/state.hpp"

namespace xapid::actors {

std::string operations_host(const storage::state& s, std::size_t cls, const std::string& ref);

}  // namespace xapid::actors
