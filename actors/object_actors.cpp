#include "actors/object_actors.hpp"

#include "proto/api/convert.hpp"

#include <algorithm>
#include <deque>
#include <mutex>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/placement.hpp"
#include "common/log_host.hpp"

namespace xapid::actors {

// An operation as the actors see it: which object, what, under which key of current_operations.
// (The work itself never travels to an actor: it runs on the caller's thread.)
struct operation_key {
  std::uint64_t cls = 0;
  std::string ref;
  std::string name;  // "start"
  std::string task;  // its key in current_operations
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, operation_key& x) {
  return f(caf::meta::type_name("operation_key"), x.cls, x.ref, x.name, x.task);
}

namespace {

using storage::schema;

// An admission's verdict: the refusal's description (code first), empty when admitted.
using verdict = std::vector<std::string>;

using admit_atom = caf::atom_constant<caf::atom("admit")>;
using retire_atom = caf::atom_constant<caf::atom("retire")>;
using refresh_atom = caf::atom_constant<caf::atom("refresh")>;
using crash_atom = caf::atom_constant<caf::atom("crash")>;
using committed_atom = caf::atom_constant<caf::atom("committed")>;

// One object's actor. `committed` is its own: the database's answer to the commit it started.
using object_actor = caf::typed_actor<caf::replies_to<admit_atom, operation_key>::with<verdict>,
                                      caf::replies_to<retire_atom, operation_key>::with<bool>,
                                      caf::replies_to<refresh_atom>::with<bool>,
                                      caf::reacts_to<crash_atom>,
                                      caf::reacts_to<committed_atom, verdict>>;
// The host's supervisor: the same requests, addressed by class and ref.
using supervisor_actor = caf::typed_actor<caf::replies_to<admit_atom, operation_key>::with<verdict>,
                                          caf::replies_to<retire_atom, operation_key>::with<bool>,
                                          caf::replies_to<refresh_atom, std::uint64_t, std::string>::with<bool>,
                                          caf::reacts_to<crash_atom, std::uint64_t, std::string>>;

verdict verdict_of(const api::api_error& e) { return e.description(); }

api::api_error error_of(const verdict& v) {
  return api::error_from_description(v, api::errors::INTERNAL_ERROR("an object's actor refused without a reason"));
}

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

// The change of current_operations (one key added or removed) with the allowed_operations that
// follow from it, as one transaction. Starting, `row` is the row the rules admitted the
// operation on: the commit holds only if the row is still that one when it is applied, so no
// other writer (another process, another member) can have admitted a conflicting operation
// meanwhile.
storage::transaction record_operation(storage::database& db, const operation_rules& rules, const operation_key& op,
                                      bool starting, const storage::row& row) {
  const std::size_t cls = op.cls;
  const std::size_t current = *schema::get().field_index(cls, "current_operations");
  const std::size_t allowed = *schema::get().field_index(cls, "allowed_operations");
  auto t = db.begin();
  if (starting)
    t.expect_unchanged(cls, op.ref, row.modified,
                       api::errors::OTHER_OPERATION_IN_PROGRESS(std::string(schema::get().table(cls).desc->name), op.ref));
  wire::value next = allowed_after(rules, cls, row.record.get(), op.ref, [&](wire::structure& m) {
    std::erase_if(m, [&](const wire::member& kv) { return kv.first == op.task; });
    if (starting) m.emplace_back(op.task, wire::value(op.name));
  });
  if (starting) t.add_to_map(cls, op.ref, current, op.task, wire::value(op.name));
  else t.remove_from_map(cls, op.ref, current, op.task);
  t.set(cls, op.ref, allowed, std::move(next));
  return t;
}

// What an object's actor has been asked, in arrival order: each is settled (with one commit at
// most) before the next begins, so the actor never checks its rules on a row it is changing.
struct step {
  enum class kind { admit, retire, refresh } k = kind::admit;
  operation_key op{};
  int attempts = 0;
  caf::typed_response_promise<verdict> admitted{};
  caf::typed_response_promise<bool> done{};  // retire, refresh
};

struct object_state {
  std::size_t cls = 0;
  std::string ref;
  std::deque<step> steps;
  bool committing = false;  // the front step's commit is on its way; its answer is `committed`

  // An actor that stops (it failed, or the host stops) answers every request it still holds, so
  // no caller waits for ever: CAF drops an undelivered promise without a word.
  ~object_state() {
    for (auto& s : steps) {
      if (s.k == step::kind::admit && s.admitted.pending())
        s.admitted.deliver(verdict_of(api::errors::INTERNAL_ERROR(actor_stopped)));
      else if (s.k != step::kind::admit && s.done.pending())
        s.done.deliver(false);
    }
  }
  static constexpr const char* actor_stopped = "the object's actor stopped before it answered";
};

using object_pointer = object_actor::stateful_pointer<object_state>;

// Settles the steps in order until one needs a commit, which is started without waiting: the
// database answers with a `committed` message, so no actor thread ever waits for an fsync.
void next_steps(object_pointer self, const std::shared_ptr<shared_context>& ctx) {
  auto& st = self->state;
  while (!st.committing && !st.steps.empty()) {
    step& s = st.steps.front();
    const operation_rules* rules = ctx->rules_of(st.cls);
    auto snap = ctx->db->snapshot();
    const storage::row* row = snap->find(st.cls, st.ref);
    std::optional<storage::transaction> t;
    if (s.k == step::kind::admit) {
      if (!row) {
        s.admitted.deliver(verdict_of(api::errors::HANDLE_INVALID(std::string(schema::get().table(st.cls).desc->name), st.ref)));
      } else if (auto refused = rules->check(row->record.get(), st.ref, s.op.name)) {
        s.admitted.deliver(verdict_of(*refused));
      } else {
        t = record_operation(*ctx->db, *rules, s.op, true, *row);
      }
    } else if (s.k == step::kind::retire) {
      if (row) t = record_operation(*ctx->db, *rules, s.op, false, *row);
      else s.done.deliver(true);  // the operation destroyed its object: nothing left to retire
    } else {
      wire::value next = row ? rules->allowed(row->record.get(), st.ref) : wire::value();
      const std::size_t allowed = *schema::get().field_index(st.cls, "allowed_operations");
      if (row && schema::get().table(st.cls).ops->get_field(row->record.get(), allowed) != next) {
        t.emplace(ctx->db->begin());
        t->set(st.cls, st.ref, allowed, std::move(next));
      } else {
        s.done.deliver(true);
      }
    }
    if (!t) {
      st.steps.pop_front();
      continue;
    }
    st.committing = true;
    // The answer goes to this actor if it is still there: the callback holds no strong
    // reference, so an actor (or the whole actor system) may go while its commit is applied.
    ctx->db->commit_async(std::move(*t), [a = caf::actor_cast<caf::actor_addr>(self)](auto r) {
      if (auto alive = caf::actor_cast<object_actor>(a))
        caf::anon_send(alive, committed_atom::value, r ? verdict{} : verdict_of(r.error()));
    });
  }
  // An object that is gone needs no actor any more.
  if (st.steps.empty() && !st.committing && !ctx->db->snapshot()->find(st.cls, st.ref)) self->quit();
}

// One object's actor: admits, records and retires its operations, one step at a time.
object_actor::behavior_type object_behavior(object_pointer self, std::shared_ptr<shared_context> ctx, std::size_t cls,
                                            std::string ref) {
  self->state.cls = cls;
  self->state.ref = ref;
  auto queue = [self, ctx](step s) {
    self->state.steps.push_back(std::move(s));
    next_steps(self, ctx);
  };
  return {
      [=](admit_atom, operation_key op) -> caf::result<verdict> {
        step s{step::kind::admit, std::move(op)};
        s.admitted = self->make_response_promise<verdict>();
        auto promise = s.admitted;
        queue(std::move(s));
        return promise;
      },
      [=](retire_atom, operation_key op) -> caf::result<bool> {
        step s{step::kind::retire, std::move(op)};
        s.done = self->make_response_promise<bool>();
        auto promise = s.done;
        queue(std::move(s));
        return promise;
      },
      [=](refresh_atom) -> caf::result<bool> {
        step s{step::kind::refresh};
        s.done = self->make_response_promise<bool>();
        auto promise = s.done;
        queue(std::move(s));
        return promise;
      },
      [=](committed_atom, verdict v) {
        auto& st = self->state;
        st.committing = false;
        step& s = st.steps.front();
        if (s.k == step::kind::admit) {
          // A concurrent write changed the row after the rules were checked: check them again
          // on the new row.
          const bool conflict = !v.empty() && v.front() == "OTHER_OPERATION_IN_PROGRESS";
          if (conflict && ++s.attempts <= 16) return next_steps(self, ctx);
          s.admitted.deliver(std::move(v));  // admitted: the caller's thread runs the work
        } else {
          if (!v.empty())
            spdlog::error("actor.{}.failed class={} ref={} op={} reason=\"{}\"",
                          s.k == step::kind::retire ? "retire" : "refresh", schema::get().table(st.cls).desc->name,
                          st.ref, s.op.name, v.front());
          s.done.deliver(v.empty());
        }
        st.steps.pop_front();
        next_steps(self, ctx);
      },
      [=](crash_atom) { self->quit(caf::sec::runtime_error); },
  };
}

using object_id = std::pair<std::size_t, std::string>;

struct supervisor_state {
  std::map<object_id, object_actor> children;
  std::map<caf::actor_addr, object_id> ids;
};

// The host's supervisor: finds or starts the actor of an object, forwards to it, and restarts it
// when it fails. A restarted actor starts from the object's row.
supervisor_actor::behavior_type supervisor_behavior(supervisor_actor::stateful_pointer<supervisor_state> self,
                                                    std::shared_ptr<shared_context> ctx,
                                                    std::shared_ptr<std::atomic<std::size_t>> restarts) {
  auto child = [self, ctx](std::size_t cls, const std::string& ref) -> object_actor {
    auto& st = self->state;
    auto it = st.children.find({cls, ref});
    if (it != st.children.end()) return it->second;
    auto a = self->spawn(object_behavior, ctx, cls, ref);
    self->monitor(a);
    st.children.emplace(object_id{cls, ref}, a);
    st.ids.emplace(a.address(), object_id{cls, ref});
    return a;
  };
  self->set_down_handler([self, child, restarts](caf::down_msg& down) {
    auto& st = self->state;
    auto it = st.ids.find(down.source);
    if (it == st.ids.end()) return;
    object_id id = it->second;
    st.ids.erase(it);
    st.children.erase(id);
    if (down.reason && down.reason != caf::exit_reason::user_shutdown) {
      ++*restarts;
      spdlog::warn("actor.restarted class={} ref={} reason=\"{}\"", schema::get().table(id.first).desc->name, id.second,
                   caf::to_string(down.reason));
      caf::anon_send(child(id.first, id.second), refresh_atom::value);  // the new actor starts from the row
    }
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (auto& [id, a] : self->state.children) self->send_exit(a, caf::exit_reason::user_shutdown);
    self->quit(msg.reason);
  });
  return {
      [=](admit_atom a, operation_key op) { return self->delegate(child(op.cls, op.ref), a, std::move(op)); },
      [=](retire_atom r, operation_key op) { return self->delegate(child(op.cls, op.ref), r, std::move(op)); },
      [=](refresh_atom r, std::uint64_t cls, const std::string& ref) { return self->delegate(child(cls, ref), r); },
      [=](crash_atom c, std::uint64_t cls, const std::string& ref) { self->send(child(cls, ref), c); },
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
  supervisor_actor supervisor;
  mutable std::mutex in_flight_mu;
  std::multiset<std::string> in_flight;  // operations_in_flight's keys
};

host_actors::host_actors(storage::database& db)
    : impl_(std::make_unique<impl>()), restarts_(std::make_shared<std::atomic<std::size_t>>(0)) {
  impl_->ctx->db = &db;
  // No actor waits for a commit (see next_steps), so two threads serve every object: what
  // an actor does between commits is a check of rules on a snapshot.
  impl_->config.set("scheduler.max-threads", 2);
  // A shared queue with a condition variable: a message wakes a sleeping worker at once, where
  // work stealing's relaxed polling would let it sleep for milliseconds between operations.
  impl_->config.set("scheduler.policy", caf::atom("sharing"));
  impl_->config.set("logger.console", caf::atom("none"));
  impl_->config.add_thread_hook<log_host_hook>(current_log_host_ptr());
  impl_->system = std::make_unique<caf::actor_system>(impl_->config);
  impl_->supervisor = impl_->system->spawn(supervisor_behavior, impl_->ctx, restarts_);
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
  const operation_key key{cls, ref, std::move(op), std::move(task)};
  // Known to be carried out here from before its admission's commit until after its retirement
  // was tried: the master's sweep clears only what no live host claims.
  {
    std::lock_guard lock(impl_->in_flight_mu);
    impl_->in_flight.insert(key.task);
  }
  struct unclaim {
    impl* i;
    const std::string& key;
    ~unclaim() {
      std::lock_guard lock(i->in_flight_mu);
      i->in_flight.erase(i->in_flight.find(key));
    }
  } claimed{impl_.get(), key.task};
  caf::scoped_actor self(*impl_->system);
  // The admission is a request: if the object's actor fails with it unread, the request
  // fails and is asked again of its restarted successor.
  std::optional<verdict> answer;
  for (int attempt = 0; attempt < 3 && !answer; ++attempt) {
    self->request(impl_->supervisor, caf::infinite, admit_atom::value, key)
        .receive([&](verdict& v) { answer = std::move(v); },
                 [&](caf::error& e) {
                   spdlog::warn("actor.run.retry ref={} op={} reason=\"{}\"", key.ref, key.name, caf::to_string(e));
                 });
  }
  if (!answer) return fail(api::errors::INTERNAL_ERROR("the object's actor did not answer"));
  if (!answer->empty()) {
    // The actor stopped with the admission's commit on its way: if it landed, the operation is
    // in current_operations with nobody to retire it, so it is retired now.
    if (answer->size() > 1 && (*answer)[1] == object_state::actor_stopped)
      self->request(impl_->supervisor, std::chrono::seconds(30), retire_atom::value, key)
          .receive([](bool) {}, [](caf::error&) {});
    return fail(error_of(*answer));
  }
  // Admitted and recorded in current_operations: the work runs on this (the call's own) thread,
  // never on the actor, which meanwhile answers other callers.
  auto outcome = work();
  // Retired by the object's actor (the restarted one if this one failed meanwhile).
  // A retirement lost with a failing actor is asked again of its successor; if the actors are
  // gone (the daemon stops), the row keeps the operation and the next start clears it.
  bool retired = false;
  for (int attempt = 0; attempt < 10 && !retired; ++attempt) {
    self->request(impl_->supervisor, std::chrono::seconds(30), retire_atom::value, key)
        .receive([&](bool) { retired = true; }, [&](caf::error& e) {
          spdlog::warn("actor.retire.retry ref={} op={} reason=\"{}\"", key.ref, key.name, caf::to_string(e));
        });
  }
  return outcome;
}

void host_actors::refresh(std::size_t cls, const std::string& ref) {
  if (!impl_->ctx->rules_of(cls)) return;
  caf::scoped_actor self(*impl_->system);
  self->request(impl_->supervisor, caf::infinite, refresh_atom::value, std::uint64_t{cls}, ref)
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

std::vector<std::string> host_actors::operations_in_flight() const {
  std::lock_guard lock(impl_->in_flight_mu);
  return {impl_->in_flight.begin(), impl_->in_flight.end()};
}

std::size_t host_actors::forget_orphaned_operations(const storage::state& seen, const std::set<std::string>& claimed) {
  std::set<std::string> ours;
  for (auto& key : operations_in_flight()) ours.insert(std::move(key));
  std::vector<std::pair<std::size_t, const operation_rules*>> classes;
  {
    std::lock_guard lock(impl_->ctx->rules_mu);
    for (const auto& [cls, rules] : impl_->ctx->rules) classes.emplace_back(cls, &rules);  // never removed
  }
  std::size_t forgotten = 0;
  for (const auto& [cls, rules] : classes) {
    const auto& ts = schema::get().table(cls);
    const std::size_t current = *schema::get().field_index(cls, "current_operations");
    const std::size_t allowed = *schema::get().field_index(cls, "allowed_operations");
    seen.for_each(cls, [&](const std::string& ref, const storage::row& row) {
      const wire::value ops = ts.ops->get_field(row.record.get(), current);
      std::vector<std::string> orphans;
      for (const auto& [key, name] : *ops.as_struct())
        if (!claimed.contains(key) && !ours.contains(key)) orphans.push_back(key);
      if (orphans.empty()) return true;
      auto t = impl_->ctx->db->begin();
      t.expect_unchanged(cls, ref, row.modified, api::errors::OTHER_OPERATION_IN_PROGRESS(std::string(ts.desc->name), ref));
      for (const auto& key : orphans) t.remove_from_map(cls, ref, current, key);
      t.set(cls, ref, allowed, allowed_after(*rules, cls, row.record.get(), ref, [&](wire::structure& m) {
              std::erase_if(m, [&](const wire::member& kv) { return std::ranges::find(orphans, kv.first) != orphans.end(); });
            }));
      if (auto done = impl_->ctx->db->commit(std::move(t)); done) {
        forgotten += orphans.size();
        spdlog::warn("actor.operations.orphaned class={} ref={} cleared={} (no live host carries them out)", ts.desc->name,
                     ref, orphans.size());
      }
      return true;
    });
  }
  return forgotten;
}

void host_actors::crash(std::size_t cls, const std::string& ref) {
  caf::anon_send(impl_->supervisor, crash_atom::value, std::uint64_t{cls}, ref);
}

}  // namespace xapid::actors
