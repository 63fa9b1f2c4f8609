#include "gateway/auth/roles.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <type_traits>

#include "gateway/rpc/typed_rpcs.hpp"
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

std::vector<api::ref<api::role>> role_refs(const std::set<std::string>& refs) {
  std::vector<api::ref<api::role>> out;
  out.reserve(refs.size());
  for (const auto& r : refs) out.push_back({r});
  return out;
}

std::vector<std::string> names_of(const storage::state& snap, const std::set<std::string>& refs) {
  std::set<std::string> names;
  for (const auto& r : refs)
    if (const api::role* rec = snap.get<api::role>(r)) names.insert(rec->name_label);
  return {names.begin(), names.end()};
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

// The RPCs that take one role: its ref must name a role, read from one snapshot.
template <class Answer>
auto with_role(storage::database& db, Answer answer) {
  using result = std::invoke_result_t<Answer, const storage::state&, const std::string&>;
  return [&db, answer](call_context&, const api::ref<api::role>& role) -> api::api_result<result> {
    auto snap = db.snapshot();
    if (!snap->get<api::role>(role.opaque)) return fail(api::errors::HANDLE_INVALID("role", role.opaque));
    return answer(*snap, role.opaque);
  };
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
  namespace m = api::method;
  using role_ref = api::ref<api::role>;
  using subject_ref = api::ref<api::subject>;
  add_typed<m::role_get_permissions>(d, with_role(db, [](const storage::state& snap, const std::string& role) {
    return role_refs(permissions_of(snap, role));
  }));
  add_typed<m::role_get_permissions_name_label>(d, with_role(db, [](const storage::state& snap, const std::string& role) {
    return names_of(snap, permissions_of(snap, role));
  }));
  add_typed<m::role_get_by_permission>(d, with_role(db, [](const storage::state& snap, const std::string& permission) {
    return role_refs(roles_granting(snap, permission));
  }));
  add_typed<m::role_get_by_permission_name_label>(d, [&db](call_context&, const std::string& label) -> api::api_result<std::vector<role_ref>> {
    auto snap = db.snapshot();
    std::set<std::string> out;
    for (const auto& permission : snap->refs_by_name_label(role_class(), label)) {
      auto granting = roles_granting(*snap, permission);
      out.insert(granting.begin(), granting.end());
    }
    return role_refs(out);
  });

  const std::size_t subject_cls = storage::schema::get().class_of<api::subject>();
  const std::size_t roles_field = *storage::schema::get().field_index(subject_cls, "roles");
  auto edit_roles = [&db, subject_cls, roles_field](bool add) {
    return [&db, subject_cls, roles_field, add](call_context&, const subject_ref& self, const role_ref& role) -> api::status {
      auto snap = db.snapshot();
      if (!snap->get<api::role>(role.opaque)) return fail(api::errors::HANDLE_INVALID("role", role.opaque));
      auto t = db.begin();
      if (add) t.add_to_set(subject_cls, self.opaque, roles_field, wire::value(role.opaque));
      else t.remove_from_set(subject_cls, self.opaque, roles_field, wire::value(role.opaque));
      if (auto r = db.commit(std::move(t)); !r) return fail(std::move(r).error());
      return ok_v;
    };
  };
  // subject.create takes its roles too (the seed's roles field is runtime-only, and a generic
  // constructor would drop them without a word): each must be one of the roles, not a
  // permission (ROLE_NOT_FOUND); an identifier is one subject's (SUBJECT_ALREADY_EXISTS).
  // Untyped: its FIELD_TYPE_ERROR names the record's member (the typed record's would name "args").
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
  add_typed<m::subject_add_to_roles>(d, edit_roles(true));
  add_typed<m::subject_remove_from_roles>(d, edit_roles(false));
  add_typed<m::subject_get_permissions_name_label>(d, [&db](call_context&, const subject_ref& self) -> api::api_result<std::vector<std::string>> {
    auto snap = db.snapshot();
    const api::subject* s = snap->get<api::subject>(self.opaque);
    if (!s) return fail(api::errors::HANDLE_INVALID("subject", self.opaque));
    std::set<std::string> all;
    for (const auto& role : s->roles) {
      auto p = permissions_of(*snap, role.opaque);
      all.insert(p.begin(), p.end());
    }
    return names_of(*snap, all);
  });
}

}  // namespace xapid::gateway
