// What the hypervisor says of this host's guests: at start (reconcile) the domains are the
// truth about what runs here; every second (observe) guests that stopped on their own get their
// VM's after-shutdown/reboot/crash action, and guest agents' reports become VM_guest_metrics.
#include "actors/vm_lifecycle_impl.hpp"

#include <set>

#include <spdlog/spdlog.h>

#include "proto/wire/codec.hpp"

namespace xapid::actors {
namespace {

using storage::schema;
using ps = api::vm_power_state;

}  // namespace

void vm_lifecycle::impl::guest_stopped(const std::string& ref, const api::vm& vm, const xen::domain_info& d) {
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
  if (d.reason == xen::shutdown_reason::crash && messages) {
    const char* after = what == action::restart ? "restarted" : what == action::preserve ? "preserved" : "halted";
    messages->raise_for_vm(alerts::VM_CRASHED, ref, std::string("crashed; ") + after + " as its actions_after_crash say");
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
    } else if (live && vm->resident_on.opaque != d.host && dom != domains.end() &&
               d.db.snapshot()->get<api::host>(vm->resident_on.opaque)) {
      // It moved to another host (a migration whose old host stopped before destroying its
      // domain here): the pool's record says where it runs; this copy goes.
      spdlog::warn("vm.reconciled vm={} domid={} reason=\"it runs on another host\" action=destroyed", vm->uuid,
                   dom->second.domid);
      (void)d.hv.destroy(dom->second.domid);
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
  d.settle_incoming();
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

}  // namespace xapid::actors
