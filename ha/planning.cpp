#include "ha/planning.hpp"

#include <algorithm>

#include "actors/placement.hpp"

namespace xapid::ha {
namespace {

constexpr std::size_t exact_choices = 2000;

// C(n, k), saturating past `cap`.
std::size_t choices(std::size_t n, std::size_t k, std::size_t cap) {
  if (k > n) return 0;
  std::size_t c = 1;
  for (std::size_t i = 1; i <= k; ++i) {
    c = c * (n - k + i) / i;
    if (c > cap) return cap + 1;
  }
  return c;
}

std::int64_t memory_of(const storage::state& s, const std::string& vm) {
  const api::vm* v = s.get<api::vm>(vm);
  return v ? v->memory_dynamic_max : 0;
}

// The protected VMs of `failed` fit on the other hosts.
bool survives(const storage::state& s, const pool_model& m, const std::vector<std::string>& failed) {
  std::vector<std::string> vms;
  std::map<std::string, std::int64_t> left = m.free;
  for (const auto& h : failed) {
    left.erase(h);
    if (auto it = m.protected_on.find(h); it != m.protected_on.end()) vms.insert(vms.end(), it->second.begin(), it->second.end());
  }
  if (vms.empty()) return true;
  if (left.empty()) return false;
  return actors::pack(s, vms, std::move(left)).stay.empty();
}

}  // namespace

pool_model model_of(const storage::state& s, const std::map<std::string, std::string>* priorities) {
  pool_model m;
  s.for_each(storage::schema::get().class_of<api::host>(), [&](const std::string& ref, const storage::row& row) {
    if (actors::host_live(s, ref) && static_cast<const api::host*>(row.record.get())->enabled)
      m.free[ref] = actors::memory_free(s, ref);
    return true;
  });
  s.for_each(storage::schema::get().class_of<api::vm>(), [&](const std::string& ref, const storage::row& row) {
    const auto* v = static_cast<const api::vm*>(row.record.get());
    if (v->is_control_domain || v->is_a_template || v->is_a_snapshot) return true;
    if (v->power_state != api::vm_power_state::Running && v->power_state != api::vm_power_state::Paused) return true;
    std::string priority = v->ha_restart_priority;
    if (priorities)
      if (auto it = priorities->find(ref); it != priorities->end()) priority = it->second;
    if (priority == "restart") m.protected_on[v->resident_on.opaque].push_back(ref);
    return true;
  });
  return m;
}

void add_running(const storage::state& s, pool_model& m, const std::string& vm, const std::string& host) {
  if (auto it = m.free.find(host); it != m.free.end()) it->second -= memory_of(s, vm);
  auto& on = m.protected_on[host];
  if (std::find(on.begin(), on.end(), vm) == on.end()) on.push_back(vm);
}

void arrive_running(const storage::state& s, pool_model& m, const std::string& vm, const std::string& host) {
  const api::vm* v = s.get<api::vm>(vm);
  if (!v) return;
  const auto on = m.protected_on.find(v->resident_on.opaque);
  const bool is_protected = on != m.protected_on.end() && std::find(on->second.begin(), on->second.end(), vm) != on->second.end();
  if (is_protected) return add_running(s, m, vm, host);
  if (auto it = m.free.find(host); it != m.free.end()) it->second -= memory_of(s, vm);
}

void protect_running(const storage::state& s, pool_model& m, const std::string& vm) {
  const api::vm* v = s.get<api::vm>(vm);
  if (!v || v->resident_on.opaque.empty()) return;
  auto& on = m.protected_on[v->resident_on.opaque];
  if (std::find(on.begin(), on.end(), vm) == on.end()) on.push_back(vm);
}

bool plan_exists(const storage::state& s, const pool_model& m, std::int64_t n) {
  if (n <= 0) return true;
  std::size_t protected_count = 0;
  for (const auto& [h, vms] : m.protected_on) protected_count += vms.size();
  std::vector<std::string> hosts;
  for (const auto& [h, free] : m.free) hosts.push_back(h);
  // Protected VMs on hosts the plan cannot use (disabled, not live) must move anyway.
  for (const auto& [h, vms] : m.protected_on)
    if (!m.free.count(h) && !vms.empty() && !survives(s, m, {h})) return false;
  if (static_cast<std::size_t>(n) >= hosts.size()) return protected_count == 0;
  const auto k = static_cast<std::size_t>(n);
  if (choices(hosts.size(), k, exact_choices) <= exact_choices) {
    // Every choice of k failed hosts, in lexicographic order of their indices.
    std::vector<std::size_t> pick(k);
    for (std::size_t i = 0; i < k; ++i) pick[i] = i;
    for (;;) {
      std::vector<std::string> failed;
      for (auto i : pick) failed.push_back(hosts[i]);
      if (!survives(s, m, failed)) return false;
      std::size_t i = k;
      while (i > 0 && pick[i - 1] == hosts.size() - k + i - 1) --i;
      if (i == 0) return true;
      ++pick[i - 1];
      for (std::size_t j = i; j < k; ++j) pick[j] = pick[j - 1] + 1;
    }
  }
  // xapi's approximation: the k hosts with the most protected memory fail, every VM as big as
  // the biggest, and the others' free memory must hold as many such VMs.
  std::int64_t biggest = 0;
  std::vector<std::pair<std::int64_t, std::string>> load;
  for (const auto& h : hosts) {
    std::int64_t sum = 0;
    if (auto it = m.protected_on.find(h); it != m.protected_on.end())
      for (const auto& vm : it->second) {
        sum += memory_of(s, vm);
        biggest = std::max(biggest, memory_of(s, vm));
      }
    load.emplace_back(sum, h);
  }
  std::ranges::sort(load, std::greater<>());
  std::size_t to_place = 0;
  for (std::size_t i = 0; i < k; ++i)
    if (auto it = m.protected_on.find(load[i].second); it != m.protected_on.end()) to_place += it->second.size();
  if (biggest == 0) return true;
  std::size_t room = 0;
  for (std::size_t i = k; i < load.size(); ++i) room += static_cast<std::size_t>(std::max<std::int64_t>(0, m.free.at(load[i].second)) / biggest);
  return room >= to_place;
}

std::int64_t max_failures(const storage::state& s, const pool_model& m) {
  std::int64_t n = 0;
  while (n + 1 < static_cast<std::int64_t>(m.free.size()) && plan_exists(s, m, n + 1)) ++n;
  return n;
}

std::map<std::string, std::map<std::string, std::string>> vm_failover_plan(const storage::state& s,
                                                                          const std::set<std::string>& failed_hosts,
                                                                          const std::vector<std::string>& failed_vms) {
  pool_model m = model_of(s);
  for (const auto& h : failed_hosts) m.free.erase(h);
  auto packed = actors::pack(s, failed_vms, m.free);
  std::map<std::string, std::map<std::string, std::string>> out;
  for (const auto& [vm, host] : packed.moves) out[vm] = {{"host", host}};
  for (const auto& [vm, why] : packed.stay) out[vm] = {{"error_code", why.empty() ? "HOST_NOT_ENOUGH_FREE_MEMORY" : why.front()}};
  for (const auto& vm : failed_vms)
    if (!out.count(vm)) out[vm] = {{"error_code", std::string(api::to_string(api::error_code::HANDLE_INVALID))}};
  return out;
}

bool would_break_plan(const storage::state& s, const pool_model& after) {
  const api::pool* pool = s.first<api::pool>();
  if (!pool || !pool->ha_enabled || pool->ha_allow_overcommit || pool->ha_host_failures_to_tolerate <= 0) return false;
  const std::int64_t n = pool->ha_host_failures_to_tolerate;
  return plan_exists(s, model_of(s), n) && !plan_exists(s, after, n);
}

}  // namespace xapid::ha
