// HA's failover plans (xapi's xapi_ha_vm_failover, without WLB): whether the protected VMs of any
// n hosts that fail could run on the others, by the placement rules and the hosts' free memory
// (actors::pack, the evacuation's packing). Pure functions of a snapshot, so any host answers
// the planning RPCs and the rules that refuse operations which would break the plan.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "storage/state.hpp"

namespace xapid::ha {

// The pool as the plans see it: the enabled, live hosts' free memory, and the protected VMs
// running on each.
struct pool_model {
  std::map<std::string, std::int64_t> free;                    // host -> free memory
  std::map<std::string, std::vector<std::string>> protected_on;  // host -> protected VMs running there
};

// The model now. Protected: ha_restart_priority "restart" and running or paused (a VM
// `priorities` names takes the priority it gives: the hypothetical plans).
pool_model model_of(const storage::state& s, const std::map<std::string, std::string>* priorities = nullptr);
// `vm` (protected) started on `host`: its memory taken there.
void add_running(const storage::state& s, pool_model& m, const std::string& vm, const std::string& host);
// `vm`, running, arriving on `host` (VM.pool_migrate): its memory taken there, and protected there
// if it is; as xapi, it still counts where it runs (in flight, a failure of either host would
// have to restart it).
void arrive_running(const storage::state& s, pool_model& m, const std::string& vm, const std::string& host);
// `vm`, running, made protected where it runs (VM.set_ha_restart_priority "restart").
void protect_running(const storage::state& s, pool_model& m, const std::string& vm);

// Whether, for every choice of `n` failed hosts, their protected VMs fit on the others (exact
// for up to 2,000 choices; beyond, xapi's approximation: the n hosts with the most protected
// memory fail and every VM is as big as the biggest). n = 0 always has a plan; n ≥ the hosts
// never, unless nothing is protected.
bool plan_exists(const storage::state& s, const pool_model& m, std::int64_t n);
// The most failures a plan exists for (0 when none).
std::int64_t max_failures(const storage::state& s, const pool_model& m);

// pool.ha_compute_vm_failover_plan: each of `failed_vms` placed on the live hosts but
// `failed_hosts`: {"host": ref}, or {"error_code": why not}.
std::map<std::string, std::map<std::string, std::string>> vm_failover_plan(const storage::state& s,
                                                                          const std::set<std::string>& failed_hosts,
                                                                          const std::vector<std::string>& failed_vms);

// HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN's rule (xapi's assert_configuration_change_preserves_ha_plan):
// with HA on, overcommit not allowed and ha_host_failures_to_tolerate n > 0, a change is
// refused when a plan for n exists now and would not after it. `after` is the model changed.
bool would_break_plan(const storage::state& s, const pool_model& after);

}  // namespace xapid::ha
