#include "pool/call_forwarding.hpp"

#include <spdlog/spdlog.h>

#include "proto/wire/binary.hpp"
#include "xapid/api/errors.hpp"

namespace xapid::pool {
namespace {

wire::response cannot_contact(const std::string& host) {
  return wire::response{false, {}, api::errors::CANNOT_CONTACT_HOST(host).description()};
}

}  // namespace

wire::response call_forwarder::forward(const member_record& to, const wire::call& c, const std::string& task,
                                       const std::string& client) {
  peer::CallRequest request;
  request.set_method(c.method);
  request.set_params(wire::binary::encode(wire::value(c.params)));
  request.set_task(task);
  request.set_client(client);
  grpc::ClientContext context;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return cannot_contact(to.host_ref);
    under_way_.insert(&context);
  }
  auto reply = peers_.call(to.peer_address, to.fingerprint, request, context);
  {
    std::lock_guard lock(mu_);
    under_way_.erase(&context);
  }
  if (!reply) {
    spdlog::warn("pool.call.not_forwarded method={} host={} reason=\"{}\"", c.method, to.host_ref, reply.error());
    return cannot_contact(to.host_ref);
  }
  if (!reply->success())
    return wire::response{false, {}, {reply->error_description().begin(), reply->error_description().end()}};
  auto value = wire::binary::decode(reply->result());
  if (!value) {
    spdlog::error("pool.call.unreadable_answer method={} host={}", c.method, to.host_ref);
    return wire::response{false, {}, api::errors::INTERNAL_ERROR("host " + to.host_ref + " answered " + c.method +
                                                                 " with what cannot be read").description()};
  }
  return wire::response{true, std::move(*value), {}};
}

void call_forwarder::stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  for (grpc::ClientContext* c : under_way_) c->TryCancel();
}

result<wire::call, std::string> forwarded_call(const peer::CallRequest& request) {
  auto params = wire::binary::decode(request.params());
  if (!params || !params->as_array()) return fail(std::string("the call's parameters cannot be read"));
  return wire::call{request.method(), std::move(*params->as_array())};
}

void set_answer(const wire::response& r, peer::CallReply& reply) {
  reply.set_success(r.success);
  if (r.success) reply.set_result(wire::binary::encode(r.result));
  for (const auto& part : r.error_description) reply.add_error_description(part);
}

api::status check_forwarded_task(const storage::state& s, const std::string& task, const wire::call& c,
                                 const std::string& sender_fingerprint) {
  const api::task* t = s.get<api::task>(task);
  if (!t) return fail(api::errors::HANDLE_INVALID("task", task));
  const std::string* session = c.params.empty() ? nullptr : c.params.front().as_string();
  const auto sender = member_by_fingerprint(s, sender_fingerprint);
  if (t->status != api::task_status_type::pending || !session || t->session.opaque != *session || !sender ||
      t->resident_on.opaque != sender->host_ref)
    return fail(api::errors::OPERATION_NOT_ALLOWED("task " + task + " is not a pending task of the call's own session on the host that sent it"));
  return ok_v;
}

}  // namespace xapid::pool
