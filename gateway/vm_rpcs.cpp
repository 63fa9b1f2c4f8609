#include "gateway/vm_rpcs.hpp"

#include "gateway/typed_rpcs.hpp"

namespace xapid::gateway {
namespace {

namespace m = api::method;
using api::ref;

// The operation's key in current_operations: its Async task, or a ref of its own.
std::string task_key(const call_context& ctx, id_source& ids) {
  return ctx.task.empty() ? ids.opaque_ref() : ctx.task;
}

}  // namespace

const std::set<std::string_view>& vm_rpcs_replacing_implicit() {
  static const std::set<std::string_view> names{"VM.destroy"};
  return names;
}

void register_vm_rpcs(dispatcher& d, actors::vm_lifecycle& vms, id_source& ids) {
  using vm_ref = ref<api::vm>;
  using host_ref = ref<api::host>;
  auto key = [&ids](const call_context& ctx) { return task_key(ctx, ids); };
  constexpr bool blocking = true;  // operations wait for the hypervisor: never on an I/O thread

  add_typed<m::VM_start>(d, [&vms, key](call_context& c, const vm_ref& vm, bool paused, bool force) {
    return vms.start(vm.opaque, paused, force, key(c));
  }, blocking);
  add_typed<m::VM_start_on>(d, [&vms, key](call_context& c, const vm_ref& vm, const host_ref& h, bool paused, bool force) {
    return vms.start_on(vm.opaque, h.opaque, paused, force, key(c));
  }, blocking);
  // The operations that take only the VM.
  using vm_op = api::api_result<void> (actors::vm_lifecycle::*)(const std::string&, const std::string&);
  auto simple = [&](auto method_tag, vm_op op) {
    using M = decltype(method_tag);
    add_typed<M>(d, [&vms, key, op](call_context& c, const vm_ref& vm) { return (vms.*op)(vm.opaque, key(c)); },
                 blocking);
  };
  simple(m::VM_pause{}, &actors::vm_lifecycle::pause);
  simple(m::VM_unpause{}, &actors::vm_lifecycle::unpause);
  simple(m::VM_clean_shutdown{}, &actors::vm_lifecycle::clean_shutdown);
  simple(m::VM_hard_shutdown{}, &actors::vm_lifecycle::hard_shutdown);
  simple(m::VM_shutdown{}, &actors::vm_lifecycle::shutdown);
  simple(m::VM_clean_reboot{}, &actors::vm_lifecycle::clean_reboot);
  simple(m::VM_hard_reboot{}, &actors::vm_lifecycle::hard_reboot);
  simple(m::VM_suspend{}, &actors::vm_lifecycle::suspend);
  simple(m::VM_revert{}, &actors::vm_lifecycle::revert);
  simple(m::VM_provision{}, &actors::vm_lifecycle::provision);
  simple(m::VM_destroy{}, &actors::vm_lifecycle::destroy);
  add_typed<m::VM_resume>(d, [&vms, key](call_context& c, const vm_ref& vm, bool paused, bool force) {
    return vms.resume(vm.opaque, paused, force, key(c));
  }, blocking);
  add_typed<m::VM_resume_on>(d, [&vms, key](call_context& c, const vm_ref& vm, const host_ref& h, bool paused, bool force) {
    return vms.resume_on(vm.opaque, h.opaque, paused, force, key(c));
  }, blocking);

  auto as_vm_ref = [](api::api_result<std::string> r) -> api::api_result<vm_ref> {
    if (!r) return fail(std::move(r).error());
    return vm_ref{*r};
  };
  add_typed<m::VM_clone>(d, [&vms, key, as_vm_ref](call_context& c, const vm_ref& vm, const std::string& name) {
    return as_vm_ref(vms.clone(vm.opaque, name, key(c)));
  }, blocking);
  add_typed<m::VM_copy>(d, [&vms, key, as_vm_ref](call_context& c, const vm_ref& vm, const std::string& name,
                                                  const ref<api::sr>& sr) {
    return as_vm_ref(vms.copy(vm.opaque, name, sr.opaque, key(c)));
  }, blocking);
  add_typed<m::VM_snapshot>(d, [&vms, key, as_vm_ref](call_context& c, const vm_ref& vm, const std::string& name) {
    return as_vm_ref(vms.snapshot(vm.opaque, name, key(c)));
  }, blocking);
  add_typed<m::VM_set_memory_dynamic_range>(d, [&vms, key](call_context& c, const vm_ref& vm, std::int64_t min,
                                                          std::int64_t max) {
    return vms.set_memory_dynamic_range(vm.opaque, min, max, key(c));
  }, blocking);
  add_typed<m::VM_set_VCPUs_number_live>(d, [&vms, key](call_context& c, const vm_ref& vm, std::int64_t n) {
    return vms.set_VCPUs_number_live(vm.opaque, n, key(c));
  }, blocking);

  // Questions: answered from a snapshot, no operation.
  add_typed<m::VM_get_allowed_VBD_devices>(d, [&vms](call_context&, const vm_ref& vm) {
    return vms.allowed_VBD_devices(vm.opaque);
  });
  add_typed<m::VM_get_allowed_VIF_devices>(d, [&vms](call_context&, const vm_ref& vm) {
    return vms.allowed_VIF_devices(vm.opaque);
  });
  add_typed<m::VM_assert_can_boot_here>(d, [&vms](call_context&, const vm_ref& vm, const host_ref& h) {
    return vms.assert_can_boot_here(vm.opaque, h.opaque);
  });
  add_typed<m::VM_get_possible_hosts>(d, [&vms](call_context&, const vm_ref& vm) -> api::api_result<std::vector<host_ref>> {
    auto hosts = vms.possible_hosts(vm.opaque);
    if (!hosts) return fail(std::move(hosts).error());
    std::vector<host_ref> out;
    for (auto& h : *hosts) out.push_back(host_ref{h});
    return out;
  });

  // Devices.
  using vbd_ref = ref<api::vbd>;
  using vif_ref = ref<api::vif>;
  add_typed<m::VBD_plug>(d, [&vms, key](call_context& c, const vbd_ref& v) { return vms.vbd_plug(v.opaque, key(c)); },
                         blocking);
  add_typed<m::VBD_unplug>(d, [&vms, key](call_context& c, const vbd_ref& v) {
    return vms.vbd_unplug(v.opaque, false, key(c));
  }, blocking);
  add_typed<m::VBD_unplug_force>(d, [&vms, key](call_context& c, const vbd_ref& v) {
    return vms.vbd_unplug(v.opaque, true, key(c));
  }, blocking);
  add_typed<m::VBD_insert>(d, [&vms, key](call_context& c, const vbd_ref& v, const ref<api::vdi>& vdi) {
    return vms.vbd_insert(v.opaque, vdi.opaque, key(c));
  }, blocking);
  add_typed<m::VBD_eject>(d, [&vms, key](call_context& c, const vbd_ref& v) { return vms.vbd_eject(v.opaque, key(c)); },
                          blocking);
  add_typed<m::VIF_plug>(d, [&vms, key](call_context& c, const vif_ref& v) { return vms.vif_plug(v.opaque, key(c)); },
                         blocking);
  add_typed<m::VIF_unplug>(d, [&vms, key](call_context& c, const vif_ref& v) {
    return vms.vif_unplug(v.opaque, false, key(c));
  }, blocking);
  add_typed<m::VIF_unplug_force>(d, [&vms, key](call_context& c, const vif_ref& v) {
    return vms.vif_unplug(v.opaque, true, key(c));
  }, blocking);
}

}  // namespace xapid::gateway
