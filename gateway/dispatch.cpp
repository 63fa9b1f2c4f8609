#include "gateway/dispatch.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

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

bool dispatcher::add_blocking(std::string_view wire_name, handler h) {
  if (!add(wire_name, std::move(h))) return false;
  handlers_[api::find_method(wire_name)->wire_name].blocking = true;
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

const dispatcher::entry* dispatcher::prepare(const wire::call& c, call_context& ctx, wire::response& out) const {
  if (c.method == "system.listMethods") {
    wire::array names;
    for (auto& n : list_methods()) names.emplace_back(std::move(n));
    out = wire::response{true, wire::value(std::move(names)), {}, true};
    return nullptr;
  }
  std::string_view name = c.method;
  bool async = name.starts_with(async_prefix);
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
    if (auto st = check_session_(*session); !st) {
      out = failure(st.error());
      return nullptr;
    }
    ctx.session = *session;
  }
  if (it == handlers_.end() || async) {
    out = failure(api::errors::NOT_IMPLEMENTED(c.method));
    return nullptr;
  }
  return &it->second;
}

wire::response dispatcher::run(const entry& e, const wire::call& c, call_context& ctx) const {
  std::size_t skip = ctx.session.empty() ? 0 : 1;
  wire::array params(c.params.begin() + static_cast<std::ptrdiff_t>(skip), c.params.end());
  auto r = e.h(ctx, params);
  if (!r) return failure(r.error());
  return wire::response{true, std::move(r).value(), {}};
}

wire::response dispatcher::dispatch(const wire::call& c, call_context& ctx) const {
  wire::response out;
  const entry* e = prepare(c, ctx, out);
  return e ? run(*e, c, ctx) : out;
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

void dispatcher::dispatch_async(wire::call c, call_context ctx,
                                std::function<void(wire::response, call_context)> done) const {
  wire::response out;
  const entry* e = prepare(c, ctx, out);
  if (!e) return done(std::move(out), std::move(ctx));
  if (!e->blocking) {
    out = run(*e, c, ctx);
    return done(std::move(out), std::move(ctx));
  }
  std::lock_guard lock(waiters_->mu);
  waiters_->reap();
  if (waiters_->stopped || waiters_->list.size() >= waiters::max_waiting)
    return done(failure(api::errors::INTERNAL_ERROR("too many waiting calls")), std::move(ctx));
  auto finished = std::make_shared<std::atomic<bool>>(false);
  std::thread t([this, e, finished, c = std::move(c), ctx = std::move(ctx), done = std::move(done)]() mutable {
    wire::response r = run(*e, c, ctx);
    done(std::move(r), std::move(ctx));
    *finished = true;
  });
  waiters_->list.push_back({std::move(t), std::move(finished)});
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
