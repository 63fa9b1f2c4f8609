// The pool's emergency operations, for a pool that lost its master for good and with it the
// majority of its log's voters (ARCHITECTURE.md, "The pool"). With xapi's names, errors and
// dangers:
// - pool.emergency_transition_to_master on a survivor S: S marks its data dir and restarts; at
//   start the mark forces a configuration of S alone onto its log (raft_recover), so S elects
//   itself, and its keeper makes pool.master name it. What only the lost majority held is gone;
//   a master that was only cut off, not dead, goes on as a second pool until it is fenced.
// - pool.emergency_reset_master(address) on a member T: T asks the master there to take it back
//   (Rejoin: a new Raft id, a standby), then restarts with its database and log wiped, and the
//   master sends it the pool's database whole.
// - pool.recover_slaves on the master: asks every member that is not in its log to do that
//   (ResetMaster), and answers those that did.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "pool/master_duties.hpp"
#include "pool/member_identity.hpp"
#include "pool/membership.hpp"
#include "xapid/grpc/pool_peer.pb.h"

namespace xapid::pool {

struct emergency_side {
  master_side master;  // this host, as the master it may be or become
  std::string data_dir;
  std::string listen;  // this host's --listen
  std::string raft_address, peer_address;
  member_identity identity;
  // Restarts the daemon once the current answer is on its way.
  std::function<void()> restart;
  std::chrono::seconds rejoin_timeout{90};  // the master's membership changes, a promotion under way first
};

// DIR/emergency-master: left by emergency_transition_to_master, acted on (and removed) at start.
bool emergency_master_marked(const std::string& data_dir);
result<void, std::string> clear_emergency_master_mark(const std::string& data_dir);

api::status emergency_transition_to_master(const emergency_side& e);
// Its last step, without its checks: marks the data dir and restarts this host as the pool's only
// voter. HA's own recovery of a pool of two, or of one that lost its majority, once every other
// voter's lease has expired and this host holds the master lease (ha/).
api::status recover_alone(const emergency_side& e, const std::string& why);
api::status emergency_reset_master(const emergency_side& e, const std::string& master_address);
// The member end of ResetMaster: rejoins `master` (the caller, by its pinned certificate).
api::status follow_master(const emergency_side& e, const member_record& master);
api::api_result<std::vector<std::string>> recover_slaves(const emergency_side& e);
// recover_slaves without its HA check: HA's master calls back the hosts that come back after it
// recovered the log alone.
api::api_result<std::vector<std::string>> call_back_members(const emergency_side& e);

// The master end of Rejoin, for the member whose certificate has `caller_fingerprint`.
void take_back(const master_side& m, const std::string& caller_fingerprint, const peer::RejoinRequest& request,
               peer::RejoinReply& reply);

}  // namespace xapid::pool
