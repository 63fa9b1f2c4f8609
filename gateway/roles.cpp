#include "gateway/roles.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "xapid/api/rbac.hpp"

namespace xapid::gateway {
namespace {

std::size_t role_class() { return storage::schema::get().class_of<api::role>(); }

// The permissions (leaf roles) a role grants, following subroles.
std::set<std::string> permissions_of(const storage::state& snap, const std::string& role) {
  std::set<std::string> out, seen;
  std::vector<std::string> todo{role};
  while (!todo.empty()) {
    std::string r = todo.back();
    todo.pop_back();
    if (!seen.insert(r).second) continue;
    const api::role* rec = snap.get<api::role>(r);
    if (!rec) continue;
    if (rec->subroles.empty() && r != role) out.insert(r);
    for (const auto& sub : rec->subroles) todo.push_back(sub.opaque);
  }
  return out;
}

wire::value refs_value(const std::set<std::string>& refs) {
  wire::array a;
  for (const auto& r : refs) a.emplace_back(r);
  return wire::value(std::move(a));
}

wire::value names_value(const storage::state& snap, const std::set<std::string>& refs) {
  std::set<std::string> names;
  for (const auto& r : refs)
    if (const api::role* rec = snap.get<api::role>(r)) names.insert(rec->name_label);
  wire::array a;
  for (const auto& n : names) a.emplace_back(n);
  return wire::value(std::move(a));
}

// The roles that grant `permission` (a leaf role's ref).
std::set<std::string> roles_granting(const storage::state& snap, const std::string& permission) {
  std::set<std::string> out;
  snap.for_each(role_class(), [&](const std::string& ref, const storage::row& r) {
    if (!static_cast<const api::role*>(r.record.get())->subroles.empty() && permissions_of(snap, ref).count(permission))
      out.insert(ref);
    return true;
  });
  return out;
}

api::api_result<std::string> ref_param(const wire::value& v, const char* name) {
  std::string s;
  if (!api::from_value(v, s)) return fail(api::errors::FIELD_TYPE_ERROR(name));
  return s;
}

}  // namespace

std::size_t subject_role_level(const storage::state& snap, const api::subject& s) {
  std::size_t best = static_cast<std::size_t>(-1);
  auto roles = api::all_roles();
  for (const auto& r : s.roles)
    if (const api::role* rec = snap.get<api::role>(r.opaque))
      for (std::size_t i = 0; i < roles.size(); ++i)
        if (roles[i].name == rec->name_label) best = std::min(best, i);
  return best;
}

std::size_t role_index(std::string_view name) {
  auto roles = api::all_roles();
  for (std::size_t i = 0; i < roles.size(); ++i)
    if (roles[i].name == name) return i;
  return static_cast<std::size_t>(-1);
}

std::string permission_name(const api::method_desc& m) {
  std::string n(m.wire_name);
  for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return n;
}

api::status ensure_roles(storage::database& db) {
  if (db.snapshot()->count(role_class()) > 0) return ok_v;
  auto t = db.begin();
  std::vector<std::string> permission_refs;
  std::vector<std::size_t> least;
  for (const auto& m : api::all_methods()) {
    api::role p;
    p.name_label = permission_name(m);
    p.name_description = "permission to call " + std::string(m.wire_name);
    permission_refs.push_back(t.create(p));
    least.push_back(api::least_role(m));
  }
  auto roles = api::all_roles();
  for (std::size_t i = 0; i < roles.size(); ++i) {
    api::role r;
    r.name_label = std::string(roles[i].name);
    r.name_description = std::string(roles[i].description);
    // A role grants every RPC whose least role is it or one less powerful.
    for (std::size_t k = 0; k < permission_refs.size(); ++k)
      if (least[k] >= i) r.subroles.push_back(api::ref<api::role>{permission_refs[k]});
    t.create(r);
  }
  auto r = db.commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

void register_role_rpcs(dispatcher& d, storage::database& db) {
  // The RPCs that take one role: its ref must name a role, read from one snapshot.
  auto with_role = [&db](const char* param, auto answer) {
    return [&db, param, answer](call_context&, const wire::array& p) -> api::api_result<wire::value> {
      auto ref = ref_param(p[0], param);
      if (!ref) return fail(ref.error());
      auto snap = db.snapshot();
      if (!snap->get<api::role>(*ref)) return fail(api::errors::HANDLE_INVALID("role", *ref));
      return answer(*snap, *ref);
    };
  };
  d.add("role.get_permissions", with_role("self", [](const storage::state& snap, const std::string& role) {
          return refs_value(permissions_of(snap, role));
        }));
  d.add("role.get_permissions_name_label", with_role("self", [](const storage::state& snap, const std::string& role) {
          return names_value(snap, permissions_of(snap, role));
        }));
  d.add("role.get_by_permission", with_role("permission", [](const storage::state& snap, const std::string& role) {
          return refs_value(roles_granting(snap, role));
        }));
  d.add("role.get_by_permission_name_label", [&db](call_context&, const wire::array& p) -> api::api_result<wire::value> {
    auto label = ref_param(p[0], "label");
    if (!label) return fail(label.error());
    auto snap = db.snapshot();
    std::set<std::string> out;
    for (const auto& permission : snap->refs_by_name_label(role_class(), *label)) {
      auto granting = roles_granting(*snap, permission);
      out.insert(granting.begin(), granting.end());
    }
    return refs_value(out);
  });

  const std::size_t subject_cls = storage::schema::get().class_of<api::subject>();
  const std::size_t roles_field = *storage::schema::get().field_index(subject_cls, "roles");
  auto edit_roles = [&db, subject_cls, roles_field](const wire::array& p, bool add) -> api::api_result<wire::value> {
    auto self = ref_param(p[0], "self");
    auto role = ref_param(p[1], "role");
    if (!self || !role) return fail(api::errors::FIELD_TYPE_ERROR(self ? "role" : "self"));
    auto snap = db.snapshot();
    const api::role* rec = snap->get<api::role>(*role);
    if (!rec) return fail(api::errors::HANDLE_INVALID("role", *role));
    auto t = db.begin();
    if (add) t.add_to_set(subject_cls, *self, roles_field, wire::value(*role));
    else t.remove_from_set(subject_cls, *self, roles_field, wire::value(*role));
    auto r = db.commit(std::move(t));
    if (!r) return fail(std::move(r).error());
    return wire::value("");
  };
  // subject.create takes its roles too (the seed's roles field is runtime-only, and a generic
  // constructor would drop them without a word): each must be one of the roles, not a
  // permission (ROLE_NOT_FOUND); an identifier is one subject's (SUBJECT_ALREADY_EXISTS).
  d.add_blocking("subject.create", [&db, subject_cls](call_context&, const wire::array& p) -> api::api_result<wire::value> {
    const wire::structure* given = p[0].as_struct();
    if (!given) return fail(api::errors::FIELD_TYPE_ERROR("args"));
    api::subject rec;
    for (const auto& [name, v] : *given) {
      api::status st = ok_v;
      if (name == "subject_identifier") st = api::from_value(v, rec.subject_identifier);
      else if (name == "other_config") st = api::from_value(v, rec.other_config);
      else if (name == "roles") st = api::from_value(v, rec.roles);
      if (!st) return fail(api::errors::FIELD_TYPE_ERROR(name));
    }
    auto snap = db.snapshot();
    for (const auto& r : rec.roles)
      if (const api::role* role = snap->get<api::role>(r.opaque); !role || role->subroles.empty())
        return fail(api::errors::ROLE_NOT_FOUND());
    bool taken = false;
    snap->for_each(subject_cls, [&](const std::string&, const storage::row& row) {
      taken = static_cast<const api::subject*>(row.record.get())->subject_identifier == rec.subject_identifier;
      return !taken;
    });
    if (taken) return fail(api::errors::SUBJECT_ALREADY_EXISTS());
    auto t = db.begin();
    std::string ref = t.create(rec);
    if (auto r = db.commit(std::move(t)); !r) return fail(std::move(r).error());
    return wire::value(ref);
  });
  d.add("subject.add_to_roles", [edit_roles](call_context&, const wire::array& p) { return edit_roles(p, true); });
  d.add("subject.remove_from_roles", [edit_roles](call_context&, const wire::array& p) { return edit_roles(p, false); });
  d.add("subject.get_permissions_name_label", [&db](call_context&, const wire::array& p) -> api::api_result<wire::value> {
    auto self = ref_param(p[0], "self");
    if (!self) return fail(self.error());
    auto snap = db.snapshot();
    const api::subject* s = snap->get<api::subject>(*self);
    if (!s) return fail(api::errors::HANDLE_INVALID("subject", *self));
    std::set<std::string> all;
    for (const auto& role : s->roles) {
      auto p = permissions_of(*snap, role.opaque);
      all.insert(p.begin(), p.end());
    }
    return names_value(*snap, all);
  });
}

}  // namespace xapid::gateway
