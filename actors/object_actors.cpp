#include "actors/object_actors.hpp"

#include <mutex>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/placement.hpp"
#include "common/log_host.hpp"

namespace xapid::actors {
namespace {

using storage::schema;

// An operation on its way through the actors: what to run, and, once run, its outcome.
struct operation {
  std::size_t cls = 0;
  std::string ref;
  std::string name;  // "start"
  std::string task;  // its key in current_operations
  std::function<api::api_result<wire::value>()> work;
  std::optional<api::api_result<wire::value>> outcome;  // set when refused or done
};
using operation_ptr = std::shared_ptr<operation>;

using run_atom = caf::atom_constant<caf::atom("run")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using refresh_atom = caf::atom_constant<caf::atom("refresh")>;
using crash_atom = caf::atom_constant<caf::atom("crash")>;

}  // namespace
}  // namespace xapid::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(xapid::actors::operation_ptr)

namespace xapid::actors {
namespace {

struct shared_context {
  storage::database* db = nullptr;
  std::mutex rules_mu;
  std::map<std::size_t, operation_rules> rules;

  const operation_rules* rules_of(std::size_t cls) {
    std::lock_guard lock(rules_mu);
    auto it = rules.find(cls);
    return it == rules.end() ? nullptr : &it->second;
  }
};

// The object's allowed_operations once its current_operations are changed by `edit`.
wire::value allowed_after(const operation_rules& rules, std::size_t cls, const void* record, const std::string& ref,
                          const std::function<void(wire::structure&)>& edit) {
  const auto& ts = schema::get().table(cls);
  const std::size_t current = *schema::get().field_index(cls, "current_operations");
  void* copy = ts.ops->clone(record);
  wire::value ops = ts.ops->get_field(copy, current);
  edit(*ops.as_struct());
  (void)ts.ops->set_field(copy, current, ops);
  wire::value allowed = rules.allowed(copy, ref);
  ts.ops->destroy(copy);
  return allowed;
}

// Writes the change of current_operations (one key added or removed) with the allowed_operations
// that follow from it, in one transaction. Starting, `checked` is the row the rules admitted the
// operation on: the commit holds only if the row is still that one when it is applied, so no
// other writer (another process, another member) can have admitted a conflicting operation
// meanwhile.
api::status record_operation(shared_context& ctx, const operation_rules& rules, const operation& op, bool starting,
                             const storage::row* checked = nullptr) {
  auto snap = ctx.db->snapshot();
  const storage::row* row = checked ? checked : snap->find(op.cls, op.ref);
  if (!row && !starting) return {};  // the operation destroyed its object: nothing left to retire
  if (!row) return fail(api::errors::HANDLE_INVALID(std::string(schema::get().table(op.cls).desc->name), op.ref));
  const std::size_t current = *schema::get().field_index(op.cls, "current_operations");
  const std::size_t allowed = *schema::get().field_index(op.cls, "allowed_operations");
  auto t = ctx.db->begin();
  if (checked)
    t.expect_unchanged(op.cls, op.ref, checked->modified,
                       api::errors::OTHER_OPERATION_IN_PROGRESS(std::string(schema::get().table(op.cls).desc->name), op.ref));
  wire::value next = allowed_after(rules, op.cls, row->record.get(), op.ref, [&](wire::structure& m) {
    std::erase_if(m, [&](const wire::member& kv) { return kv.first == op.task; });
    if (starting) m.emplace_back(op.task, wire::value(op.name));
  });
  if (starting) t.add_to_map(op.cls, op.ref, current, op.task, wire::value(op.name));
  else t.remove_from_map(op.cls, op.ref, current, op.task);
  t.set(op.cls, op.ref, allowed, std::move(next));
  auto r = ctx.db->commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  return {};
}

api::status refresh_allowed(shared_context& ctx, const operation_rules& rules, std::size_t cls, const std::string& ref) {
  auto snap = ctx.db->snapshot();
  const storage::row* row = snap->find(cls, ref);
  if (!row) return {};
  wire::value next = rules.allowed(row->record.get(), ref);
  const std::size_t allowed = *schema::get().field_index(cls, "allowed_operations");
  if (schema::get().table(cls).ops->get_field(row->record.get(), allowed) == next) return {};
  auto t = ctx.db->begin();
  t.set(cls, ref, allowed, std::move(next));
  auto r = ctx.db->commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  return {};
}

struct object_state {
  std::size_t cls = 0;
  std::string ref;
};

// One object's actor: admits, records and retires its operations, one message at a time.
caf::behavior object_actor(caf::stateful_actor<object_state>* self, std::shared_ptr<shared_context> ctx,
                           std::size_t cls, std::string ref) {
  self->state.cls = cls;
  self->state.ref = ref;
  return {
      [=](run_atom, operation_ptr op) -> operation_ptr {
        const operation_rules* rules = ctx->rules_of(op->cls);
        // Checked and recorded against one row; if the row changed before the record was
        // applied (a concurrent write), the rules are checked again on the new row.
        for (int attempt = 0;; ++attempt) {
          auto snap = ctx->db->snapshot();
          const storage::row* row = snap->find(op->cls, op->ref);
          if (!row) {
            op->outcome = fail(api::errors::HANDLE_INVALID(std::string(schema::get().table(op->cls).desc->name), op->ref));
            return op;
          }
          if (auto refused = rules->check(row->record.get(), op->ref, op->name)) {
            op->outcome = fail(*refused);
            return op;
          }
          auto st = record_operation(*ctx, *rules, *op, true, row);
          if (st) return op;  // admitted: the caller's thread runs the work, then asks for it to be retired
          if (st.error().code != api::error_code::OTHER_OPERATION_IN_PROGRESS || attempt == 16) {
            op->outcome = fail(st.error());
            return op;
          }
        }
      },
      [=](done_atom, operation_ptr op) -> operation_ptr {
        if (auto st = record_operation(*ctx, *ctx->rules_of(op->cls), *op, false); !st)
          spdlog::error("actor.retire.failed class={} ref={} op={} reason=\"{}\"",
                        schema::get().table(op->cls).desc->name, op->ref, op->name, st.error().description().at(0));
        // An object that is gone needs no actor any more.
        if (!ctx->db->snapshot()->find(op->cls, op->ref)) self->quit();
        return op;
      },
      [=](refresh_atom) -> bool {
        if (auto st = refresh_allowed(*ctx, *ctx->rules_of(cls), cls, ref); !st) {
          spdlog::warn("actor.refresh.failed ref={} reason=\"{}\"", ref, st.error().description().at(0));
          return false;
        }
        return true;
      },
      [=](crash_atom) { self->quit(caf::sec::runtime_error); },
  };
}

using object_key = std::pair<std::size_t, std::string>;

struct supervisor_state {
  std::map<object_key, caf::actor> children;
  std::map<caf::actor_addr, object_key> keys;
};

// The host's supervisor: finds or starts the actor of an object, forwards to it, and restarts it
// when it fails. A restarted actor starts from the object's row.
caf::behavior supervisor_actor(caf::stateful_actor<supervisor_state>* self, std::shared_ptr<shared_context> ctx,
                               std::shared_ptr<std::atomic<std::size_t>> restarts) {
  auto child = [self, ctx](std::size_t cls, const std::string& ref) -> caf::actor {
    auto& st = self->state;
    auto it = st.children.find({cls, ref});
    if (it != st.children.end()) return it->second;
    auto a = self->spawn(object_actor, ctx, cls, ref);
    self->monitor(a);
    st.children.emplace(object_key{cls, ref}, a);
    st.keys.emplace(a.address(), object_key{cls, ref});
    return a;
  };
  self->set_down_handler([self, ctx, child, restarts](caf::down_msg& down) {
    auto& st = self->state;
    auto it = st.keys.find(down.source);
    if (it == st.keys.end()) return;
    object_key key = it->second;
    st.keys.erase(it);
    st.children.erase(key);
    if (down.reason && down.reason != caf::exit_reason::user_shutdown) {
      ++*restarts;
      spdlog::warn("actor.restarted class={} ref={} reason=\"{}\"", schema::get().table(key.first).desc->name,
                   key.second, caf::to_string(down.reason));
      auto a = child(key.first, key.second);
      caf::anon_send(a, refresh_atom::value);  // the new actor starts from the row
    }
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (auto& [key, a] : self->state.children) self->send_exit(a, caf::exit_reason::user_shutdown);
    self->quit(msg.reason);
  });
  return {
      [=](run_atom r, operation_ptr op) { return self->delegate(child(op->cls, op->ref), r, std::move(op)); },
      [=](done_atom d, operation_ptr op) { return self->delegate(child(op->cls, op->ref), d, std::move(op)); },
      [=](refresh_atom r, std::size_t cls, const std::string& ref) { return self->delegate(child(cls, ref), r); },
      [=](crash_atom c, std::size_t cls, const std::string& ref) { self->send(child(cls, ref), c); },
  };
}

// The actor system's threads work for the host that made it: their log lines name it.
class log_host_hook final : public caf::thread_hook {
 public:
  explicit log_host_hook(std::shared_ptr<const std::string> host) : host_(std::move(host)) {}
  void init(caf::actor_system&) override {}
  void thread_started() override { scope_ = std::make_unique<scoped_log_host>(host_); }
  void thread_terminates() override { scope_.reset(); }

 private:
  std::shared_ptr<const std::string> host_;
  static thread_local std::unique_ptr<scoped_log_host> scope_;
};
thread_local std::unique_ptr<scoped_log_host> log_host_hook::scope_;

}  // namespace

struct host_actors::impl {
  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;
  std::shared_ptr<shared_context> ctx = std::make_shared<shared_context>();
  caf::actor supervisor;
};

host_actors::host_actors(storage::database& db)
    : impl_(std::make_unique<impl>()), restarts_(std::make_shared<std::atomic<std::size_t>>(0)) {
  impl_->ctx->db = &db;
  // An actor admits and retires operations with a synced commit, which holds its scheduler
  // thread for an fsync: 16 threads let that many admissions share one group commit (2
  // threads capped 64 concurrent VM cycles at 1.5x one client; 16 reach 4.5x).
  impl_->config.set("scheduler.max-threads", 16);
  // A shared queue with a condition variable: a message wakes a sleeping worker at once, where
  // work stealing's relaxed polling would let it sleep for milliseconds between operations.
  impl_->config.set("scheduler.policy", caf::atom("sharing"));
  impl_->config.set("logger.console", caf::atom("none"));
  impl_->config.add_thread_hook<log_host_hook>(current_log_host_ptr());
  impl_->system = std::make_unique<caf::actor_system>(impl_->config);
  impl_->supervisor = impl_->system->spawn(supervisor_actor, impl_->ctx, restarts_);
}

host_actors::~host_actors() {
  caf::anon_send_exit(impl_->supervisor, caf::exit_reason::user_shutdown);
  impl_->supervisor = nullptr;
  impl_->system.reset();  // waits for every actor, workers included
}

void host_actors::add_rules(std::size_t cls, operation_rules rules) {
  std::lock_guard lock(impl_->ctx->rules_mu);
  impl_->ctx->rules[cls] = std::move(rules);
}

api::api_result<wire::value> host_actors::run(std::size_t cls, const std::string& ref, std::string op,
                                              std::string task, std::function<api::api_result<wire::value>()> work) {
  if (!impl_->ctx->rules_of(cls))
    return fail(api::errors::INTERNAL_ERROR("no operation rules for class " +
                                            std::string(schema::get().table(cls).desc->name)));
  auto o = std::make_shared<operation>();
  o->cls = cls;
  o->ref = ref;
  o->name = std::move(op);
  o->task = std::move(task);
  o->work = std::move(work);
  caf::scoped_actor self(*impl_->system);
  // The admission is a request: if the object's actor fails with it unread, the request
  // fails and is asked again of its restarted successor.
  bool admitted = false;
  for (int attempt = 0; attempt < 3 && !o->outcome && !admitted; ++attempt) {
    self->request(impl_->supervisor, caf::infinite, run_atom::value, o)
        .receive([&](operation_ptr& answer) { admitted = !answer->outcome; },
                 [&](caf::error& e) {
                   spdlog::warn("actor.run.retry ref={} op={} reason=\"{}\"", o->ref, o->name, caf::to_string(e));
                 });
  }
  if (o->outcome) return std::move(*o->outcome);
  if (!admitted) return fail(api::errors::INTERNAL_ERROR("the object's actor did not answer"));
  // Admitted and recorded in current_operations: the work runs on this (the call's own) thread,
  // never on the actor, which meanwhile answers other callers.
  o->outcome = o->work();
  // Retired by the object's actor (the restarted one if this one failed meanwhile).
  // A retirement lost with a failing actor is asked again of its successor; if the actors are
  // gone (the daemon stops), the row keeps the operation and the next start clears it.
  bool retired = false;
  for (int attempt = 0; attempt < 10 && !retired; ++attempt) {
    self->request(impl_->supervisor, std::chrono::seconds(30), done_atom::value, o)
        .receive([&](operation_ptr&) { retired = true; }, [&](caf::error& e) {
          spdlog::warn("actor.retire.retry ref={} op={} reason=\"{}\"", o->ref, o->name, caf::to_string(e));
        });
  }
  return std::move(*o->outcome);
}

void host_actors::refresh(std::size_t cls, const std::string& ref) {
  if (!impl_->ctx->rules_of(cls)) return;
  caf::scoped_actor self(*impl_->system);
  self->request(impl_->supervisor, caf::infinite, refresh_atom::value, cls, ref)
      .receive([](bool) {}, [](caf::error&) {});
}

api::status host_actors::reset_operations(std::size_t cls, const std::string& host) {
  const operation_rules* rules = impl_->ctx->rules_of(cls);
  if (!rules) return {};
  auto snap = impl_->ctx->db->snapshot();
  const auto& ts = schema::get().table(cls);
  const std::size_t current = *schema::get().field_index(cls, "current_operations");
  const std::size_t allowed = *schema::get().field_index(cls, "allowed_operations");
  auto t = impl_->ctx->db->begin();
  snap->for_each(cls, [&](const std::string& ref, const storage::row& row) {
    if (operations_host(*snap, cls, ref) != host) return true;
    wire::value next = allowed_after(*rules, cls, row.record.get(), ref, [](wire::structure& m) { m.clear(); });
    if (ts.ops->get_field(row.record.get(), current) != wire::value(wire::structure{}))
      t.set(cls, ref, current, wire::value(wire::structure{}));
    if (ts.ops->get_field(row.record.get(), allowed) != next) t.set(cls, ref, allowed, std::move(next));
    return true;
  });
  if (t.empty()) return {};
  auto r = impl_->ctx->db->commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  return {};
}

void host_actors::crash(std::size_t cls, const std::string& ref) {
  caf::anon_send(impl_->supervisor, crash_atom::value, cls, ref);
}

}  // namespace xapid::actors
