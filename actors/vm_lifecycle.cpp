#include "actors/vm_lifecycle.hpp"

#include "proto/wire/codec.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include <pugixml.hpp>
#include <spdlog/spdlog.h>

#include "actors/vm_rules.hpp"
#include "sm/images.hpp"

namespace xapid::actors {
namespace {

using storage::schema;
using ps = api::vm_power_state;
using snapshot_ptr = std::shared_ptr<const storage::state>;

api::api_error from_backend(const xen::backend_error& e) {
  if (e.what == xen::backend_error::kind::not_enough_memory)
    return api::errors::HOST_NOT_ENOUGH_FREE_MEMORY(std::to_string(e.needed_bytes), std::to_string(e.available_bytes));
  return api::errors::INTERNAL_ERROR("xen: " + e.message);
}

// How a clean stop waits for its guest: until it acknowledges, or until `cancel` (task.cancel's
// flag for `task`) turns true.
struct guest_wait {
  std::string task;
  vm_lifecycle::cancel_flag cancel;
};

// A clean shutdown or reboot the guest never acknowledged is the seed's own error; one whose
// wait was cancelled ends its task as cancelled.
api::api_error shutdown_error(const xen::backend_error& e, const guest_wait& wait) {
  if (e.what == xen::backend_error::kind::not_acknowledged) return api::errors::VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT();
  if (e.what == xen::backend_error::kind::cancelled) return api::errors::TASK_CANCELLED(wait.task);
  return from_backend(e);
}


template <class R>
std::string null_ref() {
  return api::ref<R>{}.opaque;
}

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

struct vm_lifecycle::impl {
  storage::database& db;
  xen::backend& hv;
  host_actors& actors;
  storage_repos& repos;
  clock& clk;
  std::string host;
  const std::size_t vm_cls = schema::get().class_of<api::vm>();
  const std::size_t vbd_cls = schema::get().class_of<api::vbd>();
  const std::size_t vif_cls = schema::get().class_of<api::vif>();

  api::datetime now() const { return api::datetime{clk.now_ms() / 1000}; }

  // Runs `work` as operation `op` of the VM's actor.
  api::api_result<wire::value> run_vm(const std::string& vm, api::vm_operations op, const std::string& task,
                                      std::function<api::api_result<wire::value>()> work) {
    return actors.run(vm_cls, vm, std::string(api::to_string(op)), task, std::move(work));
  }

  // --- what the hypervisor is given ---

  // An SR's directory to make images in (disks of a provisioned VM, suspend images).
  api::api_result<std::string> sr_dir(const storage::state& s, const std::string& sr) const {
    return repos.directory(s, sr, true);
  }

  api::api_result<std::string> vdi_path(const storage::state& s, const std::string& vdi_ref) const {
    return repos.vdi_path(s, vdi_ref);
  }

  static std::string disk_device(const api::vbd& vbd, bool hvm) {
    if (!vbd.device.empty()) return vbd.device;
    int n = std::atoi(vbd.userdevice.c_str());
    return std::string(hvm ? "hd" : "xvd") + static_cast<char>('a' + std::clamp(n, 0, 25));
  }

  api::api_result<xen::disk> disk_of(const storage::state& s, const api::vbd& vbd, bool hvm) const {
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

  xen::nic nic_of(const storage::state& s, const api::vif& vif) const {
    xen::nic n;
    n.index = std::atoi(vif.device.c_str());
    n.mac = vif.MAC;
    if (const api::network* net = s.get<api::network>(vif.network.opaque)) n.bridge = net->bridge;
    return n;
  }

  api::api_result<xen::domain_config> config_of(const storage::state& s, const std::string& ref, const api::vm& vm) const {
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

  // The VM as running (or paused) on this host as `domid`, its devices attached, its metrics.
  void record_live(storage::transaction& t, const storage::state& s, const std::string& ref, const api::vm& before,
                   int domid, ps power, bool fresh_boot) {
    api::vm after = before;
    after.power_state = power;
    after.domid = domid;
    after.resident_on.opaque = host;
    after.scheduled_to_be_resident_on.opaque = null_ref<api::host>();
    after.suspend_VDI.opaque = null_ref<api::vdi>();
    after.memory_target = before.memory_dynamic_max;
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
    // A running VM has a graphical console, as xapi's do: RFB through the host's /console.
    if (s.refs_where<api::console>("VM", ref).empty()) {
      api::console c;
      c.uuid = db.ids().uuid();
      c.protocol = api::console_protocol::rfb;
      c.VM.opaque = ref;
      c.port = 5900 + domid;
      const api::host* h = s.get<api::host>(host);
      c.location = "https://" + (h ? h->address : std::string("localhost")) + "/console?uuid=" + c.uuid;
      t.create(c);
    }
  }

  // The VM halted (or suspended): no domain, nowhere resident, devices detached.
  void record_stopped(storage::transaction& t, const storage::state& s, const std::string& ref, const api::vm& before,
                      ps power, const std::string& suspend_vdi = {}) {
    api::vm after = before;
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

  void set_devices_attached(storage::transaction& t, const storage::state& s, const std::string& vm, bool attached) {
    for (const auto& r : s.refs_where<api::vbd>("VM", vm)) {
      const api::vbd* vbd = s.get<api::vbd>(r);
      bool want = attached && !(vbd->empty && vbd->type != api::vbd_type::CD);
      if (vbd->currently_attached != want) {
        api::vbd after = *vbd;
        after.currently_attached = want;
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

  void record_host_memory(storage::transaction& t, const storage::state& s) {
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

  api::api_result<wire::value> commit(storage::transaction t) {
    auto r = db.commit(std::move(t));
    if (!r) return fail(std::move(r).error());
    return wire::value("");
  }

  // --- the steps operations share ---

  // A disk that is not sharable is used by one running VM at a time when either side writes
  // (xapi: VDI_IN_USE). The disks' locks are held from the check until the caller has recorded
  // its VM running (or the plug), so two VMs sharing a disk cannot both pass it.
  std::mutex disk_locks_mu{};
  std::map<std::string, std::shared_ptr<std::mutex>> disk_locks{};  // by VDI ref
  using held_disks = std::vector<std::unique_lock<std::mutex>>;
  api::api_result<held_disks> claim_disks(const std::string& vm_ref, const std::vector<std::string>& vbds, const char* op) {
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

  api::status check_host_can_run(const storage::state& s, const std::string& ref, const api::vm& vm) const {
    const api::host* h = s.get<api::host>(host);
    if (!h) return fail(api::errors::HANDLE_INVALID("host", host));
    if (!h->enabled) return fail(api::errors::HOST_DISABLED(host));
    if (vm.VCPUs_at_startup < 1) return fail(api::errors::VM_NO_VCPUS(ref));
    if (vm.VCPUs_max > vm_rules::max_vcpus) return fail(api::errors::VM_TOO_MANY_VCPUS(ref));
    if (vm.VCPUs_at_startup > vm.VCPUs_max)
      return fail(api::errors::INVALID_VALUE("VCPUs_at_startup", std::to_string(vm.VCPUs_at_startup)));
    if (vm.memory_static_max <= 0 || vm.memory_dynamic_max <= 0) return fail(api::errors::VM_MEMORY_SIZE_TOO_LOW(ref));
    // Whatever set them (a constructor, an import), the memory settings keep their order here.
    if (auto st = vm_rules::check_memory_order(vm); !st) return st;
    return {};
  }

  // Builds and (unless `paused`) unpauses the VM's domain; answers its domid.
  api::api_result<int> boot(const storage::state& s, const std::string& ref, const api::vm& vm, bool paused) {
    auto config = config_of(s, ref, vm);
    if (!config) return fail(config.error());
    auto domid = hv.create(*config);
    if (!domid) return fail(from_backend(domid.error()));
    if (!paused) {
      if (auto r = hv.unpause(*domid); !r) {
        (void)hv.destroy(*domid);
        return fail(from_backend(r.error()));
      }
    }
    return *domid;
  }

  // Records a booted domain; destroys it again if the record cannot be made.
  api::api_result<wire::value> record_boot(const std::string& ref, int domid, bool paused, bool fresh_boot) {
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

  api::api_result<wire::value> start_work(const std::string& ref, bool paused) {
    auto disks = claim_disks(ref, db.snapshot()->refs_where<api::vbd>("VM", ref), "start");
    if (!disks) return fail(disks.error());
    auto s = db.snapshot();
    const api::vm* vm = s->get<api::vm>(ref);
    if (auto st = check_host_can_run(*s, ref, *vm); !st) return fail(st.error());
    auto domid = boot(*s, ref, *vm, paused);
    if (!domid) return fail(domid.error());
    return record_boot(ref, *domid, paused, true);
  }

  // Tears the domain down (asking the guest first when `clean`) and records the VM halted.
  api::api_result<wire::value> stop_work(const std::string& ref, bool clean, const guest_wait& wait = {}) {
    auto s = db.snapshot();
    const api::vm* vm = s->get<api::vm>(ref);
    if (vm->power_state == ps::Suspended) return drop_suspended(ref);
    int domid = static_cast<int>(vm->domid);
    if (clean) {
      if (auto r = hv.shutdown(domid, xen::shutdown_reason::poweroff, wait.cancel.get()); !r)
        return fail(shutdown_error(r.error(), wait));
    }
    if (auto r = hv.destroy(domid); !r && r.error().what != xen::backend_error::kind::no_such_domain)
      return fail(from_backend(r.error()));
    return record_halted(ref);
  }

  api::api_result<wire::value> record_halted(const std::string& ref) {
    auto s = db.snapshot();
    const api::vm* vm = s->get<api::vm>(ref);
    if (!vm) return fail(api::errors::HANDLE_INVALID("VM", ref));
    auto t = db.begin();
    record_stopped(t, *s, ref, *vm, ps::Halted);
    record_host_memory(t, *s);
    return commit(std::move(t));
  }

  // A suspended VM halts by forgetting its saved state.
  api::api_result<wire::value> drop_suspended(const std::string& ref) {
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

  // Stops the domain (the guest asked to reboot, or not) and boots it again.
  api::api_result<wire::value> reboot_work(const std::string& ref, bool clean, const guest_wait& wait = {}) {
    auto s = db.snapshot();
    const api::vm* vm = s->get<api::vm>(ref);
    int domid = static_cast<int>(vm->domid);
    if (clean) {
      if (auto r = hv.shutdown(domid, xen::shutdown_reason::reboot, wait.cancel.get()); !r)
        return fail(shutdown_error(r.error(), wait));
    }
    if (auto r = hv.destroy(domid); !r && r.error().what != xen::backend_error::kind::no_such_domain)
      return fail(from_backend(r.error()));
    auto next = boot(*s, ref, *vm, false);
    if (!next) {
      (void)record_halted(ref);  // the old domain is gone either way
      return fail(next.error());
    }
    return record_boot(ref, *next, false, true);
  }

  // --- copies of VMs: clone, copy, snapshot ---


  enum class copy_kind { clone, copy, snapshot, checkpoint };

  api::api_result<wire::value> copy_vm(const std::string& ref, const std::string& name, const std::string& sr,
                                       copy_kind kind) {
    auto s = db.snapshot();
    const api::vm* src = s->get<api::vm>(ref);
    if (!sr.empty() && !s->get<api::sr>(sr)) return fail(api::errors::HANDLE_INVALID("SR", sr));
    api::vm v = as_new_vm(*src);
    v.uuid = db.ids().uuid();
    v.name_label = name;
    v.other_config.erase("default_template");
    const bool snapshot = kind == copy_kind::snapshot || kind == copy_kind::checkpoint;
    v.is_a_snapshot = snapshot;
    v.snapshot_of.opaque = snapshot ? ref : null_ref<api::vm>();
    v.snapshot_time = snapshot ? now() : api::datetime{};
    if (snapshot) v.is_a_template = true;  // a snapshot is a template of its VM
    v.parent.opaque = kind == copy_kind::copy ? null_ref<api::vm>() : ref;

    auto t = db.begin();
    api::vm_metrics m;
    m.uuid = db.ids().uuid();
    m.install_time = now();
    v.metrics.opaque = t.create(m);
    std::vector<std::string> made;
    auto undo = [&] { repos.drop(made); };
    if (kind == copy_kind::checkpoint) {
      // The memory: the running VM is saved to an image and resumed from it at once; the image
      // stays as the snapshot's suspend VDI.
      auto image = save_and_resume(*s, ref, *src);
      if (!image) return fail(image.error());
      made.push_back(image->second);
      v.power_state = ps::Suspended;
      v.suspend_VDI.opaque = t.create(image->first);
    }
    const std::string new_ref = t.create(v);

    for (const auto& vbd_ref : s->refs_where<api::vbd>("VM", ref)) {
      api::vbd b = storage::as_copy(*s->get<api::vbd>(vbd_ref));
      b.uuid = db.ids().uuid();
      b.VM.opaque = new_ref;
      b.currently_attached = false;
      b.metrics.opaque = null_ref<api::vbd_metrics>();
      // Disks are copied; CDs share their ISO.
      if (b.type != api::vbd_type::CD && !b.empty && !b.VDI.is_null()) {
        auto vdi = repos.add_vdi_copy(t, *s, b.VDI.opaque,
                                      kind == copy_kind::copy ? storage_repos::copy_kind::copy
                                      : snapshot              ? storage_repos::copy_kind::snapshot
                                                              : storage_repos::copy_kind::clone,
                                      sr, made);
        if (!vdi) {
          undo();
          return fail(vdi.error());
        }
        b.VDI.opaque = *vdi;
      }
      t.create(b);
    }
    for (const auto& vif_ref : s->refs_where<api::vif>("VM", ref)) {
      api::vif f = storage::as_copy(*s->get<api::vif>(vif_ref));
      f.uuid = db.ids().uuid();
      f.VM.opaque = new_ref;
      f.currently_attached = false;
      f.metrics.opaque = null_ref<api::vif_metrics>();
      if (!snapshot) {  // a snapshot keeps the addresses; a new VM gets its own
        f.MAC = db.ids().mac();
        f.MAC_autogenerated = true;
      }
      t.create(f);
    }
    if (snapshot) {
      api::vm live = *src;
      live.parent.opaque = new_ref;
      t.update(ref, *src, live);
    }
    auto r = db.commit(std::move(t));
    if (!r) {
      undo();
      return fail(std::move(r).error());
    }
    repos.keep(made);
    actors.refresh(vm_cls, new_ref);
    return wire::value(new_ref);
  }

  // The suspend image a VM's memory goes to: a VDI record (not yet created) and its path, on the
  // VM's suspend_SR or the pool's suspend_image_SR.
  api::api_result<std::pair<api::vdi, std::string>> suspend_image_for(const storage::state& s, const std::string& ref,
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

  // Saves a running VM's memory and resumes it from the image (a new domain); answers the image.
  api::api_result<std::pair<api::vdi, std::string>> save_and_resume(const storage::state& s, const std::string& ref,
                                                                     const api::vm& vm) {
    auto image = suspend_image_for(s, ref, vm);
    if (!image) return fail(image.error());
    auto config = config_of(s, ref, vm);
    if (!config) return fail(config.error());
    if (auto r = hv.suspend(static_cast<int>(vm.domid), image->second); !r) return fail(from_backend(r.error()));
    auto domid = hv.resume(*config, image->second);
    if (!domid || !hv.unpause(*domid)) {
      (void)record_halted(ref);  // the guest's memory is in the image; the VM itself stopped
      if (domid) (void)hv.destroy(*domid);
      return fail(api::errors::VM_CHECKPOINT_RESUME_FAILED(ref));
    }
    image->first.physical_utilisation = sm::allocated_bytes(image->second);
    if (auto r = record_boot(ref, *domid, false, false); !r) return fail(r.error());
    return image;
  }

  // Destroys the VM's devices and their metrics (not its disks' VDIs) in `t`.
  void drop_devices(storage::transaction& t, const storage::state& s, const std::string& ref) {
    for (const auto& r : s.refs_where<api::vbd>("VM", ref)) t.destroy(vbd_cls, r);
    for (const auto& r : s.refs_where<api::vif>("VM", ref)) t.destroy(vif_cls, r);
    for (const auto& r : s.refs_where<api::console>("VM", ref))
      t.destroy(schema::get().class_of<api::console>(), r);
  }

  // --- provisioning: the template's disks become VDIs and VBDs ---

  api::api_result<wire::value> provision_work(const std::string& ref) {
    auto s = db.snapshot();
    const api::vm* vm = s->get<api::vm>(ref);
    const api::pool* pool = s->first<api::pool>();
    const std::string default_sr = pool ? pool->default_SR.opaque : std::string();
    pugi::xml_document doc;
    auto spec = vm->other_config.find("disks");
    if (spec != vm->other_config.end() && !spec->second.empty() &&
        !doc.load_string(spec->second.c_str(), pugi::parse_default))
      return fail(api::errors::INVALID_VALUE("other_config:disks", spec->second));
    auto t = db.begin();
    std::vector<std::string> made;
    auto undo = [&] { repos.drop(made); };
    for (pugi::xml_node disk : doc.child("provision").children("disk")) {
      std::string sr_uuid = disk.attribute("sr").as_string();
      std::string sr = default_sr;
      if (!sr_uuid.empty()) {
        auto found = s->ref_by_uuid(schema::get().class_of<api::sr>(), sr_uuid);
        if (!found) {
          undo();
          return fail(api::errors::UUID_INVALID("SR", sr_uuid));
        }
        sr = *found;
      }
      if (sr.empty() || sr == null_ref<api::sr>() || !s->get<api::sr>(sr) || !sr_dir(*s, sr)) {
        undo();
        return fail(api::errors::VM_REQUIRES_SR(ref, sr.empty() ? null_ref<api::sr>() : sr));
      }
      std::int64_t size = disk.attribute("size").as_llong(-1);
      std::string device = disk.attribute("device").as_string("0");
      if (size < 0) {
        undo();
        return fail(api::errors::INVALID_VALUE("other_config:disks", spec->second));
      }
      auto type = std::string(disk.attribute("type").as_string("system")) == "user" ? api::vdi_type::user
                                                                                    : api::vdi_type::system;
      auto vdi = repos.add_new_vdi(t, *s, sr, size, vm->name_label + " " + device, type,
                                   {{"provisioned-for", vm->uuid}}, made);
      if (!vdi) {
        undo();
        return fail(vdi.error());
      }
      std::string vdi_ref = *vdi;
      api::vbd b;
      b.uuid = db.ids().uuid();
      b.VM.opaque = ref;
      b.VDI.opaque = vdi_ref;
      b.userdevice = device;
      b.bootable = disk.attribute("bootable").as_bool(false);
      b.mode = api::vbd_mode::RW;
      b.type = api::vbd_type::Disk;
      b.unpluggable = true;
      t.create(b);
    }
    api::vm after = *vm;
    after.is_a_template = false;
    after.other_config.erase("disks");
    t.update(ref, *vm, after);
    auto r = commit(std::move(t));
    if (!r) undo();
    else repos.keep(made);
    return r;
  }

  // --- devices: which numbers are free ---

  template <class R>
  std::vector<std::string> free_devices(const std::string& vm, int count) const {
    auto s = db.snapshot();
    std::set<std::string> used;
    for (const auto& r : s->refs_where<R>("VM", vm)) {
      const R* d = s->get<R>(r);
      if constexpr (std::is_same_v<R, api::vbd>) used.insert(d->userdevice);
      else used.insert(d->device);
    }
    std::vector<std::string> out;
    for (int i = 0; i < count; ++i)
      if (!used.count(std::to_string(i))) out.push_back(std::to_string(i));
    return out;
  }

  // --- VBD and VIF hotplug ---

  // A device as its operation finds it: a writer outside its actor (VDI.destroy takes the
  // VDI's VBDs with it) may have removed it since the operation was admitted.
  template <class R>
  static api::api_result<const R*> device_row(const storage::state& s, const std::string& ref) {
    const R* r = s.get<R>(ref);
    if (!r) return fail(api::errors::HANDLE_INVALID(std::string(R::api_class), ref));
    return r;
  }

  // The running VM a device belongs to, or the error a device operation of a stopped VM gets.
  api::api_result<const api::vm*> live_vm_of(const storage::state& s, const std::string& vm_ref) const {
    const api::vm* vm = s.get<api::vm>(vm_ref);
    if (!vm) return fail(api::errors::HANDLE_INVALID("VM", vm_ref));
    if (vm->power_state != ps::Running && vm->power_state != ps::Paused)
      return fail(api::errors::VM_BAD_POWER_STATE(vm_ref, "running, paused", power_state_name(vm->power_state)));
    return vm;
  }

  template <class R, class F>
  api::api_result<wire::value> update_device(const std::string& ref, F change) {
    auto s = db.snapshot();
    const R* before = s->get<R>(ref);
    if (!before) return fail(api::errors::HANDLE_INVALID(std::string(R::api_class), ref));
    R after = *before;
    change(after);
    auto t = db.begin();
    t.update(ref, *before, after);
    return commit(std::move(t));
  }

  // --- what guests did on their own ---

  // Applies the VM's after-shutdown/reboot/crash action to its stopped domain.
  void guest_stopped(const std::string& ref, const api::vm& vm, const xen::domain_info& d) {
    enum class action { halt, restart, preserve } what = action::halt;
    switch (d.reason) {
      case xen::shutdown_reason::reboot:
        what = vm.actions_after_reboot == api::on_normal_exit::restart ? action::restart : action::halt;
        break;
      case xen::shutdown_reason::crash:
        switch (vm.actions_after_crash) {
          case api::on_crash_behaviour::restart:
          case api::on_crash_behaviour::coredump_and_restart:
          case api::on_crash_behaviour::rename_restart: what = action::restart; break;
          case api::on_crash_behaviour::preserve: what = action::preserve; break;
          default: what = action::halt;
        }
        break;
      default:
        what = vm.actions_after_shutdown == api::on_normal_exit::restart ? action::restart : action::halt;
    }
    if (what == action::preserve) {
      // The crashed domain stays for inspection; the VM shows as paused until it is shut down.
      if (vm.power_state != ps::Paused) {
        auto s = db.snapshot();
        auto t = db.begin();
        const api::vm* now_vm = s->get<api::vm>(ref);
        if (!now_vm) return;
        api::vm after = *now_vm;
        after.power_state = ps::Paused;
        t.update(ref, *now_vm, after);
        (void)commit(std::move(t));
      }
      return;
    }
    const std::string key = "OpaqueRef:guest-" + vm.uuid;
    api::vm_operations op = what == action::restart ? api::vm_operations::hard_reboot : api::vm_operations::hard_shutdown;
    auto r = run_vm(ref, op, key, [this, ref, what]() -> api::api_result<wire::value> {
      return what == action::restart ? reboot_work(ref, false) : stop_work(ref, false);
    });
    spdlog::info("vm.guest_stopped vm={} reason={} action={} ok={}", vm.uuid, static_cast<int>(d.reason),
                 what == action::restart ? "restart" : "halt", static_cast<bool>(r));
  }
};

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

api::status vm_lifecycle::reconcile() {
  auto& d = *impl_;
  for (std::size_t cls : {d.vm_cls, d.vbd_cls, d.vif_cls})
    if (auto st = d.actors.reset_operations(cls, d.host); !st) return st;
  // The hypervisor's domains are the truth about what runs here.
  std::map<std::string, xen::domain_info> domains;
  for (auto& dom : d.hv.list()) domains[dom.uuid] = dom;
  auto s = d.db.snapshot();
  auto t = d.db.begin();
  std::set<std::string> known;
  s->for_each(d.vm_cls, [&](const std::string& ref, const storage::row& row) {
    const auto* vm = static_cast<const api::vm*>(row.record.get());
    if (vm->is_control_domain) return true;
    known.insert(vm->uuid);
    bool live = vm->power_state == ps::Running || vm->power_state == ps::Paused;
    auto dom = domains.find(vm->uuid);
    if (live && vm->resident_on.opaque == d.host && dom == domains.end()) {
      spdlog::warn("vm.reconciled vm={} was={} now=halted reason=\"its domain is gone\"", vm->uuid,
                   power_state_name(vm->power_state));
      d.record_stopped(t, *s, ref, *vm, ps::Halted);
    } else if (!live && dom != domains.end()) {
      // A guest runs whatever the record says (a run stopped between building its domain and
      // recording it): it is adopted, never killed.
      ps now = dom->second.state == xen::domain_state::paused ? ps::Paused : ps::Running;
      spdlog::warn("vm.reconciled vm={} was={} now={} domid={} reason=\"its domain runs\"", vm->uuid,
                   power_state_name(vm->power_state), power_state_name(now), dom->second.domid);
      d.record_live(t, *s, ref, *vm, dom->second.domid, now, false);
    }
    return true;
  });
  for (const auto& [uuid, dom] : domains)
    if (!known.count(uuid))
      spdlog::warn("vm.reconciled domid={} uuid={} reason=\"no VM has this domain\" action=none", dom.domid, uuid);
  d.record_host_memory(t, *s);
  if (!t.empty()) {
    auto r = d.db.commit(std::move(t));
    if (!r) return fail(std::move(r).error());
  }
  return d.actors.reset_operations(d.vm_cls, d.host);
}

void vm_lifecycle::observe() {
  auto& d = *impl_;
  std::map<std::string, xen::domain_info> domains;
  for (auto& dom : d.hv.list()) domains[dom.uuid] = dom;
  auto s = d.db.snapshot();
  std::vector<std::pair<std::string, api::vm>> stopped;
  auto t = d.db.begin();
  const std::size_t gm_cls = schema::get().class_of<api::vm_guest_metrics>();
  auto observe_one = [&](const std::string& ref, const storage::row& row) {
    const auto* vm = static_cast<const api::vm*>(row.record.get());
    if (vm->is_control_domain || vm->resident_on.opaque != d.host) return true;
    if (vm->power_state != ps::Running && vm->power_state != ps::Paused) return true;
    if (!vm->current_operations.empty()) return true;  // an operation is changing it right now
    auto dom = domains.find(vm->uuid);
    if (dom == domains.end()) return true;  // reconcile's business (it vanished under us)
    if (dom->second.state == xen::domain_state::shutdown || dom->second.state == xen::domain_state::crashed) {
      if (!(dom->second.reason == xen::shutdown_reason::crash && vm->power_state == ps::Paused &&
            vm->actions_after_crash == api::on_crash_behaviour::preserve))
        stopped.emplace_back(ref, *vm);
      return true;
    }
    // The guest agent: metrics appear once the guest has booted and change as it reports.
    if (auto report = d.hv.guest(static_cast<int>(vm->domid))) {
      api::vm_guest_metrics gm;
      const api::vm_guest_metrics* old = s->get<api::vm_guest_metrics>(vm->guest_metrics.opaque);
      if (old) gm = *old;
      // (The hypervisor's maps are std::map: xen/ knows nothing of the datamodel.) A guest
      // writes what it likes: only text XML can carry, within a field's bounds, is recorded.
      auto as_map = [](const std::map<std::string, std::string>& m) {
        api::map<std::string, std::string> out;
        for (const auto& [k, v] : m) {
          if (out.size() >= storage::value_bounds::max_entries) break;
          out.insert_or_assign(wire::xml_text_of(k.substr(0, 1024)), wire::xml_text_of(v.substr(0, 4096)));
        }
        return out;
      };
      gm.os_version = as_map(report->os_version);
      gm.PV_drivers_version = as_map(report->pv_drivers_version);
      gm.PV_drivers_up_to_date = true;
      gm.networks = as_map(report->networks);
      gm.other = as_map(report->other);
      gm.live = true;
      if (!old) {
        gm.uuid = d.db.ids().uuid();
        gm.last_updated = d.now();
        api::vm after = *vm;
        after.guest_metrics.opaque = t.create(gm);
        t.update(ref, *vm, after);
      } else if (!(gm == *old)) {
        gm.last_updated = d.now();
        t.update(vm->guest_metrics.opaque, *old, gm);
      }
    }
    // The balloon: memory_actual follows the domain.
    if (const api::vm_metrics* m = s->get<api::vm_metrics>(vm->metrics.opaque);
        m && m->memory_actual != dom->second.memory_bytes) {
      api::vm_metrics after = *m;
      after.memory_actual = dom->second.memory_bytes;
      after.last_updated = d.now();
      t.update(vm->metrics.opaque, *m, after);
    }
    (void)gm_cls;
    return true;
  };
  // Only the VMs resident here, from the index of VM.resident_on: each second costs what runs
  // on this host, not a walk over every VM of the pool (100,000 at scale).
  for (const auto& ref : s->refs_where<api::vm>("resident_on", d.host))
    if (const storage::row* row = s->find(d.vm_cls, ref)) observe_one(ref, *row);
  d.record_host_memory(t, *s);
  if (!t.empty())
    if (auto r = d.db.commit(std::move(t)); !r)
      spdlog::warn("vm.observe.failed reason=\"{}\"", r.error().description().at(0));
  for (const auto& [ref, vm] : stopped) d.guest_stopped(ref, vm, domains[vm.uuid]);
}

namespace {
api::api_result<void> as_void(api::api_result<wire::value> r) {
  if (!r) return fail(std::move(r).error());
  return ok_v;
}
}  // namespace

vm_lifecycle::result_void vm_lifecycle::start(const std::string& vm, bool paused, bool, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::start, task, [d, vm, paused] { return d->start_work(vm, paused); }));
}

vm_lifecycle::result_void vm_lifecycle::start_on(const std::string& vm, const std::string& host, bool paused,
                                                 bool force, const std::string& task) {
  if (auto st = assert_can_boot_here(vm, host); !st) return st;
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::start_on, task, [d, vm, paused] { return d->start_work(vm, paused); }));
}

vm_lifecycle::result_void vm_lifecycle::pause(const std::string& vm, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::pause, task, [d, vm]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    if (auto r = d->hv.pause(static_cast<int>(v->domid)); !r) return fail(from_backend(r.error()));
    return d->record_boot(vm, static_cast<int>(v->domid), true, false);
  }));
}

vm_lifecycle::result_void vm_lifecycle::unpause(const std::string& vm, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::unpause, task, [d, vm]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    if (auto r = d->hv.unpause(static_cast<int>(v->domid)); !r) return fail(from_backend(r.error()));
    return d->record_boot(vm, static_cast<int>(v->domid), false, false);
  }));
}

vm_lifecycle::result_void vm_lifecycle::clean_shutdown(const std::string& vm, const std::string& task,
                                                       cancel_flag cancel) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::clean_shutdown, task, [d, vm, wait = guest_wait{task, cancel}] {
    return d->stop_work(vm, true, wait);
  }));
}

vm_lifecycle::result_void vm_lifecycle::hard_shutdown(const std::string& vm, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::hard_shutdown, task, [d, vm] { return d->stop_work(vm, false); }));
}

vm_lifecycle::result_void vm_lifecycle::shutdown(const std::string& vm, const std::string& task, cancel_flag cancel) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::shutdown, task,
                           [d, vm, wait = guest_wait{task, cancel}]() -> api::api_result<wire::value> {
    // Clean when the guest can, hard when it cannot (or is paused or suspended); a cancelled
    // wait for the guest stops there.
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    if (v->power_state == ps::Running) {
      auto r = d->stop_work(vm, true, wait);
      if (r || (wait.cancel && *wait.cancel)) return r;
    }
    return d->stop_work(vm, false);
  }));
}

vm_lifecycle::result_void vm_lifecycle::clean_reboot(const std::string& vm, const std::string& task,
                                                     cancel_flag cancel) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::clean_reboot, task, [d, vm, wait = guest_wait{task, cancel}] {
    return d->reboot_work(vm, true, wait);
  }));
}

vm_lifecycle::result_void vm_lifecycle::hard_reboot(const std::string& vm, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::hard_reboot, task, [d, vm] { return d->reboot_work(vm, false); }));
}

vm_lifecycle::result_void vm_lifecycle::suspend(const std::string& vm, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::suspend, task, [d, vm]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    // The saved state is a VDI of type suspend on the VM's or the pool's suspend-image SR.
    auto target = d->suspend_image_for(*s, vm, *v);
    if (!target) return fail(target.error());
    auto& [image, path] = *target;
    if (auto r = d->hv.suspend(static_cast<int>(v->domid), path); !r) return fail(from_backend(r.error()));
    image.physical_utilisation = sm::allocated_bytes(path);
    auto s2 = d->db.snapshot();
    const api::vm* now_vm = s2->get<api::vm>(vm);
    auto t = d->db.begin();
    std::string vdi_ref = t.create(image);
    d->record_stopped(t, *s2, vm, *now_vm, ps::Suspended, vdi_ref);
    d->record_host_memory(t, *s2);
    auto r = d->commit(std::move(t));
    if (r) d->repos.keep({path});
    else d->repos.drop({path});
    return r;
  }));
}

vm_lifecycle::result_void vm_lifecycle::resume(const std::string& vm, bool paused, bool, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::resume, task, [d, vm, paused]() -> api::api_result<wire::value> {
    auto disks = d->claim_disks(vm, d->db.snapshot()->refs_where<api::vbd>("VM", vm), "resume");
    if (!disks) return fail(disks.error());
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    if (auto st = d->check_host_can_run(*s, vm, *v); !st) return fail(st.error());
    auto path = d->vdi_path(*s, v->suspend_VDI.opaque);
    if (!path) return fail(api::errors::VM_REQUIRES_VDI(vm, v->suspend_VDI.opaque));
    auto config = d->config_of(*s, vm, *v);
    if (!config) return fail(config.error());
    auto domid = d->hv.resume(*config, *path);
    if (!domid) return fail(from_backend(domid.error()));
    if (!paused)
      if (auto r = d->hv.unpause(*domid); !r) {
        (void)d->hv.destroy(*domid);
        return fail(from_backend(r.error()));
      }
    auto t = d->db.begin();
    d->record_live(t, *s, vm, *v, *domid, paused ? ps::Paused : ps::Running, false);
    t.destroy(schema::get().class_of<api::vdi>(), v->suspend_VDI.opaque);
    d->record_host_memory(t, *s);
    auto r = d->commit(std::move(t));
    if (!r) {
      (void)d->hv.destroy(*domid);
      return r;
    }
    const api::vdi* image = s->get<api::vdi>(v->suspend_VDI.opaque);
    d->repos.remove_image(image->SR.opaque, image->location);
    return r;
  }));
}

vm_lifecycle::result_void vm_lifecycle::resume_on(const std::string& vm, const std::string& host, bool paused, bool force,
                                                  const std::string& task) {
  if (auto st = assert_can_boot_here(vm, host); !st) return st;
  auto d = impl_;
  return resume(vm, paused, force, task);
}

api::api_result<std::string> vm_lifecycle::clone(const std::string& vm, const std::string& name, const std::string& task) {
  auto d = impl_;
  auto r = d->run_vm(vm, api::vm_operations::clone, task,
                     [d, vm, name] { return d->copy_vm(vm, name, {}, impl::copy_kind::clone); });
  if (!r) return fail(std::move(r).error());
  return *r->as_string();
}

api::api_result<std::string> vm_lifecycle::copy(const std::string& vm, const std::string& name, const std::string& sr,
                                                const std::string& task) {
  auto d = impl_;
  std::string target = sr == null_ref<api::sr>() ? std::string() : sr;
  auto r = d->run_vm(vm, api::vm_operations::copy, task,
                     [d, vm, name, target] { return d->copy_vm(vm, name, target, impl::copy_kind::copy); });
  if (!r) return fail(std::move(r).error());
  return *r->as_string();
}

api::api_result<std::string> vm_lifecycle::snapshot(const std::string& vm, const std::string& name,
                                                    const std::string& task) {
  auto d = impl_;
  auto r = d->run_vm(vm, api::vm_operations::snapshot, task,
                     [d, vm, name] { return d->copy_vm(vm, name, {}, impl::copy_kind::snapshot); });
  if (!r) return fail(std::move(r).error());
  return *r->as_string();
}

vm_lifecycle::result_void vm_lifecycle::revert(const std::string& snap_ref, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(snap_ref, api::vm_operations::revert, task, [d, snap_ref]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vm* snap = s->get<api::vm>(snap_ref);
    const std::string vm_ref = snap->snapshot_of.opaque;
    const api::vm* vm = s->get<api::vm>(vm_ref);
    if (!vm) return fail(api::errors::VM_REVERT_FAILED(vm_ref, snap_ref));
    // The VM stops first: it becomes what the snapshot recorded.
    if (vm->power_state == ps::Running || vm->power_state == ps::Paused) {
      if (auto r = d->hv.destroy(static_cast<int>(vm->domid)); !r && r.error().what != xen::backend_error::kind::no_such_domain)
        return fail(from_backend(r.error()));
      if (auto r = d->record_halted(vm_ref); !r) return r;
    } else if (vm->power_state == ps::Suspended) {
      if (auto r = d->drop_suspended(vm_ref); !r) return r;
    }
    s = d->db.snapshot();
    vm = s->get<api::vm>(vm_ref);
    auto t = d->db.begin();
    std::vector<std::string> made;
    std::vector<std::pair<std::string, std::string>> replaced;  // SR, location
    // The VM's disks are replaced by copies of the snapshot's.
    for (const auto& r : s->refs_where<api::vbd>("VM", vm_ref)) {
      const api::vbd* b = s->get<api::vbd>(r);
      if (b->type != api::vbd_type::CD && !b->VDI.is_null() && s->get<api::vdi>(b->VDI.opaque) &&
          s->refs_where<api::vbd>("VDI", b->VDI.opaque).size() == 1) {
        const api::vdi* old = s->get<api::vdi>(b->VDI.opaque);
        replaced.emplace_back(old->SR.opaque, old->location);
        t.destroy(schema::get().class_of<api::vdi>(), b->VDI.opaque);
      }
    }
    d->drop_devices(t, *s, vm_ref);
    for (const auto& r : s->refs_where<api::vbd>("VM", snap_ref)) {
      api::vbd b = storage::as_copy(*s->get<api::vbd>(r));
      b.uuid = d->db.ids().uuid();
      b.VM.opaque = vm_ref;
      b.currently_attached = false;
      if (b.type != api::vbd_type::CD && !b.empty && !b.VDI.is_null()) {
        auto vdi = d->repos.add_vdi_copy(t, *s, b.VDI.opaque, storage_repos::copy_kind::clone, {}, made);
        if (!vdi) {
          d->repos.drop(made);
          return fail(api::errors::VM_REVERT_FAILED(vm_ref, snap_ref));
        }
        b.VDI.opaque = *vdi;
      }
      t.create(b);
    }
    for (const auto& r : s->refs_where<api::vif>("VM", snap_ref)) {
      api::vif f = storage::as_copy(*s->get<api::vif>(r));
      f.uuid = d->db.ids().uuid();
      f.VM.opaque = vm_ref;
      f.currently_attached = false;
      t.create(f);
    }
    api::vm after = *vm;
    after.memory_static_max = snap->memory_static_max;
    after.memory_static_min = snap->memory_static_min;
    after.memory_dynamic_max = snap->memory_dynamic_max;
    after.memory_dynamic_min = snap->memory_dynamic_min;
    after.VCPUs_max = snap->VCPUs_max;
    after.VCPUs_at_startup = snap->VCPUs_at_startup;
    after.VCPUs_params = snap->VCPUs_params;
    after.PV_bootloader = snap->PV_bootloader;
    after.PV_kernel = snap->PV_kernel;
    after.PV_ramdisk = snap->PV_ramdisk;
    after.PV_args = snap->PV_args;
    after.HVM_boot_policy = snap->HVM_boot_policy;
    after.HVM_boot_params = snap->HVM_boot_params;
    after.platform = snap->platform;
    after.actions_after_shutdown = snap->actions_after_shutdown;
    after.actions_after_reboot = snap->actions_after_reboot;
    after.actions_after_crash = snap->actions_after_crash;
    after.parent.opaque = snap_ref;
    // A checkpoint brings its memory back: the VM is suspended with a copy of the image.
    if (snap->power_state == ps::Suspended && s->get<api::vdi>(snap->suspend_VDI.opaque)) {
      auto image = d->repos.add_vdi_copy(t, *s, snap->suspend_VDI.opaque, storage_repos::copy_kind::copy, {}, made);
      if (!image) {
        d->repos.drop(made);
        return fail(api::errors::VM_REVERT_FAILED(vm_ref, snap_ref));
      }
      after.power_state = ps::Suspended;
      after.suspend_VDI.opaque = *image;
    }
    t.update(vm_ref, *vm, after);
    auto r = d->commit(std::move(t));
    if (!r) {
      d->repos.drop(made);
      return r;
    }
    d->repos.keep(made);
    for (const auto& [sr, location] : replaced) d->repos.remove_image(sr, location);
    d->actors.refresh(d->vm_cls, vm_ref);
    return r;
  }));
}

vm_lifecycle::result_void vm_lifecycle::provision(const std::string& vm, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::provision, task, [d, vm] { return d->provision_work(vm); }));
}

vm_lifecycle::result_void vm_lifecycle::destroy(const std::string& vm, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::destroy, task, [d, vm]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    if (v->power_state == ps::Suspended)
      if (auto r = d->drop_suspended(vm); !r) return r;
    s = d->db.snapshot();
    v = s->get<api::vm>(vm);
    auto t = d->db.begin();
    d->drop_devices(t, *s, vm);
    if (s->get<api::vm_metrics>(v->metrics.opaque)) t.destroy(schema::get().class_of<api::vm_metrics>(), v->metrics.opaque);
    if (s->get<api::vm_guest_metrics>(v->guest_metrics.opaque))
      t.destroy(schema::get().class_of<api::vm_guest_metrics>(), v->guest_metrics.opaque);
    // Snapshots outlive their VM, pointing at nothing.
    for (const auto& r : s->refs_where<api::vm>("snapshot_of", vm)) {
      const api::vm* sn = s->get<api::vm>(r);
      api::vm after = *sn;
      after.snapshot_of.opaque = null_ref<api::vm>();
      t.update(r, *sn, after);
    }
    t.destroy(d->vm_cls, vm);
    return d->commit(std::move(t));
  }));
}

vm_lifecycle::result_void vm_lifecycle::set_memory_dynamic_range(const std::string& vm, std::int64_t min,
                                                                 std::int64_t max, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::changing_dynamic_range, task,
                           [d, vm, min, max]() -> api::api_result<wire::value> {
                             auto s = d->db.snapshot();
                             const api::vm* v = s->get<api::vm>(vm);
                             if (min < v->memory_static_min || min > max)
                               return fail(api::errors::INVALID_VALUE("memory_dynamic_min", std::to_string(min)));
                             if (max > v->memory_static_max)
                               return fail(api::errors::INVALID_VALUE("memory_dynamic_max", std::to_string(max)));
                             if (v->power_state == ps::Running)
                               if (auto r = d->hv.set_memory_target(static_cast<int>(v->domid), max); !r)
                                 return fail(from_backend(r.error()));
                             api::vm after = *v;
                             after.memory_dynamic_min = min;
                             after.memory_dynamic_max = max;
                             if (v->power_state == ps::Running) after.memory_target = max;
                             auto t = d->db.begin();
                             t.update(vm, *v, after);
                             if (v->power_state == ps::Running) d->record_host_memory(t, *s);
                             return d->commit(std::move(t));
                           }));
}

vm_lifecycle::result_void vm_lifecycle::set_VCPUs_number_live(const std::string& vm, std::int64_t n,
                                                              const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::changing_VCPUs_live, task, [d, vm, n]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    if (n < 1 || n > v->VCPUs_max) return fail(api::errors::INVALID_VALUE("nvcpu", std::to_string(n)));
    if (auto r = d->hv.set_vcpus(static_cast<int>(v->domid), static_cast<int>(n)); !r) return fail(from_backend(r.error()));  // n <= VCPUs_max <= max_vcpus
    api::vm after = *v;
    after.VCPUs_at_startup = n;
    auto t = d->db.begin();
    t.update(vm, *v, after);
    if (const api::vm_metrics* m = s->get<api::vm_metrics>(v->metrics.opaque)) {
      api::vm_metrics ma = *m;
      ma.VCPUs_number = n;
      t.update(v->metrics.opaque, *m, ma);
    }
    return d->commit(std::move(t));
  }));
}

vm_lifecycle::result_void vm_lifecycle::change_settings(const std::string& vm, api::vm_operations op,
                                                        std::function<api::status(api::vm&)> edit,
                                                        const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, op, task, [d, vm, edit]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    api::vm after = *v;
    if (auto st = edit(after); !st) return fail(st.error());
    if (auto st = vm_rules::check_memory_order(after); !st) return fail(st.error());
    if (auto st = vm_rules::check_vcpus(after); !st) return fail(st.error());
    auto t = d->db.begin();
    if (v->power_state == ps::Running && after.memory_dynamic_max != v->memory_dynamic_max) {
      if (auto r = d->hv.set_memory_target(static_cast<int>(v->domid), after.memory_dynamic_max); !r)
        return fail(from_backend(r.error()));
      after.memory_target = after.memory_dynamic_max;
      d->record_host_memory(t, *s);
    }
    t.update(vm, *v, after);
    return d->commit(std::move(t));
  }));
}

vm_lifecycle::result_void vm_lifecycle::edit(const std::string& vm, std::function<api::status(api::vm&)> edit) {
  auto s = impl_->db.snapshot();
  const api::vm* v = s->get<api::vm>(vm);
  if (!v) return fail(api::errors::HANDLE_INVALID("VM", vm));
  api::vm after = *v;
  if (auto st = edit(after); !st) return st;
  auto t = impl_->db.begin();
  t.update(vm, *v, after);
  return as_void(impl_->commit(std::move(t)));
}

api::api_result<std::string> vm_lifecycle::checkpoint(const std::string& vm, const std::string& name,
                                                      const std::string& task) {
  auto d = impl_;
  auto r = d->run_vm(vm, api::vm_operations::checkpoint, task, [d, vm, name]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    if (v->power_state != ps::Running)
      return fail(api::errors::VM_BAD_POWER_STATE(vm, "running", power_state_name(v->power_state)));
    return d->copy_vm(vm, name, {}, impl::copy_kind::checkpoint);
  });
  if (!r) return fail(std::move(r).error());
  return *r->as_string();
}

vm_lifecycle::result_void vm_lifecycle::power_state_reset(const std::string& vm, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::power_state_reset, task, [d, vm]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    for (const auto& dom : d->hv.list())
      if (dom.uuid == v->uuid)
        return fail(api::errors::OPERATION_NOT_ALLOWED("the VM's domain " + std::to_string(dom.domid) +
                                                       " exists on its host: shut it down instead"));
    if (v->power_state == ps::Suspended) return d->drop_suspended(vm);
    if (v->power_state == ps::Halted) return wire::value("");
    return d->record_halted(vm);
  }));
}

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

namespace {
template <class R>
api::api_result<void> destroy_detached(storage::database& db, const std::string& ref) {
  auto s = db.snapshot();
  const R* dev = s->get<R>(ref);
  if (!dev) return fail(api::errors::HANDLE_INVALID(std::string(R::api_class), ref));
  if (dev->currently_attached)
    return fail(api::errors::OPERATION_NOT_ALLOWED(std::string(R::api_class) + " is attached to a running VM: unplug it first"));
  if (!dev->current_operations.empty()) return fail(api::errors::OTHER_OPERATION_IN_PROGRESS(std::string(R::api_class), ref));
  auto t = db.begin();
  t.destroy(schema::get().class_of<R>(), ref);
  if (auto r = db.commit(std::move(t)); !r) return fail(std::move(r).error());
  return ok_v;
}
}  // namespace

vm_lifecycle::result_void vm_lifecycle::destroy_vbd(const std::string& vbd) { return destroy_detached<api::vbd>(impl_->db, vbd); }
vm_lifecycle::result_void vm_lifecycle::destroy_vif(const std::string& vif) { return destroy_detached<api::vif>(impl_->db, vif); }

api::api_result<std::vector<std::string>> vm_lifecycle::allowed_VBD_devices(const std::string& vm) const {
  auto s = impl_->db.snapshot();
  const api::vm* v = s->get<api::vm>(vm);
  if (!v) return fail(api::errors::HANDLE_INVALID("VM", vm));
  // HVM guests boot from IDE (4 devices); PV guests have 16 xvd devices.
  return impl_->free_devices<api::vbd>(vm, v->HVM_boot_policy.empty() ? 16 : 4);
}

api::api_result<std::vector<std::string>> vm_lifecycle::allowed_VIF_devices(const std::string& vm) const {
  auto s = impl_->db.snapshot();
  if (!s->get<api::vm>(vm)) return fail(api::errors::HANDLE_INVALID("VM", vm));
  return impl_->free_devices<api::vif>(vm, 7);
}

vm_lifecycle::result_void vm_lifecycle::assert_can_boot_here(const std::string& vm, const std::string& host) const {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  const api::vm* v = s->get<api::vm>(vm);
  if (!v) return fail(api::errors::HANDLE_INVALID("VM", vm));
  if (!s->get<api::host>(host)) return fail(api::errors::HANDLE_INVALID("host", host));
  if (host != d.host) return fail(api::errors::HOST_OFFLINE(host));  // until pools: only this host runs VMs
  if (v->is_a_template) return fail(api::errors::VM_IS_TEMPLATE(vm));
  if (auto st = d.check_host_can_run(*s, vm, *v); !st) return st;
  // Every disk must be on an SR this host can see.
  for (const auto& r : s->refs_where<api::vbd>("VM", vm)) {
    const api::vbd* b = s->get<api::vbd>(r);
    if (b->empty || b->VDI.is_null()) continue;
    const api::vdi* vdi = s->get<api::vdi>(b->VDI.opaque);
    if (!vdi) return fail(api::errors::VM_REQUIRES_VDI(vm, b->VDI.opaque));
    if (!d.repos.directory(*s, vdi->SR.opaque)) return fail(api::errors::VM_REQUIRES_SR(vm, vdi->SR.opaque));
  }
  if (v->power_state == ps::Halted) {
    auto info = d.hv.host();
    if (v->memory_dynamic_max > info.memory_free_bytes)
      return fail(api::errors::HOST_NOT_ENOUGH_FREE_MEMORY(std::to_string(v->memory_dynamic_max),
                                                            std::to_string(info.memory_free_bytes)));
  }
  return ok_v;
}

api::api_result<std::vector<std::string>> vm_lifecycle::possible_hosts(const std::string& vm) const {
  auto s = impl_->db.snapshot();
  if (!s->get<api::vm>(vm)) return fail(api::errors::HANDLE_INVALID("VM", vm));
  if (assert_can_boot_here(vm, impl_->host)) return std::vector<std::string>{impl_->host};
  return std::vector<std::string>{};
}

vm_lifecycle::result_void vm_lifecycle::vbd_plug(const std::string& vbd, const std::string& task) {
  auto d = impl_;
  return as_void(d->actors.run(d->vbd_cls, vbd, "plug", task, [d, vbd]() -> api::api_result<wire::value> {
    auto first = d->db.snapshot();
    const api::vbd* before = first->get<api::vbd>(vbd);
    auto disks = d->claim_disks(before ? before->VM.opaque : std::string(), {vbd}, "plug");
    if (!disks) return fail(disks.error());
    auto s = d->db.snapshot();
    auto row = impl::device_row<api::vbd>(*s, vbd);
    if (!row) return fail(row.error());
    const api::vbd* b = *row;
    auto vm = d->live_vm_of(*s, b->VM.opaque);
    if (!vm) return fail(vm.error());
    if (b->currently_attached) return fail(api::errors::DEVICE_ALREADY_ATTACHED(vbd));
    auto disk = d->disk_of(*s, *b, !(*vm)->HVM_boot_policy.empty());
    if (!disk) return fail(disk.error());
    if (auto r = d->hv.plug_disk(static_cast<int>((*vm)->domid), *disk); !r) return fail(from_backend(r.error()));
    return d->update_device<api::vbd>(vbd, [&](api::vbd& a) {
      a.currently_attached = true;
      a.device = disk->device;
    });
  }));
}

vm_lifecycle::result_void vm_lifecycle::vbd_unplug(const std::string& vbd, bool force, const std::string& task) {
  auto d = impl_;
  return as_void(d->actors.run(d->vbd_cls, vbd, force ? "unplug_force" : "unplug", task,
                               [d, vbd, force]() -> api::api_result<wire::value> {
                                 auto s = d->db.snapshot();
                                 auto row = impl::device_row<api::vbd>(*s, vbd);
                                 if (!row) return fail(row.error());
                                 const api::vbd* b = *row;
                                 auto vm = d->live_vm_of(*s, b->VM.opaque);
                                 if (!vm) return fail(vm.error());
                                 if (!b->currently_attached) return fail(api::errors::DEVICE_ALREADY_DETACHED(vbd));
                                 if (!b->unpluggable && !force) return fail(api::errors::VBD_NOT_UNPLUGGABLE(vbd));
                                 std::string device = impl::disk_device(*b, !(*vm)->HVM_boot_policy.empty());
                                 if (auto r = d->hv.unplug_disk(static_cast<int>((*vm)->domid), device); !r)
                                   return fail(from_backend(r.error()));
                                 return d->update_device<api::vbd>(vbd, [](api::vbd& a) { a.currently_attached = false; });
                               }));
}

vm_lifecycle::result_void vm_lifecycle::vbd_insert(const std::string& vbd, const std::string& vdi, const std::string& task) {
  auto d = impl_;
  return as_void(d->actors.run(d->vbd_cls, vbd, "insert", task, [d, vbd, vdi]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    auto row = impl::device_row<api::vbd>(*s, vbd);
    if (!row) return fail(row.error());
    const api::vbd* b = *row;
    if (b->type != api::vbd_type::CD) return fail(api::errors::VBD_NOT_REMOVABLE_MEDIA(vbd));
    if (!b->empty) return fail(api::errors::VBD_NOT_EMPTY(vbd));
    if (!s->get<api::vdi>(vdi)) return fail(api::errors::HANDLE_INVALID("VDI", vdi));
    return d->update_device<api::vbd>(vbd, [&](api::vbd& a) {
      a.VDI.opaque = vdi;
      a.empty = false;
    });
  }));
}

vm_lifecycle::result_void vm_lifecycle::vbd_eject(const std::string& vbd, const std::string& task) {
  auto d = impl_;
  return as_void(d->actors.run(d->vbd_cls, vbd, "eject", task, [d, vbd]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    auto row = impl::device_row<api::vbd>(*s, vbd);
    if (!row) return fail(row.error());
    const api::vbd* b = *row;
    if (b->type != api::vbd_type::CD) return fail(api::errors::VBD_NOT_REMOVABLE_MEDIA(vbd));
    if (b->empty) return fail(api::errors::VBD_IS_EMPTY(vbd));
    return d->update_device<api::vbd>(vbd, [](api::vbd& a) {
      a.VDI.opaque = null_ref<api::vdi>();
      a.empty = true;
    });
  }));
}

vm_lifecycle::result_void vm_lifecycle::vif_plug(const std::string& vif, const std::string& task) {
  auto d = impl_;
  return as_void(d->actors.run(d->vif_cls, vif, "plug", task, [d, vif]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    auto row = impl::device_row<api::vif>(*s, vif);
    if (!row) return fail(row.error());
    const api::vif* f = *row;
    auto vm = d->live_vm_of(*s, f->VM.opaque);
    if (!vm) return fail(vm.error());
    if (f->currently_attached) return fail(api::errors::DEVICE_ALREADY_ATTACHED(vif));
    if (auto r = d->hv.plug_nic(static_cast<int>((*vm)->domid), d->nic_of(*s, *f)); !r)
      return fail(from_backend(r.error()));
    return d->update_device<api::vif>(vif, [](api::vif& a) { a.currently_attached = true; });
  }));
}

vm_lifecycle::result_void vm_lifecycle::vif_unplug(const std::string& vif, bool, const std::string& task) {
  auto d = impl_;
  return as_void(d->actors.run(d->vif_cls, vif, "unplug", task, [d, vif]() -> api::api_result<wire::value> {
    auto s = d->db.snapshot();
    auto row = impl::device_row<api::vif>(*s, vif);
    if (!row) return fail(row.error());
    const api::vif* f = *row;
    auto vm = d->live_vm_of(*s, f->VM.opaque);
    if (!vm) return fail(vm.error());
    if (!f->currently_attached) return fail(api::errors::DEVICE_ALREADY_DETACHED(vif));
    if (auto r = d->hv.unplug_nic(static_cast<int>((*vm)->domid), std::atoi(f->device.c_str())); !r)
      return fail(from_backend(r.error()));
    return d->update_device<api::vif>(vif, [](api::vif& a) { a.currently_attached = false; });
  }));
}

}  // namespace xapid::actors
