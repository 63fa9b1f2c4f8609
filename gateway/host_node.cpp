#include "gateway/host_node.hpp"
#include "gateway/host_node_parts.hpp"

namespace xapid::gateway {
namespace {

std::string local_hostname() {
  char buf[256] = {};
  return ::gethostname(buf, sizeof buf - 1) == 0 ? std::string(buf) : std::string("localhost");
}

std::size_t implemented_count(const dispatcher& d) {
  auto rows = d.coverage();
  return static_cast<std::size_t>(std::count_if(rows.begin(), rows.end(), [](const auto& r) { return r.implemented; }));
}

// ADDR:PORT, or an error naming the option.
result<std::pair<std::string, unsigned short>, std::string> address(const std::string& option, const std::string& value) {
  auto colon = value.rfind(':');
  int port = colon == std::string::npos ? -1 : std::atoi(value.c_str() + colon + 1);
  if (colon == std::string::npos || port < 0 || port > 65535) return fail("--" + option + " needs ADDR:PORT: " + value);
  return std::pair{value.substr(0, colon), static_cast<unsigned short>(port)};
}

}  // namespace

result<void, std::string> make_private_data_dir(const std::string& dir) {
  ::umask(077);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail("cannot create data dir " + dir + ": " + ec.message());
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return fail("data dir " + dir + " is not a directory");
  if (st.st_mode & S_ISVTX) return fail("data dir " + dir + " is shared (sticky bit): give xapid a directory of its own");
  if (::chmod(dir.c_str(), 0700) != 0) return fail("cannot make data dir " + dir + " private: " + std::strerror(errno));
  return ok_v;
}

host_node::host_node() : p_(std::make_unique<parts>()) {}

namespace {

// Whether most of the other members this host's replica knows refuse it as a stranger: their
// pool database has no host with its certificate (it was ejected or destroyed while it was down,
// and the pool's log no longer sends it anything).
bool left_while_down(host_node::parts& p) {
  std::size_t others = 0, strangers = 0;
  for (const auto& m : pool::members(*p.db->snapshot())) {
    if (m.raft_id == p.identity.raft_id || m.peer_address.empty()) continue;
    ++others;
    auto pong = p.peers->ping(m.peer_address, m.fingerprint, std::chrono::seconds(1));
    strangers += !pong && pong.error().stranger;
  }
  return others > 0 && 2 * strangers > others;
}

// A host whose log has other voters writes at start (first boot, stale sessions and tasks): it
// waits until a master is elected and, when that is another host, answers this one's calls and
// this replica's pool.master names it. (A master killed and started again finds itself in its
// replica's pool.master until the new master's entry arrives: its start-up would take the pool's
// halted VMs for its own, and reset their operations, the new master's under way among them.)
// One that has left the pool meanwhile marks its data dir and fails, to start again alone.
// The legacy metrics records, when this host's other_config asks for them; the master drops
// the device metrics left by destroyed devices.
void legacy_metrics(host_node::parts& p, std::uint64_t second) {
  auto snap = p.db->snapshot();
  const auto every = static_cast<std::uint64_t>(metrics::legacy_interval_seconds(*snap, p.host));
  if (every != 0 && second % every == 0) metrics::write_legacy_metrics(*p.db, p.host, *p.collector, p.clock.now_ms() / 1000);
  const api::pool* pool = snap->first<api::pool>();
  if (second % 60 == 0 && pool && pool->master.opaque == p.host) metrics::drop_orphaned_device_metrics(*p.db);
}

// perfmon's alarms of what this host archives, raised as ALARM messages.
void raise_alarms(host_node::parts& p) {
  for (const auto& a : p.alarms->run(*p.db->snapshot(), p.clock.now_ms() / 1000)) {
    const api::cls cls = a.kind == metrics::watched_kind::vm ? api::cls::VM : a.kind == metrics::watched_kind::host ? api::cls::Host : api::cls::SR;
    p.messages->raise({"ALARM", a.priority, cls, a.uuid, a.body});
  }
}

result<void, std::string> wait_for_a_master(host_node::parts& p, std::chrono::seconds limit) {
  const auto until = monotonic_now() + limit;
  auto next_line = monotonic_now();
  auto next_census = monotonic_now() + std::chrono::seconds(10);
  for (;;) {
    const auto st = p.pool_log->status();
    if (st.ready) return ok_v;  // this host leads, and has applied everything before its term
    if (pool::membership_accepted(p.opt.data_dir))
      return fail(std::string("this host was taken back by its pool's master (pool.recover_slaves): it starts again as its member"));
    if (st.leader.id != 0 && st.leader.id != p.identity.raft_id) {
      const auto snap = p.db->snapshot();
      const auto m = pool::member_by_raft_id(*snap, st.leader.id);
      const api::pool* pool = snap->template first<api::pool>();
      if (m && !m->peer_address.empty() && pool && pool->master.opaque == m->host_ref &&
          p.peers->ping(m->peer_address, m->fingerprint, std::chrono::seconds(1)))
        return ok_v;
    }
    const auto now = monotonic_now();
    if (now >= until)
      return fail("no master of this host's pool was elected and reachable within " + std::to_string(limit.count()) +
                  " s (a majority of its voters must run)");
    if (now >= next_line) {
      spdlog::info("pool.waiting_for_master leader={} term={}", st.leader.address, st.term);
      next_line = now + std::chrono::seconds(10);
    }
    if (now >= next_census) {
      next_census = now + std::chrono::seconds(5);
      if (left_while_down(p)) {
        if (!pool::mark_ejected(p.opt.data_dir)) return fail("this host has left its pool, and " + p.opt.data_dir + " cannot be marked");
        return fail(std::string("this host left its pool while it was down (the other members no longer know it): "
                                "it starts again as a pool of its own"));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

result<std::unique_ptr<host_node>, std::string> host_node::open(host_options options) {
  std::unique_ptr<host_node> node(new host_node());
  parts& p = *node->p_;
  p.opt = std::move(options);
  host_options& opt = p.opt;
  if (opt.backend != "sim" && opt.backend != "libxl") return fail(std::string("--backend must be sim or libxl"));
  if (opt.backend == "libxl" && !xen::xen_hypervisor_present())
    return fail(std::string("--backend libxl needs a Xen control domain, and this is not one "
                            "(/proc/xen/capabilities does not say control_d); use --backend sim"));
  auto listen = address("listen", opt.listen);
  if (!listen) return fail(listen.error());
  p.listen_host = listen->first;
  if (auto st = make_private_data_dir(opt.data_dir); !st) return fail(st.error());
  // Every path the host records (the local SR's location) is absolute: a relative one would
  // name another place from another working directory, and SR locations must be absolute.
  {
    std::error_code ec;
    auto absolute = std::filesystem::canonical(opt.data_dir, ec);
    if (ec) return fail("cannot resolve data dir " + opt.data_dir + ": " + ec.message());
    opt.data_dir = absolute.string();
  }
  if (opt.unix_socket.empty()) opt.unix_socket = opt.data_dir + "/xapid.sock";
  // Log lines name the host by its address (by its data dir too when another host of this
  // process listens there, as tests' hosts on ephemeral ports may); every thread it starts
  // from here on carries the name.
  for (const std::string& name : {opt.listen, opt.listen + "," + opt.data_dir}) {
    auto log = host_log::open(name, opt.data_dir);
    if (!log && name == opt.listen) continue;
    if (!log) return fail(log.error());
    p.log = std::move(log).value();
    p.log_name = std::make_shared<const std::string>(name);
    break;
  }
  scoped_log_host log_scope(p.log_name);

  // The pool's log (a pool of one on a first boot), the database whose commits it orders, the
  // objects of a first boot, root's password, sessions, and the RPCs.
  // An eject leaves this host a pool of its own, and a join the master accepted becomes this
  // host's identity, before anything opens.
  if (auto ejected = pool::finish_ejection(opt.data_dir); !ejected) return fail("finishing pool.eject: " + ejected.error());
  if (auto joined = pool::finish_accepted_join(opt.data_dir); !joined) return fail("finishing pool.join: " + joined.error());
  auto identity = pool::load_or_create_identity(opt.data_dir);
  if (!identity) return fail(identity.error());
  // pool.emergency_transition_to_master left a mark: this host's log is forced to have it as its
  // only voter, once (the configuration is then in the log). The hosts it admitted before its log
  // named them (at its join) are the lost pool's: they are refused from now on, or two of them
  // started again would depose it (a majority of the old voters, a higher term).
  const bool alone = pool::emergency_master_marked(opt.data_dir);
  if (alone) {
    spdlog::warn("pool.emergency_transition_to_master.recovering raft_id={} (this host becomes the pool's only voter)", identity->raft_id);
    identity->admitted.clear();
    if (auto saved = pool::save_identity(opt.data_dir, *identity); !saved) return fail(saved.error());
  }
  p.identity = *identity;
  auto raft_address = pool::raft_address(opt.listen, opt.raft_listen);
  if (!raft_address) return fail(raft_address.error());
  auto peer_address = pool::peer_address(opt.listen, opt.peer_listen);
  if (!peer_address) return fail(peer_address.error());
  p.raft_address = *raft_address;
  p.peer_address = *peer_address;
  auto tls_files = ensure_tls_certificate(opt.data_dir, local_hostname(), p.listen_host);
  if (!tls_files) return fail(tls_files.error());
  auto tls = pool::read_host_tls(tls_files->certificate, tls_files->key);
  if (!tls) return fail(tls.error());
  p.tls = std::move(tls).value();
  auto fingerprint = pool::certificate_fingerprint(p.tls.certificate_pem);
  if (!fingerprint) return fail(tls_files->certificate + ": " + fingerprint.error());
  p.fingerprint = *fingerprint;
  p.peers.emplace([tls = p.tls](const std::string& address, const std::string& pinned) { return pool::peer_channel(address, tls, pinned); });
  p.forwarder.emplace(*p.peers);
  // A join this host asked for before it stopped (or whose answer it lost) ends done — it starts
  // again as the pool's member — or not done, never half.
  if (auto taken = pool::resolve_pending_join(opt.data_dir, actors::installation_uuid(opt.data_dir), *p.peers); !taken)
    return fail(taken.error());
  else if (*taken)
    return fail("pool.join: the master took this host in before it stopped; starting again as its member");
  // A member's own writes go to the master's peer service, found (with its pinned certificate)
  // in the pool database by the master's Raft id.
  auto forward = [&p](std::string encoded, const storage::raft_member& master, std::function<void(storage::forwarded_answer)> done) {
    storage::database* db = p.db_for_peers.load();
    auto record = db ? pool::member_by_raft_id(*db->snapshot(), master.id) : std::nullopt;
    if (!record || record->peer_address.empty())
      return done(storage::forwarded_answer{0, fail(api::errors::HOST_IS_SLAVE(master.address))});
    p.peers->propose(record->peer_address, record->fingerprint, std::move(encoded), std::move(done));
  };
  auto pool_log = pool::make_pool_log(opt.data_dir, *raft_address, *identity, forward, alone);
  if (!pool_log) return fail(pool_log.error());
  p.pool_log = *pool_log;
  storage::database_options db_options{opt.data_dir + "/db"};
  db_options.order = p.pool_log;
  auto opened = storage::database::open(std::move(db_options));
  if (!opened) return fail(opened.error());
  if (alone)
    if (auto cleared = pool::clear_emergency_master_mark(opt.data_dir); !cleared) return fail(cleared.error());
  p.db = std::move(opened).value();
  p.db_for_peers = p.db.get();
  p.fence.emplace(*p.db, p.pool_log, *p.peers);
  p.rpcs.set_freshness({[f = &*p.fence] { return f->needed(); },
                        [f = &*p.fence](std::function<void()> go) { f->after_fresh(std::move(go)); }});
  storage::database& db = *p.db;
  // A host that joined a pool takes its database from the master: its own host is in it once
  // the entry that took it in has arrived (a host ejected and joined again has its old row in
  // the entries before). (Its first boot must not make a pool of its own.)
  if (!identity->founder) {
    const std::string uuid = actors::installation_uuid(opt.data_dir);
    const auto host_cls = storage::schema::get().class_of<api::host>();
    const auto until = monotonic_now() + std::chrono::seconds(120);
    while (db.applied_log_index() < identity->joined_at_index || !db.snapshot()->ref_by_uuid(host_cls, uuid)) {
      // Past the entry that took it in and no row of its own: the pool has sent it away since
      // (an eject whose departure it applied before it was killed, before it marked its data
      // dir): it starts again as a pool of its own, as its observer would have made it.
      if (db.applied_log_index() >= identity->joined_at_index && identity->joined_at_index > 0) {
        if (!pool::mark_ejected(opt.data_dir)) return fail("this host has left its pool, and " + opt.data_dir + " cannot be marked");
        return fail(std::string("this host's row has left the pool database (ejected or destroyed): it starts again as a pool of its own"));
      }
      if (monotonic_now() >= until)
        return fail("this host joined a pool, but its master has not sent the pool's database within 120 s (its log: " +
                    p.pool_log->status().leader.address + ")");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (auto st = start_peer_service(p); !st) return fail(st.error());
  if (auto st = wait_for_a_master(p, std::chrono::seconds(300)); !st) return fail(st.error());
  // The hypervisor: libxenlight on a Xen host, else the simulated host, whose domains live in
  // DIR/sim-state across restarts.
  if (opt.backend == "libxl") {
    auto xl = xen::libxl_backend::open();
    if (!xl) return fail("libxl: " + xl.error());
    p.hypervisor = std::move(xl).value();
  } else {
    xen::sim_options sim;
    sim.cpu_count = static_cast<int>(opt.sim_cpus);
    sim.memory_total_bytes = std::int64_t{opt.sim_memory_mib} << 20;
    sim.fault_probability = opt.sim_fault_probability;
    sim.fault_seed = static_cast<std::uint64_t>(opt.sim_fault_seed);
    sim.operation_ms = static_cast<int>(opt.sim_operation_ms);
    sim.migration_bytes_per_second = std::int64_t{opt.sim_migration_mib_per_s} << 20;
    sim.crash_probability = opt.sim_crash_probability;
    sim.hang_probability = opt.sim_hang_probability;
    auto world = opt.sim_world ? result<std::shared_ptr<xen::sim_world>, std::string>(opt.sim_world)
                               : xen::sim_world::open(opt.data_dir + "/sim-state");
    if (!world) return fail(world.error());
    auto simulated = (*world)->attach(opt.sim_world ? opt.listen : "host", sim);
    if (!simulated) return fail(simulated.error());
    p.simulator = simulated.value().get();
    p.hypervisor = std::move(simulated).value();
  }
  auto objects = actors::ensure_pool_and_host(db, opt.data_dir, p.listen_host, p.hypervisor->host());
  if (!objects) return fail("first boot: " + objects.error().description().at(0));
  p.host = objects->host;
  if (auto st = ensure_roles(db); !st) return fail("first boot: roles: " + st.error().description().at(0));
  auto credentials = load_or_create_root_password(opt.data_dir, opt.root_password_file, opt.root_password);
  std::fill(opt.root_password.begin(), opt.root_password.end(), '\0');
  opt.root_password.clear();
  if (!credentials) return fail(credentials.error());
  if (!credentials->generated_file.empty())
    spdlog::warn("xapid.root_password.generated file={} (read it once, then delete it)", credentials->generated_file);
  p.root.data_dir = opt.data_dir;
  p.root.hash = credentials->hash;
  p.logins.emplace(db, p.host, p.root);

  p.sessions.emplace(db, p.clock, p.host, session_limits{std::chrono::seconds(opt.session_idle_seconds), 500});
  if (auto st = p.sessions->clear_stale(); !st) return fail("clearing old sessions: " + st.error().description().at(0));
  p.rpcs.set_session_check([s = &*p.sessions](const std::string& ref) { return s->validate(ref); });
  register_session_rpcs(p.rpcs, *p.sessions, db, p.root, *p.logins);
  // Every implicit RPC over storage; the RPCs with behaviour registered after replace theirs.
  register_implicit_rpcs(p.rpcs, db);
  p.tasks.emplace(db, p.clock, p.host);
  if (auto st = p.tasks->clear_stale(); !st) return fail("clearing old tasks: " + st.error().description().at(0));
  // The objects' actors, the storage repositories, and the VM lifecycle over the hypervisor.
  p.actors.emplace(db);
  p.actors_for_peers = &*p.actors;
  p.repos.emplace(db, *p.actors, p.clock, p.host, opt.data_dir);
  if (auto st = p.repos->start(); !st) return fail("storage: " + st.error().description().at(0));
  if (std::size_t n = p.repos->plug_own_pbds()) spdlog::info("storage.pbds.plugged count={}", n);
  p.messages.emplace(db, p.clock, static_cast<std::size_t>(opt.message_limit));
  p.vms.emplace(db, *p.hypervisor, *p.actors, *p.repos, p.clock, p.host);
  p.vms->set_message_log(&*p.messages);
  // Live migration's other end: the VM's new host, through its peer service.
  p.vms->set_migration_peers([&p](const std::string& host) -> std::optional<actors::vm_lifecycle::migration_peer> {
    auto member = pool::member_of_host(*p.db->snapshot(), host);
    if (!member || member->peer_address.empty()) return std::nullopt;
    auto step = [&p, m = *member](peer::MigrateRequest q) -> api::api_result<peer::MigrateReply> {
      q.set_source(p.host);
      auto r = p.peers->migrate(m.peer_address, m.fingerprint, q, std::chrono::seconds(60));
      if (!r) return fail(api::errors::CANNOT_CONTACT_HOST(m.host_ref));
      if (r->has_error()) return fail(pool::from_proto(r->error()));
      return std::move(r).value();
    };
    actors::vm_lifecycle::migration_peer peer;
    peer.prepare = [step](const std::string& vm) -> api::api_result<int> {
      peer::MigrateRequest q;
      q.set_step(peer::MigrateRequest::PREPARE);
      q.set_vm(vm);
      auto r = step(std::move(q));
      if (!r) return fail(r.error());
      return static_cast<int>(r->domid());
    };
    peer.finish = [&p, step](const std::string& vm, int domid, bool paused) -> api::status {
      peer::MigrateRequest q;
      q.set_step(peer::MigrateRequest::FINISH);
      q.set_vm(vm);
      q.set_domid(domid);
      q.set_paused(paused);
      if (const api::vm* v = p.db->snapshot()->get<api::vm>(vm))  // its performance data goes with it
        if (auto archive = p.collector->export_archive(v->uuid)) q.set_archive(std::move(*archive));
      if (auto r = step(std::move(q)); !r) return fail(r.error());
      return ok_v;
    };
    peer.abort = [step](const std::string& vm, int domid) {
      peer::MigrateRequest q;
      q.set_step(peer::MigrateRequest::ABORT);
      q.set_vm(vm);
      q.set_domid(domid);
      (void)step(std::move(q));
    };
    return peer;
  });
  // A daemon that stopped while armed for HA is a host its watchdog rebooted: its guests are
  // gone (the pool may have started them elsewhere since).
  if (ha::ha_monitor::was_armed(opt.data_dir)) {
    spdlog::warn("ha.restarted_while_armed: its guests' domains are destroyed, as the watchdog's reboot would");
    destroy_guest_domains(*p.hypervisor);
    ha::ha_monitor::clear_armed_mark(opt.data_dir);
  }
  if (auto st = p.vms->reconcile(); !st)
    return fail("reconciling VMs with the hypervisor: " + st.error().description().at(0));
  register_object_rules(p.rpcs, db, *p.repos, p.host);
  register_sr_rpcs(p.rpcs, *p.repos, db.ids());
  register_vm_rpcs(p.rpcs, *p.vms, db.ids(), *p.tasks, *p.messages);
  register_message_rpcs(p.rpcs, db, *p.messages);
  // Performance data, sampled every 5 s by the observer; MIN and MAX archives when the pool's
  // other_config:create_min_max_in_new_VM_RRDs asks (seed 003, 5.2).
  {
    auto snap = db.snapshot();
    const api::pool* pool = snap->first<api::pool>();
    const bool min_max = pool && pool->other_config.count("create_min_max_in_new_VM_RRDs") > 0;
    p.collector.emplace(*p.hypervisor, p.clock, snap->get<api::host>(p.host)->uuid, opt.data_dir + "/rrd", min_max);
    if (auto st = p.collector->load(); !st) return fail("performance data: " + st.error());
    p.alarms.emplace(*p.collector, opt.perfmon_interval_seconds);
  }
  register_metrics_rpcs(p.rpcs, db, *p.collector, p.host);
  // host.shutdown and host.reboot stop the daemon once their answer is on its way.
  p.host_ops.emplace(db, *p.actors, p.host);
  if (auto st = p.host_ops->reset(); !st) return fail("host operations: " + st.error().description().at(0));
  // host.evacuate migrates its guests away, host.declare_dead resets them (each its own VM
  // operation).
  p.host_ops->set_guest_actions({[&p](const std::string& vm, const std::string& to) {
                                   return p.vms->pool_migrate(vm, to, p.db->ids().opaque_ref());
                                 },
                                 [&p](const std::string& vm) { return p.vms->power_state_reset(vm, p.db->ids().opaque_ref()); }});
  p.host_ctx.emplace(host_context{db, *p.hypervisor, *p.host_ops, p.clock, p.host, opt.data_dir + "/xapid.log",
                                  [&p](bool again) { p.power_off(again); }});
  register_host_rpcs(p.rpcs, *p.host_ctx);
  p.pool_ctx.emplace();
  p.pool_ctx->self = pool::joining_host{&db, opt.data_dir, actors::installation_uuid(opt.data_dir), opt.listen, p.raft_address,
                                        p.peer_address, p.tls.certificate_pem, &*p.peers};
  p.pool_ctx->power = [&p](bool again) { p.power_off(again); };
  p.pool_ctx->master = pool::master_side{&db, p.pool_log.get(), nullptr, &*p.peers, p.host};
  p.pool_ctx->emergency = emergency_side(p);
  register_pool_rpcs(p.rpcs, *p.pool_ctx);
  p.ha_ctx.emplace(ha_context{db, *p.repos, p.host, std::chrono::seconds(30), {}, {}});
  register_ha_rpcs(p.rpcs, *p.ha_ctx);
  register_role_rpcs(p.rpcs, db);
  register_external_auth_rpcs(p.rpcs, db);
  p.events.emplace(db, p.clock, p.rpcs, [s = &*p.sessions](const std::string& ref) { return s->validate(ref); });
  p.events->register_with(p.rpcs);
  p.sessions->on_end([e = &*p.events](const std::string& ref) { e->session_ended(ref); });
  register_task_rpcs(p.rpcs, *p.tasks, db);
  p.rpcs.set_task_hooks({[t = &*p.tasks](const std::string& session, const std::string& name) { return t->create(session, name); },
                         [t = &*p.tasks](const std::string& task, const wire::response& r) { t->complete(task, r); }});
  // An operation on an object another host runs is carried out there (gateway/rpc/call_routes).
  p.rpcs.set_router({[&p](std::string_view method, std::span<const wire::value> params) -> api::api_result<std::string> {
                       if (!routed(method)) return std::string();  // most calls: no snapshot taken
                       return carried_out_by(*p.db->snapshot(), method, params, p.host);
                     },
                     [&p](const std::string& host, const wire::call& c, const call_context& ctx) {
                       auto member = pool::member_of_host(*p.db->snapshot(), host);
                       if (!member || member->peer_address.empty())
                         return wire::response{false, {}, api::errors::HOST_OFFLINE(host).description()};
                       return p.forwarder->forward(*member, c, ctx.task, ctx.client);
                     },
                     [&p](std::string_view method, std::span<const wire::value> params, const std::vector<std::string>& refused) {
                       return placed_again(*p.db->snapshot(), method, params, p.host, refused);
                     }});

  // The serving threads all run `io`: a connection's handlers never overlap (see http_server),
  // so no strand is needed and any free thread serves any ready connection.
  p.io.emplace(opt.threads);
  http_limits limits;
  limits.read_timeout = std::chrono::seconds(opt.http_read_timeout_s);
  limits.idle_timeout = std::chrono::seconds(opt.http_idle_timeout_s);
  limits.max_body_bytes = static_cast<std::size_t>(opt.http_max_body_mib) << 20;
  limits.max_body_bytes_in_flight = 4 * limits.max_body_bytes;
  p.server.emplace(
      *p.io, [d = &p.rpcs](http_request req, http_server::responder respond) { serve_rpc(*d, req, respond); }, limits);
  // VM export and import stream on threads of their own.
  p.xva.emplace(xva_context{db, *p.sessions, *p.logins, *p.tasks, *p.repos, *p.actors, p.clock, p.host});
  register_xva_handlers(*p.server, *p.xva);
  p.metrics_ctx.emplace(metrics_context{db, *p.sessions, *p.logins, *p.collector, &p.rpcs, &*p.events, p.pool_log.get()});
  register_metrics_handlers(*p.server, *p.metrics_ctx);
  if (!opt.metrics_listen.empty()) {
    p.scrape_server.emplace(*p.io, open_metrics_handler(*p.metrics_ctx));
  }
  return node;
}

result<void, std::string> host_node::serve() {
  scoped_log_host log_scope(p_->log_name);
  return start_serving(p_->opt.threads);
}

result<void, std::string> host_node::run() {
  scoped_log_host log_scope(p_->log_name);
  if (auto st = start_serving(p_->opt.threads - 1); !st) return st;
  // The calling thread serves too: the daemon's main thread, whose malloc arena (the main one)
  // gives freed memory back to the system more readily than a thread's own.
  serve_here();
  wait();
  return ok_v;
}

void host_node::serve_here() {
  parts& p = *p_;
  // A handler that throws (which none should) loses its own connection, not the serving thread.
  for (;;) {
    try {
      p.io->run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("http.serve.failed error=\"{}\"", e.what());
    }
  }
}

result<void, std::string> host_node::start_serving(int threads) {
  parts& p = *p_;
  const host_options& opt = p.opt;
  auto listen = address("listen", opt.listen);
  if (!listen) return fail(listen.error());
  if (auto r = p.server->listen_tcp(listen->first, listen->second); !r) return fail("listen " + opt.listen + ": " + r.error());
  if (auto r = p.server->listen_unix(opt.unix_socket); !r) return fail("unix socket " + opt.unix_socket + ": " + r.error());
  ::chmod(opt.unix_socket.c_str(), 0600);
  if (!opt.https_listen.empty()) {
    auto tls = address("https-listen", opt.https_listen);
    if (!tls) return fail(tls.error());
    auto files = ensure_tls_certificate(opt.data_dir, local_hostname(), tls->first);
    if (!files) return fail(files.error());
    if (auto r = p.server->listen_tls(tls->first, tls->second, files->certificate, files->key); !r)
      return fail("https listen " + opt.https_listen + ": " + r.error());
    spdlog::info("xapid.tls listen={}:{} certificate={}", tls->first, p.server->tls_port(), files->certificate);
  }
  if (p.scrape_server) {
    auto at = address("metrics-listen", opt.metrics_listen);
    if (!at) return fail(at.error());
    if (auto r = p.scrape_server->listen_tcp(at->first, at->second); !r) return fail("metrics listen " + opt.metrics_listen + ": " + r.error());
    spdlog::info("xapid.metrics listen={}:{}", at->first, p.scrape_server->tcp_port());
  }

  // This host's record in the pool says where its peer service is (served since open(): the
  // other hosts' start-ups forward their writes to it), and joins are taken from now on.
  {
    start_ha(p);  // before any call can reach HA's hooks
    p.joins_open = true;
    p.calls_open = true;
    // The log's leader is the pool's master: pool.master follows it.
    p.voters.emplace(p.pool_log, [&p] {
      auto snap = p.db->snapshot();
      const api::pool* pool = nullptr;
      std::string pool_ref;
      snap->for_each(storage::schema::get().class_of<api::pool>(), [&](const std::string& ref, const storage::row& r) {
        pool_ref = ref;
        pool = static_cast<const api::pool*>(r.record.get());
        return false;
      });
      if (!pool || pool->master.opaque == p.host) return;
      auto t = p.db->begin();
      const auto cls = storage::schema::get().class_of<api::pool>();
      t.set(cls, pool_ref, *storage::schema::get().field_index(cls, "master"), wire::value(p.host));
      if (auto done = p.db->commit(std::move(t)); done) {
        spdlog::info("pool.master.changed host={}", p.host);
        // As xapi's new master tells once it has taken over (an empty body).
        if (const api::host* h = snap->get<api::host>(p.host))
          p.messages->raise({actors::alerts::POOL_MASTER_TRANSITION.first, actors::alerts::POOL_MASTER_TRANSITION.second,
                             api::cls::Host, h->uuid, ""});
      } else spdlog::warn("pool.master.not_changed reason=\"{}\"", done.error().description().at(0));
    }, [&p](std::uint64_t raft_id) {
      using state = pool::voter_keeper::host_state;
      auto snap = p.db->snapshot();
      auto m = pool::member_by_raft_id(*snap, raft_id);
      return !m ? state::gone : actors::host_live(*snap, m->host_ref) ? state::live : state::dead;
    });
    p.pool_ctx->master.keeper = &*p.voters;
    p.liveness.emplace(*p.db, p.pool_log, *p.peers, p.host, std::chrono::seconds(opt.host_dead_seconds),
                       [&p](const storage::state& seen, const std::set<std::string>& claimed) {
                         p.actors->forget_orphaned_operations(seen, claimed);
                       });
    const std::string served_at = p.peer_address.substr(0, p.peer_address.rfind(':') + 1) + std::to_string(p.peer_service->port());
    if (auto st = pool::publish_own_record(*p.db, {p.host, "", p.identity.raft_id, p.raft_address, served_at, p.fingerprint}); !st)
      return fail("publishing this host's place in the pool: " + st.error().description().at(0));
  }

  // Idle sessions end within a minute of their timeout.
  p.sweep.emplace(*p.io);
  p.schedule_sweep = [&p] {
    p.sweep->expires_after(std::chrono::seconds(60));
    p.sweep->async_wait([&p](const boost::system::error_code& ec) {
      if (ec) return;
      if (std::size_t n = p.sessions->expire_idle()) spdlog::info("session.expired count={}", n);
      if (std::size_t n = p.tasks->collect_finished(std::chrono::hours(1))) spdlog::info("task.collected count={}", n);
      p.schedule_sweep();
    });
  };
  p.schedule_sweep();
  // Failed logins are told as xapi tells them: one message on the pool now and then.
  p.login_report.emplace(*p.io);
  p.schedule_login_report = [&p] {
    p.login_report->expires_after(std::chrono::seconds(p.opt.failed_login_alert_seconds));
    p.login_report->async_wait([&p](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto report = p.logins->take_failures(); report.count) {
        spdlog::warn("session.login.failed_since_last_report count={}", report.count);
        auto snap = p.db->snapshot();
        if (const api::pool* pool = snap->first<api::pool>())
          p.messages->raise({actors::alerts::FAILED_LOGIN_ATTEMPTS.first, actors::alerts::FAILED_LOGIN_ATTEMPTS.second,
                             api::cls::Pool, pool->uuid, report.body});
      }
      p.schedule_login_report();
    });
  };
  p.schedule_login_report();
  if (opt.stop_on_signals) {
    p.signals.emplace(*p.io, SIGTERM, SIGINT);
    p.signals->async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      spdlog::info("xapid.stop signal={}", sig);
      stop();
    });
  }
  p.power_timer.emplace(*p.io);
  p.power_off = [this, &p](bool again) {
    spdlog::info("xapid.stop reason={}", again ? "host.reboot" : "host.shutdown");
    p.reboot = again;
    // A moment for the answer to reach the client, then the host stops.
    boost::asio::post(*p.io, [this, &p] {
      p.power_timer->expires_after(std::chrono::milliseconds(200));
      p.power_timer->async_wait([this](const boost::system::error_code& ec) {
        if (!ec) stop();
      });
    });
  };
  p.can_restart = true;

  spdlog::info("xapid.ready listen={}:{} unix_socket={} backend={} data_dir={} host_ref={} rpcs_implemented={}",
               listen->first, p.server->tcp_port(), opt.unix_socket, opt.backend, opt.data_dir, p.host,
               implemented_count(p.rpcs));
  // What guests do on their own (and their agents report) is noticed every second.
  p.observer = std::thread(carry_log_host([&p] {
    std::unique_lock lock(p.observe_mu);
    for (std::uint64_t second = 1; !p.observe_cv.wait_for(lock, std::chrono::seconds(1), [&] { return p.stopping; }); ++second) {
      lock.unlock();
      if (p.simulator) {
        metrics::apply_simulated_loads(*p.db->snapshot(), p.host, *p.simulator);
        p.simulator->tick();
      }
      p.vms->observe();
      // This host's row gone from the pool database: it was ejected (or destroyed), and starts
      // again as a pool of its own.
      if (!p.left_pool && !p.db->snapshot()->find(storage::schema::get().class_of<api::host>(), p.host)) {
        p.left_pool = true;
        spdlog::warn("pool.left (this host's row has left the pool database): restarting as a pool of its own");
        if (pool::mark_ejected(p.opt.data_dir)) p.power_off(true);
        else spdlog::error("pool.left.cannot_mark data_dir={}", p.opt.data_dir);
      }
      if (second % metrics::step_seconds == 0) {
        const auto snap = p.db->snapshot();
        const api::pool* pool = snap->first<api::pool>();
        p.collector->set_min_max(pool && pool->other_config.count("create_min_max_in_new_VM_RRDs") > 0);
        p.collector->collect(metrics::srs_kept_here(*snap, p.host), metrics::disk_srs_here(*snap, p.host));
        legacy_metrics(p, second);
      }
      if (second % static_cast<std::uint64_t>(p.alarms->interval()) == 0) raise_alarms(p);
      if (second % 3600 == 0)
        if (auto st = p.collector->save_all(); !st) spdlog::warn("metrics.archive.not_saved reason=\"{}\"", st.error());
      lock.lock();
    }
  }));
  for (int i = 0; i < threads; ++i) p.serving.emplace_back(carry_log_host([this] { serve_here(); }));
  p.served = true;
  return ok_v;
}

void host_node::stop() {
  parts& p = *p_;
  if (!p.io) return;
  boost::asio::post(*p.io, [&p] {
    if (p.sweep) p.sweep->cancel();
    if (p.login_report) p.login_report->cancel();
    if (p.signals) p.signals->cancel();
    p.server->stop();
    if (p.scrape_server) p.scrape_server->stop();
    p.io->stop();
  });
}

void host_node::wait() {
  parts& p = *p_;
  if (p.wound_down) return;
  scoped_log_host log_scope(p.log_name);
  for (auto& t : p.serving) t.join();
  p.serving.clear();
  if (p.observer.joinable()) {
    {
      std::lock_guard lock(p.observe_mu);
      p.stopping = true;
    }
    p.observe_cv.notify_all();
    p.observer.join();
  }
  // The archives outlive the daemon (a full disk loses this write only).
  if (p.collector && p.served)
    if (auto st = p.collector->save_all(); !st) spdlog::warn("metrics.archive.not_saved reason=\"{}\"", st.error());
  // Waiting calls (event.from, a shutdown a guest ignores) wake and finish before the database
  // closes. (A host that failed to open stops what it had built.)
  if (p.events) p.events->stop();
  p.peer_service.reset();  // no more calls from the other hosts
  p.liveness.reset();      // nor sweeps of the operations, before the actors go
  p.fence.reset();         // the calls it holds go on (to a call pool that refuses them)
  if (p.db) p.db->stop_waiters();
  if (p.hypervisor) p.hypervisor->stop_waiting();
  if (p.forwarder) p.forwarder->stop();  // the calls sent on to other hosts end
  p.rpcs.stop_blocking();
  // HA goes once no call can reach it (its RPCs run on the call pool).
  p.ha_failover.reset();
  p.ha_for_peers = nullptr;
  if (p.ha) {
    // A host that stops while armed stops renewing its lease: the pool will take it for dead and
    // start its protected VMs elsewhere, so its guests go now, before its watchdog is closed (the
    // armed mark stays: a host stopped so is one that went down).
    if (p.ha->armed() && p.hypervisor) {
      spdlog::warn("ha.stopped_while_armed: its guests' domains are destroyed");
      destroy_guest_domains(*p.hypervisor);
    }
    p.ha.reset();
  }
  // The log stops (a promotion under way ends with it), then the keeper whose steps commit
  // through the database: never a step while the database is destroyed.
  if (p.pool_log) p.pool_log->stop();
  p.voters.reset();
  p.wound_down = true;
  if (p.served) spdlog::info("xapid.stopped data_dir={}", p.opt.data_dir);
}

host_node::~host_node() {
  if (!p_) return;
  scoped_log_host log_scope(p_->log_name);
  if (p_->served) stop();
  wait();
  p_.reset();  // the parts go while the lines they log still name this host
}

bool host_node::reboot_requested() const noexcept { return p_->reboot; }
unsigned short host_node::tcp_port() const { return p_->server->tcp_port(); }
const std::string& host_node::host_ref() const noexcept { return p_->host; }
const host_options& host_node::options() const noexcept { return p_->opt; }
dispatcher& host_node::rpcs() noexcept { return p_->rpcs; }
storage::database& host_node::database() noexcept { return *p_->db; }
storage::raft_sequencer& host_node::pool_log() noexcept { return *p_->pool_log; }

}  // namespace xapid::gateway
