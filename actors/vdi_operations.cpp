// VDI operations, and the images VM operations make inside their own transactions (new disks,
// copies) with what becomes of them when the transaction commits or not.
#include "actors/storage_repos_impl.hpp"

#include <sys/statvfs.h>

#include "common/ids.hpp"
#include "sm/image_dir.hpp"
#include "sm/images.hpp"

namespace xapid::actors {
namespace {

namespace fs = std::filesystem;
using storage::schema;

}  // namespace

storage_repos::ref_result storage_repos::add_new_vdi(storage::transaction& t, const storage::state& s,
                                                     const std::string& sr, std::int64_t size,
                                                     const std::string& name_label, api::vdi_type type,
                                                     api::map<std::string, std::string> other_config,
                                                     std::vector<std::string>& made, bool raw) {
  if (size < 0) return fail(api::errors::INVALID_VALUE("virtual_size", std::to_string(size)));
  api::vdi fields;
  fields.name_label = name_label;
  fields.type = type;
  fields.other_config = std::move(other_config);
  return add_vdi_from_image(t, s, sr, std::move(fields), [&](const std::string& path) {
    auto lock = impl_->lock_of(sr);
    std::lock_guard guard(*lock);
    return raw ? sm::create_raw(path, size) : sm::create_qcow2(path, size);
  }, made, raw ? ".raw" : ".qcow2");
}

storage_repos::ref_result storage_repos::add_vdi_from_image(storage::transaction& t, const storage::state& s,
                                                            const std::string& sr, api::vdi fields,
                                                            const image_maker& make, std::vector<std::string>& made,
                                                            std::string_view extension) {
  auto& d = *impl_;
  const api::sr* rec = s.get<api::sr>(sr);
  if (!rec) return fail(api::errors::HANDLE_INVALID("SR", sr));
  const sm::sr_driver* drv = sm::find_driver(rec->type);
  if (!drv || !drv->description().makes_vdis) return fail(api::errors::SR_OPERATION_NOT_SUPPORTED(sr));
  auto dir = d.directory(s, sr);
  if (!dir) return fail(dir.error());
  const std::string uuid = d.db.ids().uuid();
  sm::image_dir images(*dir);
  const std::string location = sm::image_dir::location_of(uuid, extension);
  sm::mark_pending(images.path_of(location));  // until the caller's commit: see keep()
  made.push_back(images.path_of(location));
  if (auto r = make(images.path_of(location)); !r) return fail(backend_failure(r.error()));
  api::vdi v = d.new_vdi_record(std::move(fields), sr, uuid, location);
  if (auto info = images.info(location)) impl::sizes_from(*info, v);
  return t.create(v);
}

storage_repos::ref_result storage_repos::add_vdi_copy(storage::transaction& t, const storage::state& s,
                                                      const std::string& from, copy_kind kind, const std::string& sr,
                                                      std::vector<std::string>& made) {
  auto& d = *impl_;
  const api::vdi* src = s.get<api::vdi>(from);
  if (!src) return fail(api::errors::HANDLE_INVALID("VDI", from));
  auto src_dir = d.directory(s, src->SR.opaque);
  if (!src_dir) return fail(src_dir.error());
  const std::string target_sr = kind == copy_kind::copy && !sr.empty() && sr != null_ref ? sr : src->SR.opaque;
  auto dst_dir = d.directory(s, target_sr);
  if (!dst_dir) return fail(dst_dir.error());
  const sm::sr_driver* drv = sm::find_driver(s.get<api::sr>(target_sr)->type);
  if (!drv || !drv->description().makes_vdis) return fail(api::errors::SR_OPERATION_NOT_SUPPORTED(target_sr));
  const std::string uuid = d.db.ids().uuid();
  sm::image_dir from_images(*src_dir), to_images(*dst_dir);
  sm::tool_result<std::string> location = fail(sm::tool_failure{});
  // The image's name is known before it exists: marked pending until the caller's commit.
  const std::string new_name = src->type == api::vdi_type::suspend ? uuid + ".suspend" : sm::image_dir::location_of(uuid);
  sm::mark_pending(to_images.path_of(new_name));
  made.push_back(to_images.path_of(new_name));
  // A disk in use by a running guest is copied whole: moving its file under a parent (a chain
  // clone) while the guest writes to the open file would put those writes into the snapshot.
  bool in_use = false;
  for (const auto& b : src->VBDs)
    if (const api::vbd* vbd = s.get<api::vbd>(b.opaque); vbd && vbd->currently_attached) in_use = true;
  if (kind == copy_kind::copy || src->type == api::vdi_type::suspend || src->read_only || in_use) {
    // A whole copy, checked against the target's free space first.
    struct statvfs st {};
    auto needed = sm::allocated_bytes(from_images.path_of(src->location));
    if (::statvfs(dst_dir->c_str(), &st) == 0) {
      auto available = static_cast<std::int64_t>(st.f_bavail) * static_cast<std::int64_t>(st.f_frsize);
      if (needed > available) return fail(api::errors::SR_FULL(std::to_string(needed), std::to_string(available)));
    }
    auto lock = d.lock_of(target_sr);
    std::lock_guard guard(*lock);
    if (src->type == api::vdi_type::suspend) {
      // A suspend image is the hypervisor's own file, copied byte for byte.
      std::string name = uuid + ".suspend";
      if (auto r = sm::copy_image(from_images.path_of(src->location), to_images.path_of(name)); !r)
        return fail(api::errors::SR_BACKEND_FAILURE("5", "", r.error()));
      location = name;
    } else {
      location = from_images.copy_to(src->location, to_images, uuid);
    }
  } else {
    auto lock = d.lock_of(src->SR.opaque);
    std::lock_guard guard(*lock);
    location = from_images.clone(src->location, uuid);
  }
  if (!location) return fail(backend_failure(location.error()));
  api::vdi v = storage::as_copy(*src);
  v.uuid = uuid;
  v.SR.opaque = target_sr;
  v.location = *location;
  v.read_only = kind == copy_kind::snapshot ? false : src->read_only && kind != copy_kind::copy;
  v.is_a_snapshot = kind == copy_kind::snapshot;
  v.snapshot_of.opaque = kind == copy_kind::snapshot ? from : null_ref;
  v.snapshot_time = kind == copy_kind::snapshot ? d.now() : api::datetime{};
  v.parent.opaque = null_ref;
  v.managed = true;
  v.missing = false;
  v.storage_lock = false;
  if (auto info = to_images.info(*location); info && src->type != api::vdi_type::suspend) impl::sizes_from(*info, v);
  else v.physical_utilisation = sm::allocated_bytes(to_images.path_of(*location));
  return t.create(v);
}

void storage_repos::keep(const std::vector<std::string>& made) {
  for (const auto& p : made) sm::unmark_pending(p);
}

void storage_repos::drop(const std::vector<std::string>& made) {
  std::set<std::string> dirs;
  for (const auto& p : made) {
    (void)sm::remove_image(p);
    sm::unmark_pending(p);
    dirs.insert(fs::path(p).parent_path().string());
  }
  // The SRs whose directories those were: their chains may have a parent to merge back.
  auto s = impl_->db.snapshot();
  s->for_each(impl_->sr_cls, [&](const std::string& sr, const storage::row&) {
    auto dir = impl_->directory(*s, sr);
    if (dir && dirs.count(*dir)) {
      auto lock = impl_->lock_of(sr);
      std::lock_guard guard(*lock);
      sm::image_dir(*dir).collect(impl_->busy_locations(*s, sr));
    }
    return true;
  });
}

void storage_repos::remove_image(const std::string& sr, const std::string& location) {
  auto s = impl_->db.snapshot();
  auto dir = impl_->directory(*s, sr);
  if (!dir) return;
  {
    auto lock = impl_->lock_of(sr);
    std::lock_guard guard(*lock);
    sm::image_dir images(*dir);
    (void)images.remove(location);
    images.collect(impl_->busy_locations(*s, sr));
  }
  impl_->refresh_sizes(sr);
}


storage_repos::ref_result storage_repos::vdi_create(const std::string& sr, const std::string& name_label,
                                                    const std::string& name_description, std::int64_t virtual_size,
                                                    api::vdi_type type, bool sharable, bool read_only,
                                                    api::map<std::string, std::string> other_config,
                                                    api::map<std::string, std::string> sm_config,
                                                    const std::string& task) {
  auto d = impl_;
  auto self = this;
  auto r = d->run(d->sr_cls, sr, "vdi_create", task, [=]() mutable -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    auto t = d->db.begin();
    std::vector<std::string> made;
    auto raw = sm_config.find("type");
    auto ref = self->add_new_vdi(t, *s, sr, virtual_size, name_label, type, std::move(other_config), made,
                                 raw != sm_config.end() && raw->second == "raw");
    if (!ref) {
      self->drop(made);
      return fail(ref.error());
    }
    // The rest of the client's record.
    t.set(d->vdi_cls, *ref, *schema::get().field_index(d->vdi_cls, "name_description"), wire::value(name_description));
    t.set(d->vdi_cls, *ref, *schema::get().field_index(d->vdi_cls, "sharable"), wire::value(sharable));
    t.set(d->vdi_cls, *ref, *schema::get().field_index(d->vdi_cls, "read_only"), wire::value(read_only));
    for (const auto& [k, v] : sm_config)
      t.add_to_map(d->vdi_cls, *ref, *schema::get().field_index(d->vdi_cls, "sm_config"), k, wire::value(v));
    if (auto c = d->commit(std::move(t)); !c) {
      self->drop(made);
      return c;
    }
    self->keep(made);
    d->actors.refresh(d->vdi_cls, *ref);
    d->refresh_sizes(sr);
    return wire::value(*ref);
  });
  if (!r) return fail(std::move(r).error());
  return *r->as_string();
}

namespace {

// Destroys a VDI's VBDs in `t`, each on the condition that, when the transaction applies, it is
// still detached with no operation in progress (else the whole transaction is VDI_IN_USE).
void destroy_idle_vbds(storage::transaction& t, const api::vdi& v, const std::string& vdi, const char* operation) {
  const std::size_t vbd_cls = schema::get().class_of<api::vbd>();
  static const std::size_t attached = *schema::get().field_index(vbd_cls, "currently_attached");
  static const std::size_t current = *schema::get().field_index(vbd_cls, "current_operations");
  for (const auto& b : v.VBDs) {
    t.expect_field(vbd_cls, b.opaque, attached, wire::value(false), api::errors::VDI_IN_USE(vdi, operation));
    t.expect_field(vbd_cls, b.opaque, current, wire::value(wire::structure{}), api::errors::VDI_IN_USE(vdi, operation));
    t.destroy(vbd_cls, b.opaque);
  }
}

}  // namespace

storage_repos::void_result storage_repos::vdi_destroy(const std::string& vdi, const std::string& task) {
  auto d = impl_;
  auto self = this;
  auto r = d->run(d->vdi_cls, vdi, "destroy", task, [d, self, vdi]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vdi* v = s->get<api::vdi>(vdi);
    if (!v->managed) return fail(api::errors::VDI_NOT_MANAGED(vdi));
    const api::sr* sr = s->get<api::sr>(v->SR.opaque);
    if (const sm::sr_driver* drv = sr ? sm::find_driver(sr->type) : nullptr; !drv || !drv->description().makes_vdis)
      return fail(api::errors::SR_OPERATION_NOT_SUPPORTED(v->SR.opaque));
    for (const auto& b : v->VBDs)
      if (const api::vbd* vbd = s->get<api::vbd>(b.opaque); vbd && vbd->currently_attached)
        return fail(api::errors::VDI_IN_USE(vdi, "destroy"));
    if (auto dir = d->directory(*s, v->SR.opaque); !dir) return fail(dir.error());
    auto t = d->db.begin();
    // Its VBDs (all detached) go with it, as xapi's do — if still detached and idle when this
    // applies: a VBD.plug admitted meanwhile keeps the VDI.
    destroy_idle_vbds(t, *v, vdi, "destroy");
    t.destroy(d->vdi_cls, vdi);
    if (auto c = d->commit(std::move(t)); !c) return c;
    self->remove_image(v->SR.opaque, v->location);
    return wire::value("");
  });
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

storage_repos::void_result storage_repos::vdi_forget(const std::string& vdi, const std::string& task) {
  auto d = impl_;
  auto r = d->run(d->vdi_cls, vdi, "forget", task, [d, vdi]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vdi* v = s->get<api::vdi>(vdi);
    for (const auto& b : v->VBDs)
      if (const api::vbd* vbd = s->get<api::vbd>(b.opaque); vbd && vbd->currently_attached)
        return fail(api::errors::VDI_IN_USE(vdi, "forget"));
    auto t = d->db.begin();
    destroy_idle_vbds(t, *v, vdi, "forget");
    t.destroy(d->vdi_cls, vdi);
    return d->commit(std::move(t));
  });
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

storage_repos::void_result storage_repos::vdi_resize(const std::string& vdi, std::int64_t size, bool online,
                                                     const std::string& task) {
  auto d = impl_;
  auto r = d->run(d->vdi_cls, vdi, online ? "resize_online" : "resize", task, [d, vdi, size, online]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vdi* v = s->get<api::vdi>(vdi);
    if (v->read_only) return fail(api::errors::VDI_READONLY(vdi));
    bool attached = false;
    for (const auto& b : v->VBDs)
      if (const api::vbd* vbd = s->get<api::vbd>(b.opaque); vbd && vbd->currently_attached) attached = true;
    if (attached && !online) return fail(api::errors::VDI_IN_USE(vdi, "resize"));
    if (size < v->virtual_size) return fail(api::errors::VDI_TOO_SMALL(vdi, std::to_string(v->virtual_size)));
    auto dir = d->directory(*s, v->SR.opaque);
    if (!dir) return fail(dir.error());
    sm::image_dir images(*dir);
    {
      auto lock = d->lock_of(v->SR.opaque);
      std::lock_guard guard(*lock);
      if (auto rr = images.resize(v->location, size); !rr) return fail(backend_failure(rr.error()));
    }
    api::vdi after = *v;
    if (auto info = images.info(v->location)) impl::sizes_from(*info, after);
    auto t = d->db.begin();
    t.update(vdi, *v, after);
    auto c = d->commit(std::move(t));
    d->refresh_sizes(v->SR.opaque);
    return c;
  });
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

storage_repos::void_result storage_repos::vdi_update(const std::string& vdi, const std::string& task) {
  auto d = impl_;
  auto r = d->run(d->vdi_cls, vdi, "update", task, [d, vdi]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vdi* v = s->get<api::vdi>(vdi);
    auto dir = d->directory(*s, v->SR.opaque);
    if (!dir) return fail(dir.error());
    sm::image_dir images(*dir);
    auto info = images.info(v->location);
    if (!info) return fail(api::errors::VDI_MISSING(v->SR.opaque, vdi));
    api::vdi after = *v;
    impl::sizes_from(*info, after);
    if (after == *v) return wire::value("");
    auto t = d->db.begin();
    t.update(vdi, *v, after);
    return d->commit(std::move(t));
  });
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

namespace {
storage_repos::ref_result as_ref(api::api_result<wire::value> r) {
  if (!r) return fail(std::move(r).error());
  return *r->as_string();
}
}  // namespace

// VDI.snapshot, VDI.clone and VDI.copy: one new VDI made from `vdi` as an operation of its actor.
storage_repos::ref_result storage_repos::vdi_duplicate(const std::string& vdi, copy_kind kind, const std::string& sr,
                                                       const char* op, const std::string& task) {
  auto d = impl_;
  auto self = this;
  return as_ref(d->run(d->vdi_cls, vdi, op, task, [d, self, vdi, kind, sr]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const bool elsewhere = !sr.empty() && sr != null_ref;
    if (elsewhere && !s->get<api::sr>(sr)) return fail(api::errors::HANDLE_INVALID("SR", sr));
    auto t = d->db.begin();
    std::vector<std::string> made;
    auto ref = self->add_vdi_copy(t, *s, vdi, kind, sr, made);
    if (!ref) {
      self->drop(made);
      return fail(ref.error());
    }
    if (auto c = d->commit(std::move(t)); !c) {
      self->drop(made);
      return c;
    }
    self->keep(made);
    d->actors.refresh(d->vdi_cls, *ref);
    d->refresh_sizes(elsewhere ? sr : s->get<api::vdi>(vdi)->SR.opaque);
    return wire::value(*ref);
  }));
}

storage_repos::ref_result storage_repos::vdi_snapshot(const std::string& vdi, const std::string& task) {
  return vdi_duplicate(vdi, copy_kind::snapshot, {}, "snapshot", task);
}

storage_repos::ref_result storage_repos::vdi_clone(const std::string& vdi, const std::string& task) {
  return vdi_duplicate(vdi, copy_kind::clone, {}, "clone", task);
}

storage_repos::ref_result storage_repos::vdi_copy(const std::string& vdi, const std::string& sr, const std::string& task) {
  return vdi_duplicate(vdi, copy_kind::copy, sr, "copy", task);
}

storage_repos::ref_result storage_repos::vdi_introduce(api::vdi record) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  const std::string sr = record.SR.opaque;
  if (!s->get<api::sr>(sr)) return fail(api::errors::HANDLE_INVALID("SR", sr));
  auto dir = d.directory(*s, sr);
  if (!dir) return fail(dir.error());
  std::error_code ec;
  // A location is a file name in the SR's directory: no path, and not a hidden file (the
  // parents of clones and files being made are hidden).
  if (record.location.empty() || record.location.find('/') != std::string::npos || record.location[0] == '.' ||
      record.location.find('\0') != std::string::npos || !fs::is_regular_file(*dir + "/" + record.location, ec))
    return fail(api::errors::VDI_LOCATION_MISSING(sr, record.location));
  if (!record.uuid.empty() && !is_uuid(record.uuid)) return fail(api::errors::UUID_INVALID("VDI", record.uuid));
  for (const auto& v : s->refs_where<api::vdi>("SR", sr))
    if (s->get<api::vdi>(v)->location == record.location)
      return fail(api::errors::DB_UNIQUENESS_CONSTRAINT_VIOLATION("VDI", "location", record.location));
  if (record.uuid.empty()) record.uuid = d.db.ids().uuid();
  if (auto info = sm::image_dir(*dir).info(record.location)) impl::sizes_from(*info, record);
  record = storage::as_copy(std::move(record));
  auto t = d.db.begin();
  std::string ref = t.create(record);
  if (auto r = d.commit(std::move(t)); !r) return fail(r.error());
  d.actors.refresh(d.vdi_cls, ref);
  d.refresh_sizes(sr);
  return ref;
}

}  // namespace xapid::actors
