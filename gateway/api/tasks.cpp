#include "gateway/api/tasks.hpp"

#include <algorithm>

#include "gateway/auth/roles.hpp"
#include "gateway/rpc/typed_rpcs.hpp"
#include "proto/wire/xmlrpc.hpp"

namespace xapid::gateway {
namespace {

std::size_t task_class() { return storage::schema::get().class_of<api::task>(); }
std::size_t task_field(std::string_view name) { return *storage::schema::get().field_index(task_class(), name); }

namespace m = api::method;

}  // namespace

task_manager::task_manager(storage::database& db, clock& clk, std::string this_host)
    : db_(db), clock_(clk), this_host_(std::move(this_host)) {}

api::status task_manager::clear_stale() {
  auto t = db_.begin();
  // Only this host's: in a pool, the other members' tasks are running.
  db_.snapshot()->for_each(task_class(), [&](const std::string& ref, const storage::row& r) {
    if (static_cast<const api::task*>(r.record.get())->resident_on.opaque == this_host_) t.destroy(task_class(), ref);
    return true;
  });
  if (t.empty()) return ok_v;
  auto r = db_.commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

api::api_result<std::string> task_manager::create(const std::string& session, const std::string& name,
                                                  const std::string& description, bool running) {
  api::task rec;
  rec.name_label = name;
  rec.name_description = description;
  if (!running) rec.allowed_operations = {api::task_allowed_operations::cancel};
  rec.created = api::datetime{clock_.now_ms() / 1000};
  rec.status = api::task_status_type::pending;
  rec.resident_on.opaque = this_host_;
  rec.session.opaque = session;
  auto t = db_.begin();
  std::string ref = t.create(rec);
  auto r = db_.commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  if (running) {
    std::lock_guard lock(mu_);
    running_.insert(ref);
  }
  return ref;
}

std::shared_ptr<std::atomic<bool>> task_manager::watch_cancel(const std::string& task) {
  std::shared_ptr<std::atomic<bool>> flag;
  {
    std::lock_guard lock(mu_);
    auto& slot = cancellable_[task];
    if (slot) return slot;
    flag = slot = std::make_shared<std::atomic<bool>>(false);
  }
  // The task says so, as xapi's cancellable tasks do: clients offer "cancel" from it.
  auto t = db_.begin();
  t.set(task_class(), task, task_field("allowed_operations"),
        wire::value(wire::array{wire::value(api::to_string(api::task_allowed_operations::cancel))}));
  (void)db_.commit(std::move(t));  // a task destroyed meanwhile has nothing to say it on
  return flag;
}

api::status task_manager::cancel(const std::string& task) {
  {
    std::lock_guard lock(mu_);
    if (auto it = cancellable_.find(task); it != cancellable_.end()) {
      // The operation stops at its next step and settles the task as cancelled.
      *it->second = true;
      auto t = db_.begin();
      t.set(task_class(), task, task_field("status"), wire::value("cancelling"));
      if (auto r = db_.commit(std::move(t)); !r) return fail(std::move(r).error());
      return ok_v;
    }
    if (running_.count(task))
      return fail(api::errors::OPERATION_NOT_ALLOWED("the operation of this task cannot be cancelled"));
  }
  const api::task* rec = db_.snapshot()->get<api::task>(task);
  if (!rec) return fail(api::errors::HANDLE_INVALID("task", task));
  if (rec->status != api::task_status_type::pending) return ok_v;  // already settled: nothing to cancel
  auto t = db_.begin();
  const std::size_t cls = task_class();
  t.set(cls, task, task_field("status"), wire::value("cancelled"));
  t.set(cls, task, task_field("finished"),
        wire::value(wire::datetime{api::format_iso8601(api::datetime{clock_.now_ms() / 1000})}));
  t.set(cls, task, task_field("allowed_operations"), wire::value(wire::array{}));
  auto r = db_.commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

std::optional<caller> task_manager::owner_of(const storage::state& s, const std::string& task) const {
  const api::task* rec = s.get<api::task>(task);
  if (!rec) return std::nullopt;
  const api::session* session = s.get<api::session>(rec->session.opaque);
  if (!session) return std::nullopt;
  return caller{caller::no_role, session->is_local_superuser ? "" : session->auth_user_sid, session->is_local_superuser};
}

api::status task_manager::check_owner(const std::string& task, const caller& who) const {
  auto snap = db_.snapshot();
  if (!snap->get<api::task>(task)) return fail(api::errors::HANDLE_INVALID("task", task));
  if (who.role <= role_index("pool-operator")) return ok_v;
  if (auto owner = owner_of(*snap, task); owner && owner->same_user(who)) return ok_v;
  return fail(api::errors::RBAC_PERMISSION_DENIED(
      "task.destroy/any", "No permission in user session. (Roles with this permission: pool-admin, pool-operator)"));
}

void register_task_rpcs(dispatcher& d, task_manager& tasks, storage::database& db) {
  // A user's own tasks are rows it makes at will: a user other than root has at most
  // max_pending_per_user pending at once (TOO_MANY_PENDING_TASKS), with labels of at most 4 KiB.
  using task_ref = api::ref<api::task>;
  constexpr bool blocking = true;  // each commits
  add_typed<m::task_create>(d, [&tasks, &db](call_context& ctx, const std::string& label,
                                             const std::string& description) -> api::api_result<task_ref> {
    constexpr std::size_t max_label_bytes = 4096, max_pending_per_user = 100;
    if (label.size() > max_label_bytes) return fail(api::errors::VALUE_NOT_SUPPORTED("task.name_label", label.substr(0, 64), "at most 4096 bytes"));
    if (description.size() > max_label_bytes)
      return fail(api::errors::VALUE_NOT_SUPPORTED("task.name_description", description.substr(0, 64), "at most 4096 bytes"));
    if (!ctx.who.superuser) {
      auto snap = db.snapshot();
      std::size_t pending = 0;
      snap->for_each(task_class(), [&](const std::string& ref, const storage::row& r) {
        const auto& t = *static_cast<const api::task*>(r.record.get());
        if (t.status == api::task_status_type::pending)
          if (auto owner = tasks.owner_of(*snap, ref); owner && owner->same_user(ctx.who)) ++pending;
        return pending < max_pending_per_user;
      });
      if (pending >= max_pending_per_user) return fail(api::errors::TOO_MANY_PENDING_TASKS());
    }
    auto ref = tasks.create(ctx.session, label, description, false);
    if (!ref) return fail(ref.error());
    return task_ref{*ref};
  }, blocking);
  add_typed<m::task_cancel>(d, [&tasks](call_context& ctx, const task_ref& task) -> api::status {
    if (auto st = tasks.check_owner(task.opaque, ctx.who); !st) return st;
    return tasks.cancel(task.opaque);
  }, blocking);
  add_typed<m::task_destroy>(d, [&tasks, &db](call_context& ctx, const task_ref& self) -> api::status {
    if (auto st = tasks.check_owner(self.opaque, ctx.who); !st) return st;
    auto t = db.begin();
    t.destroy(task_class(), self.opaque);
    if (auto r = db.commit(std::move(t)); !r) return fail(std::move(r).error());
    return ok_v;
  }, blocking);
  // The task's other_config is its owner's too (xapi checks the same permission).
  for (const char* name : {"task.set_other_config", "task.add_to_other_config", "task.remove_from_other_config"})
    d.guard(name, [&tasks](call_context& ctx, const wire::array& p) -> api::status {
      std::string ref;
      if (!api::from_value(p[0], ref)) return fail(api::errors::FIELD_TYPE_ERROR("self"));
      return tasks.check_owner(ref, ctx.who);
    });
}

std::string task_manager::result_text(const wire::value& v) {
  if (const std::string* s = v.as_string()) {
    if (s->empty()) return "";
    std::string out = "<value>";
    wire::value inner(*s);
    std::string element;
    wire::xmlrpc::append_value(element, inner);  // <value><string>escaped</string></value>
    const std::string open = "<value><string>", close = "</string></value>";
    if (element.rfind(open, 0) == 0) out += element.substr(open.size(), element.size() - open.size() - close.size());
    return out + "</value>";
  }
  std::string out;
  wire::xmlrpc::append_value(out, v);
  return out;
}

void task_manager::adopt(const std::string& task) {
  std::lock_guard lock(mu_);
  running_.insert(task);
}

void task_manager::release(const std::string& task) {
  std::lock_guard lock(mu_);
  running_.erase(task);
  cancellable_.erase(task);
}

void task_manager::complete(const std::string& task, const wire::response& outcome) {
  {
    std::lock_guard lock(mu_);
    running_.erase(task);
    cancellable_.erase(task);
  }
  auto t = db_.begin();
  const std::size_t cls = task_class();
  const bool cancelled = !outcome.success && !outcome.error_description.empty() &&
                         outcome.error_description.front() == "TASK_CANCELLED";
  t.set(cls, task, task_field("status"), wire::value(outcome.success ? "success" : cancelled ? "cancelled" : "failure"));
  t.set(cls, task, task_field("progress"), wire::value(1.0));
  t.set(cls, task, task_field("allowed_operations"), wire::value(wire::array{}));
  t.set(cls, task, task_field("finished"),
        wire::value(wire::datetime{api::format_iso8601(api::datetime{clock_.now_ms() / 1000})}));
  if (outcome.success) {
    t.set(cls, task, task_field("result"), wire::value(result_text(outcome.result)));
  } else {
    wire::array info;
    for (const auto& e : outcome.error_description) info.emplace_back(e);
    t.set(cls, task, task_field("error_info"), wire::value(std::move(info)));
  }
  (void)db_.commit(std::move(t));  // the task may have been destroyed meanwhile: nothing to record then
}

void task_manager::set_progress(const std::string& task, double progress) {
  auto t = db_.begin();
  t.set(task_class(), task, task_field("progress"), wire::value(std::clamp(progress, 0.0, 1.0)));
  (void)db_.commit(std::move(t));
}

std::size_t task_manager::collect_finished(std::chrono::seconds age) {
  const std::int64_t cutoff = clock_.now_ms() / 1000 - age.count();
  auto t = db_.begin();
  std::size_t n = 0;
  db_.snapshot()->for_each(task_class(), [&](const std::string& ref, const storage::row& r) {
    const auto& task = *static_cast<const api::task*>(r.record.get());
    if (task.status != api::task_status_type::pending && task.status != api::task_status_type::cancelling &&
        task.finished.seconds < cutoff) {
      t.destroy(task_class(), ref);
      ++n;
    }
    return true;
  });
  if (n && !db_.commit(std::move(t))) return 0;
  return n;
}

}  // namespace xapid::gateway
