#include "gateway/rpc/rpc_endpoint.hpp"

#include <utility>

#include "gateway/rpc/pieces_made_ahead.hpp"
#include "proto/wire/jsonrpc.hpp"
#include "proto/wire/xmlrpc.hpp"

namespace xapid::gateway {
namespace {

// A small answer is its first piece, sent with its length; a large one's other pieces are made
// on the call pool, in the caller's lane as its call ran.
http_response answer(const dispatcher& d, call_context ctx, const char* content_type,
                     std::unique_ptr<wire::answer_pieces> pieces) {
  std::string first = pieces->next({});
  if (pieces->finished()) return {200, content_type, std::move(first), ctx.answer_delay};
  const auto delay = ctx.answer_delay;
  auto on_pool = [&d, ctx = std::move(ctx)](std::function<void()> job) { return d.submit(ctx, std::move(job)); };
  return {200, content_type, {}, delay, pieces_made_ahead(std::move(pieces), std::move(first), std::move(on_pool))};
}

}  // namespace

void serve_rpc(const dispatcher& d, const http_request& req, const http_server::responder& respond,
               const wire::limits& lim) {
  if (req.method != "POST") return respond({405, "text/plain", "only POST carries API calls\n"});
  std::string_view path = req.target;
  path = path.substr(0, path.find('?'));
  call_context ctx;
  ctx.from_unix_socket = req.from_unix_socket;
  ctx.client = req.peer;
  ctx.connection = req.connection;

  if (path == "/jsonrpc") {
    auto parsed = wire::jsonrpc::parse_request(req.body, lim);
    if (!parsed) {
      wire::jsonrpc::request unknown;
      return respond({200, "application/json",
                      wire::jsonrpc::write_error(unknown, parsed.error().code, parsed.error().message)});
    }
    wire::call c = std::move(parsed->c);
    return d.dispatch_async(std::move(c), std::move(ctx),
                            [&d, respond, req = std::move(parsed).value()](wire::response r, call_context ctx) {
                              respond(answer(d, std::move(ctx), "application/json",
                                             wire::jsonrpc::write_response_in_pieces(req, std::move(r))));
                            });
  }

  auto parsed = wire::xmlrpc::parse_call(req.body, lim);
  if (!parsed) return respond({200, "text/xml", wire::xmlrpc::write_fault(parsed.error().code, parsed.error().message)});
  d.dispatch_async(std::move(parsed).value(), std::move(ctx), [&d, respond](wire::response r, call_context ctx) {
    respond(answer(d, std::move(ctx), "text/xml", wire::xmlrpc::write_response_in_pieces(std::move(r))));
  });
}

}  // namespace xapid::gateway
