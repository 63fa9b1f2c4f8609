// The VM lifecycle's shared steps: what the hypervisor is given, what the database records, the
// disks' claims; and the operation rules of VMs, VBDs and VIFs. The operations are in
// vm_power.cpp, vm_copies.cpp, vm_devices.cpp and vm_settings.cpp; what guests do on their own,
// and the restart, in vm_observer.cpp.
#include "actors/vm_lifecycle_impl.hpp"

#include <algorithm>
#include <set>

#include "sm/images.hpp"

namespace xapid::actors {
namespace {

using storage::schema;
using ps = api::vm_power_state;

}  // namespace

api::vm as_new_vm(api::vm v) {
  v = storage::as_copy(std::move(v));
  v.power_state = ps::Halted;
  v.resident_on.opaque = v.scheduled_to_be_resident_on.opaque = null_ref<api::host>();
  v.domid = -1;
  v.suspend_VDI.opaque = null_ref<api::vdi>();
  v.metrics.opaque = null_ref<api::vm_metrics>();
  v.guest_metrics.opaque = null_ref<api::vm_guest_metrics>();
  v.attached_PCIs = {};
  v.is_control_domain = false;
  return v;
}

// --- what the hypervisor is given ---

std::string vm_lifecycle::impl::disk_device(const api::vbd& vbd, bool hvm) {
  if (!vbd.device.empty()) return vbd.device;
  int n = std::atoi(vbd.userdevice.c_str());
  return std::string(hvm ? "hd" : "xvd") + static_cast<char>('a' + std::clamp(n, 0, 25));
}

api::api_result<xen::disk> vm_lifecycle::impl::disk_of(const storage::state& s, const api::vbd& vbd, bool hvm) const {
  xen::disk d;
  d.device = disk_device(vbd, hvm);
  d.cdrom = vbd.type == api::vbd_type::CD;
  d.read_only = vbd.mode == api::vbd_mode::RO;
  if (!vbd.empty && !vbd.VDI.is_null()) {
    auto path = vdi_path(s, vbd.VDI.opaque);
    if (!path) return fail(api::errors::VM_REQUIRES_VDI(vbd.VM.opaque, vbd.VDI.opaque));
    d.path = *path;
  }
  return d;
}

xen::nic vm_lifecycle::impl::nic_of(const storage::state& s, const api::vif& vif) const {
  xen::nic n;
  n.index = std::atoi(vif.device.c_str());
  n.mac = vif.MAC;
  if (const api::network* net = s.get<api::network>(vif.network.opaque)) n.bridge = net->bridge;
  return n;
}

api::api_result<xen::domain_config> vm_lifecycle::impl::config_of(const storage::state& s, const std::string& ref,
                                                                  const api::vm& vm) const {
  xen::domain_config c;
  c.uuid = vm.uuid;
  c.name = vm.name_label;
  c.hvm = !vm.HVM_boot_policy.empty();
  c.memory_max_bytes = vm.memory_static_max;
  c.memory_target_bytes = vm.memory_dynamic_max;
  c.vcpus_max = static_cast<int>(vm.VCPUs_max);
  c.vcpus = static_cast<int>(vm.VCPUs_at_startup);
  c.kernel = vm.PV_kernel;
  c.ramdisk = vm.PV_ramdisk;
  c.cmdline = vm.PV_args;
  c.bootloader = vm.PV_bootloader;
  if (auto it = vm.HVM_boot_params.find("order"); it != vm.HVM_boot_params.end()) c.boot_order = it->second;
  c.platform = {vm.platform.begin(), vm.platform.end()};
  for (const auto& vbd_ref : s.refs_where<api::vbd>("VM", ref)) {
    const api::vbd* vbd = s.get<api::vbd>(vbd_ref);
    auto d = disk_of(s, *vbd, c.hvm);
    if (!d) return fail(d.error());
    c.disks.push_back(std::move(*d));
  }
  for (const auto& vif_ref : s.refs_where<api::vif>("VM", ref))
    c.nics.push_back(nic_of(s, *s.get<api::vif>(vif_ref)));
  return c;
}

// --- what the database records ---

void vm_lifecycle::impl::record_live(storage::transaction& t, const storage::state& s, const std::string& ref,
                                     const api::vm& before, int domid, ps power, bool fresh_boot, const std::string& on) {
  const std::string& where = on.empty() ? host : on;
  api::vm after = before;
  after.power_state = power;
  after.domid = domid;
  after.resident_on.opaque = where;
  after.scheduled_to_be_resident_on.opaque = null_ref<api::host>();
  after.suspend_VDI.opaque = null_ref<api::vdi>();
  after.memory_target = before.memory_dynamic_max;
  // A protected VM that starts (or resumes) is one HA keeps running from now on (xapi).
  if (before.power_state == ps::Halted || before.power_state == ps::Suspended)
    after.ha_always_run = before.ha_restart_priority == "restart";
  api::vm_metrics m;
  const api::vm_metrics* old = s.get<api::vm_metrics>(before.metrics.opaque);
  if (old) m = *old;
  m.memory_actual = before.memory_dynamic_max;
  m.VCPUs_number = before.VCPUs_at_startup;
  m.state = {power == ps::Paused ? "paused" : "running"};
  if (fresh_boot) m.start_time = now();
  m.last_updated = now();
  if (old) {
    t.update(before.metrics.opaque, *old, m);
  } else {
    m.uuid = db.ids().uuid();
    after.metrics.opaque = t.create(m);
  }
  t.update(ref, before, after);
  set_devices_attached(t, s, ref, true);
  // A running VM has a graphical console, as xapi's do: RFB through its host's /console.
  const api::host* h = s.get<api::host>(where);
  auto location = [&](const std::string& uuid) {
    return "https://" + (h ? h->address : std::string("localhost")) + "/console?uuid=" + uuid;
  };
  const auto consoles = s.refs_where<api::console>("VM", ref);
  if (consoles.empty()) {
    api::console c;
    c.uuid = db.ids().uuid();
    c.protocol = api::console_protocol::rfb;
    c.VM.opaque = ref;
    c.port = 5900 + domid;
    c.location = location(c.uuid);
    t.create(c);
  }
  for (const auto& c : consoles)  // a VM that moved: its console is on its new host
    if (const api::console* old_console = s.get<api::console>(c); old_console && old_console->location != location(old_console->uuid)) {
      api::console moved = *old_console;
      moved.location = location(moved.uuid);
      moved.port = 5900 + domid;
      t.update(c, *old_console, moved);
    }
}

void vm_lifecycle::impl::record_stopped(storage::transaction& t, const storage::state& s, const std::string& ref,
                                        const api::vm& before, ps power, const std::string& suspend_vdi, bool by_user) {
  api::vm after = before;
  if (by_user) after.ha_always_run = false;
  after.power_state = power;
  after.domid = -1;
  after.resident_on.opaque = null_ref<api::host>();
  after.suspend_VDI.opaque = suspend_vdi.empty() ? null_ref<api::vdi>() : suspend_vdi;
  if (const api::vm_metrics* old = s.get<api::vm_metrics>(before.metrics.opaque)) {
    api::vm_metrics m = *old;
    m.memory_actual = 0;
    m.state = {};
    m.last_updated = now();
    t.update(before.metrics.opaque, *old, m);
  }
  // A stopped guest has no agent: its guest metrics go.
  if (s.get<api::vm_guest_metrics>(before.guest_metrics.opaque)) {
    t.destroy(schema::get().class_of<api::vm_guest_metrics>(), before.guest_metrics.opaque);
    after.guest_metrics.opaque = null_ref<api::vm_guest_metrics>();
  }
  t.update(ref, before, after);
  set_devices_attached(t, s, ref, false);
}

void vm_lifecycle::impl::set_devices_attached(storage::transaction& t, const storage::state& s, const std::string& vm,
                                              bool attached) {
  const api::vm* v = s.get<api::vm>(vm);
  const bool hvm = v && !v->HVM_boot_policy.empty();
  for (const auto& r : s.refs_where<api::vbd>("VM", vm)) {
    const api::vbd* vbd = s.get<api::vbd>(r);
    bool want = attached && !(vbd->empty && vbd->type != api::vbd_type::CD);
    // An attached disk's device is the name the guest sees it by (xvda, hda), as xapi records it.
    const std::string device = want ? disk_device(*vbd, hvm) : vbd->device;
    if (vbd->currently_attached != want || vbd->device != device) {
      api::vbd after = *vbd;
      after.currently_attached = want;
      after.device = device;
      t.update(r, *vbd, after);
    }
  }
  for (const auto& r : s.refs_where<api::vif>("VM", vm)) {
    const api::vif* vif = s.get<api::vif>(r);
    if (vif->currently_attached != attached) {
      api::vif after = *vif;
      after.currently_attached = attached;
      t.update(r, *vif, after);
    }
  }
}

void vm_lifecycle::impl::record_host_memory(storage::transaction& t, const storage::state& s) {
  const api::host* h = s.get<api::host>(host);
  if (!h) return;
  const api::host_metrics* m = s.get<api::host_metrics>(h->metrics.opaque);
  if (!m) return;
  auto info = hv.host();
  if (m->memory_free == info.memory_free_bytes && m->memory_total == info.memory_total_bytes) return;
  api::host_metrics after = *m;
  after.memory_free = info.memory_free_bytes;
  after.memory_total = info.memory_total_bytes;
  after.last_updated = now();
  t.update(h->metrics.opaque, *m, after);
}

api::api_result<wire::value> vm_lifecycle::impl::commit(storage::transaction t) {
  auto r = db.commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  return wire::value("");
}

// --- the steps operations share ---

api::api_result<vm_lifecycle::impl::held_disks> vm_lifecycle::impl::claim_disks(const std::string& vm_ref,
                                                                              const std::vector<std::string>& vbds,
                                                                              const char* op) {
  std::set<std::string> vdis;
  auto before = db.snapshot();
  for (const auto& r : vbds)
    if (const api::vbd* b = before->get<api::vbd>(r); b && !b->empty && !b->VDI.is_null()) vdis.insert(b->VDI.opaque);
  held_disks held;
  for (const auto& v : vdis) {  // in order: two claims never wait on each other
    std::shared_ptr<std::mutex> m;
    {
      std::lock_guard lock(disk_locks_mu);
      auto& slot = disk_locks[v];
      if (!slot) slot = std::make_shared<std::mutex>();
      m = slot;
    }
    held.emplace_back(*m);
  }
  auto s = db.snapshot();  // what others recorded before they let go of the disks
  const api::vm* vm = s->get<api::vm>(vm_ref);
  if (!vm || vm->is_control_domain) return held;
  for (const auto& r : vbds) {
    const api::vbd* b = s->get<api::vbd>(r);
    if (!b || b->empty) continue;
    const api::vdi* vdi = s->get<api::vdi>(b->VDI.opaque);
    if (!vdi || vdi->sharable) continue;
    for (const auto& other_ref : vdi->VBDs) {
      const api::vbd* other = s->get<api::vbd>(other_ref.opaque);
      if (!other || other_ref.opaque == r || other->VM.opaque == vm_ref || !other->currently_attached) continue;
      const api::vm* user = s->get<api::vm>(other->VM.opaque);
      if (!user || user->is_control_domain || (user->power_state != ps::Running && user->power_state != ps::Paused)) continue;
      if (b->mode == api::vbd_mode::RW || other->mode == api::vbd_mode::RW)
        return fail(api::errors::VDI_IN_USE(b->VDI.opaque, op));
    }
  }
  return held;
}

api::status vm_lifecycle::impl::check_host_can_run(const storage::state& s, const std::string& ref,
                                                   const api::vm& vm) const {
  const api::host* h = s.get<api::host>(host);
  if (!h) return fail(api::errors::HANDLE_INVALID("host", host));
  if (!h->enabled) return fail(api::errors::HOST_DISABLED(host));
  return check_vm_can_run(ref, vm);
}

api::status vm_lifecycle::impl::check_vm_can_run(const std::string& ref, const api::vm& vm) const {
  if (vm.VCPUs_at_startup < 1) return fail(api::errors::VM_NO_VCPUS(ref));
  if (vm.VCPUs_max > vm_rules::max_vcpus) return fail(api::errors::VM_TOO_MANY_VCPUS(ref));
  if (vm.VCPUs_at_startup > vm.VCPUs_max)
    return fail(api::errors::INVALID_VALUE("VCPUs_at_startup", std::to_string(vm.VCPUs_at_startup)));
  if (vm.memory_static_max <= 0 || vm.memory_dynamic_max <= 0) return fail(api::errors::VM_MEMORY_SIZE_TOO_LOW(ref));
  // Whatever set them (a constructor, an import), the memory settings keep their order here.
  if (auto st = vm_rules::check_memory_order(vm); !st) return st;
  return {};
}

api::api_result<wire::value> vm_lifecycle::impl::record_boot(const std::string& ref, int domid, bool paused,
                                                             bool fresh_boot) {
  auto s = db.snapshot();
  const api::vm* vm = s->get<api::vm>(ref);
  if (!vm) {
    (void)hv.destroy(domid);
    return fail(api::errors::HANDLE_INVALID("VM", ref));
  }
  auto t = db.begin();
  record_live(t, *s, ref, *vm, domid, paused ? ps::Paused : ps::Running, fresh_boot);
  record_host_memory(t, *s);
  auto r = commit(std::move(t));
  if (!r) (void)hv.destroy(domid);
  return r;
}

api::api_result<wire::value> vm_lifecycle::impl::record_halted(const std::string& ref, bool by_user) {
  auto s = db.snapshot();
  const api::vm* vm = s->get<api::vm>(ref);
  if (!vm) return fail(api::errors::HANDLE_INVALID("VM", ref));
  auto t = db.begin();
  record_stopped(t, *s, ref, *vm, ps::Halted, {}, by_user);
  record_host_memory(t, *s);
  return commit(std::move(t));
}

api::api_result<wire::value> vm_lifecycle::impl::drop_suspended(const std::string& ref) {
  auto s = db.snapshot();
  const api::vm* vm = s->get<api::vm>(ref);
  auto t = db.begin();
  const api::vdi* image = s->get<api::vdi>(vm->suspend_VDI.opaque);
  if (image) t.destroy(schema::get().class_of<api::vdi>(), vm->suspend_VDI.opaque);
  record_stopped(t, *s, ref, *vm, ps::Halted);
  auto r = commit(std::move(t));
  if (r && image) repos.remove_image(image->SR.opaque, image->location);
  return r;
}

api::api_result<std::pair<api::vdi, std::string>> vm_lifecycle::impl::suspend_image_for(const storage::state& s,
                                                                                         const std::string& ref,
                                                                                         const api::vm& vm) {
  std::string sr = vm.suspend_SR.opaque;
  if (const api::pool* pool = s.first<api::pool>(); !s.get<api::sr>(sr) && pool) sr = pool->suspend_image_SR.opaque;
  if (!s.get<api::sr>(sr)) return fail(api::errors::VM_NO_SUSPEND_SR(ref));
  auto dir = sr_dir(s, sr);
  if (!dir) return fail(api::errors::VM_NO_SUSPEND_SR(ref));
  api::vdi image;
  image.uuid = db.ids().uuid();
  image.name_label = "Suspend image for " + vm.name_label;
  image.SR.opaque = sr;
  image.type = api::vdi_type::suspend;
  image.location = image.uuid + ".suspend";
  image.managed = true;
  image.virtual_size = vm.memory_static_max;
  sm::mark_pending(*dir + "/" + image.location);  // until its record commits (repos.keep)
  return std::pair{image, *dir + "/" + image.location};
}

vm_lifecycle::vm_lifecycle(storage::database& db, xen::backend& hypervisor, host_actors& actors,
                           storage_repos& repos, clock& clk, std::string host)
    : impl_(std::shared_ptr<impl>(new impl{db, hypervisor, actors, repos, clk, std::move(host)})) {
  const std::size_t vm_cls = impl_->vm_cls;
  actors.add_rules(vm_cls, operation_rules{
                               [](const void* rec, const std::string& ref, std::string_view op) -> std::optional<api::api_error> {
                                 api::vm_operations o{};
                                 if (!api::from_string(op, o)) return api::errors::INTERNAL_ERROR("unknown VM operation");
                                 return check_vm_operation(*static_cast<const api::vm*>(rec), ref, o);
                               },
                               [](const void* rec, const std::string& ref) {
                                 return api::to_value(allowed_vm_operations(*static_cast<const api::vm*>(rec), ref));
                               }});
  // A device does one operation at a time; what it allows follows its attachment and media.
  actors.add_rules(impl_->vbd_cls, one_at_a_time<api::vbd>([](const api::vbd& b) {
    using op = api::vbd_operations;
    std::vector<op> ops;
    if (b.currently_attached) ops = {op::unplug, op::unplug_force};
    else ops = {op::attach, op::plug};
    if (b.type == api::vbd_type::CD) ops.push_back(b.empty ? op::insert : op::eject);
    return ops;
  }));
  actors.add_rules(impl_->vif_cls, one_at_a_time<api::vif>([](const api::vif& f) {
    using op = api::vif_operations;
    return f.currently_attached ? std::vector<op>{op::unplug} : std::vector<op>{op::attach, op::plug};
  }));
}

void vm_lifecycle::set_message_log(message_log* messages) { impl_->messages = messages; }

vm_lifecycle::result_void vm_lifecycle::assert_operation_valid(const std::string& vm, api::vm_operations op) const {
  auto s = impl_->db.snapshot();
  const api::vm* v = s->get<api::vm>(vm);
  if (!v) return fail(api::errors::HANDLE_INVALID("VM", vm));
  if (auto refused = check_vm_operation(*v, vm, op)) return fail(*refused);
  return ok_v;
}

vm_lifecycle::result_void vm_lifecycle::update_allowed_operations(const std::string& vm) {
  if (!impl_->db.snapshot()->get<api::vm>(vm)) return fail(api::errors::HANDLE_INVALID("VM", vm));
  impl_->actors.refresh(impl_->vm_cls, vm);
  return ok_v;
}

}  // namespace xapid::actors
