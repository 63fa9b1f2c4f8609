// VM power operations: start, pause, shutdown, reboot, suspend, resume, power_state_reset, and
// whether this host can boot a VM.
#include "actors/vm_lifecycle_impl.hpp"

#include "actors/placement.hpp"
#include "sm/images.hpp"

namespace xapid::actors {
namespace {

using storage::schema;
using ps = api::vm_power_state;

}  // namespace

api::api_result<int> vm_lifecycle::impl::boot(const storage::state& s, const std::string& ref, const api::vm& vm,
                                              bool paused) {
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

api::api_result<wire::value> vm_lifecycle::impl::start_work(const std::string& ref, bool paused) {
  auto disks = claim_disks(ref, db.snapshot()->refs_where<api::vbd>("VM", ref), "start");
  if (!disks) return fail(disks.error());
  auto s = db.snapshot();
  const api::vm* vm = s->get<api::vm>(ref);
  if (auto st = check_host_can_run(*s, ref, *vm); !st) return fail(st.error());
  if (auto st = can_boot_on(*s, ref, host); !st) return fail(st.error());  // its SRs and networks are here
  auto domid = boot(*s, ref, *vm, paused);
  if (!domid) return fail(domid.error());
  return record_boot(ref, *domid, paused, true);
}

api::api_result<wire::value> vm_lifecycle::impl::stop_work(const std::string& ref, bool clean, const guest_wait& wait) {
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
  return record_halted(ref, true);
}

api::api_result<wire::value> vm_lifecycle::impl::reboot_work(const std::string& ref, bool clean,
                                                             const guest_wait& wait) {
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

vm_lifecycle::result_void vm_lifecycle::start(const std::string& vm, bool paused, bool, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::start, task, [d, vm, paused] { return d->start_work(vm, paused); }));
}

vm_lifecycle::result_void vm_lifecycle::start_on(const std::string& vm, const std::string& host, bool paused,
                                                 bool force, const std::string& task) {
  if (auto st = runs_here(vm, host); !st) return st;
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
    d->record_stopped(t, *s2, vm, *now_vm, ps::Suspended, vdi_ref, true);
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
    if (auto st = can_boot_on(*s, vm, d->host); !st) return fail(st.error());
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
  if (auto st = runs_here(vm, host); !st) return st;
  return resume(vm, paused, force, task);
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

// start_on and resume_on reach the host they name (the pool sends them there: gateway's call
// routes); one that arrives elsewhere cannot boot the VM there.
vm_lifecycle::result_void vm_lifecycle::runs_here(const std::string& vm, const std::string& host) const {
  if (auto st = assert_can_boot_here(vm, host); !st) return st;
  if (host != impl_->host) return fail(api::errors::HOST_OFFLINE(host));
  return ok_v;
}

vm_lifecycle::result_void vm_lifecycle::assert_can_boot_here(const std::string& vm, const std::string& host) const {
  auto s = impl_->db.snapshot();
  if (auto st = can_boot_on(*s, vm, host); !st) return st;
  return impl_->check_vm_can_run(vm, *s->get<api::vm>(vm));
}

api::api_result<std::vector<std::string>> vm_lifecycle::possible_hosts(const std::string& vm) const {
  auto s = impl_->db.snapshot();
  const api::vm* v = s->get<api::vm>(vm);
  if (!v) return fail(api::errors::HANDLE_INVALID("VM", vm));
  if (!impl_->check_vm_can_run(vm, *v)) return std::vector<std::string>{};
  return actors::possible_hosts(*s, vm);
}

}  // namespace xapid::actors
