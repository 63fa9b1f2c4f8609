#include "pool/peer_client.hpp"

#include "xapid/grpc/pool_peer.grpc.pb.h"

namespace xapid::pool {

api::api_error from_proto(const peer::ApiError& e) {
  auto code = api::error_code_from_string(e.code());
  std::vector<std::string> params(e.params().begin(), e.params().end());
  if (!code) return api::errors::INTERNAL_ERROR("the pool master answered an unknown error " + e.code());
  return api::api_error{*code, std::move(params)};
}

void to_proto(const api::api_error& e, peer::ApiError& out) {
  out.set_code(std::string(api::to_string(e.code)));
  for (const auto& p : e.params) out.add_params(p);
}

std::shared_ptr<grpc::Channel> peer_client::channel(const std::string& address, const std::string& pinned) {
  std::lock_guard lock(mu_);
  auto& c = channels_[{address, pinned}];
  if (!c) c = make_(address, pinned);
  return c;
}

void peer_client::propose(const std::string& address, const std::string& pinned, std::string encoded,
                          std::function<void(storage::forwarded_answer)> done) {
  struct call {
    grpc::ClientContext context;
    peer::ProposeRequest request;
    peer::ProposeReply reply;
    std::unique_ptr<peer::PoolPeer::Stub> stub;
  };
  auto c = std::make_shared<call>();
  c->request.set_proposal(std::move(encoded));
  c->stub = peer::PoolPeer::NewStub(channel(address, pinned));
  // The master answers once the entry is applied there: seconds at most, unless it is gone.
  c->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  c->stub->async()->Propose(&c->context, &c->request, &c->reply, [c, done = std::move(done), address](grpc::Status st) {
    storage::forwarded_answer a;
    if (!st.ok()) {
      // Sent or not, applied or not: nothing says which.
      a.unknown = true;
      a.outcome = fail(api::errors::INTERNAL_ERROR("the pool master at " + address + " could not be asked (" + st.error_message() +
                                                   "): the change may or may not have been applied"));
    } else if (c->reply.has_error()) {
      a.unknown = c->reply.outcome_unknown();
      a.log_index = c->reply.log_index();
      a.outcome = fail(from_proto(c->reply.error()));
    } else {
      a.log_index = c->reply.log_index();
      a.outcome = static_cast<storage::generation>(c->reply.generation());
    }
    done(std::move(a));
  });
}

namespace {

// One blocking call of `method` on a stub of `channel`, within `timeout`.
template <class Reply, class Request, class Method>
result<Reply, std::string> unary_call(const std::shared_ptr<grpc::Channel>& channel, Method method, const Request& request,
                                std::chrono::seconds timeout) {
  auto stub = peer::PoolPeer::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  Reply reply;
  grpc::Status st = ((*stub).*method)(&context, request, &reply);
  if (!st.ok()) return fail(st.error_message().empty() ? std::string("status ") + std::to_string(st.error_code()) : st.error_message());
  return reply;
}

}  // namespace

result<peer::JoinReply, std::string> peer_client::join(const std::string& address, const peer::JoinRequest& request,
                                                       std::chrono::seconds timeout) {
  return unary_call<peer::JoinReply>(channel(address, ""), &peer::PoolPeer::Stub::Join, request, timeout);
}

result<peer::JoinReply, peer_client::joined_as_failure> peer_client::joined_as(const std::string& address,
                                                                                const peer::JoinedAsRequest& request,
                                                                                std::chrono::seconds timeout) {
  auto stub = peer::PoolPeer::NewStub(channel(address, ""));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  peer::JoinReply reply;
  grpc::Status st = stub->JoinedAs(&context, request, &reply);
  if (!st.ok()) return fail(joined_as_failure{st.error_code() == grpc::StatusCode::PERMISSION_DENIED, st.error_message()});
  return reply;
}

result<peer::RejoinReply, std::string> peer_client::rejoin(const std::string& address, const std::string& pinned,
                                                           const peer::RejoinRequest& request, std::chrono::seconds timeout) {
  return unary_call<peer::RejoinReply>(channel(address, pinned), &peer::PoolPeer::Stub::Rejoin, request, timeout);
}

result<peer::CallReply, std::string> peer_client::call(const std::string& address, const std::string& pinned,
                                                       const peer::CallRequest& request, grpc::ClientContext& context) {
  auto stub = peer::PoolPeer::NewStub(channel(address, pinned));
  peer::CallReply reply;
  grpc::Status st = stub->Call(&context, request, &reply);
  if (!st.ok()) return fail(st.error_message().empty() ? std::string("status ") + std::to_string(st.error_code()) : st.error_message());
  return reply;
}

result<peer::MigrateReply, std::string> peer_client::migrate(const std::string& address, const std::string& pinned,
                                                             const peer::MigrateRequest& request, std::chrono::seconds timeout) {
  return unary_call<peer::MigrateReply>(channel(address, pinned), &peer::PoolPeer::Stub::Migrate, request, timeout);
}

result<peer::ResetMasterReply, std::string> peer_client::reset_master(const std::string& address, const std::string& pinned,
                                                                      std::chrono::seconds timeout) {
  return unary_call<peer::ResetMasterReply>(channel(address, pinned), &peer::PoolPeer::Stub::ResetMaster, peer::ResetMasterRequest{}, timeout);
}

result<peer::PingReply, peer_client::ping_failure> peer_client::ping(const std::string& address, const std::string& pinned,
                                                                     std::chrono::milliseconds timeout) {
  auto stub = peer::PoolPeer::NewStub(channel(address, pinned));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  peer::PingReply reply;
  grpc::Status st = stub->Ping(&context, peer::PingRequest{}, &reply);
  if (!st.ok()) return fail(ping_failure{st.error_code() == grpc::StatusCode::PERMISSION_DENIED, st.error_message()});
  return reply;
}

}  // namespace xapid::pool
