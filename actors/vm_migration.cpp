// Live migration within the pool: VM.pool_migrate on the host the VM leaves, and the receiving
// end on its new host (driven through the pool's peer service, pool_peer.proto's Migrate).
#include "actors/vm_lifecycle_impl.hpp"

#include <thread>

#include <spdlog/spdlog.h>

#include "actors/placement.hpp"
#include "actors/vm_rules.hpp"

namespace xapid::actors {
namespace {

using ps = api::vm_power_state;
constexpr auto settle_after = std::chrono::seconds(60);  // a prepared domain nobody finished

}  // namespace

void vm_lifecycle::set_migration_peers(std::function<std::optional<migration_peer>(const std::string& host)> peers) {
  impl_->migration_peers = std::move(peers);
}

vm_lifecycle::result_void vm_lifecycle::pool_migrate(const std::string& vm, const std::string& host, const std::string& task,
                                                     cancel_flag cancel) {
  auto d = impl_;
  return as_void(d->run_vm(vm, api::vm_operations::pool_migrate, task, [d, vm, host, wait = guest_wait{task, cancel}] {
    return d->migrate_work(vm, host, wait);
  }));
}

api::api_result<wire::value> vm_lifecycle::impl::migrate_work(const std::string& ref, const std::string& to,
                                                              const guest_wait& wait) {
  auto s = db.snapshot();
  const api::vm* v = s->get<api::vm>(ref);
  auto failed = [&](const std::string& why) { return fail(api::errors::VM_MIGRATE_FAILED(ref, host, to, why)); };
  if (!s->get<api::host>(to)) return fail(api::errors::HANDLE_INVALID("host", to));
  if (v->resident_on.opaque != host) return failed("the VM does not run on this host");
  if (to == host) return failed("the VM already runs on that host");
  if (auto st = can_boot_on(*s, ref, to); !st) return fail(st.error());  // its memory there too
  auto peer = migration_peers ? migration_peers(to) : std::nullopt;
  if (!peer) return fail(api::errors::HOST_OFFLINE(to));
  const int from_domid = static_cast<int>(v->domid);
  const bool paused = v->power_state == ps::Paused;
  const auto started = monotonic_now();

  auto domid = peer->prepare(ref);
  if (!domid) return fail(domid.error());
  // The guest's memory goes over while it runs; the domain is paused for the last round.
  auto sent = hv.send_memory(from_domid, wait.cancel.get());
  auto undo = [&] {
    peer->abort(ref, *domid);
    if (!paused) (void)hv.unpause(from_domid);
  };
  if (!sent) {
    undo();
    if (sent.error().what == xen::backend_error::kind::cancelled) return fail(api::errors::TASK_CANCELLED(wait.task));
    return failed(sent.error().message);
  }
  // The record moves: from this commit on the VM is its new host's.
  auto now = db.snapshot();
  const api::vm* before = now->get<api::vm>(ref);
  if (!before) {
    undo();
    return fail(api::errors::HANDLE_INVALID("VM", ref));
  }
  auto t = db.begin();
  record_live(t, *now, ref, *before, *domid, paused ? ps::Paused : ps::Running, false, to);
  if (auto r = commit(std::move(t)); !r) {
    undo();
    return r;
  }
  (void)hv.destroy(from_domid);
  {
    auto memory = db.begin();
    record_host_memory(memory, *db.snapshot());
    (void)commit(std::move(memory));
  }
  // Its new host lets it run; one that does not answer settles it from the record itself.
  if (auto st = peer->finish(ref, *domid, paused); !st)
    spdlog::warn("vm.migrate.not_finished vm={} host={} reason=\"{}\" (the host settles it from the record)", v->uuid, to,
                 st.error().description().at(0));
  spdlog::info("vm.migrated vm={} from={} to={} bytes={} seconds={:.3f}", v->uuid, host, to, *sent,
               std::chrono::duration<double>(monotonic_now() - started).count());
  return wire::value("");
}

api::api_result<int> vm_lifecycle::receive(const std::string& vm, const std::string& from) {
  auto& d = *impl_;
  auto s = d.db.snapshot();
  const api::vm* v = s->get<api::vm>(vm);
  if (!v) return fail(api::errors::HANDLE_INVALID("VM", vm));
  if (v->power_state != ps::Running && v->power_state != ps::Paused)
    return fail(api::errors::VM_BAD_POWER_STATE(vm, "running", power_state_name(v->power_state)));
  if (v->resident_on.opaque == d.host) return fail(api::errors::VM_MIGRATE_FAILED(vm, from, d.host, "the VM already runs here"));
  {
    std::lock_guard lock(d.incoming_mu);
    if (d.incoming_vms.contains(vm)) return fail(api::errors::OTHER_OPERATION_IN_PROGRESS("VM", vm));
  }
  if (auto st = d.check_host_can_run(*s, vm, *v); !st) return fail(st.error());
  auto config = d.config_of(*s, vm, *v);
  if (!config) return fail(config.error());
  auto domid = d.hv.create(*config);
  if (!domid) return fail(from_backend(domid.error()));
  std::lock_guard lock(d.incoming_mu);
  d.incoming_vms[vm] = {*domid, monotonic_now() + settle_after};
  return *domid;
}

vm_lifecycle::result_void vm_lifecycle::finish_receive(const std::string& vm, int domid, bool paused) {
  auto& d = *impl_;
  {
    std::lock_guard lock(d.incoming_mu);
    auto it = d.incoming_vms.find(vm);
    if (it == d.incoming_vms.end() || it->second.domid != domid)
      return fail(api::errors::VM_MIGRATE_FAILED(vm, "", d.host, "no such domain is on its way here"));
    d.incoming_vms.erase(it);
  }
  // The commit that moved the record may not have reached this replica yet.
  auto names_here = [&] {
    const api::vm* v = d.db.snapshot()->get<api::vm>(vm);
    return v && v->resident_on.opaque == d.host && v->domid == domid;
  };
  for (auto until = monotonic_now() + std::chrono::seconds(10); !names_here() && monotonic_now() < until;)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!names_here()) {
    (void)d.hv.destroy(domid);
    return fail(api::errors::VM_MIGRATE_FAILED(vm, "", d.host, "the pool's record of the VM does not name this host"));
  }
  if (!paused)
    if (auto r = d.hv.unpause(domid); !r) return fail(from_backend(r.error()));
  auto t = d.db.begin();
  d.record_host_memory(t, *d.db.snapshot());
  (void)d.commit(std::move(t));
  return ok_v;
}

void vm_lifecycle::abort_receive(const std::string& vm, int domid) {
  auto& d = *impl_;
  {
    std::lock_guard lock(d.incoming_mu);
    auto it = d.incoming_vms.find(vm);
    if (it == d.incoming_vms.end() || it->second.domid != domid) return;  // only a domain made for it
    d.incoming_vms.erase(it);
  }
  (void)d.hv.destroy(domid);
}

// A prepared domain whose VM's old host never finished nor aborted (it died, or the call was
// lost): the record decides.
void vm_lifecycle::impl::settle_incoming() {
  std::vector<std::pair<std::string, int>> due;
  {
    std::lock_guard lock(incoming_mu);
    const auto now = monotonic_now();
    for (auto it = incoming_vms.begin(); it != incoming_vms.end();)
      if (it->second.settle_at <= now) {
        due.emplace_back(it->first, it->second.domid);
        it = incoming_vms.erase(it);
      } else {
        ++it;
      }
  }
  for (const auto& [vm, domid] : due) {
    const api::vm* v = db.snapshot()->get<api::vm>(vm);
    const bool ours = v && v->resident_on.opaque == host && v->domid == domid;
    if (ours && v->power_state == ps::Running) (void)hv.unpause(domid);
    if (!ours) (void)hv.destroy(domid);
    spdlog::warn("vm.migrate.settled vm={} domid={} action={}", v ? v->uuid : vm, domid, ours ? "kept" : "destroyed");
  }
}

}  // namespace xapid::actors
