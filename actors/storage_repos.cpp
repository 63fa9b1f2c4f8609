// The storage repositories' shared ground: the start (SM objects, rules, plugged PBDs attached
// again, leftovers removed), where an SR's directory is on this host, and attaching it. The
// operations are in sr_operations.cpp, pbd_operations.cpp and vdi_operations.cpp.
#include "actors/storage_repos_impl.hpp"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/ids.hpp"
#include "sm/image_dir.hpp"
#include "sm/images.hpp"

namespace xapid::actors {
namespace {

namespace fs = std::filesystem;
using storage::schema;

}  // namespace

std::string storage_repos::impl::real_path(const std::string& p) {
  std::error_code ec;
  auto r = fs::weakly_canonical(p, ec);
  return ec ? p : r.string();
}

std::shared_ptr<std::mutex> storage_repos::impl::lock_of(const std::string& sr) {
  std::lock_guard lock(locks_mu);
  auto& m = dir_locks[sr];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

api::api_result<wire::value> storage_repos::impl::commit(storage::transaction t) {
  auto r = db.commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  return wire::value("");
}

api::status storage_repos::impl::check_location(const std::string& sr_uuid, const std::string& location) const {
  auto refuse = [&] { return fail(api::errors::INVALID_VALUE("device_config:location", location)); };
  if (location.empty() || location[0] != '/' || location.size() > 4096) return refuse();
  for (unsigned char c : location)
    if (c < 0x20 || c == 0x7f) return refuse();
  for (std::size_t at = 0; at < location.size();) {  // components: none empty, none . or ..
    std::size_t end = location.find('/', at + 1);
    std::string_view part = std::string_view(location).substr(at + 1, (end == std::string::npos ? location.size() : end) - at - 1);
    if (part.empty() || part == "." || part == "..") return refuse();
    at = end == std::string::npos ? location.size() : end;
  }
  std::error_code ec;
  const std::string real = fs::weakly_canonical(location, ec).string();
  if (ec || real.empty()) return refuse();
  auto within = [&](const std::string& dir) { return real == dir || real.starts_with(dir + "/"); };
  for (const char* system : {"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
                             "/sbin", "/sys", "/usr", "/var/run", "/var/lib/dpkg", "/var/lib/apt"})
    if (within(system)) return refuse();
  if (std::count(real.begin(), real.end(), '/') < 2) return refuse();  // "/" and "/srv", "/home", "/tmp"...
  if (within(data_dir_real) && real != data_dir_real + "/sr/" + sr_uuid && real != data_dir_real + "/mnt/" + sr_uuid)
    return refuse();
  if (data_dir_real.starts_with(real + "/")) return refuse();
  return {};
}

std::optional<std::string> storage_repos::impl::sr_using(const storage::state& s, const std::string& sr_ref,
                                                        const std::string& dir) const {
  std::error_code ec;
  const std::string real = fs::weakly_canonical(dir, ec).string();
  std::optional<std::string> found;
  s.for_each(pbd_cls, [&](const std::string&, const storage::row& row) {
    const auto* p = static_cast<const api::pbd*>(row.record.get());
    if (p->host.opaque != host || p->SR.opaque == sr_ref) return true;
    const api::sr* other = s.get<api::sr>(p->SR.opaque);
    if (!other) return true;
    std::error_code ignored;
    if (fs::weakly_canonical(directory_for(other->type, other->uuid, p->device_config), ignored).string() == real)
      found = p->SR.opaque;
    return !found;
  });
  return found;
}

std::string storage_repos::impl::directory_for(const std::string& type, const std::string& uuid,
                                               const api::map<std::string, std::string>& device_config) const {
  if (const sm::sr_driver* drv = sm::find_driver(type)) return drv->directory(data_dir, uuid, device_config);
  // No RPC makes an SR of a type without a driver; one from elsewhere is read as a directory.
  return sm::location_or_default(data_dir, uuid, device_config);
}

api::status storage_repos::impl::attach(const std::string& sr_ref, const std::string& type, const std::string& uuid,
                                        const api::map<std::string, std::string>& device_config, bool make_missing) {
  const sm::sr_driver* d = sm::find_driver(type);
  if (!d) return fail(api::errors::SR_UNKNOWN_DRIVER(type));
  for (const auto& [key, what] : d->description().configuration)
    if (what.find("(required)") != std::string::npos && !device_config.count(key))
      return fail(api::errors::SR_BACKEND_FAILURE("1", "", "device_config has no " + key + " (" + what + ")"));
  // The uuid names a directory here (DIR/sr/<uuid>, DIR/mnt/<uuid>): only the grammar passes.
  if (!is_uuid(uuid)) return fail(api::errors::UUID_INVALID("SR", uuid));
  std::string dir = directory_for(type, uuid, device_config);
  if (auto st = check_location(uuid, dir); !st) return st;
  if (auto other = sr_using(*db.snapshot(), sr_ref, dir)) return fail(api::errors::LOCATION_NOT_UNIQUE(*other, dir));
  if (auto r = d->attach(dir, device_config, make_missing); !r) return fail(backend_failure(r.error()));
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return fail(api::errors::SR_BACKEND_FAILURE("2", "", "the SR's directory " + dir + " does not exist"));
  if (::access(dir.c_str(), d->writable() ? (R_OK | W_OK) : R_OK) != 0)
    return fail(api::errors::SR_BACKEND_FAILURE("13", "", "the SR's directory " + dir + " is not accessible"));
  return {};
}

void storage_repos::impl::detach(const std::string& type, const std::string& uuid,
                                 const api::map<std::string, std::string>& device_config) {
  if (const sm::sr_driver* drv = sm::find_driver(type)) drv->detach(directory_for(type, uuid, device_config));
}

std::string storage_repos::impl::pbd_here(const storage::state& s, const std::string& sr) const {
  for (const auto& r : s.refs_where<api::pbd>("SR", sr))
    if (s.get<api::pbd>(r)->host.opaque == host) return r;
  return {};
}

api::api_result<std::string> storage_repos::impl::directory(const storage::state& s, const std::string& sr,
                                                            bool writing) const {
  const api::sr* rec = s.get<api::sr>(sr);
  if (!rec) return fail(api::errors::HANDLE_INVALID("SR", sr));
  // An ISO library is read-only: nothing is created in it (imports, copies, suspend images).
  if (const sm::sr_driver* drv = sm::find_driver(rec->type); writing && (!drv || !drv->writable()))
    return fail(api::errors::SR_OPERATION_NOT_SUPPORTED(sr));
  std::string pbd = pbd_here(s, sr);
  if (pbd.empty()) return fail(api::errors::SR_HAS_NO_PBDS(sr));
  const api::pbd* p = s.get<api::pbd>(pbd);
  if (!p->currently_attached) return fail(api::errors::SR_NOT_ATTACHED(sr));
  return directory_for(rec->type, rec->uuid, p->device_config);
}

std::set<std::string> storage_repos::impl::busy_locations(const storage::state& s, const std::string& sr) const {
  std::set<std::string> busy;
  for (const auto& v : s.refs_where<api::vdi>("SR", sr)) {
    const api::vdi* vdi = s.get<api::vdi>(v);
    for (const auto& vbd_ref : vdi->VBDs)
      if (const api::vbd* b = s.get<api::vbd>(vbd_ref.opaque); b && b->currently_attached) busy.insert(vdi->location);
  }
  return busy;
}

void storage_repos::impl::refresh_sizes(const std::string& sr) {
  auto s = db.snapshot();
  const api::sr* rec = s->get<api::sr>(sr);
  if (!rec) return;
  auto dir = directory(*s, sr);
  if (!dir) return;
  api::sr after = *rec;
  struct statvfs st {};
  if (::statvfs(dir->c_str(), &st) == 0) after.physical_size = static_cast<std::int64_t>(st.f_blocks) * st.f_frsize;
  std::int64_t used = 0, allocated = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(*dir, ec))
    if (e.is_regular_file(ec)) used += sm::allocated_bytes(e.path().string());
  for (const auto& v : s->refs_where<api::vdi>("SR", sr)) allocated += s->get<api::vdi>(v)->virtual_size;
  after.physical_utilisation = used;
  after.virtual_allocation = allocated;
  if (after == *rec) return;
  auto t = db.begin();
  t.update(sr, *rec, after);
  (void)db.commit(std::move(t));
}

api::vdi storage_repos::impl::new_vdi_record(api::vdi v, const std::string& sr, const std::string& uuid,
                                             const std::string& location) const {
  v.uuid = uuid;
  v.SR.opaque = sr;
  v.location = location;
  v.managed = true;
  v.missing = false;
  v.sm_config = {{"image-format", "qcow2"}};
  return v;
}

storage_repos::storage_repos(storage::database& db, host_actors& actors, clock& clk, std::string host,
                             std::string data_dir)
    : impl_(std::make_shared<impl>(db, actors, clk, std::move(host), std::move(data_dir))) {}
storage_repos::~storage_repos() = default;

api::status storage_repos::start() {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  auto t = d.db.begin();
  // The SM objects: one per driver, made once.
  const std::size_t sm_cls = schema::get().class_of<api::sm>();
  std::set<std::string> known;
  s->for_each(sm_cls, [&](const std::string&, const storage::row& row) {
    known.insert(static_cast<const api::sm*>(row.record.get())->type);
    return true;
  });
  for (const sm::sr_driver* driver : sm::all_drivers()) {
    const sm::sm_description& drv = driver->description();
    if (known.count(drv.type)) continue;
    api::sm rec;
    rec.uuid = d.db.ids().uuid();
    rec.name_label = drv.name;
    rec.name_description = drv.description;
    rec.type = drv.type;
    rec.vendor = "xapid";
    rec.copyright = "xapid";
    rec.version = "1.0";
    rec.required_api_version = "1.0";
    rec.configuration = drv.configuration;
    rec.capabilities = drv.capabilities;
    for (const auto& c : drv.capabilities) rec.features[c] = 1;
    rec.driver_filename = "xapid:" + drv.type;
    t.create(rec);
  }
  if (!t.empty()) {
    if (auto r = d.db.commit(std::move(t)); !r) return fail(std::move(r).error());
  }

  // One operation at a time per SR and per VDI; what they allow follows the driver and state.
  d.actors.add_rules(d.sr_cls, one_at_a_time<api::sr>([](const api::sr& sr) {
    using op = api::storage_operations;
    std::vector<op> ops{op::scan,   op::destroy,       op::forget,     op::plug,       op::unplug,
                        op::update, op::vdi_introduce, op::pbd_create, op::pbd_destroy};
    const sm::sr_driver* drv = sm::find_driver(sr.type);
    if (drv && drv->description().makes_vdis)
      ops.insert(ops.end(), {op::vdi_create, op::vdi_destroy, op::vdi_resize, op::vdi_clone, op::vdi_snapshot});
    return ops;
  }));
  d.actors.add_rules(d.vdi_cls, one_at_a_time<api::vdi>([](const api::vdi& v) {
    using op = api::vdi_operations;
    std::vector<op> ops{op::forget, op::update, op::copy, op::generate_config};
    if (!v.read_only && v.managed) ops.insert(ops.end(), {op::clone, op::snapshot, op::resize, op::resize_online, op::destroy});
    return ops;
  }));
  for (std::size_t cls : {d.sr_cls, d.vdi_cls})
    if (auto st = d.actors.reset_operations(cls, d.host); !st) return st;

  // This host's plugged PBDs are attached again (an nfs SR is mounted again after a reboot).
  s = d.db.snapshot();
  std::vector<std::string> failed;
  s->for_each(d.pbd_cls, [&](const std::string& ref, const storage::row& row) {
    const auto* p = static_cast<const api::pbd*>(row.record.get());
    const api::sr* sr = s->get<api::sr>(p->SR.opaque);
    if (p->host.opaque != d.host || !p->currently_attached || !sr) return true;
    if (auto st = d.attach(p->SR.opaque, sr->type, sr->uuid, p->device_config, false); !st) {
      spdlog::warn("sr.attach.failed sr={} reason=\"{}\"", sr->uuid, st.error().description().back());
      failed.push_back(ref);
    }
    return true;
  });
  // Staging files of transfers a previous run did not finish (an export's raw view, an
  // import's raw disks) are of no use to anyone now, nor are images made for a transaction that
  // never committed (a crash while provisioning): a scan would adopt them as the user's disks.
  s->for_each(d.sr_cls, [&](const std::string& sr, const storage::row&) {
    if (auto dir = d.directory(*s, sr)) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(*dir, ec)) {
        std::string name = e.path().filename().string();
        if (name.rfind(".import-", 0) == 0 || name.rfind(".export-", 0) == 0) fs::remove(e.path(), ec);
      }
      std::set<std::string> recorded;
      for (const auto& v : s->refs_where<api::vdi>("SR", sr)) recorded.insert(s->get<api::vdi>(v)->location);
      sm::image_dir images(*dir);
      for (const auto& image : images.recover_pending(recorded))
        spdlog::warn("sr.image.uncommitted_removed sr={} image={}", s->get<api::sr>(sr)->uuid, image);
      images.collect(d.busy_locations(*s, sr));
    }
    return true;
  });
  if (!failed.empty()) {
    auto t2 = d.db.begin();
    for (const auto& ref : failed) {
      const api::pbd* p = s->get<api::pbd>(ref);
      api::pbd after = *p;
      after.currently_attached = false;
      t2.update(ref, *p, after);
    }
    if (auto r = d.db.commit(std::move(t2)); !r) return fail(std::move(r).error());
  }
  return {};
}

api::api_result<std::string> storage_repos::directory(const storage::state& s, const std::string& sr, bool writing) const {
  return impl_->directory(s, sr, writing);
}

api::api_result<std::string> storage_repos::vdi_path(const storage::state& s, const std::string& vdi) const {
  const api::vdi* v = s.get<api::vdi>(vdi);
  if (!v) return fail(api::errors::HANDLE_INVALID("VDI", vdi));
  auto dir = impl_->directory(s, v->SR.opaque);
  if (!dir) return fail(dir.error());
  return *dir + "/" + v->location;
}

void storage_repos::refresh_sizes(const std::string& sr) { impl_->refresh_sizes(sr); }

}  // namespace xapid::actors
