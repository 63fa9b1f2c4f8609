#include "gateway/host_node_parts.hpp"

#include <sys/reboot.h>
#include <unistd.h>

namespace xapid::gateway {

// This host as the pool's emergency operations see it (pool/emergency); usable from the moment
// the database opens (the host's own ref is not needed). A restart asked before the host serves
// is the start-up's: wait_for_a_master sees the accepted membership and the daemon starts again.
pool::emergency_side emergency_side(host_node::parts& p) {
  pool::emergency_side e;
  e.master = pool::master_side{p.db.get(), p.pool_log.get(), nullptr, &*p.peers, p.host};
  e.data_dir = p.opt.data_dir;
  e.listen = p.opt.listen;
  e.raft_address = p.raft_address;
  e.peer_address = p.peer_address;
  e.identity = p.identity;
  e.restart = [&p] {
    if (p.can_restart) p.power_off(true);
  };
  return e;
}

// Whether every guest domain is gone.
bool destroy_guest_domains(xen::backend& hv) {
  bool all = true;
  for (const auto& d : hv.list())
    if (d.domid != 0 && !hv.destroy(d.domid)) all = false;
  return all;
}

// HA's parts on this host (ha/): the monitor (armed while the pool's HA is on) and the failover
// it drives on the master. Fencing destroys the guests' domains and ends the daemon at once,
// without a word to the pool (on real hardware the watchdog reboots the host; ha/README.md).
void start_ha(host_node::parts& p) {
  ha::host_side side;
  side.db = p.db.get();
  side.host_ref = p.host;
  side.data_dir = p.opt.data_dir;
  side.peers = &*p.peers;
  // A real host's watchdog reboots it when the daemon stops petting (never a simulated host's:
  // the machine running the simulation is not the simulated host).
  if (p.opt.backend == "libxl" && std::filesystem::exists("/dev/watchdog")) side.watchdog_device = "/dev/watchdog";
  side.statefile_path = [&p](const storage::state& s, const std::string& vdi) { return p.repos->vdi_path(s, vdi); };
  side.leads = [&p] {
    const auto st = p.pool_log->status();
    return st.ready && st.state == storage::raft_status::role_state::leader;
  };
  side.other_voters = [&p]() -> std::optional<std::vector<std::string>> {
    const auto status = p.pool_log->status();
    auto snap = p.db->snapshot();
    bool voter = false;
    std::vector<std::string> others;
    for (const auto& server : status.configuration) {
      if (server.role != storage::raft_role::voter) continue;
      if (server.member.id == p.identity.raft_id) voter = true;
      else if (auto m = pool::member_by_raft_id(*snap, server.member.id)) others.push_back(m->host_uuid);
      else others.push_back("raft-id-" + std::to_string(server.member.id));  // never judged dead: no recovery
    }
    if (!voter) return std::nullopt;
    return others;
  };
  side.recover_alone = [&p](const std::string& why) {
    auto st = pool::recover_alone(emergency_side(p), why);
    if (!st) spdlog::error("ha.recover_alone.failed reason=\"{}\"", st.error().description().at(0));
    return static_cast<bool>(st) && p.can_restart;
  };
  side.fence = [&p](const std::string& why) {
    const bool all_gone = destroy_guest_domains(*p.hypervisor);
    spdlog::critical("ha.fenced exit={} reason=\"{}\"", ha::fenced_exit_code, why);
    // A real host whose guests could not all be destroyed must not keep them running while the
    // pool restarts them elsewhere: it reboots now, as xhad's fencing does, rather than trust a
    // watchdog it may not have (never a simulated host: this machine is not that host).
    if (!all_gone && p.opt.backend == "libxl") {
      spdlog::critical("ha.fence.reboot (a guest domain could not be destroyed)");
      spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
      ::sync();
      ::reboot(RB_AUTOBOOT);
    }
    spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
    std::_Exit(ha::fenced_exit_code);
  };
  side.alert = [&p](const std::string& name, std::int64_t priority, const std::string& body) {
    if (const api::host* h = p.db->snapshot()->get<api::host>(p.host)) p.messages->raise({name, priority, api::cls::Host, h->uuid, body});
  };
  p.ha.emplace(std::move(side));
  p.ha_for_peers = &*p.ha;
  p.ha_ctx->emergency_disable = [&p] { return p.ha->emergency_disable(); };
  ha::failover_side f;
  f.db = p.db.get();
  f.monitor = &*p.ha;
  f.reset = [&p](const std::string& vm) -> api::status {
    if (auto r = p.vms->power_state_reset(vm, p.db->ids().opaque_ref()); !r) return fail(std::move(r).error());
    return {};
  };
  // Where placement chooses; on another host through the call it would get from a client, with
  // a root session of the master's own.
  f.start = [&p](const std::string& vm) -> api::status {
    auto host = actors::choose_host(*p.db->snapshot(), vm);
    if (!host) return fail(std::move(host).error());
    if (*host == p.host) {
      if (auto r = p.vms->start_on(vm, p.host, false, true, p.db->ids().opaque_ref()); !r) return fail(std::move(r).error());
      return {};
    }
    std::string session;
    {
      std::lock_guard lock(p.ha_session_mu);
      if (p.ha_session.empty() || !p.sessions->validate(p.ha_session)) {
        auto made = p.sessions->create_root_session("xapid-ha");
        if (!made) return fail(std::move(made).error());
        p.ha_session = *made;
      }
      session = p.ha_session;
    }
    call_context ctx;
    ctx.session = session;
    ctx.client = "ha";
    auto r = p.rpcs.carry_out_on(*host, wire::call{"VM.start_on", {wire::value(session), wire::value(vm), wire::value(*host),
                                                                   wire::value(false), wire::value(true)}},
                                 ctx);
    if (!r.success) return fail(api::error_from_description(r.error_description, api::errors::CANNOT_CONTACT_HOST(*host)));
    return {};
  };
  f.alert = [&p](const std::string& name, std::int64_t priority, api::cls cls, const std::string& uuid, const std::string& body) {
    p.messages->raise({name, priority, cls, uuid, body});
  };
  f.call_back = [&p] { (void)pool::call_back_members(emergency_side(p)); };
  p.ha_failover.emplace(std::move(f));
  p.ha_ctx->prevent_restarts = [&p](std::chrono::seconds s) { p.ha_failover->prevent_restarts_for(s); };
}

}  // namespace xapid::gateway
