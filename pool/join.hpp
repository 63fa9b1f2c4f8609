// pool.join, both ends. The joining host sends the master its whole database and its addresses;
// the master authenticates the credentials, checks the host (pool/join_rules: every failing
// check is reported), commits the host's own objects and its member record in one transaction
// (pool/join_objects, pool/membership), adds it to the pool's log as a standby, and answers with
// the pool's secret, root password and certificate. The joining host then writes what it was
// given to DIR/join-accepted and restarts; at start, before anything opens, that file becomes
// its identity (a member: it never bootstraps a log of its own) and its old database and log
// go, so a crash at any point ends with the join done or not done, never half.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "pool/member_identity.hpp"
#include "pool/peer_client.hpp"
#include "storage/database.hpp"
#include "storage/raft_sequencer.hpp"
#include "xapid/grpc/pool_peer.pb.h"

namespace xapid::pool {

// The master's end.
struct join_master {
  storage::database* db = nullptr;
  storage::raft_sequencer* log = nullptr;
  member_identity identity;
  std::string certificate_pem;
  std::string raft_address;
  // The credentials of pool.join from `client` (the caller's address): ok when they log in with
  // a role allowed to join hosts. A failure is answered only after a login's failure delay.
  std::function<api::status(const std::string& user, const std::string& password, const std::string& client)> authenticate;
  std::function<std::string()> root_password_hash;
  // A promotion under way (up to the keeper's 30 s) may come first.
  std::chrono::milliseconds membership_timeout{60000};
};
void take_in(const join_master& m, const peer::JoinRequest& request, const std::string& caller, const std::string& caller_fingerprint,
             peer::JoinReply& reply);

// The joining host's end: asks the master, and on success leaves DIR/join-accepted for the
// restart that follows. The first failing check is the answer (all of them are logged).
struct join_request {
  std::string master_address;  // as given to pool.join
  std::string username, password;
  bool force = false;
};
struct joining_host {
  storage::database* db = nullptr;
  std::string data_dir;
  std::string host_uuid;
  std::string listen;  // this host's --listen
  std::string raft_address, peer_address;
  std::string certificate_pem;
  peer_client* client = nullptr;
};
api::status join_pool(const joining_host& self, const join_request& request);
// At start, when a join was asked for and its outcome never kept (DIR/join-pending: the host
// stopped, or the answer was lost): asks the master (JoinedAs) whether it was taken in. True when
// it was: DIR/join-accepted is written, and the host must start again as the pool's member.
result<bool, std::string> resolve_pending_join(const std::string& data_dir, const std::string& host_uuid, peer_client& client);
// On the master: JoinedAs from a host with a member's certificate (`caller_fingerprint`).
void answer_joined_as(const join_master& m, const std::string& caller_fingerprint, const peer::JoinedAsRequest& q,
                      peer::JoinReply& reply);

// Leaves DIR/join-accepted: at the next start `id` becomes this host's identity (a member: its
// database and log come from the master), with root's password hash. Also how a member that
// lost its place in the log comes back (pool.emergency_reset_master). Whether one is waiting.
result<void, std::string> accept_membership(const std::string& data_dir, const member_identity& id, const std::string& root_password_hash);
bool membership_accepted(const std::string& data_dir);

// At start, before the database and the log open: makes an accepted join this host's identity
// (and its old database and log go). True when it did.
result<bool, std::string> finish_accepted_join(const std::string& data_dir);

}  // namespace xapid::pool
