// The HTTP face of the API: JSON-RPC on POST /jsonrpc, XML-RPC on every other POST path
// (clients use /, /RPC2 and /xmlrpc). Answers carry exactly text/xml or application/json.
#pragma once

#include "gateway/rpc/dispatch.hpp"
#include "gateway/http/http_server.hpp"
#include "proto/wire/codec.hpp"

namespace xapid::gateway {

// Decodes the request, dispatches it, and answers through `respond` (at once, or when a waiting
// call such as event.from finishes).
void serve_rpc(const dispatcher& d, const http_request& req, const http_server::responder& respond,
               const wire::limits& lim = {});

}  // namespace xapid::gateway
