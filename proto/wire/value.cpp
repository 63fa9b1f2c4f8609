#include "proto/wire/value.hpp"

#include "proto/wire/emitter.hpp"

namespace xapid::wire {
namespace {

bool holds_deferred(const value& v) {
  if (v.type() == kind::deferred) return true;
  if (auto* a = v.as_array())
    for (auto& e : *a)
      if (holds_deferred(e)) return true;
  if (auto* s = v.as_struct())
    for (auto& [k, e] : *s)
      if (holds_deferred(e)) return true;
  return false;
}

}  // namespace

void tree_builder::put(wire::value v) {
  if (open_.empty()) {
    root_ = std::move(v);
    return;
  }
  open_container& c = open_.back();
  if (auto* a = c.v.as_array()) a->push_back(std::move(v));
  else c.v.as_struct()->emplace_back(std::move(c.name), std::move(v));
}

void tree_builder::close() {
  wire::value v = std::move(open_.back().v);
  open_.pop_back();
  put(std::move(v));
}

const char* kind_name(kind k) noexcept {
  switch (k) {
    case kind::nil: return "nil";
    case kind::boolean: return "boolean";
    case kind::integer: return "integer";
    case kind::int32: return "int32";
    case kind::floating: return "floating";
    case kind::string: return "string";
    case kind::datetime: return "datetime";
    case kind::array: return "array";
    case kind::structure: return "structure";
    case kind::deferred: return "deferred";
  }
  return "unknown";
}

value built(const value& v) {
  if (!holds_deferred(v)) return v;
  if (auto* d = v.as_deferred()) {
    tree_builder b;
    d->emit(b);
    return b.result();
  }
  if (auto* a = v.as_array()) {
    array out;
    out.reserve(a->size());
    for (auto& e : *a) out.push_back(built(e));
    return out;
  }
  structure out;
  out.reserve(v.as_struct()->size());
  for (auto& [k, e] : *v.as_struct()) out.emplace_back(k, built(e));
  return out;
}

bool value::operator==(const value& o) const {
  if (type() == kind::deferred || o.type() == kind::deferred) return built(*this).v_ == built(o).v_;
  return v_ == o.v_;  // elements compare through this operator, so nested deferred values too
}

}  // namespace xapid::wire
