#include "gateway/api/object_rules.hpp"

#include <algorithm>
#include <arpa/inet.h>

#include <fstream>
#include <set>

#include "actors/vm_rules.hpp"
#include "pool/membership.hpp"
#include "gateway/rpc/typed_rpcs.hpp"
#include "sm/sr_driver.hpp"

namespace xapid::gateway {
namespace {

using storage::schema;
using ps = api::vm_power_state;

std::string ref_at(const wire::array& p, std::size_t i) {
  return i < p.size() && p[i].as_string() ? *p[i].as_string() : std::string();
}

template <class R>
std::size_t cls() {
  return schema::get().class_of<R>();
}

bool running(const api::vm& vm) { return vm.power_state == ps::Running || vm.power_state == ps::Paused; }

// The refs of `refs` for which `keep` holds, as error parameters.
template <class R, class Set, class Keep>
std::vector<std::string> refs_where(const storage::state& s, const Set& refs, Keep keep) {
  std::vector<std::string> out;
  for (const auto& r : refs)
    if (const R* rec = s.get<R>(r.opaque); rec && keep(*rec)) out.push_back(r.opaque);
  return out;
}

api::api_error with_refs(api::error_code code, std::vector<std::string> refs) { return api::api_error{code, std::move(refs)}; }

// Refused to every session: xapi lets only its storage plugins set these (their sessions carry
// `_sm_session`); a client would make the record disagree with the disk.
api::status storage_managers_only(call_context&, const wire::array&) {
  return fail(api::errors::PERMISSION_DENIED("only the storage manager sets this field"));
}

// VMPP (VM protection policies) was removed from xapi before the seed's release.
api::api_result<wire::value> removed(call_context&, const wire::array&) { return fail(api::errors::MESSAGE_REMOVED()); }

bool is_ip(const std::string& s, int family) {
  unsigned char buf[sizeof(struct in6_addr)];
  return ::inet_pton(family, s.c_str(), buf) == 1;
}

// A VDI's VMs must all be halted before a setting of the disk that a running guest relies on.
api::status vms_halted(const storage::state& s, const api::vdi& vdi) {
  for (const auto& b : vdi.VBDs)
    if (const api::vbd* vbd = s.get<api::vbd>(b.opaque))
      if (const api::vm* vm = s.get<api::vm>(vbd->VM.opaque); vm && vm->power_state != ps::Halted)
        return fail(api::errors::VM_BAD_POWER_STATE(vbd->VM.opaque, "halted", actors::power_state_name(vm->power_state)));
  return ok_v;
}

bool same_bytes(const std::string& a, const std::string& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  if (!fa || !fb) return false;
  std::vector<char> ba(1 << 20), bb(1 << 20);
  for (;;) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    if (fa.gcount() != fb.gcount() || !std::equal(ba.begin(), ba.begin() + fa.gcount(), bb.begin())) return false;
    if (fa.gcount() == 0) return true;
  }
}

// `R.destroy` that takes the PIF the object brings up (`pif_field`) with it, if that PIF may go.
template <class R, class Check>
auto destroy_with_pif(storage::database& db, const char* class_name, api::ref<api::pif> R::*pif_field, Check pif_may_go) {
  return [&db, class_name, pif_field, pif_may_go](call_context&, const api::ref<R>& self) -> api::status {
    const std::string& ref = self.opaque;
    auto s = db.snapshot();
    const R* rec = s->get<R>(ref);
    if (!rec) return fail(api::errors::HANDLE_INVALID(class_name, ref));
    const std::string pif = (rec->*pif_field).opaque;
    if (auto st = pif_may_go(*s, pif); !st) return st;
    auto t = db.begin();
    if (s->get<api::pif>(pif)) t.destroy(cls<api::pif>(), pif);
    t.destroy(cls<R>(), ref);
    if (auto r = db.commit(std::move(t)); !r) return fail(std::move(r).error());
    return ok_v;
  };
}

}  // namespace

void register_object_rules(dispatcher& d, storage::database& db, actors::storage_repos& repos, const std::string& this_host) {
  namespace m = api::method;
  constexpr bool blocking = true;  // the destructors and setters below commit
  auto snapshot_guard = [&db](auto check) {
    return [&db, check](call_context& ctx, const wire::array& p) -> api::status {
      auto s = db.snapshot();
      return check(*s, ctx, p);
    };
  };

  // --- destructors ---

  d.guard("host.destroy", snapshot_guard([this_host](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const std::string ref = ref_at(p, 0);
    const api::host* h = s.get<api::host>(ref);
    if (!h) return ok_v;  // the generic destructor answers HANDLE_INVALID
    const api::host_metrics* m = s.get<api::host_metrics>(h->metrics.opaque);
    if (ref == this_host || (m && m->live)) return fail(api::errors::HOST_IS_LIVE(ref));
    if (const api::pool* pool = s.first<api::pool>(); pool && pool->ha_enabled) return fail(api::errors::HA_IS_ENABLED());
    for (const auto& vm : h->resident_VMs)
      if (const api::vm* v = s.get<api::vm>(vm.opaque); v && !v->is_control_domain)
        return fail(api::errors::HOST_HAS_RESIDENT_VMS(ref));
    return ok_v;
  }));

  // HA's statefile, and the SR and PBDs it is reached through, stay while HA is on (xapi:
  // HA_IS_ENABLED): without it every host would fence itself.
  auto statefile_srs = [](const storage::state& s) {
    std::vector<std::string> srs;
    const api::pool* pool = s.first<api::pool>();
    if (!pool || !pool->ha_enabled) return srs;
    for (const auto& vdi : pool->ha_statefiles)
      if (const api::vdi* v = s.get<api::vdi>(vdi)) srs.push_back(v->SR.opaque);
    return srs;
  };
  for (const char* method : {"VDI.destroy", "VDI.forget"})
    d.guard(method, snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
      const api::pool* pool = s.first<api::pool>();
      const std::string ref = ref_at(p, 0);
      if (pool && pool->ha_enabled && std::count(pool->ha_statefiles.begin(), pool->ha_statefiles.end(), ref))
        return fail(api::errors::HA_IS_ENABLED());
      return ok_v;
    }));
  for (const char* method : {"SR.destroy", "SR.forget"})
    d.guard(method, snapshot_guard([statefile_srs](const storage::state& s, call_context&, const wire::array& p) -> api::status {
      const auto srs = statefile_srs(s);
      if (std::count(srs.begin(), srs.end(), ref_at(p, 0))) return fail(api::errors::HA_IS_ENABLED());
      return ok_v;
    }));
  d.guard("PBD.unplug", snapshot_guard([statefile_srs](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const api::pbd* pbd = s.get<api::pbd>(ref_at(p, 0));
    const auto srs = statefile_srs(s);
    if (pbd && std::count(srs.begin(), srs.end(), pbd->SR.opaque)) return fail(api::errors::HA_IS_ENABLED());
    return ok_v;
  }));

  // A host's place in the pool (pool/membership: its Raft id, addresses, pinned certificate) is
  // written by the pool's join and start-up only: no call may add, change or remove it.
  auto pool_owned = [](const std::string& key) -> api::status {
    if (!key.starts_with(pool::reserved_prefix)) return ok_v;
    return fail(api::errors::OPERATION_NOT_ALLOWED("other_config key " + key + " belongs to the pool's membership"));
  };
  d.guard("host.add_to_other_config", [pool_owned](call_context&, const wire::array& p) { return pool_owned(ref_at(p, 1)); });
  d.guard("host.remove_from_other_config", [pool_owned](call_context&, const wire::array& p) { return pool_owned(ref_at(p, 1)); });
  d.guard("host.set_other_config", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const api::host* h = s.get<api::host>(ref_at(p, 0));
    const wire::structure* given = p.size() > 1 ? p[1].as_struct() : nullptr;
    if (!h || !given || pool::keeps_reserved(h->other_config, *given)) return ok_v;  // HANDLE_INVALID, type errors: the setter's
    return fail(api::errors::OPERATION_NOT_ALLOWED("other_config keys starting " + std::string(pool::reserved_prefix) +
                                                   " belong to the pool's membership"));
  }));

  // network.destroy: not while a VIF on it is attached (or reserved) or a PIF carries it, never
  // the host's internal management network; its idle VIFs go with it, as xapi's do.
  add_typed<m::network_destroy>(d, [&db](call_context&, const api::ref<api::network>& self) -> api::status {
    const std::string& ref = self.opaque;
    auto s = db.snapshot();
    const api::network* n = s->get<api::network>(ref);
    if (!n) return fail(api::errors::HANDLE_INVALID("network", ref));
    auto attached = refs_where<api::vif>(*s, n->VIFs, [](const api::vif& v) { return v.currently_attached || v.reserved; });
    if (!attached.empty()) return fail(with_refs(api::error_code::NETWORK_CONTAINS_VIF, attached));
    if (!n->PIFs.empty())
      return fail(with_refs(api::error_code::NETWORK_CONTAINS_PIF, refs_where<api::pif>(*s, n->PIFs, [](const api::pif&) { return true; })));
    if (auto it = n->other_config.find("is_host_internal_management_network");
        it != n->other_config.end() && it->second == "true")
      return fail(api::errors::CANNOT_DESTROY_SYSTEM_NETWORK(ref));
    auto t = db.begin();
    for (const auto& v : n->VIFs) t.destroy(cls<api::vif>(), v.opaque);
    t.destroy(cls<api::network>(), ref);
    if (auto r = db.commit(std::move(t)); !r) return fail(std::move(r).error());
    return ok_v;
  }, blocking);

  // PIF.destroy: only a VLAN's PIF (xapi: deprecated for VLAN.destroy), never a physical one
  // (nor a bond's or tunnel's: VLAN -1) nor the management interface; its VLAN goes with it.
  add_typed<m::PIF_destroy>(d, [&db](call_context&, const api::ref<api::pif>& self) -> api::status {
    const std::string& ref = self.opaque;
    auto s = db.snapshot();
    const api::pif* pif = s->get<api::pif>(ref);
    if (!pif) return fail(api::errors::HANDLE_INVALID("PIF", ref));
    if (pif->VLAN < 0) return fail(api::errors::PIF_IS_PHYSICAL(ref));
    if (pif->management) return fail(api::errors::PIF_IS_MANAGEMENT_INTERFACE(ref));
    auto t = db.begin();
    std::set<std::string> vlans;
    for (const auto& v : s->refs_where<api::vlan>("untagged_PIF", ref)) vlans.insert(v);
    if (s->get<api::vlan>(pif->VLAN_master_of.opaque)) vlans.insert(pif->VLAN_master_of.opaque);
    for (const auto& v : vlans) t.destroy(cls<api::vlan>(), v);
    t.destroy(cls<api::pif>(), ref);
    if (auto r = db.commit(std::move(t)); !r) return fail(std::move(r).error());
    return ok_v;
  }, blocking);

  // VLAN.destroy and tunnel.destroy take their PIF down with them: not the management interface,
  // nor one under an attached VIF.
  auto pif_may_go = [](const storage::state& s, const std::string& pif_ref) -> api::status {
    const api::pif* pif = s.get<api::pif>(pif_ref);
    if (!pif) return ok_v;
    if (pif->management) return fail(api::errors::PIF_IS_MANAGEMENT_INTERFACE(pif_ref));
    if (const api::network* n = s.get<api::network>(pif->network.opaque))
      for (const auto& v : n->VIFs)
        if (const api::vif* vif = s.get<api::vif>(v.opaque); vif && vif->currently_attached)
          return fail(api::errors::VIF_IN_USE(pif->network.opaque, v.opaque));
    return ok_v;
  };
  add_typed<m::VLAN_destroy>(d, destroy_with_pif(db, "VLAN", &api::vlan::untagged_PIF, pif_may_go), blocking);
  add_typed<m::tunnel_destroy>(d, destroy_with_pif(db, "tunnel", &api::tunnel::access_PIF, pif_may_go), blocking);

  // A running (or suspended) VM keeps its console; a halted one gets a new one when it starts.
  d.guard("console.destroy", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const api::console* c = s.get<api::console>(ref_at(p, 0));
    if (!c) return ok_v;
    if (const api::vm* vm = s.get<api::vm>(c->VM.opaque); vm && vm->power_state != ps::Halted)
      return fail(api::errors::OPERATION_NOT_ALLOWED("the console of a VM that is not halted"));
    return ok_v;
  }));
  d.guard("VTPM.destroy", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const api::vtpm* v = s.get<api::vtpm>(ref_at(p, 0));
    if (!v) return ok_v;
    if (const api::vm* vm = s.get<api::vm>(v->VM.opaque); vm && vm->power_state != ps::Halted && vm->power_state != ps::Suspended)
      return fail(api::errors::VM_BAD_POWER_STATE(v->VM.opaque, "halted, suspended", actors::power_state_name(vm->power_state)));
    return ok_v;
  }));
  d.guard("VGPU.destroy", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const api::vgpu* v = s.get<api::vgpu>(ref_at(p, 0));
    if (!v) return ok_v;
    if (const api::vm* vm = s.get<api::vm>(v->VM.opaque); vm && running(*vm))
      return fail(api::errors::OPERATION_NOT_ALLOWED("vGPU currently attached to a running VM"));
    return ok_v;
  }));
  // GPU_group.destroy: not while a vGPU in it is attached or a PGPU belongs to it; its idle vGPUs go.
  add_typed<m::GPU_group_destroy>(d, [&db](call_context&, const api::ref<api::gpu_group>& self) -> api::status {
    const std::string& ref = self.opaque;
    auto s = db.snapshot();
    const api::gpu_group* g = s->get<api::gpu_group>(ref);
    if (!g) return fail(api::errors::HANDLE_INVALID("GPU_group", ref));
    auto attached = refs_where<api::vgpu>(*s, g->VGPUs, [](const api::vgpu& v) { return v.currently_attached; });
    if (!attached.empty()) return fail(with_refs(api::error_code::GPU_GROUP_CONTAINS_VGPU, attached));
    if (!g->PGPUs.empty())
      return fail(with_refs(api::error_code::GPU_GROUP_CONTAINS_PGPU, refs_where<api::pgpu>(*s, g->PGPUs, [](const api::pgpu&) { return true; })));
    auto t = db.begin();
    for (const auto& v : g->VGPUs) t.destroy(cls<api::vgpu>(), v.opaque);
    t.destroy(cls<api::gpu_group>(), ref);
    if (auto r = db.commit(std::move(t)); !r) return fail(std::move(r).error());
    return ok_v;
  }, blocking);
  d.guard("pool_patch.destroy", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const api::pool_patch* pp = s.get<api::pool_patch>(ref_at(p, 0));
    if (pp && !pp->host_patches.empty()) return fail(api::errors::PATCH_IS_APPLIED());
    return ok_v;
  }));

  // --- custom setters ---

  d.guard("pool.set_ha_host_failures_to_tolerate", [](call_context&, const wire::array& p) -> api::status {
    std::int64_t n = 0;
    if (!api::from_value(p[1], n)) return fail(api::errors::FIELD_TYPE_ERROR("value"));
    if (n < 0) return fail(api::errors::INVALID_VALUE("ha_host_failures_to_tolerate", std::to_string(n)));
    return ok_v;
  });
  d.guard("VM.set_appliance", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const api::vm* vm = s.get<api::vm>(ref_at(p, 0));
    if (vm && (vm->is_control_domain || vm->is_a_template || vm->is_a_snapshot))
      return fail(api::errors::OPERATION_NOT_ALLOWED("Control domains, templates and snapshots cannot be assigned to appliances."));
    return ok_v;
  }));
  // The suspend image is the hypervisor's: it may be replaced only by a byte-identical copy,
  // while the VM is suspended.
  d.guard("VM.set_suspend_VDI", [&db, &repos](call_context&, const wire::array& p) -> api::status {
    auto s = db.snapshot();
    const std::string ref = ref_at(p, 0), vdi = ref_at(p, 1);
    const api::vm* vm = s->get<api::vm>(ref);
    if (!vm) return ok_v;
    if (vm->power_state != ps::Suspended)
      return fail(api::errors::VM_BAD_POWER_STATE(ref, "suspended", actors::power_state_name(vm->power_state)));
    if (vdi == vm->suspend_VDI.opaque) return ok_v;
    auto before = repos.vdi_path(*s, vm->suspend_VDI.opaque);
    auto after = repos.vdi_path(*s, vdi);
    if (!after) return fail(after.error());
    if (!before || !same_bytes(*before, *after))
      return fail(api::errors::VALUE_NOT_SUPPORTED("VM.suspend_VDI", vdi, "the new image is not identical to the VM's suspend image"));
    return ok_v;
  });
  for (const char* name : {"VMPP.destroy", "VMPP.set_backup_retention_value", "VMPP.set_backup_frequency",
                           "VMPP.set_backup_schedule", "VMPP.set_archive_frequency", "VMPP.set_archive_schedule",
                           "VMPP.set_archive_target_type", "VMPP.set_archive_target_config", "VMPP.set_is_alarm_enabled",
                           "VMPP.set_alarm_config", "VMPP.set_backup_last_run_time", "VMPP.set_archive_last_run_time",
                           "VM.set_protection_policy"})
    d.add(name, removed);

  d.guard("network.set_default_locking_mode", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const std::string ref = ref_at(p, 0);
    const api::network* n = s.get<api::network>(ref);
    if (!n) return ok_v;
    for (const auto& v : n->VIFs)
      if (const api::vif* vif = s.get<api::vif>(v.opaque); vif && vif->currently_attached)
        return fail(api::errors::VIF_IN_USE(ref, v.opaque));
    return ok_v;
  }));
  auto addresses = [](const char* field, int family) {
    return [field, family](call_context&, const wire::array& p) -> api::status {
      const wire::array* a = p[1].as_array();
      if (!a) return fail(api::errors::FIELD_TYPE_ERROR("value"));
      for (const auto& e : *a) {
        const std::string* s = e.as_string();
        if (!s || !is_ip(*s, family)) return fail(api::errors::INVALID_VALUE(field, s ? *s : api::describe(e)));
      }
      return ok_v;
    };
  };
  d.guard("VIF.set_ipv4_allowed", addresses("ipv4_allowed", AF_INET));
  d.guard("VIF.set_ipv6_allowed", addresses("ipv6_allowed", AF_INET6));
  d.guard("PIF.set_primary_address_type", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const std::string ref = ref_at(p, 0);
    const api::pif* pif = s.get<api::pif>(ref);
    if (!pif) return ok_v;
    if (pif->management) return fail(api::errors::PIF_IS_MANAGEMENT_INTERFACE(ref));
    if (const api::pool* pool = s.first<api::pool>(); pool && pool->ha_enabled && pif->currently_attached)
      return fail(api::errors::HA_IS_ENABLED());
    return ok_v;
  }));
  // Bond.set_mode keeps only the properties the new mode has, with lacp's defaults.
  add_typed<m::Bond_set_mode>(d, [&db](call_context&, const api::ref<api::bond>& self, api::bond_mode mode) -> api::status {
    const std::string& ref = self.opaque;
    auto s = db.snapshot();
    const api::bond* b = s->get<api::bond>(ref);
    if (!b) return fail(api::errors::HANDLE_INVALID("Bond", ref));
    api::bond after = *b;
    after.mode = mode;
    after.properties.clear();
    if (mode == api::bond_mode::lacp) {
      after.properties = {{"hashing_algorithm", "tcpudp_ports"}, {"lacp-time", "slow"}, {"lacp-fallback-ab", "true"}};
      for (const char* key : {"hashing_algorithm", "lacp-time", "lacp-aggregation-key", "lacp-fallback-ab"})
        if (auto it = b->properties.find(key); it != b->properties.end()) after.properties[key] = it->second;
    }
    auto t = db.begin();
    t.update(ref, *b, after);
    if (auto r = db.commit(std::move(t)); !r) return fail(std::move(r).error());
    return ok_v;
  }, blocking);

  d.guard("SR.set_shared", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const std::string ref = ref_at(p, 0);
    bool shared = true;
    if (!api::from_value(p[1], shared)) return fail(api::errors::FIELD_TYPE_ERROR("value"));
    if (const api::sr* sr = s.get<api::sr>(ref); sr && !shared && sr->PBDs.size() > 1)
      return fail(with_refs(api::error_code::SR_HAS_MULTIPLE_PBDS, refs_where<api::pbd>(s, sr->PBDs, [](const api::pbd&) { return true; })));
    return ok_v;
  }));
  for (const char* name : {"SR.set_physical_size", "SR.set_virtual_allocation", "SR.set_physical_utilisation",
                           "VDI.set_managed", "VDI.set_missing", "VDI.set_virtual_size", "VDI.set_physical_utilisation",
                           "VDI.set_is_a_snapshot", "VDI.set_snapshot_of", "VDI.set_snapshot_time",
                           "VDI.set_metadata_of_pool", "VDI.set_sharable", "VDI.set_read_only", "PBD.set_device_config"})
    d.guard(name, storage_managers_only);
  d.guard("VDI.set_allow_caching", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const api::vdi* v = s.get<api::vdi>(ref_at(p, 0));
    return v ? vms_halted(s, *v) : ok_v;
  }));
  // on_boot=reset needs the SR to reset the disk at each boot, which no driver here does.
  d.guard("VDI.set_on_boot", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const api::vdi* v = s.get<api::vdi>(ref_at(p, 0));
    api::on_boot value{};
    if (!api::from_value(p[1], value)) return fail(api::errors::FIELD_TYPE_ERROR("value"));
    if (!v || v->on_boot == value) return ok_v;
    if (auto st = vms_halted(s, *v); !st) return st;
    const api::sr* sr = s.get<api::sr>(v->SR.opaque);
    if (const sm::sr_driver* drv = sr ? sm::find_driver(sr->type) : nullptr) {
      const auto& caps = drv->description().capabilities;
      if (std::find(caps.begin(), caps.end(), "VDI_RESET_ON_BOOT") != caps.end()) return ok_v;
    }
    return fail(api::errors::SR_OPERATION_NOT_SUPPORTED(v->SR.opaque));
  }));

  d.guard("PGPU.set_enabled_VGPU_types", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const api::pgpu* g = s.get<api::pgpu>(ref_at(p, 0));
    const wire::array* types = p[1].as_array();
    if (!types) return fail(api::errors::FIELD_TYPE_ERROR("value"));
    if (!g) return ok_v;
    std::set<std::string> wanted;
    for (const auto& t : *types)
      if (const std::string* r = t.as_string()) wanted.insert(*r);
    std::set<std::string> supported;
    for (const auto& t : g->supported_VGPU_types) supported.insert(t.opaque);
    for (const auto& t : wanted)
      if (!supported.count(t)) {
        std::vector<std::string> params{t};
        params.insert(params.end(), supported.begin(), supported.end());
        return fail(with_refs(api::error_code::VGPU_TYPE_NOT_SUPPORTED, params));
      }
    std::vector<std::string> in_use;
    for (const auto& v : g->resident_VGPUs)
      if (const api::vgpu* vg = s.get<api::vgpu>(v.opaque); vg && !wanted.count(vg->type.opaque)) in_use.push_back(vg->VM.opaque);
    if (!in_use.empty()) return fail(with_refs(api::error_code::PGPU_IN_USE_BY_VM, in_use));
    return ok_v;
  }));
  d.guard("PGPU.set_GPU_group", snapshot_guard([](const storage::state& s, call_context&, const wire::array& p) -> api::status {
    const api::pgpu* g = s.get<api::pgpu>(ref_at(p, 0));
    if (!g || g->resident_VGPUs.empty()) return ok_v;
    std::vector<std::string> vms;
    for (const auto& v : g->resident_VGPUs)
      if (const api::vgpu* vg = s.get<api::vgpu>(v.opaque)) vms.push_back(vg->VM.opaque);
    return fail(with_refs(api::error_code::PGPU_IN_USE_BY_VM, vms));
  }));
}

}  // namespace xapid::gateway
