#include "gateway/rpc/read_rules.hpp"

#include "gateway/auth/roles.hpp"
#include "xapid/api/rbac.hpp"

namespace xapid::gateway::read_rules {
namespace {

using storage::schema;

std::size_t class_named(std::string_view name) { return schema::get().class_index(name).value_or(storage::no_class); }

// The least role of each class's get_all_records (the read of the whole class).
std::size_t least_reader(std::size_t cls) {
  static const std::vector<std::size_t> least = [] {
    std::vector<std::size_t> out(schema::get().tables().size(), 0);
    for (std::size_t c = 0; c < out.size(); ++c) {
      std::string name = std::string(schema::get().table(c).desc->name) + ".get_all_records";
      const api::method_desc* m = api::find_method(name);
      if (!m) m = api::find_method(std::string(schema::get().table(c).desc->name) + ".get_record");
      out[c] = m ? api::least_role(*m) : 0;
    }
    return out;
  }();
  return least.at(cls);
}

bool sees_task_session(const caller& who, const storage::state& snap, const api::task& task) {
  const api::session* s = snap.get<api::session>(task.session.opaque);
  if (!s) return false;
  return caller{caller::no_role, s->is_local_superuser ? "" : s->auth_user_sid, s->is_local_superuser}.same_user(who);
}

}  // namespace

bool has_events(std::size_t cls) { return schema::get().table(cls).has_events; }

bool may_read(const caller& who, std::size_t cls) { return who.role <= least_reader(cls); }

bool may_find(const call_context& ctx, std::size_t cls, const std::string& ref) {
  static const std::size_t session = class_named("session");
  return cls != session || ref == ctx.session;
}

std::shared_ptr<const void> view(const caller& who, const storage::state& snap, std::size_t cls,
                                 const std::shared_ptr<const void>& record) {
  static const std::size_t task = schema::get().class_of<api::task>();
  if (cls != task) return record;
  const auto& rec = *static_cast<const api::task*>(record.get());
  if (rec.session.is_null() || sees_task_session(who, snap, rec)) return record;
  auto copy = std::make_shared<api::task>(rec);
  copy->session.opaque = std::string(api::null_ref_text);
  return copy;
}

std::string view_of(const caller& who, std::size_t cls) {
  static const std::size_t task = schema::get().class_of<api::task>();
  if (cls != task) return "";
  return (who.superuser ? "root:" : "user:") + who.identity;  // what sees_task_session compares
}

storage::row_view table_view(const caller& who, std::shared_ptr<const storage::state> snap, std::size_t cls) {
  static const std::size_t task = schema::get().class_of<api::task>();
  if (cls != task) return {};
  return [who, snap, cls](const std::shared_ptr<const void>& record) { return view(who, *snap, cls, record); };
}

}  // namespace xapid::gateway::read_rules
