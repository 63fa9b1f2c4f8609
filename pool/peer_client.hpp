// Calls to the other hosts of the pool (proto/grpc/pool_peer.proto), over TLS: this host presents
// its own certificate and accepts a peer only by the fingerprint the pool pins for it. One
// channel per peer, kept.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "common/result.hpp"
#include "storage/raft_sequencer.hpp"
#include "xapid/grpc/pool_peer.pb.h"

namespace xapid::pool {

api::api_error from_proto(const peer::ApiError& e);
void to_proto(const api::api_error& e, peer::ApiError& out);

class peer_client {
 public:
  // Makes a channel to `address` that accepts only a peer whose certificate has `pinned` as its
  // fingerprint (empty: any peer — the first call of a join, authenticated by password).
  using channel_maker = std::function<std::shared_ptr<grpc::Channel>(const std::string& address, const std::string& pinned)>;
  explicit peer_client(channel_maker make) : make_(std::move(make)) {}

  // A member's proposal to the master; `done` gets the answer, from a gRPC thread.
  void propose(const std::string& address, const std::string& pinned, std::string encoded,
               std::function<void(storage::forwarded_answer)> done);
  // Asks the master at `address` to take this host in; the transport's failure as an error text.
  result<peer::JoinReply, std::string> join(const std::string& address, const peer::JoinRequest& request,
                                           std::chrono::seconds timeout);
  // The emergency calls (pool/emergency), to a pinned member; the transport's failure as an
  // error text.
  // JoinedAs at `address` (unpinned, as a join's first call): the reply, or `stranger` true when
  // the pool does not know this host (PERMISSION_DENIED), or why it could not be asked.
  struct joined_as_failure {
    bool stranger = false;
    std::string why;
  };
  result<peer::JoinReply, joined_as_failure> joined_as(const std::string& address, const peer::JoinedAsRequest& request,
                                                       std::chrono::seconds timeout);
  result<peer::RejoinReply, std::string> rejoin(const std::string& address, const std::string& pinned, const peer::RejoinRequest& request,
                                               std::chrono::seconds timeout);
  result<peer::ResetMasterReply, std::string> reset_master(const std::string& address, const std::string& pinned,
                                                          std::chrono::seconds timeout);
  // An API call for the member at `address` to carry out (pool/call_forwarding); blocks until
  // it answers or `context` is cancelled (its TryCancel, from another thread). The transport's
  // failure as an error text.
  result<peer::CallReply, std::string> call(const std::string& address, const std::string& pinned,
                                           const peer::CallRequest& request, grpc::ClientContext& context);
  // A step of a live migration, on the VM's new host (pool_peer.proto's MigrateRequest).
  result<peer::MigrateReply, std::string> migrate(const std::string& address, const std::string& pinned,
                                                 const peer::MigrateRequest& request, std::chrono::seconds timeout);
  // Why a ping failed: `stranger` when the peer (the one pinned) answered that this host is not
  // a member of its pool — its pool database has no host with this host's certificate.
  struct ping_failure {
    bool stranger = false;
    std::string message;
  };
  result<peer::PingReply, ping_failure> ping(const std::string& address, const std::string& pinned, std::chrono::milliseconds timeout);

 private:
  std::shared_ptr<grpc::Channel> channel(const std::string& address, const std::string& pinned);
  channel_maker make_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<grpc::Channel>> channels_;
};

}  // namespace xapid::pool
