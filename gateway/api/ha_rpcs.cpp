#include "gateway/api/ha_rpcs.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include "common/clock.hpp"
#include "gateway/rpc/typed_rpcs.hpp"
#include "actors/placement.hpp"
#include "ha/liveness_judge.hpp"
#include "ha/planning.hpp"
#include "ha/statefile.hpp"
#include "sm/sr_driver.hpp"

namespace xapid::gateway {
namespace {

namespace m = api::method;
using storage::schema;

// Header, master block and one block per host, as xapi's 4096 + 64 × 4096.
std::mutex ha_switch;  // xapi's: enable and disable never overlap

constexpr std::int64_t statefile_size = static_cast<std::int64_t>(ha::statefile_block) * (2 + ha::statefile_max_hosts);

std::vector<std::string> host_refs(const storage::state& s) {
  std::vector<std::string> out;
  s.for_each(schema::get().class_of<api::host>(), [&](const std::string& ref, const storage::row&) {
    out.push_back(ref);
    return true;
  });
  return out;
}

// An SR that can hold the statefile: shared, of a driver whose SRs are shared and written, with
// a plugged PBD on every host.
api::status can_host_statefile(const storage::state& s, const std::string& sr) {
  const api::sr* rec = s.get<api::sr>(sr);
  if (!rec) return fail(api::errors::HANDLE_INVALID("SR", sr));
  const sm::sr_driver* drv = sm::find_driver(rec->type);
  if (!rec->shared || !drv || !drv->shared() || !drv->writable()) return fail(api::errors::HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED(sr));
  for (const auto& host : host_refs(s)) {
    bool plugged = false;
    for (const auto& pbd : s.refs_where<api::pbd>("SR", sr)) {
      const api::pbd* p = s.get<api::pbd>(pbd);
      plugged = plugged || (p->host.opaque == host && p->currently_attached);
    }
    if (!plugged) return fail(api::errors::SR_HAS_NO_PBDS(sr));
  }
  return {};
}

// The statefile VDI of `sr`: one already there (type ha_statefile, large enough: xapi reuses
// it), else a new raw one.
api::api_result<std::string> statefile_vdi(ha_context& ctx, const storage::state& s, const std::string& sr) {
  for (const auto& ref : s.refs_where<api::vdi>("SR", sr)) {
    const api::vdi* v = s.get<api::vdi>(ref);
    if (v->type == api::vdi_type::ha_statefile && v->virtual_size >= statefile_size) return ref;
  }
  return ctx.repos.vdi_create(sr, "Statefile for HA", "Used for storage heartbeating", statefile_size,
                              api::vdi_type::ha_statefile, true, false, {}, {{"type", "raw"}}, "");
}

// Block 0 names the hosts' slots; every lease block is cleared, so that what a host writes
// after this is seen as its renewal (a block from an earlier enablement proves nothing).
api::status write_header(const std::string& path, const std::string& pool_uuid, const std::vector<std::string>& hosts) {
  auto file = ha::open_statefile(path);
  if (!file) return fail(api::errors::INTERNAL_ERROR(file.error()));
  const std::string zeros(ha::statefile_block, '\0');
  for (std::size_t b = ha::master_block; b < ha::host_block(hosts.size()); ++b)
    if (auto w = (*file)->write(b, zeros); !w) return fail(api::errors::INTERNAL_ERROR(w.error()));
  if (auto w = (*file)->write(0, ha::encode_header({pool_uuid, hosts})); !w) return fail(api::errors::INTERNAL_ERROR(w.error()));
  return {};
}

// The pool's and every host's HA fields, in one transaction.
api::status record(storage::database& db, const storage::state& s, bool enabled, const std::string& vdi,
                   const api::map<std::string, std::string>* configuration) {
  auto t = db.begin();
  const api::pool* pool = s.first<api::pool>();
  std::string pool_ref;
  s.for_each(schema::get().class_of<api::pool>(), [&](const std::string& ref, const storage::row&) {
    pool_ref = ref;
    return false;
  });
  api::pool p = *pool;
  p.ha_enabled = enabled;
  p.ha_plan_exists_for = 0;
  if (enabled) {
    p.ha_statefiles = {vdi};
    p.ha_configuration = *configuration;
  }
  t.update(pool_ref, *pool, p);
  if (enabled) {
    std::vector<std::string> uuids;
    for (const auto& ref : host_refs(s)) uuids.push_back(s.get<api::host>(ref)->uuid);
    for (const auto& ref : host_refs(s)) {
      const api::host* h = s.get<api::host>(ref);
      api::host after = *h;
      after.ha_statefiles = {vdi};
      after.ha_network_peers.clear();
      for (const auto& u : uuids)
        if (u != h->uuid) after.ha_network_peers.push_back(u);
      t.update(ref, *h, after);
    }
  }
  if (auto r = db.commit(std::move(t)); !r) return fail(std::move(r).error());
  return {};
}

// Every host has renewed its lease since the header was written.
std::vector<std::string> not_armed(const std::string& path, const std::vector<std::string>& hosts) {
  std::vector<std::string> missing;
  auto file = ha::open_statefile(path);
  if (!file) return hosts;
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    auto block = (*file)->read(ha::host_block(i));
    auto l = block ? ha::decode_lease(*block) : std::nullopt;
    if (!l || l->owner != hosts[i] || l->counter == 0) missing.push_back(hosts[i]);
  }
  return missing;
}

api::status enable(ha_context& ctx, const std::vector<api::ref<api::sr>>& heartbeat_srs,
                   const api::map<std::string, std::string>& configuration) {
  auto s = ctx.db.snapshot();
  const api::pool* pool = s->first<api::pool>();
  if (!pool) return fail(api::errors::INTERNAL_ERROR("the pool has no pool object"));
  if (pool->ha_enabled) return fail(api::errors::HA_IS_ENABLED());
  auto find = [](const api::map<std::string, std::string>& m, const char* key) -> const std::string* {
    auto it = m.find(key);
    return it == m.end() ? nullptr : &it->second;
  };
  auto t = ha::choose_timeout(find(configuration, "timeout"), find(pool->other_config, "default_ha_timeout"));
  if (!t.timeout) return fail(api::errors::INVALID_VALUE("timeout", t.invalid));
  // T as enabled stays T (xapi writes it too): a later default_ha_timeout changes nothing.
  api::map<std::string, std::string> config = configuration;
  config["timeout"] = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*t.timeout).count());
  const auto hosts = host_refs(*s);
  if (hosts.size() > ha::statefile_max_hosts) return fail(api::errors::INVALID_VALUE("hosts", std::to_string(hosts.size())));
  for (const auto& ref : hosts) {
    const api::host* h = s->get<api::host>(ref);
    const api::host_metrics* m = s->get<api::host_metrics>(h->metrics.opaque);
    if (!m || !m->live) return fail(api::errors::HOST_OFFLINE(ref));
  }
  // The SR: the first one named (xapi uses only it), or the first that can hold a statefile.
  std::string sr;
  if (!heartbeat_srs.empty()) {
    sr = heartbeat_srs.front().opaque;
    if (auto st = can_host_statefile(*s, sr); !st) return st;
  } else {
    s->for_each(schema::get().class_of<api::sr>(), [&](const std::string& ref, const storage::row&) {
      if (can_host_statefile(*s, ref)) sr = ref;
      return sr.empty();
    });
    if (sr.empty()) return fail(api::errors::CANNOT_CREATE_STATE_FILE());
  }
  auto vdi = statefile_vdi(ctx, *s, sr);
  if (!vdi) return fail(std::move(vdi).error());
  s = ctx.db.snapshot();
  auto path = ctx.repos.vdi_path(*s, *vdi);
  if (!path) return fail(std::move(path).error());
  std::vector<std::string> uuids;
  for (const auto& ref : hosts) uuids.push_back(s->get<api::host>(ref)->uuid);
  std::sort(uuids.begin(), uuids.end());
  if (auto st = write_header(*path, s->first<api::pool>()->uuid, uuids); !st) return st;
  if (auto st = record(ctx.db, *s, true, *vdi, &config); !st) return st;
  spdlog::info("ha.enabling statefile={} hosts={}", *vdi, uuids.size());
  // Each host arms when its replica has the change: wait for every host's first renewal.
  const auto deadline = monotonic_now() + ctx.arm_wait;
  std::vector<std::string> missing;
  while (!(missing = not_armed(*path, uuids)).empty() && monotonic_now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (missing.empty()) {
    spdlog::info("ha.enabled statefile={} hosts={}", *vdi, uuids.size());
    return {};
  }
  spdlog::error("ha.enable.failed hosts_not_armed={}", missing.front());
  if (auto st = record(ctx.db, *ctx.db.snapshot(), false, {}, nullptr); !st)
    spdlog::error("ha.enable.not_undone reason=\"{}\"", st.error().description().at(0));
  return fail(api::errors::HA_HOST_CANNOT_ACCESS_STATEFILE());
}

std::string pool_ref_of(const storage::state& s) {
  std::string ref;
  s.for_each(schema::get().class_of<api::pool>(), [&](const std::string& r, const storage::row&) {
    ref = r;
    return false;
  });
  return ref;
}

// The pool's plan fields after a plan was computed for `n` failures (xapi's update_pool_status).
void record_plan(storage::database& db, const storage::state& s, std::int64_t tolerate, bool plan) {
  const api::pool* pool = s.first<api::pool>();
  api::pool p = *pool;
  p.ha_host_failures_to_tolerate = tolerate;
  p.ha_plan_exists_for = plan ? tolerate : 0;
  p.ha_overcommitted = pool->ha_enabled && !plan;
  if (p.ha_host_failures_to_tolerate == pool->ha_host_failures_to_tolerate && p.ha_plan_exists_for == pool->ha_plan_exists_for &&
      p.ha_overcommitted == pool->ha_overcommitted)
    return;
  auto t = db.begin();
  t.update(pool_ref_of(s), *pool, p);
  (void)db.commit(std::move(t));
}

const std::string* ref_param(const wire::array& p, std::size_t i) { return i < p.size() ? p[i].as_string() : nullptr; }

}  // namespace

void register_ha_rpcs(dispatcher& d, ha_context& ctx) {
  add_typed<m::pool_enable_ha>(d, [&ctx](call_context&, const std::vector<api::ref<api::sr>>& srs,
                                         const api::map<std::string, std::string>& configuration) -> api::api_result<void> {
    std::lock_guard lock(ha_switch);
    return enable(ctx, srs, configuration);
  }, true);
  add_typed<m::pool_disable_ha>(d, [&ctx](call_context&) -> api::api_result<void> {
    std::lock_guard lock(ha_switch);
    auto s = ctx.db.snapshot();
    const api::pool* pool = s->first<api::pool>();
    if (!pool || !pool->ha_enabled) return fail(api::errors::HA_NOT_ENABLED());
    if (auto st = record(ctx.db, *s, false, {}, nullptr); !st) return st;
    spdlog::info("ha.disabled");
    return ok_v;
  }, true);

  // --- planning ---
  add_typed<m::pool_ha_compute_max_host_failures_to_tolerate>(d, [&ctx](call_context&) -> api::api_result<std::int64_t> {
    auto s = ctx.db.snapshot();
    const std::int64_t n = ha::max_failures(*s, ha::model_of(*s));
    if (const api::pool* pool = s->first<api::pool>(); pool && pool->ha_enabled)
      record_plan(ctx.db, *s, pool->ha_host_failures_to_tolerate, pool->ha_host_failures_to_tolerate <= n);
    return n;
  }, true);
  add_typed<m::pool_ha_compute_hypothetical_max_host_failures_to_tolerate>(
      d, [&ctx](call_context&, const api::map<api::ref<api::vm>, std::string>& configuration) -> api::api_result<std::int64_t> {
        auto s = ctx.db.snapshot();
        // The protected VMs are those the configuration maps to "restart", and only those.
        std::map<std::string, std::string> priorities;
        s->for_each(schema::get().class_of<api::vm>(), [&](const std::string& ref, const storage::row&) {
          priorities[ref] = "";
          return true;
        });
        for (const auto& [vm, priority] : configuration) {
          if (priority != "restart" && priority != "best-effort" && !priority.empty())
            return fail(api::errors::INVALID_VALUE("ha_restart_priority", priority));
          if (!s->get<api::vm>(vm.opaque)) return fail(api::errors::HANDLE_INVALID("VM", vm.opaque));
          priorities[vm.opaque] = priority;
        }
        return ha::max_failures(*s, ha::model_of(*s, &priorities));
      }, true);
  add_typed<m::pool_ha_compute_vm_failover_plan>(
      d, [&ctx](call_context&, const std::vector<api::ref<api::host>>& failed_hosts,
                const std::vector<api::ref<api::vm>>& failed_vms)
             -> api::api_result<api::map<api::ref<api::vm>, api::map<std::string, std::string>>> {
        auto s = ctx.db.snapshot();
        std::set<std::string> hosts;
        for (const auto& h : failed_hosts) hosts.insert(h.opaque);
        std::vector<std::string> vms;
        for (const auto& v : failed_vms) {
          if (!s->get<api::vm>(v.opaque)) return fail(api::errors::HANDLE_INVALID("VM", v.opaque));
          vms.push_back(v.opaque);
        }
        api::map<api::ref<api::vm>, api::map<std::string, std::string>> out;
        for (auto& [vm, entry] : ha::vm_failover_plan(*s, hosts, vms)) {
          api::map<std::string, std::string> e;
          for (auto& [k, v] : entry) e[k] = v;
          out[api::ref<api::vm>{vm}] = std::move(e);
        }
        return out;
      }, true);
  add_typed<m::pool_ha_failover_plan_exists>(d, [&ctx](call_context&, std::int64_t n) -> api::api_result<bool> {
    auto s = ctx.db.snapshot();
    return ha::plan_exists(*s, ha::model_of(*s), n);
  }, true);
  add_typed<m::pool_set_ha_host_failures_to_tolerate>(d, [&ctx](call_context&, const api::ref<api::pool>& self,
                                                                std::int64_t value) -> api::api_result<void> {
    std::lock_guard lock(ha_switch);
    auto s = ctx.db.snapshot();
    const api::pool* pool = s->get<api::pool>(self.opaque);
    if (!pool) return fail(api::errors::HANDLE_INVALID("pool", self.opaque));
    if (value < 0) return fail(api::errors::INVALID_VALUE("ha_host_failures_to_tolerate", std::to_string(value)));
    const bool plan = ha::plan_exists(*s, ha::model_of(*s), value);
    if (pool->ha_enabled && !pool->ha_allow_overcommit && !plan) return fail(api::errors::HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN());
    api::pool p = *pool;
    p.ha_host_failures_to_tolerate = value;
    p.ha_plan_exists_for = pool->ha_enabled && plan ? value : 0;
    p.ha_overcommitted = pool->ha_enabled && !plan;
    auto t = ctx.db.begin();
    t.update(self.opaque, *pool, p);
    if (auto r = ctx.db.commit(std::move(t)); !r) return fail(std::move(r).error());
    return ok_v;
  }, true);
  add_typed<m::pool_ha_prevent_restarts_for>(d, [&ctx](call_context&, std::int64_t seconds) -> api::api_result<void> {
    if (!ctx.prevent_restarts) return fail(api::errors::HOST_STILL_BOOTING());
    ctx.prevent_restarts(std::chrono::seconds(std::max<std::int64_t>(0, seconds)));
    return ok_v;
  }, true);
  add_typed<m::host_emergency_ha_disable>(d, [&ctx](call_context&) -> api::api_result<void> {
    if (!ctx.emergency_disable) return fail(api::errors::HA_NOT_ENABLED());
    return ctx.emergency_disable();
  }, true);

  // --- what would break the plan (xapi's assert_configuration_change_preserves_ha_plan) ---
  // A VM made protected by its start (not yet ha_always_run: HA's own restarts are of VMs it
  // keeps running already), on the host it would run on.
  auto starting = [&ctx](bool named) {
    return [&ctx, named](call_context&, const wire::array& p) -> api::status {
      auto s = ctx.db.snapshot();
      const std::string* vm = ref_param(p, 0);
      const api::vm* v = vm ? s->get<api::vm>(*vm) : nullptr;
      if (!v || v->ha_restart_priority != "restart" || v->ha_always_run) return ok_v;
      std::string host;
      if (named) {
        const std::string* h = ref_param(p, 1);
        if (!h) return ok_v;
        host = *h;
      } else if (auto chosen = actors::choose_host(*s, *vm)) {
        host = *chosen;
      } else {
        return ok_v;  // the start answers why it cannot run
      }
      auto after = ha::model_of(*s);
      ha::add_running(*s, after, *vm, host);
      if (ha::would_break_plan(*s, after)) return fail(api::errors::HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN());
      return ok_v;
    };
  };
  d.guard("VM.start", starting(false));
  d.guard("VM.resume", starting(false));
  d.guard("VM.start_on", starting(true));
  d.guard("VM.resume_on", starting(true));
  // A running VM arriving on another host, or made protected where it runs (xapi's checks of
  // pool_migrate and set_ha_restart_priority).
  auto refuse_if_breaks = [](const storage::state& s, const ha::pool_model& after) -> api::status {
    if (ha::would_break_plan(s, after)) return fail(api::errors::HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN());
    return ok_v;
  };
  d.guard("VM.pool_migrate", [&ctx, refuse_if_breaks](call_context&, const wire::array& p) -> api::status {
    auto s = ctx.db.snapshot();
    const std::string* vm = ref_param(p, 0);
    const std::string* host = ref_param(p, 1);
    const api::vm* v = vm ? s->get<api::vm>(*vm) : nullptr;
    if (!v || !host || !s->get<api::host>(*host) || v->power_state != api::vm_power_state::Running) return ok_v;
    auto after = ha::model_of(*s);
    ha::arrive_running(*s, after, *vm, *host);
    return refuse_if_breaks(*s, after);
  });
  d.guard("VM.set_ha_restart_priority", [&ctx, refuse_if_breaks](call_context&, const wire::array& p) -> api::status {
    auto s = ctx.db.snapshot();
    const std::string* vm = ref_param(p, 0);
    const api::vm* v = vm ? s->get<api::vm>(*vm) : nullptr;
    const std::string* priority = p.size() > 1 ? p[1].as_string() : nullptr;
    if (!v || !priority || *priority != "restart" || v->ha_restart_priority == "restart" ||
        (v->power_state != api::vm_power_state::Running && v->power_state != api::vm_power_state::Paused))
      return ok_v;
    auto after = ha::model_of(*s);
    ha::protect_running(*s, after, *vm);
    return refuse_if_breaks(*s, after);
  });
  // The host no longer a place to restart on (evacuate disables it first, as xapi's).
  auto disabling = [&ctx, refuse_if_breaks](call_context&, const wire::array& p) -> api::status {
    auto s = ctx.db.snapshot();
    const std::string* host = ref_param(p, 0);
    if (!host) return ok_v;
    auto after = ha::model_of(*s);
    after.free.erase(*host);
    return refuse_if_breaks(*s, after);
  };
  d.guard("host.disable", disabling);
  d.guard("host.evacuate", disabling);
}

}  // namespace xapid::gateway
