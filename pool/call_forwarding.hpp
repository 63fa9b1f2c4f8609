// API calls that another member of the pool carries out (the Call of pool_peer.proto): an
// operation on an object that host runs — a VM resident there, its local SR, the host itself —
// sent on by the host the client called (gateway/rpc/call_routes says which host). The call
// travels with the caller's own session among its parameters, so the host that carries it out
// checks the session and the role again, and answers exactly what its handler answered (values
// in storage's binary form: every type kept); an Async call's task stays on the host the
// client called, which completes it.
#pragma once

#include <mutex>
#include <set>
#include <string>

#include <grpcpp/grpcpp.h>

#include "common/result.hpp"
#include "pool/membership.hpp"
#include "storage/database.hpp"
#include "pool/peer_client.hpp"
#include "proto/wire/codec.hpp"

namespace xapid::pool {

class call_forwarder {
 public:
  explicit call_forwarder(peer_client& peers) : peers_(peers) {}

  // Sends `c` (its method without "Async.", its session first among its parameters) to member
  // `to` and answers what it answered; blocks until then. A member that cannot be asked answers
  // CANNOT_CONTACT_HOST(host): the call may or may not have been carried out (an operation it
  // began ends with that host, or is swept from current_operations once the host is seen dead).
  wire::response forward(const member_record& to, const wire::call& c, const std::string& task, const std::string& client);
  // The daemon stops: calls under way end (CANNOT_CONTACT_HOST), later ones are refused alike.
  void stop();

 private:
  peer_client& peers_;
  std::mutex mu_;
  std::set<grpc::ClientContext*> under_way_;
  bool stopped_ = false;
};

// The host that carries a call out: the call a CallRequest carries, or why it cannot be read.
result<wire::call, std::string> forwarded_call(const peer::CallRequest& request);
// Its answer, into the Call's reply.
void set_answer(const wire::response& r, peer::CallReply& reply);
// Whether `task` (a CallRequest's, non-empty) may carry the forwarded call `c` sent by the member
// whose certificate has `sender_fingerprint`: a pending task of the pool made on the sender's
// host (an Async call's task stays where the client called) whose session is the call's own (its
// first parameter). The host that carries the call out cancels and keys the operation by it, so
// a member may not name another host's or another session's task.
api::status check_forwarded_task(const storage::state& s, const std::string& task, const wire::call& c,
                                 const std::string& sender_fingerprint);

}  // namespace xapid::pool
