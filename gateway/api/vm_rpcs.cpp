#include "gateway/api/vm_rpcs.hpp"

#include "gateway/rpc/typed_rpcs.hpp"

namespace xapid::gateway {
namespace {

namespace m = api::method;
using api::ref;

// The operation's key in current_operations: its Async task, or a ref of its own.
std::string task_key(const call_context& ctx, id_source& ids) {
  return ctx.task.empty() ? ids.opaque_ref() : ctx.task;
}

}  // namespace

void register_vm_rpcs(dispatcher& d, actors::vm_lifecycle& vms, id_source& ids, task_manager& tasks,
                      actors::message_log& messages) {
  using vm_ref = ref<api::vm>;
  using host_ref = ref<api::host>;
  auto key = [&ids](const call_context& ctx) { return task_key(ctx, ids); };
  constexpr bool blocking = true;  // operations wait for the hypervisor: never on an I/O thread
  namespace alerts = actors::alerts;
  using alert_kind = std::pair<const char*, std::int64_t>;
  // As xapi's API layer does, an operation that succeeded raises its message (VM_STARTED, ...).
  auto told = [&messages](api::api_result<void> r, alert_kind kind, const vm_ref& vm, const std::string& what) {
    if (r) messages.raise_for_vm(kind, vm.opaque, what);
    return r;
  };
  auto started = [&messages](const vm_ref& vm, const char* verb) {
    return std::string(verb) + " on host: " + messages.host_of_vm(vm.opaque);
  };

  add_typed<m::VM_start>(d, [&vms, &messages, key, started](call_context& c, const vm_ref& vm, bool paused, bool force) {
    auto r = vms.start(vm.opaque, paused, force, key(c));
    if (r) messages.raise_for_vm(alerts::VM_STARTED, vm.opaque, started(vm, "started"));
    return r;
  }, blocking);
  add_typed<m::VM_start_on>(d, [&vms, &messages, key, started](call_context& c, const vm_ref& vm, const host_ref& h, bool paused,
                                                          bool force) {
    auto r = vms.start_on(vm.opaque, h.opaque, paused, force, key(c));
    if (r) messages.raise_for_vm(alerts::VM_STARTED, vm.opaque, started(vm, "started"));
    return r;
  }, blocking);
  // The operations that take only the VM, and the message each raises (none: nullptr).
  using vm_op = api::api_result<void> (actors::vm_lifecycle::*)(const std::string&, const std::string&);
  auto simple = [&](auto method_tag, vm_op op, alert_kind kind = {nullptr, 0}, const char* what = "") {
    using M = decltype(method_tag);
    add_typed<M>(d, [&vms, key, op, told, kind, what](call_context& c, const vm_ref& vm) {
      auto r = (vms.*op)(vm.opaque, key(c));
      return kind.first ? told(std::move(r), kind, vm, what) : r;
    }, blocking);
  };
  // The clean stops wait for the guest: task.cancel on their Async task ends the wait.
  using waiting_op = api::api_result<void> (actors::vm_lifecycle::*)(const std::string&, const std::string&,
                                                                      actors::vm_lifecycle::cancel_flag);
  auto waiting = [&](auto method_tag, waiting_op op, alert_kind kind, const char* what) {
    using M = decltype(method_tag);
    add_typed<M>(d, [&vms, &tasks, key, op, told, kind, what](call_context& c, const vm_ref& vm) {
      auto cancel = c.task.empty() ? nullptr : tasks.watch_cancel(c.task);
      return told((vms.*op)(vm.opaque, key(c), std::move(cancel)), kind, vm, what);
    }, blocking);
  };
  // Live migration within the pool, on the VM's host (call_routes sends it there); task.cancel
  // of its Async task ends the memory copy.
  add_typed<m::VM_pool_migrate>(d, [&vms, &tasks, &messages, key](call_context& c, const vm_ref& vm, const host_ref& h,
                                                                  const api::map<std::string, std::string>&) {
    auto cancel = c.task.empty() ? nullptr : tasks.watch_cancel(c.task);
    const std::string from = messages.host_quoted(messages.resident_host(vm.opaque));
    auto r = vms.pool_migrate(vm.opaque, h.opaque, key(c), std::move(cancel));
    if (r) messages.raise_for_vm(alerts::VM_MIGRATED, vm.opaque, "migrated from host " + from + " to host " + messages.host_quoted(h.opaque));
    return r;
  }, blocking);
  simple(m::VM_pause{}, &actors::vm_lifecycle::pause, alerts::VM_PAUSED, "paused");
  simple(m::VM_unpause{}, &actors::vm_lifecycle::unpause, alerts::VM_UNPAUSED, "unpaused");
  waiting(m::VM_clean_shutdown{}, &actors::vm_lifecycle::clean_shutdown, alerts::VM_SHUTDOWN, "shutdown");
  simple(m::VM_hard_shutdown{}, &actors::vm_lifecycle::hard_shutdown, alerts::VM_SHUTDOWN, "shutdown forcibly");
  waiting(m::VM_shutdown{}, &actors::vm_lifecycle::shutdown, alerts::VM_SHUTDOWN, "shutdown");
  waiting(m::VM_clean_reboot{}, &actors::vm_lifecycle::clean_reboot, alerts::VM_REBOOTED, "rebooted cleanly");
  simple(m::VM_hard_reboot{}, &actors::vm_lifecycle::hard_reboot, alerts::VM_REBOOTED, "rebooted forcibly");
  simple(m::VM_suspend{}, &actors::vm_lifecycle::suspend, alerts::VM_SUSPENDED, "suspended");
  add_typed<m::VM_revert>(d, [&vms, &messages, key, told](call_context& c, const vm_ref& snapshot) {
    // The message is the VM's (the snapshot's parent), naming the snapshot.
    const std::string words = "reverted to snapshot: " + messages.vm_name(snapshot.opaque) + " (uuid " +
                              messages.vm_uuid(snapshot.opaque) + ")";
    auto r = vms.revert(snapshot.opaque, key(c));
    return told(std::move(r), alerts::VM_SNAPSHOT_REVERTED, vm_ref{messages.snapshot_of(snapshot.opaque)}, words);
  }, blocking);
  simple(m::VM_provision{}, &actors::vm_lifecycle::provision);
  simple(m::VM_destroy{}, &actors::vm_lifecycle::destroy);
  add_typed<m::VM_resume>(d, [&vms, &messages, key, started](call_context& c, const vm_ref& vm, bool paused, bool force) {
    auto r = vms.resume(vm.opaque, paused, force, key(c));
    if (r) messages.raise_for_vm(alerts::VM_RESUMED, vm.opaque, started(vm, "resumed"));
    return r;
  }, blocking);
  add_typed<m::VM_resume_on>(d, [&vms, &messages, key, started](call_context& c, const vm_ref& vm, const host_ref& h, bool paused,
                                                           bool force) {
    auto r = vms.resume_on(vm.opaque, h.opaque, paused, force, key(c));
    if (r) messages.raise_for_vm(alerts::VM_RESUMED, vm.opaque, started(vm, "resumed"));
    return r;
  }, blocking);

  // Copies answer the new VM; `words` says what the message tells of it.
  using copy_words = std::function<std::string(const std::string& new_vm)>;
  auto copied = [&messages](api::api_result<std::string> r, const vm_ref& vm, alert_kind kind,
                            const copy_words& words) -> api::api_result<vm_ref> {
    if (!r) return fail(std::move(r).error());
    if (kind.first) messages.raise_for_vm(kind, vm.opaque, words(*r));
    return vm_ref{*r};
  };
  add_typed<m::VM_clone>(d, [&vms, &messages, key, copied](call_context& c, const vm_ref& vm, const std::string& name) {
    return copied(vms.clone(vm.opaque, name, key(c)), vm, alerts::VM_CLONED,
                  [&](const std::string& to) { return "cloned (new uuid: " + messages.vm_uuid(to) + ")"; });
  }, blocking);
  add_typed<m::VM_copy>(d, [&vms, key, copied](call_context& c, const vm_ref& vm, const std::string& name,
                                               const ref<api::sr>& sr) {
    return copied(vms.copy(vm.opaque, name, sr.opaque, key(c)), vm, {nullptr, 0}, {});
  }, blocking);
  add_typed<m::VM_snapshot>(d, [&vms, key, copied](call_context& c, const vm_ref& vm, const std::string& name) {
    return copied(vms.snapshot(vm.opaque, name, key(c)), vm, alerts::VM_SNAPSHOTTED,
                  [&](const std::string&) { return "snapshotted, snapshot name: " + name; });
  }, blocking);
  add_typed<m::VM_set_memory_dynamic_range>(d, [&vms, key](call_context& c, const vm_ref& vm, std::int64_t min,
                                                          std::int64_t max) {
    return vms.set_memory_dynamic_range(vm.opaque, min, max, key(c));
  }, blocking);
  add_typed<m::VM_set_VCPUs_number_live>(d, [&vms, key](call_context& c, const vm_ref& vm, std::int64_t n) {
    return vms.set_VCPUs_number_live(vm.opaque, n, key(c));
  }, blocking);

  // Settings that need the VM halted (or, for the dynamic range, halted or running).
  using op = api::vm_operations;
  using edit_fn = std::function<api::status(api::vm&)>;
  auto settings = [&vms, key](call_context& c, const vm_ref& vm, op o, edit_fn e) {
    return vms.change_settings(vm.opaque, o, std::move(e), key(c));
  };
  add_typed<m::VM_set_memory_limits>(d, [settings](call_context& c, const vm_ref& vm, std::int64_t smin, std::int64_t smax,
                                                   std::int64_t dmin, std::int64_t dmax) {
    return settings(c, vm, op::changing_memory_limits, [=](api::vm& v) -> api::status {
      v.memory_static_min = smin;
      v.memory_static_max = smax;
      v.memory_dynamic_min = dmin;
      v.memory_dynamic_max = dmax;
      return {};
    });
  }, blocking);
  add_typed<m::VM_set_memory_static_range>(d, [settings](call_context& c, const vm_ref& vm, std::int64_t min, std::int64_t max) {
    return settings(c, vm, op::changing_static_range, [=](api::vm& v) -> api::status {
      v.memory_static_min = min;
      v.memory_static_max = max;
      return {};
    });
  }, blocking);
  // One field each: which field, and the operation that guards it.
  struct guarded_field {
    std::int64_t api::vm::*field;
    op guard;
  };
  auto guarded_setter = [&](auto method_tag, guarded_field f) {
    add_typed<decltype(method_tag)>(d, [settings, f](call_context& c, const vm_ref& vm, std::int64_t value) {
      return settings(c, vm, f.guard, [=](api::vm& v) -> api::status {
        v.*f.field = value;
        return {};
      });
    }, blocking);
  };
  guarded_setter(m::VM_set_memory_dynamic_max{}, {&api::vm::memory_dynamic_max, op::changing_dynamic_range});
  guarded_setter(m::VM_set_memory_dynamic_min{}, {&api::vm::memory_dynamic_min, op::changing_dynamic_range});
  guarded_setter(m::VM_set_memory_static_max{}, {&api::vm::memory_static_max, op::changing_static_range});
  guarded_setter(m::VM_set_memory_static_min{}, {&api::vm::memory_static_min, op::changing_static_range});
  guarded_setter(m::VM_set_VCPUs_max{}, {&api::vm::VCPUs_max, op::changing_VCPUs});
  guarded_setter(m::VM_set_VCPUs_at_startup{}, {&api::vm::VCPUs_at_startup, op::changing_VCPUs});
  add_typed<m::VM_set_HVM_shadow_multiplier>(d, [settings](call_context& c, const vm_ref& vm, double value) {
    return settings(c, vm, op::changing_shadow_memory, [=](api::vm& v) -> api::status {
      if (!(value >= 1.0)) return fail(api::errors::INVALID_VALUE("HVM_shadow_multiplier", std::to_string(value)));
      v.HVM_shadow_multiplier = value;
      return {};
    });
  }, blocking);
  // Fields that order start-up and HA, changed without an operation.
  auto field_setter = [&](auto method_tag, std::int64_t api::vm::*field, const char* name) {
    add_typed<decltype(method_tag)>(d, [&vms, field, name](call_context&, const vm_ref& vm, std::int64_t value) {
      return vms.edit(vm.opaque, [=](api::vm& v) -> api::status {
        if (value < 0) return fail(api::errors::INVALID_VALUE(name, std::to_string(value)));
        v.*field = value;
        return {};
      });
    });
  };
  field_setter(m::VM_set_order{}, &api::vm::order, "order");
  field_setter(m::VM_set_start_delay{}, &api::vm::start_delay, "start_delay");
  field_setter(m::VM_set_shutdown_delay{}, &api::vm::shutdown_delay, "shutdown_delay");
  add_typed<m::VM_set_ha_restart_priority>(d, [&vms](call_context&, const vm_ref& vm, const std::string& value) {
    return vms.edit(vm.opaque, [=](api::vm& v) -> api::status {
      if (value != "restart" && value != "best-effort" && !value.empty())
        return fail(api::errors::INVALID_VALUE("ha_restart_priority", value));
      v.ha_restart_priority = value;
      // A running VM made protected is kept running from now on, and no longer when unprotected.
      if (v.power_state != api::vm_power_state::Halted && v.power_state != api::vm_power_state::Suspended)
        v.ha_always_run = value == "restart";
      return {};
    });
  });
  add_typed<m::VM_set_ha_always_run>(d, [&vms](call_context&, const vm_ref& vm, bool value) {
    return vms.edit(vm.opaque, [=](api::vm& v) -> api::status {
      v.ha_always_run = value;
      return {};
    });
  });

  add_typed<m::VM_checkpoint>(d, [&vms, key, copied](call_context& c, const vm_ref& vm, const std::string& name) {
    return copied(vms.checkpoint(vm.opaque, name, key(c)), vm, alerts::VM_CHECKPOINTED,
                  [&](const std::string&) { return "checkpointed, snapshot name: " + name; });
  }, blocking);
  simple(m::VM_power_state_reset{}, &actors::vm_lifecycle::power_state_reset);
  add_typed<m::VM_assert_operation_valid>(d, [&vms](call_context&, const vm_ref& vm, api::vm_operations o) {
    return vms.assert_operation_valid(vm.opaque, o);
  });
  add_typed<m::VM_update_allowed_operations>(d, [&vms](call_context&, const vm_ref& vm) {
    return vms.update_allowed_operations(vm.opaque);
  }, blocking);
  // A device is destroyed only when detached.
  add_typed<m::VBD_destroy>(d, [&vms](call_context&, const ref<api::vbd>& v) { return vms.destroy_vbd(v.opaque); });
  add_typed<m::VIF_destroy>(d, [&vms](call_context&, const ref<api::vif>& v) { return vms.destroy_vif(v.opaque); });

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
