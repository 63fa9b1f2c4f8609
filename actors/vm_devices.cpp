// VBD and VIF hotplug (plug, unplug, insert, eject), their destruction, and the device numbers
// a VM has free.
#include "actors/vm_lifecycle_impl.hpp"

#include <set>

namespace xapid::actors {
namespace {

using storage::schema;
using ps = api::vm_power_state;

}  // namespace

template <class R>
std::vector<std::string> vm_lifecycle::impl::free_devices(const std::string& vm, int count) const {
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

template <class R>
api::api_result<const R*> vm_lifecycle::impl::device_row(const storage::state& s, const std::string& ref) {
  const R* r = s.get<R>(ref);
  if (!r) return fail(api::errors::HANDLE_INVALID(std::string(R::api_class), ref));
  return r;
}

api::api_result<const api::vm*> vm_lifecycle::impl::live_vm_of(const storage::state& s,
                                                               const std::string& vm_ref) const {
  const api::vm* vm = s.get<api::vm>(vm_ref);
  if (!vm) return fail(api::errors::HANDLE_INVALID("VM", vm_ref));
  if (vm->power_state != ps::Running && vm->power_state != ps::Paused)
    return fail(api::errors::VM_BAD_POWER_STATE(vm_ref, "running, paused", power_state_name(vm->power_state)));
  return vm;
}

template <class R, class F>
api::api_result<wire::value> vm_lifecycle::impl::update_device(const std::string& ref, F change) {
  auto s = db.snapshot();
  const R* before = s->get<R>(ref);
  if (!before) return fail(api::errors::HANDLE_INVALID(std::string(R::api_class), ref));
  R after = *before;
  change(after);
  auto t = db.begin();
  t.update(ref, *before, after);
  return commit(std::move(t));
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

vm_lifecycle::result_void vm_lifecycle::vbd_plug(const std::string& vbd, const std::string& task) {
  auto d = impl_;
  return as_void(d->run_device(d->vbd_cls, vbd, "plug", task, [d, vbd]() -> api::api_result<wire::value> {
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
  return as_void(d->run_device(d->vbd_cls, vbd, force ? "unplug_force" : "unplug", task,
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
  return as_void(d->run_device(d->vbd_cls, vbd, "insert", task, [d, vbd, vdi]() -> api::api_result<wire::value> {
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
  return as_void(d->run_device(d->vbd_cls, vbd, "eject", task, [d, vbd]() -> api::api_result<wire::value> {
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
  return as_void(d->run_device(d->vif_cls, vif, "plug", task, [d, vif]() -> api::api_result<wire::value> {
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
  return as_void(d->run_device(d->vif_cls, vif, "unplug", task, [d, vif]() -> api::api_result<wire::value> {
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
