// Fuzzes the XML-RPC decoder: any input must decode or fail cleanly, and whatever decodes must
// survive write + parse unchanged (up to XenAPI's ints-as-strings encoding).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/wire/xmlrpc.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/unit/wire_samples.hpp"

using namespace xapid::wire;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);

  if (auto c = xmlrpc::parse_call(body)) {
    std::string first = xmlrpc::write_call(*c);
    auto again = xmlrpc::parse_call(first);
    XAPID_FUZZ_CHECK(again.ok(), "call does not re-parse", first,
                     again.ok() ? "" : again.error().message);
    XAPID_FUZZ_CHECK(again->method == c->method, "method", c->method, again->method);
    XAPID_FUZZ_CHECK(again->params.size() == c->params.size(), "param count", first, "");
    for (std::size_t i = 0; i < c->params.size(); ++i)
      XAPID_FUZZ_CHECK(testing::identical(again->params[i], testing::after_xmlrpc(c->params[i])),
                       "param", first, xmlrpc::write_call(*again));
    std::string second = xmlrpc::write_call(*again);
    XAPID_FUZZ_CHECK(first == second, "writer is not a fixpoint", first, second);
  }

  if (auto r = xmlrpc::parse_response(body)) {
    std::string first = xmlrpc::write_response(*r);
    auto again = xmlrpc::parse_response(first);
    XAPID_FUZZ_CHECK(again.ok(), "response does not re-parse", first,
                     again.ok() ? "" : again.error().message);
    XAPID_FUZZ_CHECK(again->success == r->success, "success", first, "");
    XAPID_FUZZ_CHECK(testing::identical(again->result, testing::after_xmlrpc(r->result)),
                     "result", first, xmlrpc::write_response(*again));
    XAPID_FUZZ_CHECK(again->error_description == r->error_description, "error description",
                     first, xmlrpc::write_response(*again));
  }
  return 0;
}
