// Routes a decoded call to the handler registered for its RPC. Every RPC of the catalog has an
// answer: a registered handler, or NOT_IMPLEMENTED(name) until one is written; names outside
// the catalog are MESSAGE_METHOD_UNKNOWN. `coverage()` is the catalog minus the registry.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "gateway/rpc/call_pool.hpp"
#include "gateway/rpc/call_stats.hpp"
#include "gateway/rpc/caller.hpp"
#include "gateway/http/client_watch.hpp"
#include "proto/api/convert.hpp"
#include "proto/wire/codec.hpp"
#include "xapid/api/catalog.hpp"

namespace xapid::gateway {

struct call_context {
  bool from_unix_socket = false;
  std::string client;   // the peer's address ("local" for the unix socket)
  std::chrono::steady_clock::time_point started = monotonic_now();  // when the request came
  std::string session;  // the caller's session, already validated, when the RPC takes one
  caller who;           // the user behind `session`, with the rights it has now
  std::string task;     // the task of an Async call (an operation's key in current_operations)
  // A handler may ask for its answer to be held back (a failed login); the connection waits,
  // no thread does.
  std::chrono::milliseconds answer_delay{0};
  // For a call that waits long without a thread (event.from): its connection, to be told when
  // the client closes it meanwhile (when_client_gone). Empty when the transport cannot tell.
  std::weak_ptr<client_watch> connection;
  // Sent on by another host of the pool for this one to carry out (pool/call_forwarding): it is
  // never sent on again.
  bool forwarded = false;
};

class dispatcher {
 public:
  dispatcher();
  ~dispatcher();
  dispatcher(const dispatcher&) = delete;
  dispatcher& operator=(const dispatcher&) = delete;

  // Receives the parameters without the session (already counted, checked and split off).
  using handler = std::function<api::api_result<wire::value>(call_context&, const wire::array& params)>;
  // Checks a session; answers who it belongs to and the rights it has now.
  using session_check = std::function<api::api_result<caller>(const std::string& session)>;

  // Registers the implementation of `wire_name` ("VM.start"); false if the catalog has no such
  // RPC. `min_params` admits shorter calls (session.login_with_password's 2-argument form).
  bool add(std::string_view wire_name, handler h, std::size_t min_params = static_cast<std::size_t>(-1));
  // Registers a handler that may wait (a commit's fsync, a password hash) or take long
  // (get_all_records): it runs on the call pool, in its caller's lane, never on an I/O thread.
  bool add_blocking(std::string_view wire_name, handler h, std::size_t min_params = static_cast<std::size_t>(-1));
  // Registers a handler that answers later through `done`, from any thread, holding no thread
  // while it waits (event.from parks the call until a commit or its timeout). It starts on the
  // thread that decoded the call, so it must be quick there: what may take long it hands to
  // the call pool itself (submit).
  using answer = std::function<void(api::api_result<wire::value>)>;
  using parked_handler = std::function<void(call_context&, const wire::array& params, answer done)>;
  bool add_parked(std::string_view wire_name, parked_handler h);
  // Puts `check` before the handler registered for `wire_name` (a class's rule on a generic
  // implicit RPC: who may change a task, when a host may be destroyed); the handler runs only
  // when the check passes — the handler registered now, and any registered later in its place
  // (a rule is never lost to a handler of more behaviour), or registered for the first time
  // later (registration's order is no part of the rules). False for a name the API has not.
  using precondition = std::function<api::status(call_context&, const wire::array& params)>;
  bool guard(std::string_view wire_name, precondition check);
  // How sessions are checked; until set, every call that needs a session is SESSION_INVALID.
  void set_session_check(session_check check) { check_session_ = std::move(check); }

  // How Async calls make and finish their tasks; until set, Async calls are NOT_IMPLEMENTED.
  struct task_hooks {
    std::function<api::api_result<std::string>(const std::string& session, const std::string& name)> create;
    std::function<void(const std::string& task, const wire::response& outcome)> complete;
  };
  void set_task_hooks(task_hooks hooks) { tasks_ = std::move(hooks); }

  // On a pool member, calls wait (without a thread) until this host's replica holds every write
  // the pool acknowledged before they came (pool/read_fence): `needed` says whether a call must
  // now, `wait` calls `go` once it may go on, from a thread of its own.
  struct freshness {
    std::function<bool()> needed;
    std::function<void(std::function<void()> go)> wait;
  };
  void set_freshness(freshness f) { fresh_ = std::move(f); }

  // In a pool, a call on an object another host runs is carried out there (rpc/call_routes):
  // `where` names that host ("" for this one), asked once the session and the role passed;
  // `forward` sends the call there (its method without "Async.") and answers what that host
  // answered, blocking a thread of the call pool meanwhile.
  struct router {
    std::function<api::api_result<std::string>(std::string_view method, std::span<const wire::value> params)> where;
    std::function<wire::response(const std::string& host, const wire::call& c, const call_context& ctx)> forward;
    // After the host chosen ("" for this one) and any tried since (`refused`) answered
    // HOST_NOT_ENOUGH_FREE_MEMORY — a start placed from a replica that did not yet see another
    // start take that room —: the next host to try, or an error when none is left (the first
    // refusal then answers).
    std::function<api::api_result<std::string>(std::string_view method, std::span<const wire::value> params,
                                                const std::vector<std::string>& refused)>
        again;
  };
  void set_router(router r) { router_ = std::move(r); }
  // A call a handler needs carried out on another host of the pool (a shared SR's PBD plugged on
  // each host), with the caller's context: that host's answer (HOST_OFFLINE without a router).
  wire::response carry_out_on(const std::string& host, const wire::call& c, const call_context& ctx) const;

  // Decodes nothing, checks everything: answers through `done`, at once, or from the thread of a
  // call that waits. An Async call answers its task at once and runs on a thread of its own.
  void dispatch_async(wire::call c, call_context ctx, std::function<void(wire::response, call_context)> done) const;
  // Waits for the calls running on the pool, drops the queued ones and refuses new ones.
  void stop_blocking();
  // Runs `job` on the call pool in the lane of the caller `ctx` describes; false when that lane
  // is full (the caller then answers TOO_BUSY).
  bool submit(const call_context& ctx, std::function<void()> job) const;
  // Sets the pool's bounds; before any call.
  void set_pool_limits(call_pool_limits limits);

  // What this host answered, by RPC and result, and how long each took (GET /metrics).
  const call_stats& stats() const noexcept { return *stats_; }

  struct coverage_row {
    const api::method_desc* method;
    bool implemented;
  };
  std::vector<coverage_row> coverage() const;

 private:
  struct entry {
    const api::method_desc* method = nullptr;
    handler h;
    std::size_t min_params;
    bool blocking = false;
    parked_handler parked;  // set for a parked call (then h is empty)
    std::vector<precondition> guards;  // in the order given, before h or parked
  };
  // The first guard of `e` that refuses the call, if one does.
  static api::status check_guards(const entry& e, call_context& ctx, const wire::array& params);
  // The checks every call passes before its handler: nullptr and a failure, or the entry.
  const entry* prepare(const wire::call& c, call_context& ctx, wire::response& failure_out, bool& async) const;
  wire::response run(const entry& e, const wire::call& c, call_context& ctx) const;
  // run, or the router's forward to `elsewhere` when that names a host.
  wire::response perform(const entry& e, const wire::call& c, call_context& ctx, const std::string& elsewhere) const;
  // dispatch_async once this replica is fresh enough for the call.
  void dispatch_fresh(wire::call c, call_context ctx, std::function<void(wire::response, call_context)> done) const;
  // Starts a parked call; `reply` gets its answer once.
  void run_parked(const entry& e, const wire::call& c, call_context& ctx,
                  std::function<void(wire::response, call_context)> reply) const;

  std::unordered_map<std::string_view, entry> handlers_;  // keys point into the catalog
  std::unordered_map<std::string_view, std::vector<precondition>> waiting_guards_;  // for methods not registered yet
  session_check check_session_;
  task_hooks tasks_;
  freshness fresh_;
  router router_;
  std::unique_ptr<call_pool> pool_;
  std::unique_ptr<call_stats> stats_;
};

// Every method name a client may call: the catalog, the Async forms, and system.listMethods.
std::vector<std::string> list_methods();

}  // namespace xapid::gateway
