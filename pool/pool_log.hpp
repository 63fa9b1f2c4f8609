// A host's part of its pool's log: the Raft order its database's commits go through. Every host
// runs one; a host alone is a pool of one voter (its first boot writes that configuration).
#pragma once

#include <memory>
#include <string>

#include "common/result.hpp"
#include "pool/member_identity.hpp"
#include "storage/raft_sequencer.hpp"

namespace xapid::pool {

// Where this host's Raft traffic is served: `raft_listen` when given, else the address of
// `listen` with its port + 2 (port 0 stays 0: any free port, for a host that never joins a pool).
// Errors name the option.
result<std::string, std::string> raft_address(const std::string& listen, const std::string& raft_listen);
// Where this host's peer service (gRPC) is served: `peer_listen` when given, else `listen`'s
// address with its port + 1 (port 0 stays 0).
result<std::string, std::string> peer_address(const std::string& listen, const std::string& peer_listen);
// The peer service of the master named in pool.join: "ADDR" (its API port taken to be this
// host's own, as with identical options), or "ADDR:PORT" (its API port); the service is on the
// port after it.
result<std::string, std::string> master_peer_address(const std::string& master_address, const std::string& own_listen);

// The Raft order for the database in DIR/db, its log in DIR/raft.
// A member forwards its own writes to the master through `forward`. `alone`: the log is forced
// to a configuration of this member as its only voter (pool.emergency_transition_to_master).
result<std::shared_ptr<storage::raft_sequencer>, std::string> make_pool_log(const std::string& data_dir,
                                                                            const std::string& address,
                                                                            const member_identity& identity,
                                                                            storage::forward_fn forward, bool alone = false);

}  // namespace xapid::pool
