#include "actors/placement.hpp"

namespace xapid::actors {
namespace {

std::string master(const storage::state& s) {
  const api::pool* pool = s.first<api::pool>();
  return pool ? pool->master.opaque : std::string();
}

std::string vm_host(const storage::state& s, const std::string& vm) {
  const api::vm* v = s.get<api::vm>(vm);
  if (v && s.get<api::host>(v->resident_on.opaque)) return v->resident_on.opaque;
  return master(s);
}

std::string sr_host(const storage::state& s, const std::string& sr) {
  const api::sr* r = s.get<api::sr>(sr);
  if (r && !r->shared) {
    for (const auto& pbd : s.refs_where<api::pbd>("SR", sr))
      if (const api::pbd* p = s.get<api::pbd>(pbd); p && s.get<api::host>(p->host.opaque)) return p->host.opaque;
  }
  return master(s);
}

}  // namespace

std::string operations_host(const storage::state& s, std::size_t cls, const std::string& ref) {
  const auto& sch = storage::schema::get();
  if (cls == sch.class_of<api::host>()) return ref;
  if (cls == sch.class_of<api::vm>()) return vm_host(s, ref);
  if (cls == sch.class_of<api::vbd>()) {
    const api::vbd* b = s.get<api::vbd>(ref);
    return b ? vm_host(s, b->VM.opaque) : master(s);
  }
  if (cls == sch.class_of<api::vif>()) {
    const api::vif* f = s.get<api::vif>(ref);
    return f ? vm_host(s, f->VM.opaque) : master(s);
  }
  if (cls == sch.class_of<api::sr>()) return sr_host(s, ref);
  if (cls == sch.class_of<api::vdi>()) {
    const api::vdi* v = s.get<api::vdi>(ref);
    return v ? sr_host(s, v->SR.opaque) : master(s);
  }
  return master(s);
}

}  // namespace xapid::actors
