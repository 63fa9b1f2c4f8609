// VM export: the objects an archive takes and their records as ova.xml, and the disks' chunks.
#include "actors/vm_export.hpp"

#include <filesystem>
#include <map>

#include "common/clock.hpp"
#include "proto/wire/xmlrpc.hpp"

namespace xapid::actors {
namespace {

using storage::schema;
const std::string null_ref(api::null_ref_text);

// A record with references to exported objects as their archive ids, others dropped (in sets)
// or null.
wire::value remap(const wire::value& v, const std::map<std::string, std::string>& ids) {
  if (const std::string* s = v.as_string()) {
    if (s->rfind("OpaqueRef:", 0) != 0) return v;
    auto it = ids.find(*s);
    return wire::value(it == ids.end() ? null_ref : it->second);
  }
  if (const auto* a = v.as_array()) {
    wire::array out;
    for (const auto& e : *a) {
      if (const std::string* s = e.as_string(); s && s->rfind("OpaqueRef:", 0) == 0 && !ids.count(*s)) continue;
      out.push_back(remap(e, ids));
    }
    return wire::value(std::move(out));
  }
  if (const wire::structure* st = v.as_struct()) {
    wire::structure out;
    for (const auto& [k, e] : *st) out.emplace_back(k, remap(e, ids));
    return wire::value(std::move(out));
  }
  return v;
}

}  // namespace

export_contents vm_export::contents(const storage::state& s, const std::string& vm_ref,
                                    const std::string& hostname) const {
  // Which objects go: the VM, its VBDs and their VDIs and SRs, its VIFs and their networks.
  std::vector<std::pair<std::size_t, std::string>> order;
  auto add = [&](std::size_t cls, const std::string& ref) {
    for (const auto& [c, r] : order)
      if (r == ref) return;
    order.emplace_back(cls, ref);
  };
  const std::size_t vm_cls = schema::get().class_of<api::vm>(), vbd_cls = schema::get().class_of<api::vbd>(),
                    vdi_cls = schema::get().class_of<api::vdi>(), sr_cls = schema::get().class_of<api::sr>(),
                    vif_cls = schema::get().class_of<api::vif>(), net_cls = schema::get().class_of<api::network>();
  add(vm_cls, vm_ref);
  for (const auto& b : s.refs_where<api::vbd>("VM", vm_ref)) {
    add(vbd_cls, b);
    const api::vbd* vbd = s.get<api::vbd>(b);
    if (vbd->empty || !s.get<api::vdi>(vbd->VDI.opaque)) continue;
    const api::vdi* vdi = s.get<api::vdi>(vbd->VDI.opaque);
    if (vdi->read_only && vbd->type == api::vbd_type::CD) continue;  // an ISO stays in its library
    add(vdi_cls, vbd->VDI.opaque);
    add(sr_cls, vdi->SR.opaque);
  }
  for (const auto& f : s.refs_where<api::vif>("VM", vm_ref)) {
    add(vif_cls, f);
    add(net_cls, s.get<api::vif>(f)->network.opaque);
  }
  std::map<std::string, std::string> ids;
  for (std::size_t i = 0; i < order.size(); ++i) ids[order[i].second] = "Ref:" + std::to_string(i);
  export_contents out;
  wire::array objects;
  for (const auto& [cls, ref] : order) {
    const storage::row* r = s.find(cls, ref);
    if (!r) continue;
    wire::value snapshot = remap(schema::get().table(cls).ops->to_value(r->record.get()), ids);
    objects.emplace_back(wire::structure{{"class", wire::value(std::string(schema::get().table(cls).desc->name))},
                                         {"id", wire::value(ids[ref])},
                                         {"snapshot", std::move(snapshot)}});
    if (cls == vdi_cls) out.disks.push_back({ids[ref], ref, static_cast<const api::vdi*>(r->record.get())->virtual_size});
  }
  wire::structure version{{"hostname", wire::value(hostname)},
                          {"date", wire::value(api::format_iso8601(api::datetime{wall_seconds()}))},
                          {"product_version", wire::value("0.1.0")},
                          {"product_brand", wire::value("xapid")},
                          {"build_number", wire::value("0")},
                          {"xapi_major", wire::value(std::int64_t{1})},
                          {"xapi_minor", wire::value(std::int64_t{3})},
                          {"export_vsn", wire::value(std::int64_t{2})}};
  wire::xmlrpc::append_value(out.ova_xml, wire::value(wire::structure{{"version", wire::value(std::move(version))},
                                                                      {"objects", wire::value(std::move(objects))}}));
  return out;
}

api::status vm_export::write_disk(sm::tar_out& out, const storage::state& s, const export_disk& disk,
                                  const std::function<bool(std::int64_t)>& progress) const {
  auto path = repos_.vdi_path(s, disk.vdi);
  if (!path) return fail(path.error());
  auto written = sm::write_disk_chunks(out, disk.id, *path, disk.size,
                                       std::filesystem::path(*path).parent_path().string(), progress);
  if (!written)
    return fail(api::errors::SR_BACKEND_FAILURE(std::to_string(written.error().status), written.error().out,
                                                written.error().err));
  return ok_v;
}

}  // namespace xapid::actors
