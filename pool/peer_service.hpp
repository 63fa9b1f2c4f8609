// The service a host serves to the other hosts of its pool (proto/grpc/pool_peer.proto): a
// member's own writes ordered by the master (Propose), liveness (Ping), and taking a new host in
// (Join, on the master). Every call but Join must come from a member: its TLS certificate's
// fingerprint is one the pool database pins (pool/membership); Join is authenticated by the
// credentials it carries instead, as xapi's join is before certificates are exchanged.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/result.hpp"
#include "storage/database.hpp"
#include "storage/raft_sequencer.hpp"
#include "xapid/grpc/pool_peer.pb.h"

namespace xapid::pool {

// An armed host's answer to a heartbeat: the hosts it heard lately (uuid, ms ago), and whether
// it has lost the statefile (its lease unwritten for T/2).
struct ha_report {
  std::vector<std::pair<std::string, std::uint32_t>> heard;
  bool statefile_lost = false;
};

struct peer_service_context {
  storage::database* db = nullptr;
  storage::raft_sequencer* log = nullptr;
  std::function<std::string()> host_uuid;  // this host's (Ping answers it)
  std::function<std::vector<std::string>()> operations_in_flight;  // this host's (Ping answers them)
  // Under HA, a Ping from the member of this host uuid is a heartbeat: answers the hosts this
  // one heard lately (uuid, ms ago), or nothing when this host is not armed.
  std::function<std::optional<ha_report>(const std::string& host_uuid)> ha_heartbeat;
  // The fingerprint of the caller's certificate (empty: none).
  std::function<std::string(const grpc::ServerContextBase&)> caller_fingerprint;
  // Takes a host in (on the master); runs on a thread of its own, and may take seconds.
  std::function<void(const peer::JoinRequest&, const std::string& caller, const std::string& caller_fingerprint, peer::JoinReply&)> join;
  // The emergency calls (pool/emergency), from a member (known by `caller_fingerprint`); each
  // runs on a thread of its own. Rejoin: on the master, take the caller back into the log.
  // ResetMaster: follow the caller, the pool's master, again (rejoin it and restart).
  std::function<void(const std::string& caller_fingerprint, const peer::RejoinRequest&, peer::RejoinReply&)> rejoin;
  std::function<api::status(const std::string& caller_fingerprint)> reset_master;
  // JoinedAs, on the master, from a member (known by `caller_fingerprint`); a thread of its own.
  std::function<void(const std::string& caller_fingerprint, const peer::JoinedAsRequest&, peer::JoinReply&)> joined_as;
  // An API call another member sends on for this host to carry out (pool/call_forwarding),
  // with the fingerprint of the sender's certificate: `answer` gets the reply once, from any
  // thread. Until set, Call is refused.
  std::function<void(const peer::CallRequest&, const std::string& caller_fingerprint, std::function<void(peer::CallReply)> answer)> call;
  // A step of a live migration whose VM comes to this host; runs on a thread of its own.
  std::function<void(const peer::MigrateRequest&, peer::MigrateReply&)> migrate;
};

class peer_service {
 public:
  // Listens on `address` (ADDR:PORT, port 0: any free one). Errors say what failed.
  static result<std::unique_ptr<peer_service>, std::string> start(const std::string& address,
                                                                  std::shared_ptr<grpc::ServerCredentials> credentials,
                                                                  peer_service_context context);
  ~peer_service();  // stops serving; calls under way are cancelled (a Call under way answers UNAVAILABLE)
  unsigned short port() const noexcept { return port_; }

  struct impl;

 private:
  peer_service() = default;
  std::unique_ptr<impl> impl_;
  std::unique_ptr<grpc::Server> server_;
  unsigned short port_ = 0;
};

}  // namespace xapid::pool
