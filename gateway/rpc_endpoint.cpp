#include "gateway/rpc_endpoint.hpp"

#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"

namespace xapid::gateway {

http_response serve_rpc(const dispatcher& d, const http_request& req, const wire::limits& lim) {
  if (req.method != "POST") return {405, "text/plain", "only POST carries API calls\n"};
  std::string_view path = req.target;
  path = path.substr(0, path.find('?'));
  call_context ctx;
  ctx.from_unix_socket = req.from_unix_socket;

  if (path == "/jsonrpc") {
    auto parsed = wire::jsonrpc::parse_request(req.body, lim);
    if (!parsed) {
      wire::jsonrpc::request unknown;
      return {200, "application/json", wire::jsonrpc::write_error(unknown, parsed.error().code, parsed.error().message)};
    }
    wire::response r = d.dispatch(parsed->c, ctx);
    return {200, "application/json", wire::jsonrpc::write_response(*parsed, r), ctx.answer_delay};
  }

  auto parsed = wire::xmlrpc::parse_call(req.body, lim);
  if (!parsed) return {200, "text/xml", wire::xmlrpc::write_fault(parsed.error().code, parsed.error().message)};
  wire::response r = d.dispatch(*parsed, ctx);
  return {200, "text/xml", wire::xmlrpc::write_response(r), ctx.answer_delay};
}

}  // namespace xapid::gateway
