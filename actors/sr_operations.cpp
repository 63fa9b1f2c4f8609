// SR operations: create, introduce, forget, destroy, scan, update, probe.
#include "actors/storage_repos_impl.hpp"

#include <set>

#include "common/ids.hpp"
#include "sm/image_dir.hpp"

namespace xapid::actors {
namespace {

namespace fs = std::filesystem;
using storage::schema;

}  // namespace

storage_repos::ref_result storage_repos::sr_create(const std::string& host, api::map<std::string, std::string> device_config,
                                                   std::int64_t, const std::string& name_label,
                                                   const std::string& name_description, const std::string& type,
                                                   const std::string& content_type, bool shared,
                                                   api::map<std::string, std::string> sm_config) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  if (!s->get<api::host>(host)) return fail(api::errors::HANDLE_INVALID("host", host));
  if (host != d.host) return fail(api::errors::HOST_OFFLINE(host));
  const sm::sr_driver* drv = sm::find_driver(type);
  if (!drv) return fail(api::errors::SR_UNKNOWN_DRIVER(type));
  const std::string uuid = d.db.ids().uuid();
  std::string content = content_type;
  drv->add_defaults(device_config, content, d.data_dir, uuid);
  if (auto st = d.attach({}, type, uuid, device_config, true); !st) return fail(st.error());
  api::sr sr;
  sr.uuid = uuid;
  sr.name_label = name_label;
  sr.name_description = name_description;
  sr.type = type;
  sr.content_type = content;
  sr.shared = shared;
  sr.sm_config = std::move(sm_config);
  auto t = d.db.begin();
  std::string ref = t.create(sr);
  api::pbd pbd;
  pbd.uuid = d.db.ids().uuid();
  pbd.host.opaque = host;
  pbd.SR.opaque = ref;
  pbd.device_config = device_config;
  pbd.currently_attached = true;
  t.create(pbd);
  if (auto r = d.commit(std::move(t)); !r) {
    d.detach(type, uuid, device_config);
    return fail(r.error());
  }
  d.actors.refresh(d.sr_cls, ref);
  // What is already there (an iso library, an existing directory) becomes its VDIs.
  if (auto r = sr_scan(ref, {}); !r) return fail(r.error());
  return ref;
}

storage_repos::ref_result storage_repos::sr_introduce(const std::string& uuid, const std::string& name_label,
                                                      const std::string& name_description, const std::string& type,
                                                      const std::string& content_type, bool shared,
                                                      api::map<std::string, std::string> sm_config) {
  auto& d = *impl_;
  if (!sm::find_driver(type)) return fail(api::errors::SR_UNKNOWN_DRIVER(type));
  if (!uuid.empty() && !is_uuid(uuid)) return fail(api::errors::UUID_INVALID("SR", uuid));
  if (d.db.snapshot()->ref_by_uuid(d.sr_cls, uuid)) return fail(api::errors::SR_UUID_EXISTS(uuid));
  api::sr sr;
  sr.uuid = uuid.empty() ? d.db.ids().uuid() : uuid;
  sr.name_label = name_label;
  sr.name_description = name_description;
  sr.type = type;
  sr.content_type = content_type;
  sr.shared = shared;
  sr.sm_config = std::move(sm_config);
  auto t = d.db.begin();
  std::string ref = t.create(sr);
  if (auto r = d.commit(std::move(t)); !r) return fail(r.error());
  d.actors.refresh(d.sr_cls, ref);
  return ref;
}

storage_repos::void_result storage_repos::sr_forget(const std::string& sr, const std::string& task) {
  auto d = impl_;
  auto r = d->run(d->sr_cls, sr, "forget", task, [d, sr]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    for (const auto& p : s->refs_where<api::pbd>("SR", sr))
      if (s->get<api::pbd>(p)->currently_attached) return fail(api::errors::SR_HAS_PBD(sr));
    // The records go; the data stays where it is, for an introduce to find again.
    auto t = d->db.begin();
    for (const auto& v : s->refs_where<api::vdi>("SR", sr)) {
      if (!s->get<api::vdi>(v)->VBDs.empty()) return fail(api::errors::VDI_IN_USE(v, "forget"));
      t.destroy(d->vdi_cls, v);
    }
    for (const auto& p : s->refs_where<api::pbd>("SR", sr)) t.destroy(d->pbd_cls, p);
    t.destroy(d->sr_cls, sr);
    return d->commit(std::move(t));
  });
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

std::string storage_repos::pbd_here(const std::string& sr) const { return impl_->pbd_here(*impl_->db.snapshot(), sr); }

api::api_result<std::vector<std::pair<std::string, std::string>>> storage_repos::add_pbds_everywhere(const std::string& sr) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  const api::pbd* here = s->get<api::pbd>(d.pbd_here(*s, sr));
  if (!here) return fail(api::errors::SR_HAS_NO_PBDS(sr));
  std::set<std::string> reached;
  for (const auto& p : s->refs_where<api::pbd>("SR", sr)) reached.insert(s->get<api::pbd>(p)->host.opaque);
  std::vector<std::pair<std::string, std::string>> made;
  auto t = d.db.begin();
  s->for_each(schema::get().class_of<api::host>(), [&](const std::string& host, const storage::row&) {
    if (reached.contains(host)) return true;
    api::pbd pbd;
    pbd.uuid = d.db.ids().uuid();
    pbd.host.opaque = host;
    pbd.SR.opaque = sr;
    pbd.device_config = here->device_config;
    made.emplace_back(host, t.create(pbd));
    return true;
  });
  if (made.empty()) return made;
  if (auto r = d.db.commit(std::move(t)); !r) return fail(std::move(r).error());
  return made;
}

storage_repos::void_result storage_repos::sr_destroy(const std::string& sr, const std::string& task) {
  auto d = impl_;
  auto r = d->run(d->sr_cls, sr, "destroy", task, [d, sr]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::sr* rec = s->get<api::sr>(sr);
    if (!rec) return fail(api::errors::HANDLE_INVALID("SR", sr));
    // As xapi (and the seed's SR_HAS_PBD): every host unplugs it first (PBD.unplug, carried out
    // by each PBD's host), so that none keeps it attached — a shared SR's nfs mount included.
    for (const auto& other : s->refs_where<api::pbd>("SR", sr))
      if (s->get<api::pbd>(other)->currently_attached) return fail(api::errors::SR_HAS_PBD(sr));
    // Its disks go first (VDI.destroy), so that nothing is lost by accident.
    if (!s->refs_where<api::vdi>("SR", sr).empty()) return fail(api::errors::SR_NOT_EMPTY());
    std::string pbd = d->pbd_here(*s, sr);
    if (pbd.empty()) return fail(api::errors::SR_HAS_NO_PBDS(sr));
    const api::pbd* p = s->get<api::pbd>(pbd);
    // Attached here for as long as its removal takes (an nfs export mounted, a directory checked).
    if (auto st = d->attach(sr, rec->type, rec->uuid, p->device_config, false); !st) return fail(st.error());
    const std::string dir = d->directory_for(rec->type, rec->uuid, p->device_config);
    auto t = d->db.begin();
    for (const auto& other : s->refs_where<api::pbd>("SR", sr)) t.destroy(d->pbd_cls, other);
    t.destroy(d->sr_cls, sr);
    // A pool that named it as its default SR names none.
    s->for_each(schema::get().class_of<api::pool>(), [&](const std::string& ref, const storage::row& row) {
      const auto* pool = static_cast<const api::pool*>(row.record.get());
      api::pool after = *pool;
      for (auto* f : {&after.default_SR, &after.suspend_image_SR, &after.crash_dump_SR})
        if (f->opaque == sr) f->opaque = null_ref;
      if (!(after == *pool)) t.update(ref, *pool, after);
      return true;
    });
    if (auto c = d->commit(std::move(t)); !c) {
      d->detach(rec->type, rec->uuid, p->device_config);
      return c;
    }
    // Only a directory xapid made (DIR/sr/<uuid>) is removed; any directory an operator named
    // (file, iso, or an ext SR given a location) stays, empty of VDIs as it is now.
    std::error_code ec;
    if (dir == d->data_dir + "/sr/" + rec->uuid) fs::remove_all(dir, ec);
    d->detach(rec->type, rec->uuid, p->device_config);
    return wire::value("");
  });
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

storage_repos::void_result storage_repos::sr_scan(const std::string& sr, const std::string& task) {
  auto d = impl_;
  auto r = d->run(d->sr_cls, sr, "scan", task, [d, sr]() -> api::api_result<wire::value> {
    auto lock = d->lock_of(sr);
    std::lock_guard guard(*lock);
    auto s = d->db.snapshot();
    const api::sr* rec = s->get<api::sr>(sr);
    auto dir = d->directory(*s, sr);
    if (!dir) return fail(dir.error());
    // The files are VDIs as the SR's driver reads them (qcow2 images for an SR of a type no
    // driver knows, which no RPC makes).
    const sm::sr_driver* drv = sm::find_driver(rec->type);
    const sm::image_format format = drv ? drv->images() : sm::image_format::qcow2;
    const bool iso = format == sm::image_format::iso;
    sm::image_dir images(*dir);
    api::map<std::string, std::string> by_location;  // location -> VDI ref
    for (const auto& v : s->refs_where<api::vdi>("SR", sr)) by_location[s->get<api::vdi>(v)->location] = v;
    auto t = d->db.begin();
    std::set<std::string> present;
    for (const auto& name : images.visible_files()) {
      present.insert(name);
      auto known = by_location.find(name);
      if (!sm::is_image_name(format, name) && known == by_location.end()) continue;
      api::vdi v;
      if (known != by_location.end()) v = *s->get<api::vdi>(known->second);
      if (iso) {
        std::error_code ec;
        v.virtual_size = v.physical_utilisation = static_cast<std::int64_t>(fs::file_size(*dir + "/" + name, ec));
      } else if (known == by_location.end() || known->second.empty() ||
                 s->get<api::vdi>(known->second)->type != api::vdi_type::suspend) {
        auto info = images.info(name);
        if (!info) continue;  // not an image qemu-img reads
        impl::sizes_from(*info, v);
      }
      if (known == by_location.end()) {
        // Found behind the SR's back: it becomes a VDI named after its file.
        api::vdi found = d->new_vdi_record({}, sr, d->db.ids().uuid(), name);
        found.name_label = name;
        found.virtual_size = v.virtual_size;
        found.physical_utilisation = v.physical_utilisation;
        found.read_only = iso;
        found.type = api::vdi_type::user;
        if (iso) found.sm_config = {};
        t.create(found);
      } else {
        const api::vdi* old = s->get<api::vdi>(known->second);
        v.missing = false;
        if (!(v == *old)) t.update(known->second, *old, v);
      }
    }
    // Removed behind its back: a VDI in use is marked missing, any other is forgotten.
    for (const auto& [location, ref] : by_location) {
      if (present.count(location)) continue;
      const api::vdi* v = s->get<api::vdi>(ref);
      if (v->VBDs.empty()) {
        t.destroy(d->vdi_cls, ref);
      } else if (!v->missing) {
        api::vdi after = *v;
        after.missing = true;
        t.update(ref, *v, after);
      }
    }
    if (!t.empty())
      if (auto c = d->commit(std::move(t)); !c) return c;
    d->refresh_sizes(sr);
    return wire::value("");
  });
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

storage_repos::void_result storage_repos::sr_update(const std::string& sr, const std::string& task) {
  auto d = impl_;
  auto r = d->run(d->sr_cls, sr, "update", task, [d, sr]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    if (auto dir = d->directory(*s, sr); !dir) return fail(dir.error());
    d->refresh_sizes(sr);
    return wire::value("");
  });
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

storage_repos::ref_result storage_repos::sr_probe(const std::string& host,
                                                  const api::map<std::string, std::string>& device_config,
                                                  const std::string& type) {
  auto& d = *impl_;
  if (!d.db.snapshot()->get<api::host>(host)) return fail(api::errors::HANDLE_INVALID("host", host));
  const sm::sr_driver* drv = sm::find_driver(type);
  if (!drv) return fail(api::errors::SR_UNKNOWN_DRIVER(type));
  auto srs_at = [&d](const std::string& location) {
    std::vector<std::string> uuids;
    d.db.snapshot()->for_each(d.pbd_cls, [&](const std::string&, const storage::row& row) {
      const auto* p = static_cast<const api::pbd*>(row.record.get());
      auto it = p->device_config.find("location");
      if (it != p->device_config.end() && it->second == location)
        if (const api::sr* sr = d.db.snapshot()->get<api::sr>(p->SR.opaque)) uuids.push_back(sr->uuid);
      return true;
    });
    return uuids;
  };
  auto xml = drv->probe(device_config, srs_at);
  if (!xml) return fail(backend_failure(xml.error()));
  return std::move(*xml);
}

}  // namespace xapid::actors
