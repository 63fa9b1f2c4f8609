// Which hosts of the pool are alive, as host_metrics.live says: the master pings every member's
// peer service every few seconds and marks a host dead once it has not answered for
// `dead_after` (xapi's host_assumed_dead_interval, 600 s), alive again when it answers. A new
// master gives every member the whole interval again. host.destroy, which refuses a live host,
// then removes one that is gone for good.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "common/periodic_thread.hpp"
#include "pool/peer_client.hpp"
#include "storage/database.hpp"
#include "storage/raft_sequencer.hpp"

namespace xapid::pool {

class liveness_watch {
 public:
  // After a round in which every member answered or was found dead, `sweep` gets the snapshot
  // taken before the pings and the operations the members said they carry out
  // (host_actors::forget_orphaned_operations clears the rest).
  using operations_sweep = std::function<void(const storage::state& seen, const std::set<std::string>& claimed)>;
  liveness_watch(storage::database& db, std::shared_ptr<storage::raft_sequencer> log, peer_client& peers, std::string this_host,
                 std::chrono::seconds dead_after, operations_sweep sweep = {},
                 std::chrono::milliseconds period = std::chrono::seconds(5));
  ~liveness_watch();
  liveness_watch(const liveness_watch&) = delete;
  liveness_watch& operator=(const liveness_watch&) = delete;

  // One round, on the master: pings the members, commits the changes of host_metrics.live.
  void step();

 private:
  storage::database& db_;
  std::shared_ptr<storage::raft_sequencer> log_;
  peer_client& peers_;
  std::string this_host_;
  std::chrono::seconds dead_after_;
  operations_sweep sweep_;
  std::uint64_t term_ = 0;  // the term this host led when it last stepped
  std::map<std::string, std::chrono::steady_clock::time_point> last_answer_;  // host ref -> when
  std::unique_ptr<periodic_thread> thread_;  // last: it steps once the rest is made
};

}  // namespace xapid::pool
