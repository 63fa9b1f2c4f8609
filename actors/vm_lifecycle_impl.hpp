// Inside vm_lifecycle, shared by the files that implement it by job (as RocksDB splits DBImpl):
// vm_lifecycle.cpp the steps every operation uses, vm_power.cpp, vm_copies.cpp,
// vm_observer.cpp, vm_devices.cpp, vm_settings.cpp. Not for use outside actors/.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "actors/vm_lifecycle.hpp"
#include "actors/vm_rules.hpp"

namespace xapid::actors {

inline api::api_error from_backend(const xen::backend_error& e) {
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
inline api::api_error shutdown_error(const xen::backend_error& e, const guest_wait& wait) {
  if (e.what == xen::backend_error::kind::not_acknowledged) return api::errors::VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT();
  if (e.what == xen::backend_error::kind::cancelled) return api::errors::TASK_CANCELLED(wait.task);
  return from_backend(e);
}

template <class R>
std::string null_ref() {
  return api::ref<R>{}.opaque;
}

inline api::api_result<void> as_void(api::api_result<wire::value> r) {
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

struct vm_lifecycle::impl {
  storage::database& db;
  xen::backend& hv;
  host_actors& actors;
  storage_repos& repos;
  clock& clk;
  std::string host;
  message_log* messages = nullptr;
  const std::size_t vm_cls = storage::schema::get().class_of<api::vm>();
  const std::size_t vbd_cls = storage::schema::get().class_of<api::vbd>();
  const std::size_t vif_cls = storage::schema::get().class_of<api::vif>();

  api::datetime now() const { return api::datetime{clk.now_ms() / 1000}; }

  // Runs `work` as operation `op` of the VM's actor.
  // A running or paused VM's domain is its host's: once admitted (the VM cannot move then), an
  // operation that reached another host (a route gone stale) never touches this hypervisor's
  // domain of that id. power_state_reset is the exception: it is for a VM whose host is gone.
  api::api_result<wire::value> run_vm(const std::string& vm, api::vm_operations op, const std::string& task,
                                      std::function<api::api_result<wire::value>()> work) {
    if (op == api::vm_operations::power_state_reset)
      return actors.run(vm_cls, vm, std::string(api::to_string(op)), task, std::move(work));
    return actors.run(vm_cls, vm, std::string(api::to_string(op)), task, [this, vm, work = std::move(work)]() {
      if (auto st = runs_here_when_live(vm); !st) return api::api_result<wire::value>(fail(st.error()));
      return work();
    });
  }
  // The same for an operation of a VBD or VIF (`cls`), on its VM's domain.
  api::api_result<wire::value> run_device(std::size_t cls, const std::string& ref, std::string op, const std::string& task,
                                          std::function<api::api_result<wire::value>()> work) {
    return actors.run(cls, ref, std::move(op), task, [this, cls, ref, work = std::move(work)]() {
      auto s = db.snapshot();
      std::string vm;
      if (const api::vbd* b = cls == vbd_cls ? s->get<api::vbd>(ref) : nullptr) vm = b->VM.opaque;
      if (const api::vif* f = cls == vif_cls ? s->get<api::vif>(ref) : nullptr) vm = f->VM.opaque;
      if (auto st = runs_here_when_live(vm); !st) return api::api_result<wire::value>(fail(st.error()));
      return work();
    });
  }
  api::status runs_here_when_live(const std::string& vm) const {
    auto s = db.snapshot();
    const api::vm* v = s->get<api::vm>(vm);
    if (v && (v->power_state == api::vm_power_state::Running || v->power_state == api::vm_power_state::Paused) &&
        v->resident_on.opaque != host && s->get<api::host>(v->resident_on.opaque))
      return fail(api::errors::OPERATION_NOT_ALLOWED("the VM runs on host " + v->resident_on.opaque +
                                                     ": its operations are carried out there"));
    return {};
  }

  // --- vm_lifecycle.cpp: what the hypervisor is given ---

  // An SR's directory to make images in (disks of a provisioned VM, suspend images).
  api::api_result<std::string> sr_dir(const storage::state& s, const std::string& sr) const {
    return repos.directory(s, sr, true);
  }
  api::api_result<std::string> vdi_path(const storage::state& s, const std::string& vdi_ref) const {
    return repos.vdi_path(s, vdi_ref);
  }
  static std::string disk_device(const api::vbd& vbd, bool hvm);
  api::api_result<xen::disk> disk_of(const storage::state& s, const api::vbd& vbd, bool hvm) const;
  xen::nic nic_of(const storage::state& s, const api::vif& vif) const;
  api::api_result<xen::domain_config> config_of(const storage::state& s, const std::string& ref, const api::vm& vm) const;

  // --- vm_lifecycle.cpp: what the database records ---

  // The VM as running (or paused) on this host as `domid`, its devices attached, its metrics.
  // (`on`: another host of the pool the VM has moved to, live migration's record.)
  void record_live(storage::transaction& t, const storage::state& s, const std::string& ref, const api::vm& before,
                   int domid, api::vm_power_state power, bool fresh_boot, const std::string& on = {});
  // The VM halted (or suspended): no domain, nowhere resident, devices detached. `by_user`: a
  // shutdown or suspend asked for, after which HA no longer keeps the VM running
  // (ha_always_run), unlike a guest that stopped or a host that died.
  void record_stopped(storage::transaction& t, const storage::state& s, const std::string& ref, const api::vm& before,
                      api::vm_power_state power, const std::string& suspend_vdi = {}, bool by_user = false);
  void set_devices_attached(storage::transaction& t, const storage::state& s, const std::string& vm, bool attached);
  void record_host_memory(storage::transaction& t, const storage::state& s);
  api::api_result<wire::value> commit(storage::transaction t);

  // --- vm_lifecycle.cpp: the steps operations share ---

  // A disk that is not sharable is used by one running VM at a time when either side writes
  // (xapi: VDI_IN_USE). The disks' locks are held from the check until the caller has recorded
  // its VM running (or the plug), so two VMs sharing a disk cannot both pass it.
  std::mutex disk_locks_mu{};
  std::map<std::string, std::shared_ptr<std::mutex>> disk_locks{};  // by VDI ref
  using held_disks = std::vector<std::unique_lock<std::mutex>>;
  api::api_result<held_disks> claim_disks(const std::string& vm_ref, const std::vector<std::string>& vbds, const char* op);
  api::status check_host_can_run(const storage::state& s, const std::string& ref, const api::vm& vm) const;
  // The VM's own settings allow it to run (VCPUs, memory): check_host_can_run without the host.
  api::status check_vm_can_run(const std::string& ref, const api::vm& vm) const;
  // Records a booted domain; destroys it again if the record cannot be made.
  api::api_result<wire::value> record_boot(const std::string& ref, int domid, bool paused, bool fresh_boot);
  api::api_result<wire::value> record_halted(const std::string& ref, bool by_user = false);
  // A suspended VM halts by forgetting its saved state.
  api::api_result<wire::value> drop_suspended(const std::string& ref);
  // The suspend image a VM's memory goes to: a VDI record (not yet created) and its path, on the
  // VM's suspend_SR or the pool's suspend_image_SR.
  api::api_result<std::pair<api::vdi, std::string>> suspend_image_for(const storage::state& s, const std::string& ref,
                                                                       const api::vm& vm);

  // --- vm_power.cpp ---

  // Builds and (unless `paused`) unpauses the VM's domain; answers its domid.
  api::api_result<int> boot(const storage::state& s, const std::string& ref, const api::vm& vm, bool paused);
  api::api_result<wire::value> start_work(const std::string& ref, bool paused);
  // Tears the domain down (asking the guest first when `clean`) and records the VM halted.
  api::api_result<wire::value> stop_work(const std::string& ref, bool clean, const guest_wait& wait = {});
  // Stops the domain (the guest asked to reboot, or not) and boots it again.
  api::api_result<wire::value> reboot_work(const std::string& ref, bool clean, const guest_wait& wait = {});

  // --- vm_migration.cpp: live migration within the pool ---

  std::function<std::optional<vm_lifecycle::migration_peer>(const std::string& host)> migration_peers{};
  api::api_result<wire::value> migrate_work(const std::string& ref, const std::string& to, const guest_wait& wait);
  // Domains built here for VMs on their way in (by VM ref): the domain, and when observe()
  // settles it if nobody has.
  struct incoming {
    int domid = 0;
    std::chrono::steady_clock::time_point settle_at;
  };
  std::mutex incoming_mu{};
  std::map<std::string, incoming> incoming_vms{};
  void settle_incoming();

  // --- vm_copies.cpp: clone, copy, snapshot, checkpoint; provisioning ---

  enum class copy_kind { clone, copy, snapshot, checkpoint };
  api::api_result<wire::value> copy_vm(const std::string& ref, const std::string& name, const std::string& sr,
                                       copy_kind kind);
  // Saves a running VM's memory and resumes it from the image (a new domain); answers the image.
  api::api_result<std::pair<api::vdi, std::string>> save_and_resume(const storage::state& s, const std::string& ref,
                                                                     const api::vm& vm);
  // Destroys the VM's devices and their metrics (not its disks' VDIs) in `t`.
  void drop_devices(storage::transaction& t, const storage::state& s, const std::string& ref);
  // The template's disks (other_config:disks) become VDIs and VBDs.
  api::api_result<wire::value> provision_work(const std::string& ref);

  // --- vm_devices.cpp: VBD and VIF hotplug ---

  // The device numbers of the VM still free, of the first `count`.
  template <class R>
  std::vector<std::string> free_devices(const std::string& vm, int count) const;
  // A device as its operation finds it: a writer outside its actor (VDI.destroy takes the
  // VDI's VBDs with it) may have removed it since the operation was admitted.
  template <class R>
  static api::api_result<const R*> device_row(const storage::state& s, const std::string& ref);
  // The running VM a device belongs to, or the error a device operation of a stopped VM gets.
  api::api_result<const api::vm*> live_vm_of(const storage::state& s, const std::string& vm_ref) const;
  template <class R, class F>
  api::api_result<wire::value> update_device(const std::string& ref, F change);

  // --- vm_observer.cpp: what guests did on their own ---

  // Applies the VM's after-shutdown/reboot/crash action to its stopped domain.
  void guest_stopped(const std::string& ref, const api::vm& vm, const xen::domain_info& d);
};

}  // namespace xapid::actors
