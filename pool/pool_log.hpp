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

// The Raft order for the database in DIR/db, its log in DIR/raft.
result<std::shared_ptr<storage::raft_sequencer>, std::string> make_pool_log(const std::string& data_dir,
                                                                            const std::string& address,
                                                                            const member_identity& identity);

}  // namespace xapid::pool
