#include "gateway/dispatch.hpp"

#include <algorithm>

namespace xapid::gateway {
namespace {

constexpr std::string_view async_prefix = "Async.";

wire::response failure(const api::api_error& e) { return wire::response{false, {}, e.description()}; }

}  // namespace

bool dispatcher::add(std::string_view wire_name, handler h, std::size_t min_params) {
  const api::method_desc* m = api::find_method(wire_name);
  if (!m) return false;
  handlers_[m->wire_name] = entry{std::move(h), std::min(min_params, m->params.size())};
  return true;
}

std::vector<std::string> list_methods() {
  std::vector<std::string> names;
  names.reserve(api::all_methods().size() * 2 + 1);
  names.emplace_back("system.listMethods");
  for (const auto& m : api::all_methods()) {
    names.emplace_back(m.wire_name);
    if (m.has_async) names.push_back(std::string(async_prefix) + std::string(m.wire_name));
  }
  return names;
}

wire::response dispatcher::dispatch(const wire::call& c, call_context& ctx) const {
  if (c.method == "system.listMethods") {
    wire::array names;
    for (auto& n : list_methods()) names.emplace_back(std::move(n));
    return wire::response{true, wire::value(std::move(names)), {}, true};
  }
  std::string_view name = c.method;
  bool async = name.starts_with(async_prefix);
  if (async) name.remove_prefix(async_prefix.size());
  const api::method_desc* m = api::find_method(name);
  if (!m || (async && !m->has_async)) return failure(api::errors::MESSAGE_METHOD_UNKNOWN(c.method));
  auto it = handlers_.find(m->wire_name);

  // As xapi does, the counts exclude the session parameter.
  std::size_t session_params = m->takes_session ? 1 : 0;
  std::size_t received = c.params.size() >= session_params ? c.params.size() - session_params : 0;
  std::size_t min_params = it != handlers_.end() ? it->second.min_params : m->params.size();
  if (c.params.size() < session_params || received < min_params || received > m->params.size())
    return failure(api::errors::MESSAGE_PARAMETER_COUNT_MISMATCH(c.method, std::to_string(m->params.size()),
                                                                  std::to_string(received)));
  if (m->takes_session) {
    const std::string* session = c.params[0].as_string();
    if (!session) return failure(api::errors::SESSION_INVALID(api::describe(c.params[0])));
    if (!check_session_) return failure(api::errors::SESSION_INVALID(*session));
    if (auto st = check_session_(*session); !st) return failure(st.error());
    ctx.session = *session;
  }
  if (it == handlers_.end() || async) return failure(api::errors::NOT_IMPLEMENTED(c.method));
  wire::array params(c.params.begin() + static_cast<std::ptrdiff_t>(session_params), c.params.end());
  auto r = it->second.h(ctx, params);
  if (!r) return failure(r.error());
  return wire::response{true, std::move(r).value(), {}};
}

std::vector<dispatcher::coverage_row> dispatcher::coverage() const {
  std::vector<coverage_row> rows;
  rows.reserve(api::all_methods().size());
  for (const auto& m : api::all_methods()) rows.push_back({&m, handlers_.count(m.wire_name) > 0});
  return rows;
}

}  // namespace xapid::gateway
