#include "storage/schema.hpp"

namespace xapid::storage {

const schema& schema::get() {
  static const schema s;
  return s;
}

std::optional<std::size_t> schema::class_index(std::string_view name) const noexcept {
  auto classes = api::all_classes();
  for (std::size_t i = 0; i < classes.size(); ++i)
    if (classes[i].name == name) return i;
  return std::nullopt;
}

std::optional<std::size_t> schema::field_index(std::size_t cls, std::string_view field) const noexcept {
  const auto& fields = tables_.at(cls).desc->fields;
  for (std::size_t i = 0; i < fields.size(); ++i)
    if (fields[i].name == field) return i;
  return std::nullopt;
}

wire::value record_to_fields(const table_schema& ts, const void* rec) {
  wire::array fields;
  fields.reserve(ts.desc->fields.size());
  for (std::size_t f = 0; f < ts.desc->fields.size(); ++f) fields.push_back(ts.ops->get_field(rec, f));
  return wire::value(std::move(fields));
}

void reset_for_copy(std::size_t cls, void* record) {
  const table_schema& ts = schema::get().table(cls);
  for (std::size_t f : ts.copy_resets) {
    const auto kind = ts.desc->fields[f].type->kind;
    (void)ts.ops->set_field(record, f, kind == api::type_kind::map ? wire::value(wire::structure{}) : wire::value(wire::array{}));
  }
}

api::status record_from_fields(const table_schema& ts, void* rec, const wire::value& fields) {
  const wire::array* a = fields.as_array();
  if (!a || a->size() != ts.desc->fields.size())
    return fail(api::unmarshal_failure(std::string(ts.desc->name) + " fields", fields));
  for (std::size_t f = 0; f < a->size(); ++f)
    if (auto st = ts.ops->set_field(rec, f, (*a)[f]); !st) return st;
  return ok_v;
}

schema::schema() {
  auto classes = api::all_classes();
  tables_.resize(classes.size());
  for (std::size_t c = 0; c < classes.size(); ++c) {
    table_schema& t = tables_[c];
    t.index = c;
    t.desc = &classes[c];
    t.ops = &api::record_ops_of(c);
    t.bindings.resize(classes[c].fields.size());
    t.ref_target.assign(classes[c].fields.size(), no_class);
    t.secret_refs = classes[c].name == "session";
    t.has_events = classes[c].name != "session" && classes[c].name != "secret";
    for (std::size_t f = 0; f < classes[c].fields.size(); ++f) {
      const auto& fd = classes[c].fields[f];
      const api::type_desc* ty = fd.type;
      if (fd.name == "uuid" && ty->kind == api::type_kind::string) t.uuid_field = f;
      if (fd.name == "name_label" && ty->kind == api::type_kind::string) t.name_label_field = f;
      if (ty->kind == api::type_kind::ref) {
        t.ref_fields.push_back(f);
        t.ref_target[f] = *class_index(ty->name);
      } else if (ty->kind == api::type_kind::set && ty->arg1->kind == api::type_kind::ref) {
        t.ref_target[f] = *class_index(ty->arg1->name);
      }
    }
  }
  for (const auto& r : api::all_relations()) {
    std::size_t ca = *class_index(r.class_a), cb = *class_index(r.class_b);
    std::size_t fa = *field_index(ca, r.field_a), fb = *field_index(cb, r.field_b);
    // A field bound to itself (role.subroles) would make every relation symmetric, which no
    // caller means; such a row binds nothing.
    if (ca == cb && fa == fb) continue;
    bool m2m = r.kind == "many-to-many";
    tables_[ca].bindings[fa] = binding{cb, fb, false, m2m};
    tables_[cb].bindings[fb] = binding{ca, fa, !m2m, m2m};
  }
  for (auto& t : tables_)
    for (std::size_t f = 0; f < t.desc->fields.size(); ++f)
      if ((t.bindings[f] && t.bindings[f]->derived) || t.desc->fields[f].name == "allowed_operations" ||
          t.desc->fields[f].name == "current_operations")
        t.copy_resets.push_back(f);
}

}  // namespace xapid::storage

namespace xapid::storage {
namespace {

// The first bytes of a value, for an error that names it without echoing megabytes back.
std::string start_of(const wire::value& v) {
  if (const std::string* s = v.as_string()) return s->substr(0, 64);
  if (const wire::array* a = v.as_array()) return "(an array of " + std::to_string(a->size()) + ")";
  if (const wire::structure* m = v.as_struct()) return "(a map of " + std::to_string(m->size()) + ")";
  return "";
}

const char* beyond(const wire::value& v) {
  if (const std::string* s = v.as_string()) return s->size() > value_bounds::max_string_bytes ? "a string" : nullptr;
  if (const wire::array* a = v.as_array()) {
    if (a->size() > value_bounds::max_entries) return "a set";
    for (const auto& e : *a)
      if (const char* why = beyond(e)) return why;
  }
  if (const wire::structure* m = v.as_struct()) {
    if (m->size() > value_bounds::max_entries) return "a map";
    for (const auto& [k, e] : *m) {
      if (k.size() > value_bounds::max_string_bytes) return "a string";
      if (const char* why = beyond(e)) return why;
    }
  }
  return nullptr;
}

}  // namespace

api::status check_bounds(const table_schema& ts, std::size_t field, const wire::value& v) {
  const char* what = beyond(v);
  if (!what) return ok_v;
  std::string reason = std::string(what) == "a string"
                           ? "a string holds at most " + std::to_string(value_bounds::max_string_bytes) + " bytes"
                           : std::string(what) + " holds at most " + std::to_string(value_bounds::max_entries) + " entries";
  return fail(api::errors::VALUE_NOT_SUPPORTED(std::string(ts.desc->name) + "." + std::string(ts.desc->fields[field].name),
                                               start_of(v), reason));
}

}  // namespace xapid::storage
