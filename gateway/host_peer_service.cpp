#include "gateway/host_node_parts.hpp"

#include <algorithm>

namespace xapid::gateway {

// The service the pool's other hosts call (Join, Propose, Ping, Call, Migrate), on --peer-listen.
result<void, std::string> start_peer_service(host_node::parts& p) {
  pool::peer_service_context ctx;
  ctx.db = p.db.get();
  ctx.log = p.pool_log.get();
  ctx.host_uuid = [dir = p.opt.data_dir] { return actors::installation_uuid(dir); };
  ctx.ha_heartbeat = [&p](const std::string& host_uuid) {
    ha::ha_monitor* m = p.ha_for_peers.load();
    return m ? m->heartbeat_from(host_uuid) : std::nullopt;
  };
  ctx.operations_in_flight = [&p] {
    actors::host_actors* a = p.actors_for_peers.load();
    return a ? a->operations_in_flight() : std::vector<std::string>{};
  };
  ctx.caller_fingerprint = [](const grpc::ServerContextBase& c) { return pool::caller_fingerprint(c); };
  pool::join_master master;
  master.db = p.db.get();
  master.log = p.pool_log.get();
  master.identity = p.identity;
  master.certificate_pem = p.tls.certificate_pem;
  master.raft_address = p.raft_address;
  master.authenticate = [&p](const std::string& user, const std::string& password, const std::string& client) -> api::status {
    if (!p.joins_open) return fail(api::errors::HOST_STILL_BOOTING());
    const auto started = monotonic_now();
    auto who = p.logins->authenticate({user, password, client});
    if (!who) {
      // As session.login's: a failure is answered only after the failure delay.
      std::this_thread::sleep_for(p.logins->remaining_delay(started));
      return fail(who.error());
    }
    if (!who->root && who->role > api::least_role(*api::find_method("pool.join")))
      return fail(api::errors::RBAC_PERMISSION_DENIED("pool.join", "No permission in user session"));
    return ok_v;
  };
  master.root_password_hash = [&p] { return current_root_hash(p.root, *p.db); };
  ctx.join = [master](const peer::JoinRequest& q, const std::string& caller, const std::string& fp, peer::JoinReply& r) {
    pool::take_in(master, q, caller, fp, r);
  };
  ctx.joined_as = [master](const std::string& fp, const peer::JoinedAsRequest& q, peer::JoinReply& r) {
    pool::answer_joined_as(master, fp, q, r);
  };
  ctx.rejoin = [&p](const std::string& fp, const peer::RejoinRequest& q, peer::RejoinReply& r) {
    pool::take_back(emergency_side(p).master, fp, q, r);
  };
  // A call another member sends on for this host to carry out: checked and run as if a client
  // had made it here (its session and role again), never sent on again.
  ctx.call = [&p](const peer::CallRequest& request, const std::string& sender, std::function<void(peer::CallReply)> answer) {
    auto reply = [answer = std::move(answer)](const wire::response& r) {
      peer::CallReply out;
      pool::set_answer(r, out);
      answer(std::move(out));
    };
    if (!p.calls_open) return reply({false, {}, api::errors::HOST_STILL_BOOTING().description()});
    auto c = pool::forwarded_call(request);
    if (!c) return reply({false, {}, api::errors::INTERNAL_ERROR(c.error()).description()});
    const std::string task = request.task();
    auto run = [&p, c = std::move(c).value(), task, sender, client = request.client(), reply = std::move(reply)]() mutable {
      // An Async call's task is this host's to cancel while the operation runs here: one of the
      // caller's own, never another's that a member names.
      if (!task.empty()) {
        if (auto st = pool::check_forwarded_task(*p.db->snapshot(), task, c, sender); !st) return reply({false, {}, st.error().description()});
        p.tasks->adopt(task);
      }
      call_context context;
      context.client = client;
      context.task = task;
      context.forwarded = true;
      p.rpcs.dispatch_async(std::move(c), std::move(context), [&p, task, reply = std::move(reply)](wire::response r, call_context) {
        if (!task.empty()) p.tasks->release(task);
        reply(r);
      });
    };
    // The task was made on the host the client called a moment ago: a replica that has not
    // applied it yet catches up first.
    const bool unseen = !task.empty() && !p.db->snapshot()->get<api::task>(task);
    if (unseen && p.fence && p.fence->needed()) p.fence->after_fresh(std::move(run));
    else run();
  };
  // A VM migrating here: its domain is built, run or destroyed (pool_peer.proto's Migrate).
  ctx.migrate = [&p](const peer::MigrateRequest& q, peer::MigrateReply& r) {
    if (!p.calls_open) return pool::to_proto(api::errors::HOST_STILL_BOOTING(), *r.mutable_error());
    switch (q.step()) {
      case peer::MigrateRequest::PREPARE:
        if (auto domid = p.vms->receive(q.vm(), q.source()); domid) r.set_domid(*domid);
        else pool::to_proto(domid.error(), *r.mutable_error());
        break;
      case peer::MigrateRequest::FINISH:
        if (auto st = p.vms->finish_receive(q.vm(), static_cast<int>(q.domid()), q.paused()); !st) {
          pool::to_proto(st.error(), *r.mutable_error());
        } else if (!q.archive().empty()) {
          const api::vm* v = p.db->snapshot()->template get<api::vm>(q.vm());
          if (auto kept = p.collector->import_archive(v ? v->uuid : std::string(), q.archive()); !kept)
            spdlog::warn("metrics.archive.not_taken vm={} reason=\"{}\"", q.vm(), kept.error());
        }
        break;
      default: p.vms->abort_receive(q.vm(), static_cast<int>(q.domid()));
    }
  };
  ctx.reset_master = [&p](const std::string& fp) -> api::status {
    auto master = pool::member_by_fingerprint(*p.db->snapshot(), fp);
    if (!master) return fail(api::errors::HOST_UNKNOWN_TO_MASTER(""));
    return pool::follow_master(emergency_side(p), *master);
  };
  auto service = pool::peer_service::start(p.peer_address, pool::peer_server_credentials(p.tls), std::move(ctx));
  if (!service) return fail("peer listen " + p.peer_address + ": " + service.error());
  p.peer_service = std::move(service).value();
  return ok_v;
}

}  // namespace xapid::gateway
