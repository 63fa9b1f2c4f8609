#include "gateway/rpc/call_routes.hpp"

#include <set>
#include <unordered_map>

#include "actors/placement.hpp"

namespace xapid::gateway {
namespace {

using storage::schema;

enum class route {
  object,      // the host that runs the object of class `cls` in the first parameter
  named_host,  // the host a parameter names
  placement,   // the VM's host when it has one, else the one placement chooses
  vm_storage,  // the VM's host when it runs, else the host of a local SR its disks are on
  pbd_host,    // the PBD's host
  vdi_record,  // the host of the SR that a VDI record (the first parameter) names
  task_operation,  // the host carrying out the operation whose key is the task (task.cancel)
  snapshot_parent,  // a snapshot's VM's host when it runs (revert stops it), else vm_storage's
  master,      // the pool's master (pool.master)
};

struct rule {
  route how;
  std::size_t param = 0;
  std::size_t cls = 0;  // for `object`
};

const std::unordered_map<std::string_view, rule>& rules() {
  static const auto table = [] {
    const auto& sch = schema::get();
    const std::size_t vm = sch.class_of<api::vm>(), vbd = sch.class_of<api::vbd>(), vif = sch.class_of<api::vif>();
    const std::size_t sr = sch.class_of<api::sr>(), vdi = sch.class_of<api::vdi>();
    std::unordered_map<std::string_view, rule> t;
    for (std::string_view m : {"VM.pause", "VM.unpause", "VM.clean_shutdown", "VM.hard_shutdown", "VM.shutdown",
                               "VM.clean_reboot", "VM.hard_reboot", "VM.suspend", "VM.checkpoint", "VM.pool_migrate",
                               "VM.set_VCPUs_number_live", "VM.set_memory_dynamic_range", "VM.set_memory_dynamic_max",
                               "VM.set_memory_dynamic_min", "VM.get_data_sources",
                               "VM.query_data_source", "VM.record_data_source", "VM.forget_data_source_archives"})
      t[m] = {route::object, 0, vm};
    for (std::string_view m : {"VBD.plug", "VBD.unplug", "VBD.unplug_force", "VBD.insert", "VBD.eject"})
      t[m] = {route::object, 0, vbd};
    for (std::string_view m : {"VIF.plug", "VIF.unplug", "VIF.unplug_force"}) t[m] = {route::object, 0, vif};
    for (std::string_view m : {"SR.scan", "SR.update", "SR.destroy"}) t[m] = {route::object, 0, sr};
    for (std::string_view m : {"VDI.destroy", "VDI.clone", "VDI.snapshot", "VDI.resize", "VDI.resize_online",
                               "VDI.copy", "VDI.update"})
      t[m] = {route::object, 0, vdi};
    t["VDI.create"] = {route::vdi_record};
    t["VDI.introduce"] = {route::object, 3, sr};
    t["VM.start"] = {route::placement};
    t["VM.resume"] = {route::placement};
    t["VM.start_on"] = {route::named_host, 1};
    t["VM.resume_on"] = {route::named_host, 1};
    for (std::string_view m : {"VM.clone", "VM.copy", "VM.snapshot", "VM.provision", "VM.destroy"})
      t[m] = {route::vm_storage};
    t["VM.revert"] = {route::snapshot_parent};
    for (std::string_view m : {"host.reboot", "host.shutdown", "host.disable", "host.enable", "host.evacuate",
                               "host.assert_can_evacuate", "host.get_vms_which_prevent_evacuation", "host.dmesg",
                               "host.get_log", "host.get_servertime", "host.get_server_localtime",
                               "host.compute_free_memory", "host.compute_memory_overhead", "host.backup_rrds",
                               "host.get_data_sources",
                               "host.query_data_source", "host.record_data_source", "host.forget_data_source_archives",
                               "SR.create", "SR.probe"})
      t[m] = {route::named_host, 0};
    t["task.cancel"] = {route::task_operation};
    t["PBD.plug"] = {route::pbd_host};
    t["PBD.unplug"] = {route::pbd_host};
    // HA's statefile is made and its header written by the master (its shared SR's operations
    // are the master's).
    t["pool.enable_ha"] = {route::master};
    t["pool.disable_ha"] = {route::master};
    t["pool.ha_prevent_restarts_for"] = {route::master};  // the master's failover waits
    // root's password is the pool's: changed on the master, whose liveness rounds hand it to
    // every member (pool/liveness), as xapi syncs it to every host.
    t["session.change_password"] = {route::master};
    // A host's row carries its place in the pool, which only the master writes (a member's own
    // writes may not remove it: pool/membership's vet_member_change).
    t["host.destroy"] = {route::master};
    return t;
  }();
  return table;
}

const std::string* ref_param(std::span<const wire::value> params, std::size_t i) {
  return i < params.size() ? params[i].as_string() : nullptr;
}

// The host a VM's disks tie it to: the first local SR's host among them ("" for none).
std::string storage_host(const storage::state& s, const std::string& vm) {
  const std::size_t sr_cls = schema::get().class_of<api::sr>();
  for (const auto& r : s.refs_where<api::vbd>("VM", vm)) {
    const api::vbd* b = s.get<api::vbd>(r);
    const api::vdi* vdi = b && !b->empty ? s.get<api::vdi>(b->VDI.opaque) : nullptr;
    const api::sr* sr = vdi ? s.get<api::sr>(vdi->SR.opaque) : nullptr;
    if (sr && !sr->shared) return actors::operations_host(s, sr_cls, vdi->SR.opaque);
  }
  return {};
}

// The host carrying out the operation an Async task runs: the host of the object whose
// current_operations holds the task (an operation's key is its task). "" for none.
std::string task_host(const storage::state& s, const std::string& task) {
  const auto& sch = schema::get();
  for (std::size_t cls : {sch.class_of<api::vm>(), sch.class_of<api::host>(), sch.class_of<api::sr>(),
                          sch.class_of<api::vdi>(), sch.class_of<api::vbd>(), sch.class_of<api::vif>()}) {
    const auto& ts = sch.table(cls);
    const std::size_t current = *sch.field_index(cls, "current_operations");
    std::string found;
    s.for_each(cls, [&](const std::string& ref, const storage::row& row) {
      const wire::value ops = ts.ops->get_field(row.record.get(), current);
      for (const auto& [key, name] : *ops.as_struct())
        if (key == task) {
          found = actors::operations_host(s, cls, ref);
          return false;
        }
      return true;
    });
    if (!found.empty()) return found;
  }
  return {};
}

std::string host_for(const storage::state& s, const rule& r, std::span<const wire::value> params) {
  const auto& sch = schema::get();
  switch (r.how) {
    case route::object: {
      const std::string* ref = ref_param(params, r.param);
      if (!ref || !s.find(r.cls, *ref)) return {};
      return actors::operations_host(s, r.cls, *ref);
    }
    case route::named_host: {
      const std::string* ref = ref_param(params, r.param);
      return ref && s.get<api::host>(*ref) ? *ref : std::string();
    }
    case route::placement: {
      const std::string* vm = ref_param(params, 0);
      if (!vm || !s.get<api::vm>(*vm)) return {};
      if (auto h = actors::resident_host(s, *vm); !h.empty()) return h;  // its power state answers
      auto chosen = actors::choose_host(s, *vm);
      return chosen ? *chosen : std::string();  // none can: the host called answers why
    }
    case route::vm_storage: {
      const std::string* vm = ref_param(params, 0);
      if (!vm || !s.get<api::vm>(*vm)) return {};
      if (auto h = actors::resident_host(s, *vm); !h.empty()) return h;
      return storage_host(s, *vm);
    }
    case route::master: {
      const api::pool* pool = s.first<api::pool>();
      return pool && s.get<api::host>(pool->master.opaque) ? pool->master.opaque : std::string();
    }
    case route::pbd_host: {
      const std::string* pbd = ref_param(params, 0);
      const api::pbd* p = pbd ? s.get<api::pbd>(*pbd) : nullptr;
      return p && s.get<api::host>(p->host.opaque) ? p->host.opaque : std::string();
    }
    case route::snapshot_parent: {
      const std::string* snapshot = ref_param(params, 0);
      const api::vm* v = snapshot ? s.get<api::vm>(*snapshot) : nullptr;
      if (!v) return {};
      if (auto h = actors::resident_host(s, v->snapshot_of.opaque); !h.empty()) return h;
      return storage_host(s, *snapshot);
    }
    case route::task_operation: {
      const std::string* task = ref_param(params, 0);
      return task ? task_host(s, *task) : std::string();
    }
    case route::vdi_record: {
      const wire::structure* record = params.empty() ? nullptr : params[0].as_struct();
      if (!record) return {};
      for (const auto& [key, value] : *record)
        if (key == "SR")
          if (const std::string* sr = value.as_string(); sr && s.get<api::sr>(*sr))
            return actors::operations_host(s, sch.class_of<api::sr>(), *sr);
      return {};
    }
  }
  return {};
}

}  // namespace

api::api_result<std::string> placed_again(const storage::state& s, std::string_view method, std::span<const wire::value> params,
                                          const std::string& here, const std::vector<std::string>& refused) {
  auto it = rules().find(method);
  const std::string* vm = ref_param(params, 0);
  if (it == rules().end() || it->second.how != route::placement || !vm || !s.get<api::vm>(*vm) ||
      !actors::resident_host(s, *vm).empty())
    return fail(api::errors::NO_HOSTS_AVAILABLE());
  std::set<std::string> tried;
  for (const auto& h : refused) tried.insert(h.empty() ? here : h);
  auto chosen = actors::choose_host(s, *vm, tried);
  if (!chosen) return fail(chosen.error());
  if (!actors::host_live(s, *chosen)) return fail(api::errors::HOST_OFFLINE(*chosen));
  return *chosen == here ? std::string() : *chosen;
}

bool routed(std::string_view method) { return rules().contains(method); }

std::vector<std::string_view> routed_methods() {
  std::vector<std::string_view> names;
  for (const auto& [name, rule] : rules()) names.push_back(name);
  return names;
}

api::api_result<std::string> carried_out_by(const storage::state& s, std::string_view method,
                                            std::span<const wire::value> params, const std::string& here) {
  auto it = rules().find(method);
  if (it == rules().end()) return std::string();
  std::string host = host_for(s, it->second, params);
  if (host.empty() || host == here) return std::string();
  if (!actors::host_live(s, host)) return fail(api::errors::HOST_OFFLINE(host));
  return host;
}

}  // namespace xapid::gateway
