#include "gateway/rpc/dispatch.hpp"

#include "gateway/auth/roles.hpp"
#include "xapid/api/rbac.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
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
  entry& e = handlers_[m->wire_name];
  std::vector<precondition> guards = std::move(e.guards);  // a handler registered again keeps its rules
  if (auto waiting = waiting_guards_.find(m->wire_name); waiting != waiting_guards_.end()) {
    for (auto& g : waiting->second) guards.push_back(std::move(g));
    waiting_guards_.erase(waiting);
  }
  e = entry{m, std::move(h), std::min(min_params, m->params.size()), false, {}, std::move(guards)};
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
  if (it == handlers_.end()) waiting_guards_[m->wire_name].push_back(std::move(check));
  else it->second.guards.push_back(std::move(check));
  return true;
}

api::status dispatcher::check_guards(const entry& e, call_context& ctx, const wire::array& params) {
  for (const precondition& check : e.guards)
    if (auto st = check(ctx, params); !st) return st;
  return ok_v;
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
    if (auto st = check_guards(e, ctx, params); !st) return failure(st.error());
    auto r = e.h(ctx, params);
    if (!r) return failure(r.error());
    return wire::response{true, std::move(r).value(), {}};
  } catch (const std::exception& ex) {
    spdlog::error("rpc.handler.failed method={} error=\"{}\"", c.method, ex.what());
    return failure(api::errors::INTERNAL_ERROR(std::string("the call failed: ") + ex.what()));
  }
}

wire::response dispatcher::perform(const entry& e, const wire::call& c, call_context& ctx, const std::string& elsewhere) const {
  constexpr std::size_t most_tries = 8, most_busy_waits = 40;
  std::string host = elsewhere;
  std::vector<std::string> refused;
  std::size_t busy_waits = 0;
  for (;;) {
    wire::response r = host.empty() ? run(e, c, ctx) : router_.forward(host, wire::call{std::string(e.method->wire_name), c.params}, ctx);
    // Placed again: the refused attempt's operation may still be on the VM's record in the next
    // host's replica (its retirement a commit behind there): that host is asked again shortly
    // (at most 2 s; a real operation under way still answers so then).
    if (!refused.empty() && !r.success && !r.error_description.empty() &&
        r.error_description[0] == "OTHER_OPERATION_IN_PROGRESS" && busy_waits++ < most_busy_waits) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    // Placed where another start took the room meanwhile: placed again, without that host.
    const bool no_room = !r.success && !r.error_description.empty() && r.error_description[0] == "HOST_NOT_ENOUGH_FREE_MEMORY";
    if (!no_room || !router_.again || ctx.forwarded || refused.size() + 1 >= most_tries) return r;
    refused.push_back(host);
    const std::size_t skip = ctx.session.empty() ? 0 : 1;
    auto next = router_.again(e.method->wire_name, std::span<const wire::value>(c.params).subspan(skip), refused);
    if (!next) return r;
    host = std::move(next).value();
  }
}

wire::response dispatcher::carry_out_on(const std::string& host, const wire::call& c, const call_context& ctx) const {
  if (!router_.forward) return failure(api::errors::HOST_OFFLINE(host));
  call_context part = ctx;
  part.task.clear();  // a step of the caller's call, not its Async task's operation
  return router_.forward(host, c, part);
}

dispatcher::dispatcher() : pool_(std::make_unique<call_pool>()), stats_(std::make_unique<call_stats>()) {}
dispatcher::~dispatcher() { stop_blocking(); }

void dispatcher::set_pool_limits(call_pool_limits limits) { pool_ = std::make_unique<call_pool>(limits); }

bool dispatcher::add_parked(std::string_view wire_name, parked_handler h) {
  if (!add(wire_name, {})) return false;
  handlers_[api::find_method(wire_name)->wire_name].parked = std::move(h);
  return true;
}

// A caller's lane: root (its unix socket — which only root may open — and its sessions) has
// priority lanes; every other user shares one lane over all its sessions, and calls without a
// session (logins) share one per client address.
bool dispatcher::submit(const call_context& ctx, std::function<void()> job) const {
  if (ctx.from_unix_socket) return pool_->submit("local", true, std::move(job));
  // A call another host sent on has lanes of its own: the caller's lane there is full of calls
  // waiting for this host, and two hosts sending each other one user's calls must never wait
  // on each other's full lanes.
  if (ctx.forwarded) return pool_->submit("forwarded/" + ctx.who.identity, ctx.who.superuser, std::move(job));
  if (!ctx.session.empty())
    return ctx.who.superuser ? pool_->submit("root", true, std::move(job))
                             : pool_->submit("user/" + ctx.who.identity, false, std::move(job));
  return pool_->submit("address/" + ctx.client, false, std::move(job));
}

void dispatcher::run_parked(const entry& e, const wire::call& c, call_context& ctx,
                            std::function<void(wire::response, call_context)> reply) const {
  std::size_t skip = ctx.session.empty() ? 0 : 1;
  wire::array params(c.params.begin() + static_cast<std::ptrdiff_t>(skip), c.params.end());
  auto once = std::make_shared<std::atomic<bool>>(false);
  auto context = std::make_shared<call_context>(ctx);
  auto done = [once, context, reply, method = c.method](api::api_result<wire::value> r) {
    if (once->exchange(true)) return;  // answered already
    reply(r ? wire::response{true, std::move(r).value(), {}} : failure(r.error()), *context);
  };
  try {
    if (auto st = check_guards(e, *context, params); !st) return done(fail(std::move(st).error()));
    e.parked(*context, params, done);
  } catch (const std::exception& ex) {
    spdlog::error("rpc.handler.failed method={} error=\"{}\"", c.method, ex.what());
    done(fail(api::errors::INTERNAL_ERROR(std::string("the call failed: ") + ex.what())));
  }
}

void dispatcher::dispatch_async(wire::call c, call_context ctx,
                                std::function<void(wire::response, call_context)> done) const {
  // Every answer is counted, whichever path gives it, with its time since the request came.
  done = [stats = stats_.get(), slot = stats_->slot_of(c.method), done = std::move(done)](wire::response r, call_context ctx) {
    stats->record(stats->counted_in(slot, !ctx.session.empty()), r, monotonic_now() - ctx.started);
    done(std::move(r), std::move(ctx));
  };
  if (!fresh_.needed || !fresh_.needed()) return dispatch_fresh(std::move(c), std::move(ctx), std::move(done));
  // The whole call waits, its session's check included (a session made through another host a
  // moment ago), then goes to the call pool: the fence's thread only hands it on.
  // Its lane is its caller's when its session already checks here (root keeps its priority);
  // else its client address's. The call itself is checked again once fresh.
  call_context lane = ctx;
  std::string_view name = c.method;
  if (name.starts_with(async_prefix)) name.remove_prefix(async_prefix.size());
  const api::method_desc* m = api::find_method(name);
  const std::string* session = c.params.empty() ? nullptr : c.params[0].as_string();
  if (m && m->takes_session && session && check_session_)
    if (auto who = check_session_(*session)) {
      lane.session = *session;
      lane.who = std::move(who).value();
    }
  auto call = std::make_shared<std::tuple<wire::call, call_context, std::function<void(wire::response, call_context)>>>(
      std::move(c), std::move(ctx), std::move(done));
  fresh_.wait([this, call, lane = std::move(lane)] {
    if (!submit(lane, [this, call] {
          auto& [c, ctx, done] = *call;
          dispatch_fresh(std::move(c), std::move(ctx), std::move(done));
        }))
      std::get<2>(*call)(failure(api::errors::TOO_BUSY()), std::move(std::get<1>(*call)));
  });
}

void dispatcher::dispatch_fresh(wire::call c, call_context ctx,
                                std::function<void(wire::response, call_context)> done) const {
  wire::response out;
  bool async = false;
  const entry* e = prepare(c, ctx, out, async);
  if (!e) return done(std::move(out), std::move(ctx));
  // Carried out here, or on the host that runs the call's object (then on the call pool).
  std::string elsewhere;
  std::optional<api::api_error> unroutable;  // no host can carry it out (HOST_OFFLINE)
  if (router_.where && !ctx.forwarded && !e->parked) {
    const std::size_t skip = ctx.session.empty() ? 0 : 1;
    auto host = router_.where(e->method->wire_name, std::span<const wire::value>(c.params).subspan(skip));
    if (!host && !async) return done(failure(host.error()), std::move(ctx));
    if (!host) unroutable = std::move(host).error();
    else elsewhere = std::move(host).value();
  }

  if (async) {
    auto task = tasks_.create(ctx.session, c.method);
    if (!task) return done(failure(task.error()), std::move(ctx));
    std::string ref = *task;
    if (unroutable) {  // an Async call answers its task, which fails
      tasks_.complete(ref, failure(*unroutable));
      return done(wire::response{true, wire::value(ref), {}}, std::move(ctx));
    }
    ctx.task = ref;
    auto shared = std::make_shared<std::pair<wire::call, call_context>>(std::move(c), ctx);
    bool started = submit(ctx, [this, e, ref, shared, elsewhere] {
      if (!e->parked) return tasks_.complete(ref, perform(*e, shared->first, shared->second, elsewhere));
      run_parked(*e, shared->first, shared->second, [this, ref](wire::response r, call_context) { tasks_.complete(ref, r); });
    });
    if (!started) {
      tasks_.complete(ref, failure(api::errors::TOO_BUSY()));
      return done(failure(api::errors::TOO_BUSY()), std::move(ctx));
    }
    return done(wire::response{true, wire::value(ref), {}}, std::move(ctx));
  }
  if (e->parked) return run_parked(*e, c, ctx, std::move(done));
  if (!e->blocking && elsewhere.empty()) {
    out = run(*e, c, ctx);
    return done(std::move(out), std::move(ctx));
  }
  auto shared = std::make_shared<std::tuple<wire::call, call_context, std::function<void(wire::response, call_context)>>>(
      std::move(c), ctx, std::move(done));
  bool started = submit(ctx, [this, e, shared, elsewhere] {
    auto& [call, context, reply] = *shared;
    wire::response r = perform(*e, call, context, elsewhere);
    reply(std::move(r), std::move(context));
  });
  if (!started) {
    auto& [call, context, reply] = *shared;
    reply(failure(api::errors::TOO_BUSY()), std::move(context));
  }
}

void dispatcher::stop_blocking() { pool_->stop(); }

std::vector<dispatcher::coverage_row> dispatcher::coverage() const {
  std::vector<coverage_row> rows;
  rows.reserve(api::all_methods().size());
  for (const auto& m : api::all_methods()) rows.push_back({&m, handlers_.count(m.wire_name) > 0});
  return rows;
}

}  // namespace xapid::gateway
