#include "gateway/implicit_rpcs.hpp"

namespace xapid::gateway {
namespace {

using storage::schema;

api::api_result<std::string> string_param(const wire::value& v) {
  std::string s;
  if (auto st = api::from_value(v, s); !st) return fail(st.error());
  return s;
}

// The storage error of a write, as the API answers it for a parameter named `param`.
api::api_error as_param_error(api::api_error e, std::string_view param) {
  if (e.code == api::error_code::XMLRPC_UNMARSHAL_FAILURE) return api::errors::FIELD_TYPE_ERROR(std::string(param));
  return e;
}

class implicit_rpcs {
 public:
  explicit implicit_rpcs(storage::database& db) : db_(db) {}

  dispatcher::handler make(const api::method_desc& m) {
    const std::size_t cls = *schema::get().class_index(m.class_name);
    const storage::table_schema& ts = schema::get().table(cls);
    const std::size_t field = m.field.empty() ? 0 : *schema::get().field_index(cls, m.field);
    const std::string class_name(m.class_name);
    const std::string field_name(m.field);
    storage::database& db = db_;

    // Reads the live row named by the first parameter from a snapshot, and answers `read` of it.
    auto read_row = [&db, &ts, cls, class_name](const wire::value& ref_param, auto read) -> api::api_result<wire::value> {
      auto ref = string_param(ref_param);
      if (!ref) return fail(ref.error());
      auto snap = db.snapshot();
      const storage::row* r = snap->find(cls, *ref);
      if (!r) return fail(api::errors::HANDLE_INVALID(class_name, *ref));
      return read(ts, r->record.get());
    };
    auto commit = [&db](storage::transaction t, std::string_view param) -> api::api_result<wire::value> {
      auto r = db.commit(std::move(t));
      if (!r) return fail(as_param_error(std::move(r).error(), param));
      return wire::value("");
    };

    switch (m.kind) {
      case api::method_kind::getter:
        return [=](call_context&, const wire::array& p) {
          return read_row(p[0], [field](const storage::table_schema& t, const void* rec) {
            return t.ops->get_field(rec, field);
          });
        };
      case api::method_kind::setter:
        return [=, &db](call_context&, const wire::array& p) -> api::api_result<wire::value> {
          auto ref = string_param(p[0]);
          if (!ref) return fail(ref.error());
          auto t = db.begin();
          t.set(cls, *ref, field, p[1]);
          return commit(std::move(t), field_name);
        };
      case api::method_kind::add_to:
      case api::method_kind::remove_from: {
        const bool is_map = ts.desc->fields[field].type->kind == api::type_kind::map;
        const bool add = m.kind == api::method_kind::add_to;
        return [=, &db](call_context&, const wire::array& p) -> api::api_result<wire::value> {
          auto ref = string_param(p[0]);
          if (!ref) return fail(ref.error());
          auto t = db.begin();
          if (is_map) {
            auto key = string_param(p[1]);
            if (!key) return fail(api::errors::FIELD_TYPE_ERROR("key"));
            if (add) t.add_to_map(cls, *ref, field, *key, p[2]);
            else t.remove_from_map(cls, *ref, field, *key);
          } else if (add) {
            t.add_to_set(cls, *ref, field, p[1]);
          } else {
            t.remove_from_set(cls, *ref, field, p[1]);
          }
          return commit(std::move(t), field_name);
        };
      }
      case api::method_kind::get_record:
        return [=](call_context&, const wire::array& p) {
          return read_row(p[0], [](const storage::table_schema& t, const void* rec) { return t.ops->to_value(rec); });
        };
      case api::method_kind::get_all:
        return [=, &db](call_context&, const wire::array&) -> api::api_result<wire::value> {
          wire::array refs;
          db.snapshot()->for_each(cls, [&](const std::string& ref, const storage::row&) {
            refs.emplace_back(ref);
            return true;
          });
          return wire::value(std::move(refs));
        };
      case api::method_kind::get_all_records:
        return [=, &db, &ts](call_context&, const wire::array&) -> api::api_result<wire::value> {
          wire::structure all;
          auto snap = db.snapshot();
          all.reserve(snap->count(cls));
          snap->for_each(cls, [&](const std::string& ref, const storage::row& r) {
            all.emplace_back(ref, ts.ops->to_value(r.record.get()));
            return true;
          });
          return wire::value(std::move(all));
        };
      case api::method_kind::get_by_uuid:
        return [=, &db](call_context&, const wire::array& p) -> api::api_result<wire::value> {
          auto uuid = string_param(p[0]);
          if (!uuid) return fail(uuid.error());
          auto ref = db.snapshot()->ref_by_uuid(cls, *uuid);
          if (!ref) return fail(api::errors::UUID_INVALID(class_name, *uuid));
          return wire::value(*ref);
        };
      case api::method_kind::get_by_name_label:
        return [=, &db](call_context&, const wire::array& p) -> api::api_result<wire::value> {
          auto label = string_param(p[0]);
          if (!label) return fail(label.error());
          wire::array refs;
          for (auto& r : db.snapshot()->refs_by_name_label(cls, *label)) refs.emplace_back(std::move(r));
          return wire::value(std::move(refs));
        };
      case api::method_kind::constructor:
        return [=, &db, &ts](call_context&, const wire::array& p) -> api::api_result<wire::value> {
          const wire::structure* given = p[0].as_struct();
          if (!given) return fail(api::errors::FIELD_TYPE_ERROR("args"));
          // A constructor takes the RW and RO-constructor fields; runtime fields start empty.
          wire::structure record;
          for (const auto& [name, v] : *given) {
            const api::field_desc* f = ts.desc->find_field(name);
            if (f && f->qual != api::qualifier::ro_runtime && f->name != "uuid") record.emplace_back(name, v);
          }
          // Check each field's type first, so that a wrong one is named.
          void* scratch = ts.ops->create();
          for (const auto& [name, v] : record) {
            auto st = ts.ops->set_field(scratch, *schema::get().field_index(cls, name), v);
            if (!st) {
              ts.ops->destroy(scratch);
              return fail(api::errors::FIELD_TYPE_ERROR(name));
            }
          }
          ts.ops->destroy(scratch);
          auto t = db.begin();
          std::string ref = t.create(cls, wire::value(std::move(record)));
          auto r = db.commit(std::move(t));
          if (!r) return fail(std::move(r).error());
          return wire::value(ref);
        };
      case api::method_kind::destructor:
        return [=, &db](call_context&, const wire::array& p) -> api::api_result<wire::value> {
          auto ref = string_param(p[0]);
          if (!ref) return fail(ref.error());
          auto t = db.begin();
          t.destroy(cls, *ref);
          auto r = db.commit(std::move(t));
          if (!r) return fail(std::move(r).error());
          return wire::value("");
        };
      case api::method_kind::custom: break;
    }
    return {};
  }

 private:
  storage::database& db_;
};

}  // namespace

// A custom RPC that is a setter in all but name: set_<f>(self, value) of the class's field f
// with f's type (the datamodel makes these custom because f is read-only for generic clients:
// SR.set_name_label, VDI.set_virtual_size, ...). It is served as a setter.
bool is_custom_setter(const api::method_desc& m) {
  if (m.kind != api::method_kind::custom || !m.name.starts_with("set_") || m.params.size() != 2) return false;
  auto cls = schema::get().class_index(m.class_name);
  if (!cls) return false;
  auto field = schema::get().field_index(*cls, m.name.substr(4));
  if (!field) return false;
  const auto& f = schema::get().table(*cls).desc->fields[*field];
  return m.params[0].type->kind == api::type_kind::ref && m.params[1].type->spelling == f.type->spelling;
}

std::size_t register_implicit_rpcs(dispatcher& d, storage::database& db, const std::set<std::string_view>& except) {
  implicit_rpcs maker(db);
  std::size_t n = 0;
  for (const auto& m : api::all_methods()) {
    if (except.count(m.wire_name)) continue;
    if (m.kind == api::method_kind::custom) {
      if (!is_custom_setter(m)) continue;
      api::method_desc as_setter = m;
      as_setter.kind = api::method_kind::setter;
      as_setter.field = m.name.substr(4);
      d.add(m.wire_name, maker.make(as_setter));
    } else {
      d.add(m.wire_name, maker.make(m));
    }
    ++n;
  }
  return n;
}

}  // namespace xapid::gateway
