// Registers a hand-written handler against an RPC's generated signature (api::method::VM_start):
// the wire parameters are converted to the signature's types before the handler runs (a wrong
// one is FIELD_TYPE_ERROR naming the parameter), and its typed result is converted back. So a
// change of the datamodel breaks the build exactly where a handler must change.
#pragma once

#include <tuple>
#include <utility>

#include "gateway/rpc/dispatch.hpp"
#include "xapid/api/methods.hpp"

namespace xapid::gateway {

template <class M, class F>
dispatcher::handler typed_handler(F f) {
  return [f](call_context& ctx, const wire::array& p) -> api::api_result<wire::value> {
    using params = typename M::params;
    params args;
    const api::method_desc* m = api::find_method(M::wire_name);
    std::optional<api::api_error> bad;
    auto convert = [&](std::size_t i, auto& out) {
      if (!bad && i < p.size() && !api::from_value(p[i], out))
        bad = api::errors::FIELD_TYPE_ERROR(std::string(m->params[i].name));
    };
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (convert(I, std::get<I>(args)), ...);
    }(std::make_index_sequence<std::tuple_size_v<params>>{});
    if (bad) return fail(*bad);
    auto r = std::apply([&](auto&... a) { return f(ctx, a...); }, args);
    if (!r) return fail(std::move(r).error());
    if constexpr (std::is_void_v<typename M::result_type>) return wire::value("");
    // A handler may answer the wire value itself: records that write themselves into the answer
    // (storage::record_value), where the typed result would be built as a tree first.
    else if constexpr (std::is_same_v<std::decay_t<decltype(*r)>, wire::value>) return std::move(*r);
    else return api::to_value(*r);
  };
}

// Registers `f` for M; `blocking` handlers (those that wait for an operation) get a thread.
template <class M, class F>
bool add_typed(dispatcher& d, F f, bool blocking = false) {
  auto h = typed_handler<M>(std::move(f));
  return blocking ? d.add_blocking(M::wire_name, std::move(h)) : d.add(M::wire_name, std::move(h));
}

}  // namespace xapid::gateway
