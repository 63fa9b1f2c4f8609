#include "ha/failover.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>

#include "common/clock.hpp"

namespace xapid::ha {
namespace {

constexpr auto retry_after = std::chrono::seconds(120);  // xapi's: no start of one VM again within two minutes

bool restartable(const api::vm& v) { return !v.is_a_template && !v.is_a_snapshot && !v.is_control_domain; }

// xapi's order: groups by `order` ascending, negative orders last.
bool before(std::int64_t a, std::int64_t b) {
  if ((a < 0) != (b < 0)) return a >= 0;
  return a < b;
}

}  // namespace

failover::failover(failover_side side, std::chrono::milliseconds period)
    : side_(std::move(side)), thread_(std::make_unique<periodic_thread>(period, [this] { step(); })) {}

failover::~failover() {
  thread_.reset();
  if (calling_back_.valid()) calling_back_.wait();
}

void failover::prevent_restarts_for(std::chrono::seconds s) {
  s = std::min(s, std::chrono::seconds(10LL * 365 * 24 * 3600));  // ten years: no overflow in nanoseconds
  prevented_until_ns_ = s.count() > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            (monotonic_now() + s).time_since_epoch()).count()
                                      : 0;
}

void failover::step() {
  const ha_view v = side_.monitor->view();
  if (!v.armed || !v.master_lease) return;
  if (monotonic_now().time_since_epoch().count() < prevented_until_ns_.load()) return;
  auto s = side_.db->snapshot();
  for (const auto& host : v.dead) declare_dead(*s, host);
  restart(*side_.db->snapshot());
  const auto now = monotonic_now();
  if (side_.call_back && now - called_back_ >= std::chrono::seconds(10) &&
      (!calling_back_.valid() || calling_back_.wait_for(std::chrono::seconds(0)) == std::future_status::ready)) {
    called_back_ = now;
    calling_back_ = std::async(std::launch::async, side_.call_back);
  }
}

void failover::declare_dead(const storage::state& s, const std::string& host) {
  const api::host* h = s.get<api::host>(host);
  if (!h) return;
  const api::host_metrics* m = s.get<api::host_metrics>(h->metrics.opaque);
  std::vector<std::string> guests;
  s.for_each(storage::schema::get().class_of<api::vm>(), [&](const std::string& ref, const storage::row& r) {
    const auto* vm = static_cast<const api::vm*>(r.record.get());
    if (vm->resident_on.opaque == host && !vm->is_control_domain && vm->power_state != api::vm_power_state::Halted)
      guests.push_back(ref);
    return true;
  });
  if (m && m->live) {
    api::host_metrics after = *m;
    after.live = false;
    auto t = side_.db->begin();
    t.update(h->metrics.opaque, *m, after);
    if (auto r = side_.db->commit(std::move(t)); !r) {
      spdlog::warn("ha.host_dead.not_recorded host={} reason=\"{}\"", h->uuid, r.error().description().at(0));
      return;
    }
    spdlog::warn("ha.host_dead host={} uuid={} vms={}", host, h->uuid, guests.size());
    if (side_.alert) side_.alert("HA_HOST_FAILED", 3, api::cls::Host, h->uuid, "Server '" + h->name_label + "' has failed");
  }
  for (const auto& vm : guests) {
    const api::vm* rec = s.get<api::vm>(vm);
    if (auto r = side_.reset(vm); !r) {
      spdlog::warn("ha.vm_reset.failed vm={} reason=\"{}\"", rec->uuid, r.error().description().at(0));
      continue;
    }
    spdlog::info("ha.vm_reset vm={} host={}", rec->uuid, h->uuid);
    if (rec->ha_restart_priority == "best-effort") best_effort_.insert(vm);
  }
}

void failover::restart(const storage::state& s) {
  const auto now = monotonic_now();
  std::map<std::int64_t, std::vector<std::string>, decltype(&before)> protected_vms(&before), best_effort(&before);
  s.for_each(storage::schema::get().class_of<api::vm>(), [&](const std::string& ref, const storage::row& r) {
    const auto* vm = static_cast<const api::vm*>(r.record.get());
    if (!restartable(*vm) || vm->power_state != api::vm_power_state::Halted) return true;
    auto tried = last_try_.find(ref);
    if (tried != last_try_.end() && now - tried->second < retry_after) return true;
    if (vm->ha_always_run && vm->ha_restart_priority == "restart") protected_vms[vm->order].push_back(ref);
    else if (best_effort_.count(ref) && vm->ha_restart_priority == "best-effort") best_effort[vm->order].push_back(ref);
    return true;
  });
  // Each group at once, the next once it has finished.
  auto run = [&](const std::vector<std::string>& group, bool is_protected) {
    std::vector<std::pair<std::string, std::future<api::status>>> starts;
    for (const auto& vm : group) starts.emplace_back(vm, std::async(std::launch::async, [this, vm] { return side_.start(vm); }));
    for (auto& [vm, f] : starts) {
      auto r = f.get();
      const api::vm* rec = s.get<api::vm>(vm);
      if (r) {
        spdlog::info("ha.vm_restarted vm={}", rec->uuid);
        last_try_.erase(vm);
        alerted_.erase(vm);
        best_effort_.erase(vm);
        continue;
      }
      // Halted since by someone else (a user's start won the race) is no failure.
      auto now_s = side_.db->snapshot();
      const api::vm* current = now_s->get<api::vm>(vm);
      if (!current || current->power_state != api::vm_power_state::Halted) continue;
      last_try_[vm] = monotonic_now();
      spdlog::warn("ha.vm_restart.failed vm={} reason=\"{}\"", rec->uuid, r.error().description().at(0));
      if (is_protected && alerted_.insert(vm).second && side_.alert)
        side_.alert("HA_PROTECTED_VM_RESTART_FAILED", 2, api::cls::VM, rec->uuid, "");
    }
  };
  for (const auto& [order, group] : protected_vms) run(group, true);
  for (const auto& [order, group] : best_effort) run(group, false);
}

}  // namespace xapid::ha
