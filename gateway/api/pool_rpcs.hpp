// The pool's own RPCs (pool/): pool.join and pool.join_force, run on the joining host (a join
// the master accepts restarts this daemon, which comes back as a member of the master's pool);
// pool.designate_new_master, pool.eject and pool.sync_database, run on the master; host.destroy, whose host's rows
// all go (pool/master_duties); the emergency operations (pool/emergency): transition to master
// and reset master on a member (each restarts it), recover_slaves on the master.
#pragma once

#include <atomic>
#include <functional>

#include "gateway/rpc/dispatch.hpp"
#include "pool/emergency.hpp"
#include "pool/join.hpp"
#include "pool/master_duties.hpp"

namespace xapid::gateway {

struct pool_context {
  pool::joining_host self;
  pool::master_side master;
  pool::emergency_side emergency;
  // Stops the daemon once the current answer is sent; `restart` starts it again.
  std::function<void(bool restart)> power;
  std::atomic<bool> joining{false};  // one join at a time; the first accepted restarts the host
};

void register_pool_rpcs(dispatcher& d, pool_context& ctx);

}  // namespace xapid::gateway
