#include "storage/ref_values.hpp"

#include "storage/schema.hpp"

namespace xapid::storage {
namespace {

bool is_null(const wire::value& v) {
  const std::string* s = v.as_string();
  return s && *s == api::null_ref_text;
}

}  // namespace

bool holds_refs(const api::type_desc& t) {
  if (t.kind == api::type_kind::ref) return true;
  return (t.arg1 && holds_refs(*t.arg1)) || (t.arg2 && holds_refs(*t.arg2));
}

wire::value rewrite_refs(const api::type_desc& t, const wire::value& v, const ref_rewrite& to) {
  switch (t.kind) {
    case api::type_kind::ref: {
      const std::string* ref = v.as_string();
      const auto cls = schema::get().class_index(t.name);
      if (!ref || !cls || *ref == api::null_ref_text) return wire::value(std::string(api::null_ref_text));
      return wire::value(to(*cls, *ref));
    }
    case api::type_kind::set: {
      const wire::array* items = v.as_array();
      if (!items || !holds_refs(*t.arg1)) return v;
      wire::array out;
      for (const auto& item : *items)
        if (wire::value e = rewrite_refs(*t.arg1, item, to); !is_null(e)) out.push_back(std::move(e));
      return wire::value(std::move(out));
    }
    case api::type_kind::map: {
      const wire::structure* entries = v.as_struct();
      if (!entries || !holds_refs(t)) return v;
      wire::structure out;
      for (const auto& [key, item] : *entries) {
        wire::value k = holds_refs(*t.arg1) ? rewrite_refs(*t.arg1, wire::value(key), to) : wire::value(key);
        wire::value e = holds_refs(*t.arg2) ? rewrite_refs(*t.arg2, item, to) : item;
        if (!is_null(k) && !is_null(e)) out.emplace_back(*k.as_string(), std::move(e));
      }
      return wire::value(std::move(out));
    }
    default: return v;
  }
}

}  // namespace xapid::storage
