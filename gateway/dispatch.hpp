// Routes a decoded call to the handler registered for its RPC. Every RPC of the catalog has an
// answer: a registered handler, or NOT_IMPLEMENTED(name) until one is written; names outside
// the catalog are MESSAGE_METHOD_UNKNOWN. `coverage()` is the catalog minus the registry.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proto/api/convert.hpp"
#include "proto/wire/codec.hpp"
#include "xapid/api/catalog.hpp"

namespace xapid::gateway {

struct call_context {
  bool from_unix_socket = false;
};

class dispatcher {
 public:
  // Receives the parameters without the session (already counted and split off).
  using handler = std::function<api::api_result<wire::value>(const call_context&, const wire::value* session,
                                                              const wire::array& params)>;

  // Registers the implementation of `wire_name` ("VM.start"); false if the catalog has no such RPC.
  bool add(std::string_view wire_name, handler h);

  wire::response dispatch(const wire::call& c, const call_context& ctx) const;

  struct coverage_row {
    const api::method_desc* method;
    bool implemented;
  };
  std::vector<coverage_row> coverage() const;

 private:
  std::unordered_map<std::string_view, handler> handlers_;  // keys point into the catalog
};

// Every method name a client may call: the catalog, the Async forms, and system.listMethods.
std::vector<std::string> list_methods();

}  // namespace xapid::gateway
