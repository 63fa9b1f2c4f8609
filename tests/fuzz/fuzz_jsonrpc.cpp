// Fuzzes the JSON-RPC decoder: any input must decode or fail cleanly, and whatever decodes must
// survive write + parse unchanged, id text included.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/wire/jsonrpc.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/unit/wire_samples.hpp"

using namespace xapid::wire;

namespace {

void check_response(const response& r, jsonrpc::version ver) {
  jsonrpc::request req{{}, ver, "1"};
  std::string first = jsonrpc::write_response(req, r);
  auto again = jsonrpc::parse_response(first);
  XAPID_FUZZ_CHECK(again.ok(), "response does not re-parse", first,
                   again.ok() ? "" : again.error().message);
  XAPID_FUZZ_CHECK(again->success == r.success, "success", first, "");
  XAPID_FUZZ_CHECK(testing::identical(again->result, r.result), "result", first,
                   jsonrpc::write_response(req, *again));
  XAPID_FUZZ_CHECK(again->error_description == r.error_description, "error description", first,
                   jsonrpc::write_response(req, *again));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);

  if (auto req = jsonrpc::parse_request(body)) {
    std::string first = jsonrpc::write_request(*req);
    auto again = jsonrpc::parse_request(first);
    XAPID_FUZZ_CHECK(again.ok(), "request does not re-parse", first,
                     again.ok() ? "" : again.error().message);
    XAPID_FUZZ_CHECK(again->ver == req->ver, "version", first, "");
    XAPID_FUZZ_CHECK(again->id_json == req->id_json, "id", req->id_json, again->id_json);
    XAPID_FUZZ_CHECK(again->c.method == req->c.method, "method", req->c.method, again->c.method);
    XAPID_FUZZ_CHECK(testing::identical(value(again->c.params), value(req->c.params)),
                     "params", first, jsonrpc::write_request(*again));
    std::string second = jsonrpc::write_request(*again);
    XAPID_FUZZ_CHECK(first == second, "writer is not a fixpoint", first, second);
    // Answers to it must be well-formed whatever the id was.
    std::string err = jsonrpc::write_error(*req, jsonrpc::error_invalid_request, "x");
    XAPID_FUZZ_CHECK(jsonrpc::parse_response(err).ok(), "error answer does not parse", err, "");
  }

  if (auto r = jsonrpc::parse_response(body)) {
    check_response(*r, jsonrpc::version::v1_0);
    // 2.0 splits the description into message + data; an empty one has no message to send.
    if (r->success || !r->error_description.empty()) check_response(*r, jsonrpc::version::v2_0);
  }
  return 0;
}
