// VM import: an archive's ova.xml read (XenServer's form, or the seed's legacy one), the disks
// it brings given raw files beside the target SR, and the records made from it in one go.
#include "actors/vm_import.hpp"

#include <sys/statvfs.h>

#include <algorithm>

#include <pugixml.hpp>

#include "actors/vm_lifecycle.hpp"
#include "actors/vm_rules.hpp"
#include "proto/wire/xmlrpc.hpp"

namespace xapid::actors {
namespace {

using storage::schema;
const std::string null_ref(api::null_ref_text);

// --- reading ova.xml ---

// XenServer's form: an XML-RPC struct {version, objects}, read as the parameter of a call.
api::api_result<xenserver_metadata> read_xenserver(const std::string& xml) {
  std::string call = "<?xml version=\"1.0\"?><methodCall><methodName>ova</methodName><params><param>" + xml +
                     "</param></params></methodCall>";
  auto start = call.find("<?xml", 10);  // a declaration inside ova.xml would break the wrapper
  if (start != std::string::npos) {
    auto end = call.find("?>", start);
    call.erase(start, end - start + 2);
  }
  wire::limits lim;
  lim.max_body_bytes = 256u << 20;
  auto parsed = wire::xmlrpc::parse_call(call, lim);
  if (!parsed || parsed->params.empty() || !parsed->params[0].as_struct())
    return fail(api::errors::IMPORT_ERROR("ova.xml is not XenServer export metadata"));
  const wire::value* objects = nullptr;
  for (const auto& [k, v] : *parsed->params[0].as_struct())
    if (k == "objects") objects = &v;
  const auto* list = objects ? objects->as_array() : nullptr;
  if (!list) return fail(api::errors::IMPORT_ERROR("ova.xml lists no objects"));
  xenserver_metadata out;
  for (const auto& o : *list) {
    const wire::structure* st = o.as_struct();
    if (!st) continue;
    xva_object obj;
    for (const auto& [k, v] : *st) {
      if (k == "class" && v.as_string()) obj.cls = *v.as_string();
      if (k == "id" && v.as_string()) obj.id = *v.as_string();
      if (k == "snapshot") obj.snapshot = v;
    }
    if (!obj.cls.empty() && !obj.id.empty()) out.objects.push_back(std::move(obj));
  }
  return out;
}

// The seed's legacy form: <appliance><vm>...</vm><vdi .../>...</appliance>.
api::api_result<legacy_metadata> read_legacy(const std::string& xml) {
  pugi::xml_document doc;
  if (!doc.load_string(xml.c_str())) return fail(api::errors::IMPORT_ERROR("ova.xml is not well-formed XML"));
  pugi::xml_node appliance = doc.child("appliance"), vm = appliance.child("vm");
  if (!vm) return fail(api::errors::IMPORT_ERROR("ova.xml holds no <vm>"));
  auto trim = [](std::string t) {
    t.erase(0, t.find_first_not_of(" \t\r\n"));
    t.erase(t.find_last_not_of(" \t\r\n") + 1);
    return t;
  };
  legacy_metadata m;
  m.name_label = trim(vm.child_value("label"));
  m.name_description = trim(vm.child_value("shortdesc"));
  m.memory_bytes = vm.child("config").attribute("mem_set").as_llong(256 << 20);
  m.vcpus = std::max<long long>(1, vm.child("config").attribute("vcpus").as_llong(1));
  m.hvm = vm.child("hacks").attribute("is_hvm").as_bool(false);
  m.kernel_boot_cmdline = vm.child("hacks").attribute("kernel_boot_cmdline").as_string();
  for (pugi::xml_node b : vm.children("vbd"))
    m.vbds.push_back({b.attribute("vdi").as_string(), b.attribute("device").as_string(),
                      std::string(b.attribute("function").as_string()) == "root",
                      std::string(b.attribute("mode").as_string("w")) != "w"});
  for (pugi::xml_node v : appliance.children("vdi")) {
    std::string source = v.attribute("source").as_string();
    if (source.rfind("file://", 0) == 0) source = source.substr(7);
    m.disks.push_back({v.attribute("name").as_string(), v.attribute("size").as_llong(-1), std::move(source)});
  }
  return m;
}

// A record of class R from an exported snapshot: each field it has that this datamodel knows
// and can read; the others keep their defaults.
template <class R>
R record_from(const wire::value& snapshot) {
  R rec{};
  const std::size_t cls = schema::get().class_of<R>();
  const auto& ts = schema::get().table(cls);
  if (const wire::structure* st = snapshot.as_struct())
    for (const auto& [name, v] : *st)
      if (auto f = schema::get().field_index(cls, name)) (void)ts.ops->set_field(&rec, *f, v);
  return rec;
}

std::string field_of(const wire::value& snapshot, const std::string& name) {
  if (const wire::structure* st = snapshot.as_struct())
    for (const auto& [k, v] : *st)
      if (k == name && v.as_string()) return *v.as_string();
  return {};
}

// --- what an archive may ask of a host ---

api::status importable_disk(std::int64_t size, std::size_t disks_so_far) {
  if (disks_so_far >= sm::max_import_disks)
    return fail(api::errors::IMPORT_ERROR("the archive holds more than " + std::to_string(sm::max_import_disks) + " disks"));
  if (size < 0 || size > sm::max_import_disk_bytes)
    return fail(api::errors::IMPORT_ERROR("a disk of " + std::to_string(size) + " bytes: at most " +
                                          std::to_string(sm::max_import_disk_bytes) + " may be imported"));
  return ok_v;
}

// A VM whose vCPUs and memory a host could give it: the rules its settings keep.
api::status importable_vm(const api::vm& vm) {
  auto st = vm_rules::check_vcpus(vm);
  if (st) st = vm_rules::check_memory_order(vm);
  if (!st) return fail(api::errors::IMPORT_ERROR("the VM's settings cannot be: " + st.error().description().at(1) + " " +
                                                 st.error().description().at(2)));
  return ok_v;
}

}  // namespace

api::api_result<xva_metadata> read_xva_metadata(const std::string& ova_xml, bool metadata_only) {
  if (ova_xml.find("<appliance") != std::string::npos && !metadata_only) {
    auto m = read_legacy(ova_xml);
    if (!m) return fail(std::move(m).error());
    return xva_metadata(std::move(*m));
  }
  auto m = read_xenserver(ova_xml);
  if (!m) return fail(std::move(m).error());
  return xva_metadata(std::move(*m));
}

// --- the plan ---

import_disk* import_plan::disk_under(std::string_view source) {
  auto it = std::find_if(disks_.begin(), disks_.end(), [&](const import_disk& d) { return d.source == source; });
  return it == disks_.end() ? nullptr : &*it;
}

api::api_error import_plan::sr_full(const import_disk& disk) const {
  struct statvfs st {};
  std::int64_t available = ::statvfs(dir_.c_str(), &st) == 0 ? static_cast<std::int64_t>(st.f_bavail) * st.f_frsize : 0;
  return api::errors::SR_FULL(std::to_string(disk.size), std::to_string(available));
}

api::api_result<std::string> vm_import::target_sr(const std::string& sr_given) const {
  auto s = db_.snapshot();
  std::string sr = sr_given;
  if (sr.empty()) {
    if (const api::pool* pool = s->first<api::pool>()) sr = pool->default_SR.opaque;
    if (sr.empty() || sr == null_ref || !s->get<api::sr>(sr)) return fail(api::errors::DEFAULT_SR_NOT_FOUND(sr));
  }
  if (!s->get<api::sr>(sr)) return fail(api::errors::HANDLE_INVALID("SR", sr));
  if (auto dir = repos_.directory(*s, sr, true); !dir) return fail(dir.error());
  return sr;
}

api::api_result<import_plan> vm_import::plan(xva_metadata metadata, const std::string& sr, const import_options& how) {
  auto s = db_.snapshot();
  auto dir = repos_.directory(*s, sr, true);
  if (!dir) return fail(dir.error());
  const bool legacy = std::holds_alternative<legacy_metadata>(metadata);
  if (legacy && how.metadata_only) return fail(api::errors::IMPORT_ERROR("ova.xml is not XenServer export metadata"));
  import_plan plan(std::move(metadata), sr, *dir, how.restore);

  // The disks by id, in the order their VDIs are made. An id twice names one disk: the first
  // (XenServer's form) or the last (legacy) of them.
  std::map<std::string, import_disk> disks;
  auto receive = [&](const std::string& id, const std::string& source, std::int64_t size) -> api::status {
    if (auto st = importable_disk(size, disks.size()); !st) return st;
    auto raw = sm::disk_in::open(*dir + "/.import-" + db_.ids().uuid() + ".raw", size);
    if (!raw) return fail(api::errors::SR_BACKEND_FAILURE("28", "", raw.error().err));
    if (legacy) disks.erase(id);
    disks.emplace(id, import_disk{id, source, size, std::move(*raw)});
    return ok_v;
  };
  if (legacy) {
    for (const auto& d : std::get<legacy_metadata>(plan.metadata_).disks) {
      if (d.size < 0 || d.source.empty()) return fail(api::errors::IMPORT_ERROR("a <vdi> has no size or source"));
      if (auto st = receive(d.name, d.source, d.size); !st) return fail(st.error());
    }
  } else {
    for (const auto& o : std::get<xenserver_metadata>(plan.metadata_).objects) {
      if (o.cls != "VDI") continue;
      if (how.metadata_only) {
        auto found = s->ref_by_uuid(schema::get().class_of<api::vdi>(), field_of(o.snapshot, "uuid"));
        if (!found) return fail(api::errors::IMPORT_ERROR_ATTACHED_DISKS_NOT_FOUND());
        plan.existing_vdis_[o.id] = *found;
      } else if (auto st = receive(o.id, o.id, record_from<api::vdi>(o.snapshot).virtual_size); !st) {
        return fail(st.error());
      }
    }
  }
  for (auto& [id, disk] : disks) plan.disks_.push_back(std::move(disk));
  return plan;
}

// --- the records ---

api::api_result<std::string> vm_import::commit(import_plan& plan) {
  auto s = db_.snapshot();
  auto t = db_.begin();
  std::vector<std::string> made;
  auto vm = std::visit([&](const auto& m) { return add_records(t, *s, plan, m, made); }, plan.metadata_);
  if (vm)
    if (auto r = db_.commit(std::move(t)); !r) vm = fail(std::move(r).error());
  if (!vm) {
    repos_.drop(made);
    return vm;
  }
  repos_.keep(made);
  actors_.refresh(schema::get().class_of<api::vm>(), *vm);
  repos_.refresh_sizes(plan.sr_);
  return vm;
}

api::api_result<std::string> vm_import::add_disk(storage::transaction& t, const storage::state& s,
                                                 const import_plan& plan, import_disk& disk, api::vdi fields,
                                                 std::vector<std::string>& made) {
  return repos_.add_vdi_from_image(
      t, s, plan.sr_, std::move(fields), [&disk](const std::string& path) { return disk.data.finish_as_qcow2(path); },
      made);
}

std::string vm_import::add_metrics(storage::transaction& t) {
  api::vm_metrics m;
  m.uuid = db_.ids().uuid();
  m.install_time = api::datetime{clk_.now_ms() / 1000};
  return t.create(m);
}

api::api_result<std::string> vm_import::add_records(storage::transaction& t, const storage::state& s,
                                                    import_plan& plan, const xenserver_metadata& m,
                                                    std::vector<std::string>& made) {
  std::map<std::string, const xva_object*> by_id;
  for (const auto& o : m.objects) by_id[o.id] = &o;
  std::map<std::string, std::string> refs = plan.existing_vdis_;  // archive id -> new (or existing) ref
  for (auto& disk : plan.disks_) {
    auto v = storage::as_copy(record_from<api::vdi>(by_id[disk.id]->snapshot));
    // What pointed at objects of the exporting pool points nowhere here.
    v.snapshot_of.opaque = v.parent.opaque = null_ref;
    v.metadata_of_pool.opaque = null_ref;
    auto ref = add_disk(t, s, plan, disk, std::move(v), made);
    if (!ref) return ref;
    refs[disk.id] = *ref;
  }
  const std::size_t net_cls = schema::get().class_of<api::network>();
  for (const auto& o : m.objects) {
    if (o.cls == "network") {
      // An existing network of the same bridge or name takes the VM's VIFs; else a new one.
      std::string bridge = field_of(o.snapshot, "bridge"), label = field_of(o.snapshot, "name_label");
      s.for_each(net_cls, [&](const std::string& ref, const storage::row& row) {
        const auto* n = static_cast<const api::network*>(row.record.get());
        if ((!bridge.empty() && n->bridge == bridge) || n->name_label == label) {
          refs[o.id] = ref;
          return false;
        }
        return true;
      });
      if (!refs.count(o.id)) {
        auto n = storage::as_copy(record_from<api::network>(o.snapshot));
        n.uuid = db_.ids().uuid();
        refs[o.id] = t.create(n);
      }
    } else if (o.cls == "SR") {
      refs[o.id] = plan.sr_;
    }
  }
  std::string vm_ref;
  for (const auto& o : m.objects) {
    if (o.cls != "VM") continue;
    auto v = as_new_vm(record_from<api::vm>(o.snapshot));
    if (auto st = importable_vm(v); !st) return fail(st.error());
    v.uuid = db_.ids().uuid();
    v.affinity.opaque = v.suspend_SR.opaque = v.snapshot_of.opaque = v.parent.opaque = null_ref;
    v.protection_policy.opaque = v.appliance.opaque = null_ref;
    v.blobs = {};
    v.metrics.opaque = add_metrics(t);
    vm_ref = refs[o.id] = t.create(v);
    break;  // an XVA holds one VM
  }
  if (vm_ref.empty()) return fail(api::errors::IMPORT_ERROR("ova.xml holds no VM"));
  for (const auto& o : m.objects) {
    if (o.cls == "VBD") {
      auto b = storage::as_copy(record_from<api::vbd>(o.snapshot));
      std::string vdi_id = field_of(o.snapshot, "VDI");
      b.uuid = db_.ids().uuid();
      b.VM.opaque = vm_ref;
      b.VDI.opaque = refs.count(vdi_id) ? refs[vdi_id] : null_ref;
      if (b.VDI.opaque == null_ref) b.empty = true;  // a CD whose ISO stayed behind
      b.currently_attached = false;
      b.metrics.opaque = null_ref;
      t.create(b);
    } else if (o.cls == "VIF") {
      auto f = storage::as_copy(record_from<api::vif>(o.snapshot));
      std::string net_id = field_of(o.snapshot, "network");
      if (!refs.count(net_id)) continue;
      f.uuid = db_.ids().uuid();
      f.VM.opaque = vm_ref;
      f.network.opaque = refs[net_id];
      f.currently_attached = false;
      f.metrics.opaque = null_ref;
      if (!plan.restore_) {  // a restore keeps the MAC addresses; a copy gets its own
        f.MAC = db_.ids().mac();
        f.MAC_autogenerated = true;
      }
      t.create(f);
    }
  }
  return vm_ref;
}

api::api_result<std::string> vm_import::add_records(storage::transaction& t, const storage::state& s,
                                                    import_plan& plan, const legacy_metadata& m,
                                                    std::vector<std::string>& made) {
  std::map<std::string, std::string> vdi_refs;  // <vdi name> -> ref
  for (auto& disk : plan.disks_) {
    api::vdi fields;
    fields.name_label = disk.id;
    fields.type = api::vdi_type::system;
    auto ref = add_disk(t, s, plan, disk, std::move(fields), made);
    if (!ref) return ref;
    vdi_refs[disk.id] = *ref;
  }
  api::vm rec;
  rec.uuid = db_.ids().uuid();
  rec.name_label = m.name_label;
  rec.name_description = m.name_description;
  rec.memory_static_min = rec.memory_dynamic_min = rec.memory_dynamic_max = rec.memory_static_max = rec.memory_target =
      m.memory_bytes;
  rec.VCPUs_max = rec.VCPUs_at_startup = m.vcpus;
  if (m.hvm) {
    rec.HVM_boot_policy = "BIOS order";
    rec.HVM_boot_params = {{"order", "cd"}};
  } else {
    rec.PV_bootloader = "pygrub";
    rec.PV_args = m.kernel_boot_cmdline;
  }
  if (auto st = importable_vm(rec); !st) return fail(st.error());
  rec.actions_after_shutdown = api::on_normal_exit::destroy;
  rec.actions_after_reboot = api::on_normal_exit::restart;
  rec.actions_after_crash = api::on_crash_behaviour::restart;
  rec.power_state = api::vm_power_state::Halted;
  rec.user_version = 1;
  rec.domid = -1;
  rec.metrics.opaque = add_metrics(t);
  std::string vm_ref = t.create(rec);
  for (const auto& b : m.vbds) {
    auto it = vdi_refs.find(b.vdi);
    if (it == vdi_refs.end()) return fail(api::errors::IMPORT_ERROR_FAILED_TO_FIND_OBJECT(b.vdi));
    api::vbd vbd;
    vbd.uuid = db_.ids().uuid();
    vbd.VM.opaque = vm_ref;
    vbd.VDI.opaque = it->second;
    vbd.device = b.device;
    vbd.userdevice = b.device.empty() ? "0" : std::to_string(std::max(0, b.device.back() - 'a'));
    vbd.bootable = b.bootable;
    vbd.mode = b.read_only ? api::vbd_mode::RO : api::vbd_mode::RW;
    vbd.type = api::vbd_type::Disk;
    vbd.unpluggable = true;
    t.create(vbd);
  }
  return vm_ref;
}

}  // namespace xapid::actors
