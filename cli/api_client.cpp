#include "cli/api_client.hpp"

#include <cstdio>
#include <cstdlib>

#include "cli/values.hpp"
#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"

namespace xapid::cli {

api_client::api_client(endpoint where, credentials who, encoding wire)
    : transport_(std::make_unique<transport>(std::move(where))), who_(std::move(who)), wire_(wire) {}

api_client::~api_client() {
  if (!session_.empty()) (void)call_bare("session.logout", {session_});
}

xe_result<wire::value> api_client::call_bare(std::string_view method, wire::array params) {
  wire::call call{std::string(method), std::move(params)};
  const bool json = wire_ == encoding::json_rpc;
  auto body = json ? transport_->post("/jsonrpc", "application/json",
                                      wire::jsonrpc::write_request({std::move(call), wire::jsonrpc::version::v2_0, std::to_string(next_id_++)}))
                   : transport_->post("/", "text/xml", wire::xmlrpc::write_call(call));
  if (!body) return local_error(transport_->where().describe() + ": " + body.error());
  wire::limits bounds;
  bounds.max_body_bytes = transport::max_answer_bytes;
  bounds.max_string_bytes = transport::max_answer_bytes;
  auto answer = json ? wire::jsonrpc::parse_response(*body, bounds) : wire::xmlrpc::parse_response(*body, bounds);
  if (!answer) return local_error("the server's answer could not be read: " + answer.error().message);
  if (!answer->success) return fail(xe_error{std::move(answer->error_description), {}, false});
  return std::move(answer->result);
}

xe_result<wire::value> api_client::call(std::string_view method, wire::array params) {
  params.insert(params.begin(), wire::value(session_));
  return call_bare(method, std::move(params));
}

xe_result<void> api_client::login(bool local) {
  // A master that is itself a member (the pool changed meanwhile) is followed a few times at most.
  for (int hop = 0; hop < 4; ++hop) {
    auto session = call_bare(local ? "session.slave_local_login_with_password" : "session.login_with_password", local ? wire::array{who_.username, who_.password}
                                         : wire::array{who_.username, who_.password, "1.0", "xe"});
    if (session) {
      auto* ref = session->as_string();
      if (!ref) return local_error("the server's login answer is not a session reference");
      session_ = *ref;
      return ok_v;
    }
    const auto& server = session.error().server;
    bool is_slave = server.size() >= 2 && server[0] == "HOST_IS_SLAVE" && !server[1].empty();
    if (!is_slave || !transport_->where().socket_path.empty()) return fail(std::move(session).error());
    endpoint master = transport_->where();
    // The master's address, with its API port when it differs from the members' (ADDR:PORT).
    master.host = server[1];
    if (auto colon = master.host.rfind(':'); colon != std::string::npos && master.host.find(':') == colon) {
      master.port = static_cast<unsigned>(std::strtoul(master.host.c_str() + colon + 1, nullptr, 10));
      master.host.resize(colon);
    }
    // Both as ADDR:PORT (the port is the member's unless the answer names one), terminal-safe:
    // the master's address is the server's text.
    std::fprintf(stderr, "xe: %s is a pool member; its master is %s\n", terminal_safe(transport_->where().describe()).c_str(),
                 terminal_safe(master.describe()).c_str());
    transport_ = std::make_unique<transport>(std::move(master));
  }
  return local_error("the pool's master could not be found: each host named another");
}

}  // namespace xapid::cli
