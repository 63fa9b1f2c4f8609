#include "gateway/dispatch.hpp"

#include "gateway/roles.hpp"
#include "xapid/api/rbac.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <tuple>

#include <spdlog/spdlog.h>

namespace xapid::gateway {
namespace {

constexpr std::string_view async_prefix = "Async.";

wire::response failure(const api::api_error& e) { return wire::response{false, {}, e.description()}; }

}  // namespace

bool dispatcher::add(std::string_view wire_name, handler h, std::size_t min_params) {
  const api::method_desc* m = api::find_method(wire_name);
  if (!m) return false;
  handlers_[m->wire_name] = entry{std::move(h), std::min(min_params, m->params.size()), false};
  return true;
}

bool dispatcher::add_blocking(std::string_view wire_name, handler h, std::size_t min_params) {
  if (!add(wire_name, std::move(h), min_params)) return false;
  handlers_[api::find_method(wire_name)->wire_name].blocking = true;
  return true;
}

bool dispatcher::guard(std::string_view wire_name, precondition check) {
  const api::method_desc* m = api::find_method(wire_name);
  if (!m) return false;
  auto it = handlers_.find(m->wire_name);
  if (it == handlers_.end()) return false;
  it->second.h = [check = std::move(check), h = std::move(it->second.h)](call_context& ctx, const wire::array& p)
      -> api::api_result<wire::value> {
    if (auto st = check(ctx, p); !st) return fail(std::move(st).error());
    return h(ctx, p);
  };
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

const dispatcher::entry* dispatcher::prepare(const wire::call& c, call_context& ctx, wire::response& out,
                                             bool& async) const {
  if (c.method == "system.listMethods") {
    wire::array names;
    for (auto& n : list_methods()) names.emplace_back(std::move(n));
    out = wire::response{true, wire::value(std::move(names)), {}, true};
    return nullptr;
  }
  std::string_view name = c.method;
  async = name.starts_with(async_prefix);
  if (async) name.remove_prefix(async_prefix.size());
  const api::method_desc* m = api::find_method(name);
  if (!m || (async && !m->has_async)) {
    out = failure(api::errors::MESSAGE_METHOD_UNKNOWN(c.method));
    return nullptr;
  }
  auto it = handlers_.find(m->wire_name);

  // As xapi does, the counts exclude the session parameter.
  std::size_t session_params = m->takes_session ? 1 : 0;
  std::size_t received = c.params.size() >= session_params ? c.params.size() - session_params : 0;
  std::size_t min_params = it != handlers_.end() ? it->second.min_params : m->params.size();
  if (c.params.size() < session_params || received < min_params || received > m->params.size()) {
    out = failure(api::errors::MESSAGE_PARAMETER_COUNT_MISMATCH(c.method, std::to_string(m->params.size()),
                                                                 std::to_string(received)));
    return nullptr;
  }
  if (m->takes_session) {
    const std::string* session = c.params[0].as_string();
    if (!session) {
      out = failure(api::errors::SESSION_INVALID(api::describe(c.params[0])));
      return nullptr;
    }
    if (!check_session_) {
      out = failure(api::errors::SESSION_INVALID(*session));
      return nullptr;
    }
    auto who = check_session_(*session);
    if (!who) {
      out = failure(who.error());
      return nullptr;
    }
    // RBAC: the session's most powerful role must be at least the RPC's least role.
    if (who->role > api::least_role(*m)) {
      out = failure(api::errors::RBAC_PERMISSION_DENIED(permission_name(*m), "No permission in user session"));
      return nullptr;
    }
    ctx.session = *session;
    ctx.who = std::move(who).value();
  }
  if (it == handlers_.end() || (async && !tasks_.create)) {
    out = failure(api::errors::NOT_IMPLEMENTED(c.method));
    return nullptr;
  }
  return &it->second;
}

// Handlers return errors as values; anything one throws all the same (a library's exception, an
// allocation that failed) ends that call with INTERNAL_ERROR, never the process.
wire::response dispatcher::run(const entry& e, const wire::call& c, call_context& ctx) const {
  try {
    std::size_t skip = ctx.session.empty() ? 0 : 1;
    wire::array params(c.params.begin() + static_cast<std::ptrdiff_t>(skip), c.params.end());
    auto r = e.h(ctx, params);
    if (!r) return failure(r.error());
    return wire::response{true, std::move(r).value(), {}};
  } catch (const std::exception& ex) {
    spdlog::error("rpc.handler.failed method={} error=\"{}\"", c.method, ex.what());
    return failure(api::errors::INTERNAL_ERROR(std::string("the call failed: ") + ex.what()));
  }
}

// The threads of calls that wait, one each; finished ones are joined as new ones start.
struct dispatcher::waiters {
  struct waiter {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  static constexpr std::size_t max_waiting = 1024;
  std::mutex mu;
  bool stopped = false;
  std::vector<waiter> list;

  void reap() {  // with mu held
    for (auto it = list.begin(); it != list.end();) {
      if (*it->finished) {
        it->thread.join();
        it = list.erase(it);
      } else {
        ++it;
      }
    }
  }
};

dispatcher::dispatcher() : waiters_(std::make_shared<waiters>()) {}
dispatcher::~dispatcher() { stop_blocking(); }

bool dispatcher::spawn(std::function<void()> work) const {
  std::lock_guard lock(waiters_->mu);
  waiters_->reap();
  if (waiters_->stopped || waiters_->list.size() >= waiters::max_waiting) return false;
  auto finished = std::make_shared<std::atomic<bool>>(false);
  std::thread t([work = std::move(work), finished] {
    work();
    *finished = true;
  });
  waiters_->list.push_back({std::move(t), std::move(finished)});
  return true;
}

void dispatcher::dispatch_async(wire::call c, call_context ctx,
                                std::function<void(wire::response, call_context)> done) const {
  wire::response out;
  bool async = false;
  const entry* e = prepare(c, ctx, out, async);
  if (!e) return done(std::move(out), std::move(ctx));

  if (async) {
    auto task = tasks_.create(ctx.session, c.method);
    if (!task) return done(failure(task.error()), std::move(ctx));
    std::string ref = *task;
    ctx.task = ref;
    auto shared = std::make_shared<std::pair<wire::call, call_context>>(std::move(c), ctx);
    bool started = spawn([this, e, ref, shared] {
      wire::response r = run(*e, shared->first, shared->second);
      tasks_.complete(ref, r);
    });
    if (!started) {
      tasks_.complete(ref, failure(api::errors::INTERNAL_ERROR("too many calls in progress")));
      return done(failure(api::errors::INTERNAL_ERROR("too many calls in progress")), std::move(ctx));
    }
    return done(wire::response{true, wire::value(ref), {}}, std::move(ctx));
  }
  if (!e->blocking) {
    out = run(*e, c, ctx);
    return done(std::move(out), std::move(ctx));
  }
  auto shared = std::make_shared<std::tuple<wire::call, call_context, std::function<void(wire::response, call_context)>>>(
      std::move(c), ctx, std::move(done));
  bool started = spawn([this, e, shared] {
    auto& [call, context, reply] = *shared;
    wire::response r = run(*e, call, context);
    reply(std::move(r), std::move(context));
  });
  if (!started) {
    auto& [call, context, reply] = *shared;
    reply(failure(api::errors::INTERNAL_ERROR("too many waiting calls")), std::move(context));
  }
}

void dispatcher::stop_blocking() {
  std::vector<waiters::waiter> list;
  {
    std::lock_guard lock(waiters_->mu);
    waiters_->stopped = true;
    list.swap(waiters_->list);
  }
  for (auto& w : list) w.thread.join();
}

std::vector<dispatcher::coverage_row> dispatcher::coverage() const {
  std::vector<coverage_row> rows;
  rows.reserve(api::all_methods().size());
  for (const auto& m : api::all_methods()) rows.push_back({&m, handlers_.count(m.wire_name) > 0});
  return rows;
}

}  // namespace xapid::gateway
