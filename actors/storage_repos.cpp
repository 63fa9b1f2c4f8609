#include "actors/storage_repos.hpp"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <mutex>
#include <set>

#include <spdlog/spdlog.h>

#include "sm/image_dir.hpp"
#include "common/ids.hpp"
#include "sm/images.hpp"

namespace xapid::actors {
namespace {

namespace fs = std::filesystem;
using storage::schema;
const std::string null_ref(api::null_ref_text);

api::api_error backend_failure(const sm::tool_failure& f) {
  return api::errors::SR_BACKEND_FAILURE(std::to_string(f.status), f.out, f.err);
}


const sr_driver* driver_of(const std::string& type) {
  for (const auto& d : sr_drivers())
    if (d.type == type) return &d;
  return nullptr;
}

// Images an SR scan takes for VDIs: what qemu-img reads, and ISOs.
bool is_image_name(const std::string& name, bool iso) {
  auto ends = [&](const char* s) {
    std::string suffix(s);
    return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return iso ? ends(".iso") : (ends(".qcow2") || ends(".img") || ends(".raw") || ends(".vhd"));
}

}  // namespace

const std::vector<sr_driver>& sr_drivers() {
  static const std::vector<sr_driver> drivers = {
      {"ext", "Local storage", "Disk images (qcow2) in a directory of the host's own disk",
       {"SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_CLONE", "VDI_SNAPSHOT",
        "VDI_RESIZE", "VDI_RESIZE_ONLINE", "VDI_INTRODUCE", "VDI_UPDATE", "VDI_GENERATE_CONFIG"},
       {{"location", "the directory (default: one under the data dir)"}}, true},
      {"file", "File-based storage", "Disk images (qcow2) in a given directory; shared when every host sees it",
       {"SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_CLONE", "VDI_SNAPSHOT",
        "VDI_RESIZE", "VDI_RESIZE_ONLINE", "VDI_INTRODUCE", "VDI_UPDATE", "VDI_GENERATE_CONFIG"},
       {{"location", "the directory of the images (required)"}}, true},
      {"nfs", "NFS storage", "Disk images (qcow2) on an NFS export, mounted by each host",
       {"SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_CLONE", "VDI_SNAPSHOT",
        "VDI_RESIZE", "VDI_RESIZE_ONLINE", "VDI_INTRODUCE", "VDI_UPDATE", "VDI_GENERATE_CONFIG"},
       {{"server", "the NFS server (required)"}, {"serverpath", "the exported path (required)"},
        {"nfsversion", "3 or 4 (default: what mount chooses)"}},
       true},
      {"iso", "ISO library", "ISO images in a directory: read-only VDIs, found by scan",
       {"SR_PROBE", "SR_UPDATE", "VDI_ATTACH", "VDI_DETACH", "VDI_INTRODUCE", "VDI_UPDATE"},
       {{"location", "the directory of the ISO images (required)"}}, false},
  };
  return drivers;
}

struct storage_repos::impl {
  impl(storage::database& db_, host_actors& actors_, clock& clk_, std::string host_, std::string data_dir_)
      : db(db_), actors(actors_), clk(clk_), host(std::move(host_)), data_dir(std::move(data_dir_)) {}
  storage::database& db;
  host_actors& actors;
  clock& clk;
  std::string host;
  std::string data_dir;
  std::string data_dir_real = real_path(data_dir);
  static std::string real_path(const std::string& p) {
    std::error_code ec;
    auto r = fs::weakly_canonical(p, ec);
    return ec ? p : r.string();
  }
  const std::size_t sr_cls = schema::get().class_of<api::sr>();
  const std::size_t vdi_cls = schema::get().class_of<api::vdi>();
  const std::size_t pbd_cls = schema::get().class_of<api::pbd>();
  std::mutex locks_mu;
  std::map<std::string, std::shared_ptr<std::mutex>> dir_locks;  // by SR ref

  api::datetime now() const { return api::datetime{clk.now_ms() / 1000}; }

  std::shared_ptr<std::mutex> lock_of(const std::string& sr) {
    std::lock_guard lock(locks_mu);
    auto& m = dir_locks[sr];
    if (!m) m = std::make_shared<std::mutex>();
    return m;
  }

  api::api_result<wire::value> commit(storage::transaction t) {
    auto r = db.commit(std::move(t));
    if (!r) return fail(std::move(r).error());
    return wire::value("");
  }

  // Where an SR's images may be. A client names the directory (device_config:location) and
  // xapid, as root, writes and deletes images in it; so it must be an absolute path without
  // `.` or `..` whose real path (symlinks followed) is not /, not a system directory nor in one,
  // not a top-level directory itself, not the data dir nor above it, and in the data dir only
  // DIR/sr/<the SR's uuid> (the default) or DIR/mnt/<uuid> (an nfs mount point).
  api::status check_location(const std::string& sr_uuid, const std::string& location) const {
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

  // The real path of the directory another SR of this host already uses there, if any: two SRs
  // never share a directory (each would scan, collect and delete the other's images).
  std::optional<std::string> sr_using(const storage::state& s, const std::string& sr_ref, const std::string& dir) const {
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

  // The directory a driver uses for SR `uuid` given its device_config.
  std::string directory_for(const std::string& type, const std::string& uuid,
                            const api::map<std::string, std::string>& device_config) const {
    if (type == "nfs") return data_dir + "/mnt/" + uuid;
    auto it = device_config.find("location");
    if (it != device_config.end() && !it->second.empty()) return it->second;
    return data_dir + "/sr/" + uuid;  // ext without a location
  }

  // Makes the SR's directory reachable on this host: checks it, creates ext's, mounts nfs.
  api::status attach(const std::string& sr_ref, const std::string& type, const std::string& uuid,
                     const api::map<std::string, std::string>& device_config, bool creating) {
    const sr_driver* d = driver_of(type);
    if (!d) return fail(api::errors::SR_UNKNOWN_DRIVER(type));
    for (const auto& [key, what] : d->configuration)
      if (what.find("(required)") != std::string::npos && !device_config.count(key))
        return fail(api::errors::SR_BACKEND_FAILURE("1", "", "device_config has no " + key + " (" + what + ")"));
    // The uuid names a directory here (DIR/sr/<uuid>, DIR/mnt/<uuid>): only the grammar passes.
    if (!is_uuid(uuid)) return fail(api::errors::UUID_INVALID("SR", uuid));
    std::string dir = directory_for(type, uuid, device_config);
    if (auto st = check_location(uuid, dir); !st) return st;
    if (auto other = sr_using(*db.snapshot(), sr_ref, dir)) return fail(api::errors::LOCATION_NOT_UNIQUE(*other, dir));
    std::error_code ec;
    if (type == "ext" && creating) fs::create_directories(dir, ec);
    if (type == "nfs") {
      fs::create_directories(dir, ec);
      if (!is_mounted(dir)) {
        std::string options = "soft,timeo=50,retrans=1,retry=0";
        if (auto v = device_config.find("nfsversion"); v != device_config.end()) options += ",vers=" + v->second;
        auto r = sm::run_tool({"timeout", "30", "mount", "-t", "nfs", "-o", options,
                               device_config.at("server") + ":" + device_config.at("serverpath"), dir});
        if (!r) {
          fs::remove(dir, ec);
          return fail(backend_failure(r.error()));
        }
      }
    }
    if (!fs::is_directory(dir, ec))
      return fail(api::errors::SR_BACKEND_FAILURE("2", "", "the SR's directory " + dir + " does not exist"));
    if (::access(dir.c_str(), type == "iso" ? R_OK : (R_OK | W_OK)) != 0)
      return fail(api::errors::SR_BACKEND_FAILURE("13", "", "the SR's directory " + dir + " is not accessible"));
    return {};
  }

  static bool is_mounted(const std::string& dir) {
    std::error_code ec;
    auto canonical = fs::weakly_canonical(dir, ec).string();
    FILE* f = std::fopen("/proc/self/mounts", "r");
    if (!f) return false;
    char line[4096];
    bool found = false;
    while (std::fgets(line, sizeof line, f)) {
      char src[2048], target[2048];
      if (std::sscanf(line, "%2047s %2047s", src, target) == 2 && canonical == target) found = true;
    }
    std::fclose(f);
    return found;
  }

  void detach(const std::string& type, const std::string& uuid, const api::map<std::string, std::string>& device_config) {
    if (type != "nfs") return;
    std::string dir = directory_for(type, uuid, device_config);
    if (is_mounted(dir)) (void)sm::run_tool({"umount", dir});
    std::error_code ec;
    fs::remove(dir, ec);
  }

  // This host's PBD of the SR, or "".
  std::string pbd_here(const storage::state& s, const std::string& sr) const {
    for (const auto& r : s.refs_where<api::pbd>("SR", sr))
      if (s.get<api::pbd>(r)->host.opaque == host) return r;
    return {};
  }

  api::api_result<std::string> directory(const storage::state& s, const std::string& sr, bool writing = false) const {
    const api::sr* rec = s.get<api::sr>(sr);
    if (!rec) return fail(api::errors::HANDLE_INVALID("SR", sr));
    // An ISO library is read-only: nothing is created in it (imports, copies, suspend images).
    if (const sr_driver* drv = driver_of(rec->type); writing && (!drv || !drv->makes_vdis))
      return fail(api::errors::SR_OPERATION_NOT_SUPPORTED(sr));
    std::string pbd = pbd_here(s, sr);
    if (pbd.empty()) return fail(api::errors::SR_HAS_NO_PBDS(sr));
    const api::pbd* p = s.get<api::pbd>(pbd);
    if (!p->currently_attached) return fail(api::errors::SR_NOT_ATTACHED(sr));
    return directory_for(rec->type, rec->uuid, p->device_config);
  }

  // VDIs attached to running guests: their images are not rewritten by collection.
  std::set<std::string> busy_locations(const storage::state& s, const std::string& sr) const {
    std::set<std::string> busy;
    for (const auto& v : s.refs_where<api::vdi>("SR", sr)) {
      const api::vdi* vdi = s.get<api::vdi>(v);
      for (const auto& vbd_ref : vdi->VBDs)
        if (const api::vbd* b = s.get<api::vbd>(vbd_ref.opaque); b && b->currently_attached) busy.insert(vdi->location);
    }
    return busy;
  }

  void refresh_sizes(const std::string& sr) {
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

  // Runs `work` as an operation of the object's actor.
  api::api_result<wire::value> run(std::size_t cls, const std::string& ref, const char* op, const std::string& task,
                                   std::function<api::api_result<wire::value>()> work) {
    return actors.run(cls, ref, op, task.empty() ? db.ids().opaque_ref() : task, std::move(work));
  }

  api::vdi new_vdi_record(const std::string& sr, const std::string& uuid, const std::string& location) const {
    api::vdi v;
    v.uuid = uuid;
    v.SR.opaque = sr;
    v.location = location;
    v.managed = true;
    v.sm_config = {{"image-format", "qcow2"}};
    return v;
  }

  // Reads an image's sizes into its record.
  static void sizes_from(const sm::image_info& info, api::vdi& v) {
    v.virtual_size = info.virtual_size;
    v.physical_utilisation = info.actual_size;
  }
};

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
  for (const auto& drv : sr_drivers()) {
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
    const sr_driver* drv = driver_of(sr.type);
    if (drv && drv->makes_vdis)
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

// --- SRs ---

storage_repos::ref_result storage_repos::sr_create(const std::string& host, api::map<std::string, std::string> device_config,
                                                   std::int64_t, const std::string& name_label,
                                                   const std::string& name_description, const std::string& type,
                                                   const std::string& content_type, bool shared,
                                                   api::map<std::string, std::string> sm_config) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  if (!s->get<api::host>(host)) return fail(api::errors::HANDLE_INVALID("host", host));
  if (host != d.host) return fail(api::errors::HOST_OFFLINE(host));
  if (!driver_of(type)) return fail(api::errors::SR_UNKNOWN_DRIVER(type));
  const std::string uuid = d.db.ids().uuid();
  if (type == "ext" && !device_config.count("location")) device_config["location"] = d.data_dir + "/sr/" + uuid;
  if (auto st = d.attach({}, type, uuid, device_config, true); !st) return fail(st.error());
  api::sr sr;
  sr.uuid = uuid;
  sr.name_label = name_label;
  sr.name_description = name_description;
  sr.type = type;
  sr.content_type = content_type.empty() && type == "iso" ? "iso" : content_type;
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
  if (!driver_of(type)) return fail(api::errors::SR_UNKNOWN_DRIVER(type));
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

storage_repos::void_result storage_repos::sr_destroy(const std::string& sr, const std::string& task) {
  auto d = impl_;
  auto r = d->run(d->sr_cls, sr, "destroy", task, [d, sr]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::sr* rec = s->get<api::sr>(sr);
    auto dir = d->directory(*s, sr);
    if (!dir) return fail(dir.error());
    // Its disks go first (VDI.destroy), so that nothing is lost by accident.
    if (!s->refs_where<api::vdi>("SR", sr).empty()) return fail(api::errors::SR_NOT_EMPTY());
    std::string pbd = d->pbd_here(*s, sr);
    const api::pbd* p = s->get<api::pbd>(pbd);
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
    if (auto c = d->commit(std::move(t)); !c) return c;
    // Only a directory xapid made (DIR/sr/<uuid>) is removed; any directory an operator named
    // (file, iso, or an ext SR given a location) stays, empty of VDIs as it is now.
    std::error_code ec;
    if (*dir == d->data_dir + "/sr/" + rec->uuid) fs::remove_all(*dir, ec);
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
    const bool iso = rec->type == "iso";
    sm::image_dir images(*dir);
    api::map<std::string, std::string> by_location;  // location -> VDI ref
    for (const auto& v : s->refs_where<api::vdi>("SR", sr)) by_location[s->get<api::vdi>(v)->location] = v;
    auto t = d->db.begin();
    std::set<std::string> present;
    for (const auto& name : images.visible_files()) {
      present.insert(name);
      auto known = by_location.find(name);
      if (!is_image_name(name, iso) && known == by_location.end()) continue;
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
        api::vdi found = d->new_vdi_record(sr, d->db.ids().uuid(), name);
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
  const sr_driver* drv = driver_of(type);
  if (!drv) return fail(api::errors::SR_UNKNOWN_DRIVER(type));
  if (type == "nfs") {
    for (const char* key : {"server", "serverpath"})
      if (!device_config.count(key))
        return fail(api::errors::SR_BACKEND_FAILURE("1", "", std::string("device_config has no ") + key));
    auto r = sm::run_tool({"timeout", "30", "showmount", "-e", device_config.at("server")});
    if (!r) return fail(backend_failure(r.error()));
    return "<?xml version=\"1.0\" ?><nfs-exports>" + *r + "</nfs-exports>";
  }
  auto location = device_config.find("location");
  if (location == device_config.end())
    return fail(api::errors::SR_BACKEND_FAILURE("1", "", "device_config has no location"));
  std::error_code ec;
  if (!fs::is_directory(location->second, ec))
    return fail(api::errors::SR_BACKEND_FAILURE("2", "", "no directory " + location->second));
  // The SRs known at that location (a directory is one SR).
  std::string xml = "<?xml version=\"1.0\" ?><SRlist>";
  d.db.snapshot()->for_each(d.pbd_cls, [&](const std::string&, const storage::row& row) {
    const auto* p = static_cast<const api::pbd*>(row.record.get());
    auto it = p->device_config.find("location");
    if (it != p->device_config.end() && it->second == location->second)
      if (const api::sr* sr = d.db.snapshot()->get<api::sr>(p->SR.opaque))
        xml += "<SR><UUID>" + sr->uuid + "</UUID></SR>";
    return true;
  });
  return xml + "</SRlist>";
}

// --- PBDs ---

storage_repos::ref_result storage_repos::pbd_create(const std::string& host, const std::string& sr,
                                                    api::map<std::string, std::string> device_config,
                                                    api::map<std::string, std::string> other_config) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  if (!s->get<api::host>(host)) return fail(api::errors::HANDLE_INVALID("host", host));
  if (!s->get<api::sr>(sr)) return fail(api::errors::HANDLE_INVALID("SR", sr));
  for (const auto& p : s->refs_where<api::pbd>("SR", sr))
    if (s->get<api::pbd>(p)->host.opaque == host) return fail(api::errors::PBD_EXISTS(sr, host, p));
  api::pbd pbd;
  pbd.uuid = d.db.ids().uuid();
  pbd.host.opaque = host;
  pbd.SR.opaque = sr;
  pbd.device_config = std::move(device_config);
  pbd.other_config = std::move(other_config);
  auto t = d.db.begin();
  std::string ref = t.create(pbd);
  if (auto r = d.commit(std::move(t)); !r) return fail(r.error());
  return ref;
}

storage_repos::void_result storage_repos::pbd_plug(const std::string& pbd) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  const api::pbd* p = s->get<api::pbd>(pbd);
  if (!p) return fail(api::errors::HANDLE_INVALID("PBD", pbd));
  if (p->currently_attached) return ok_v;  // xapi: plugging a plugged PBD does nothing
  if (p->host.opaque != d.host) return fail(api::errors::HOST_OFFLINE(p->host.opaque));
  const api::sr* sr = s->get<api::sr>(p->SR.opaque);
  if (auto st = d.attach(p->SR.opaque, sr->type, sr->uuid, p->device_config, sr->type == "ext"); !st) return st;
  api::pbd after = *p;
  after.currently_attached = true;
  auto t = d.db.begin();
  t.update(pbd, *p, after);
  if (auto r = d.commit(std::move(t)); !r) return fail(r.error());
  d.refresh_sizes(p->SR.opaque);
  return ok_v;
}

storage_repos::void_result storage_repos::pbd_unplug(const std::string& pbd) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  const api::pbd* p = s->get<api::pbd>(pbd);
  if (!p) return fail(api::errors::HANDLE_INVALID("PBD", pbd));
  if (!p->currently_attached) return ok_v;
  const api::sr* sr = s->get<api::sr>(p->SR.opaque);
  // A disk of a running guest keeps its SR plugged.
  for (const auto& v : s->refs_where<api::vdi>("SR", p->SR.opaque))
    for (const auto& b : s->get<api::vdi>(v)->VBDs)
      if (const api::vbd* vbd = s->get<api::vbd>(b.opaque); vbd && vbd->currently_attached)
        return fail(api::errors::VDI_IN_USE(v, "unplug"));
  api::pbd after = *p;
  after.currently_attached = false;
  auto t = d.db.begin();
  t.update(pbd, *p, after);
  if (auto r = d.commit(std::move(t)); !r) return fail(r.error());
  d.detach(sr->type, sr->uuid, p->device_config);
  return ok_v;
}

storage_repos::void_result storage_repos::pbd_destroy(const std::string& pbd) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  const api::pbd* p = s->get<api::pbd>(pbd);
  if (!p) return fail(api::errors::HANDLE_INVALID("PBD", pbd));
  if (p->currently_attached) return fail(api::errors::OPERATION_NOT_ALLOWED("the PBD is plugged: unplug it first"));
  auto t = d.db.begin();
  t.destroy(d.pbd_cls, pbd);
  if (auto r = d.commit(std::move(t)); !r) return fail(r.error());
  return ok_v;
}

// --- VDIs ---

storage_repos::ref_result storage_repos::add_new_vdi(storage::transaction& t, const storage::state& s,
                                                     const std::string& sr, std::int64_t size,
                                                     const std::string& name_label, api::vdi_type type,
                                                     api::map<std::string, std::string> other_config,
                                                     std::vector<std::string>& made) {
  auto& d = *impl_;
  const api::sr* rec = s.get<api::sr>(sr);
  if (!rec) return fail(api::errors::HANDLE_INVALID("SR", sr));
  const sr_driver* drv = driver_of(rec->type);
  if (!drv || !drv->makes_vdis) return fail(api::errors::SR_OPERATION_NOT_SUPPORTED(sr));
  if (size < 0) return fail(api::errors::INVALID_VALUE("virtual_size", std::to_string(size)));
  auto dir = d.directory(s, sr);
  if (!dir) return fail(dir.error());
  auto lock = d.lock_of(sr);
  std::lock_guard guard(*lock);
  const std::string uuid = d.db.ids().uuid();
  sm::image_dir images(*dir);
  sm::mark_pending(images.path_of(uuid + ".qcow2"));  // until the caller's commit: see keep()
  made.push_back(images.path_of(uuid + ".qcow2"));
  auto location = images.create(uuid, size);
  if (!location) return fail(backend_failure(location.error()));
  api::vdi v = d.new_vdi_record(sr, uuid, *location);
  v.name_label = name_label;
  v.type = type;
  v.other_config = std::move(other_config);
  if (auto info = images.info(*location)) impl::sizes_from(*info, v);
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
  const sr_driver* drv = driver_of(s.get<api::sr>(target_sr)->type);
  if (!drv || !drv->makes_vdis) return fail(api::errors::SR_OPERATION_NOT_SUPPORTED(target_sr));
  const std::string uuid = d.db.ids().uuid();
  sm::image_dir from_images(*src_dir), to_images(*dst_dir);
  sm::tool_result<std::string> location = fail(sm::tool_failure{});
  // The image's name is known before it exists: marked pending until the caller's commit.
  const std::string new_name = uuid + (src->type == api::vdi_type::suspend ? ".suspend" : ".qcow2");
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

void storage_repos::refresh_sizes(const std::string& sr) { impl_->refresh_sizes(sr); }

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
    auto ref = self->add_new_vdi(t, *s, sr, virtual_size, name_label, type, std::move(other_config), made);
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
    if (const sr_driver* drv = sr ? driver_of(sr->type) : nullptr; !drv || !drv->makes_vdis)
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
