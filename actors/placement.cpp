#include "actors/placement.hpp"

#include "actors/vm_rules.hpp"

#include <algorithm>

namespace xapid::actors {

std::string resident_host(const storage::state& s, const std::string& vm) {
  const api::vm* v = s.get<api::vm>(vm);
  return v && s.get<api::host>(v->resident_on.opaque) ? v->resident_on.opaque : std::string();
}

namespace {

std::string master(const storage::state& s) {
  const api::pool* pool = s.first<api::pool>();
  return pool ? pool->master.opaque : std::string();
}

std::string vm_host(const storage::state& s, const std::string& vm) {
  std::string h = resident_host(s, vm);
  return h.empty() ? master(s) : h;
}

std::string sr_host(const storage::state& s, const std::string& sr) {
  const api::sr* r = s.get<api::sr>(sr);
  if (r && !r->shared) {
    for (const auto& pbd : s.refs_where<api::pbd>("SR", sr))
      if (const api::pbd* p = s.get<api::pbd>(pbd); p && s.get<api::host>(p->host.opaque)) return p->host.opaque;
  }
  return master(s);
}

// A plugged PBD of `sr` on `host`.
bool sr_plugged_on(const storage::state& s, const std::string& sr, const std::string& host) {
  for (const auto& ref : s.refs_where<api::pbd>("SR", sr))
    if (const api::pbd* p = s.get<api::pbd>(ref); p && p->host.opaque == host && p->currently_attached) return true;
  return false;
}

// `network` reaches `host` for `vm`: a PIF of it there; a network without PIFs (internal) is
// one host's, the host of the VMs running on it (as xapi's), any host while none runs there.
bool network_on(const storage::state& s, const std::string& network, const std::string& host, const std::string& vm) {
  const auto pifs = s.refs_where<api::pif>("network", network);
  if (!pifs.empty())
    return std::ranges::any_of(pifs, [&](const std::string& ref) {
      const api::pif* p = s.get<api::pif>(ref);
      return p && p->host.opaque == host;
    });
  for (const auto& ref : s.refs_where<api::vif>("network", network)) {
    const api::vif* f = s.get<api::vif>(ref);
    const api::vm* other = f && f->VM.opaque != vm ? s.get<api::vm>(f->VM.opaque) : nullptr;
    if (other && (other->power_state == api::vm_power_state::Running || other->power_state == api::vm_power_state::Paused) &&
        s.get<api::host>(other->resident_on.opaque) && other->resident_on.opaque != host)
      return false;
  }
  return true;
}

}  // namespace

std::int64_t memory_free(const storage::state& s, const std::string& host) {
  const api::host* h = s.get<api::host>(host);
  const api::host_metrics* m = h ? s.get<api::host_metrics>(h->metrics.opaque) : nullptr;
  return m ? m->memory_free : 0;
}

bool host_live(const storage::state& s, const std::string& host) {
  const api::host* h = s.get<api::host>(host);
  const api::host_metrics* m = h ? s.get<api::host_metrics>(h->metrics.opaque) : nullptr;
  return m && m->live;
}

api::status can_boot_on(const storage::state& s, const std::string& vm, const std::string& host, bool memory_check) {
  const api::vm* v = s.get<api::vm>(vm);
  if (!v) return fail(api::errors::HANDLE_INVALID("VM", vm));
  const api::host* h = s.get<api::host>(host);
  if (!h) return fail(api::errors::HANDLE_INVALID("host", host));
  if (v->is_a_template) return fail(api::errors::VM_IS_TEMPLATE(vm));
  if (!host_live(s, host)) return fail(api::errors::HOST_OFFLINE(host));
  if (!h->enabled) return fail(api::errors::HOST_DISABLED(host));
  for (const auto& r : s.refs_where<api::vbd>("VM", vm)) {
    const api::vbd* b = s.get<api::vbd>(r);
    if (!b || b->empty || b->VDI.is_null()) continue;
    const api::vdi* vdi = s.get<api::vdi>(b->VDI.opaque);
    if (!vdi) return fail(api::errors::VM_REQUIRES_VDI(vm, b->VDI.opaque));
    if (!sr_plugged_on(s, vdi->SR.opaque, host)) return fail(api::errors::VM_REQUIRES_SR(vm, vdi->SR.opaque));
  }
  if (v->power_state == api::vm_power_state::Suspended)
    if (const api::vdi* image = s.get<api::vdi>(v->suspend_VDI.opaque); image && !sr_plugged_on(s, image->SR.opaque, host))
      return fail(api::errors::VM_REQUIRES_SR(vm, image->SR.opaque));
  for (const auto& r : s.refs_where<api::vif>("VM", vm)) {
    const api::vif* f = s.get<api::vif>(r);
    if (f && !network_on(s, f->network.opaque, host, vm)) return fail(api::errors::VM_REQUIRES_NETWORK(vm, f->network.opaque));
  }
  if (memory_check && v->resident_on.opaque != host) {
    const std::int64_t free = memory_free(s, host);
    if (v->memory_dynamic_max > free)
      return fail(api::errors::HOST_NOT_ENOUGH_FREE_MEMORY(std::to_string(v->memory_dynamic_max), std::to_string(free)));
  }
  return ok_v;
}

std::vector<std::string> possible_hosts(const storage::state& s, const std::string& vm) {
  std::vector<std::string> hosts;
  s.for_each(storage::schema::get().class_of<api::host>(), [&](const std::string& ref, const storage::row&) {
    if (can_boot_on(s, vm, ref)) hosts.push_back(ref);
    return true;
  });
  return hosts;
}

api::api_result<std::string> choose_host(const storage::state& s, const std::string& vm, const std::set<std::string>& except) {
  const api::vm* v = s.get<api::vm>(vm);
  if (!v) return fail(api::errors::HANDLE_INVALID("VM", vm));
  std::optional<api::api_error> why;
  if (s.get<api::host>(v->affinity.opaque) && !except.contains(v->affinity.opaque)) {
    auto st = can_boot_on(s, vm, v->affinity.opaque);
    if (st) return v->affinity.opaque;
    why = st.error();
  }
  std::string best;
  std::int64_t best_free = -1;
  s.for_each(storage::schema::get().class_of<api::host>(), [&](const std::string& ref, const storage::row&) {
    if (except.contains(ref)) return true;
    auto st = can_boot_on(s, vm, ref);
    if (!st) {
      if (!why) why = st.error();
      return true;
    }
    const std::int64_t free = memory_free(s, ref);
    if (free > best_free || (free == best_free && ref < best)) best = ref, best_free = free;
    return true;
  });
  if (!best.empty()) return best;
  if (why) return fail(std::move(*why));
  return fail(api::errors::NO_HOSTS_AVAILABLE());
}

evacuation_plan plan_evacuation(const storage::state& s, const std::string& host) {
  evacuation_plan plan;
  std::map<std::string, std::int64_t> left;  // the other hosts that can take guests: free memory left
  s.for_each(storage::schema::get().class_of<api::host>(), [&](const std::string& ref, const storage::row& row) {
    if (ref != host && host_live(s, ref) && static_cast<const api::host*>(row.record.get())->enabled)
      left[ref] = memory_free(s, ref);
    return true;
  });
  std::vector<std::string> guests;
  for (const auto& ref : s.refs_where<api::vm>("resident_on", host)) {
    const api::vm* v = s.get<api::vm>(ref);
    if (!v || v->is_control_domain || v->power_state == api::vm_power_state::Halted) continue;
    if (left.empty()) plan.stay[ref] = {std::string(api::to_string(api::error_code::NO_HOSTS_AVAILABLE)), ref};
    else if (auto refused = check_vm_operation(*v, ref, api::vm_operations::pool_migrate))  // as xapi's plan asks
      plan.stay[ref] = refused->description();
    else guests.push_back(ref);
  }
  evacuation_plan packed = pack(s, guests, std::move(left));
  plan.moves = std::move(packed.moves);
  plan.stay.merge(packed.stay);
  return plan;
}

evacuation_plan pack(const storage::state& s, const std::vector<std::string>& vms, std::map<std::string, std::int64_t> left) {
  evacuation_plan plan;
  std::vector<std::pair<std::int64_t, std::string>> guests;  // the biggest placed first
  for (const auto& ref : vms)
    if (const api::vm* v = s.get<api::vm>(ref)) guests.emplace_back(v->memory_dynamic_max, ref);
  std::ranges::sort(guests, std::greater<>());
  for (const auto& [memory, vm] : guests) {
    std::string best;
    std::optional<api::api_error> why;  // the first host's reason, while no host can run it
    bool any_can = false;
    for (const auto& [target, free] : left) {
      if (auto st = can_boot_on(s, vm, target, false); !st) {
        if (!why) why = st.error();
        continue;
      }
      any_can = true;
      if (memory <= free && (best.empty() || free > left[best])) best = target;
    }
    if (!best.empty()) {
      plan.moves[vm] = best;
      left[best] -= memory;
    } else if (!any_can && why) {
      plan.stay[vm] = why->description();
    } else {
      plan.stay[vm] = {std::string(api::to_string(api::error_code::HOST_NOT_ENOUGH_FREE_MEMORY)), vm};
    }
  }
  return plan;
}

std::string operations_host(const storage::state& s, std::size_t cls, const std::string& ref) {
  const auto& sch = storage::schema::get();
  if (cls == sch.class_of<api::host>()) return ref;
  if (cls == sch.class_of<api::vm>()) return vm_host(s, ref);
  if (cls == sch.class_of<api::vbd>()) {
    const api::vbd* b = s.get<api::vbd>(ref);
    return b ? vm_host(s, b->VM.opaque) : master(s);
  }
  if (cls == sch.class_of<api::vif>()) {
    const api::vif* f = s.get<api::vif>(ref);
    return f ? vm_host(s, f->VM.opaque) : master(s);
  }
  if (cls == sch.class_of<api::sr>()) return sr_host(s, ref);
  if (cls == sch.class_of<api::vdi>()) {
    const api::vdi* v = s.get<api::vdi>(ref);
    return v ? sr_host(s, v->SR.opaque) : master(s);
  }
  return master(s);
}

}  // namespace xapid::actors
