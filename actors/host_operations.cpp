#include "actors/host_operations.hpp"

#include "actors/placement.hpp"

namespace xapid::actors {
namespace {

using storage::schema;

// The running guests resident on the host (the control domain is the host itself).
std::vector<std::string> resident_guests(const storage::state& s, const std::string& host) {
  std::vector<std::string> out;
  for (const auto& ref : s.refs_where<api::vm>("resident_on", host)) {
    const api::vm* vm = s.get<api::vm>(ref);
    if (!vm->is_control_domain && vm->power_state != api::vm_power_state::Halted) out.push_back(ref);
  }
  return out;
}

}  // namespace

host_operations::host_operations(storage::database& db, host_actors& actors, std::string host)
    : db_(db), actors_(actors), host_(std::move(host)), host_cls_(schema::get().class_of<api::host>()) {
  // One operation at a time; what is allowed follows `enabled`.
  actors_.add_rules(host_cls_, one_at_a_time<api::host>([](const api::host& h) {
    using op = api::host_allowed_operations;
    std::vector<op> ops{op::evacuate, op::shutdown, op::reboot};
    if (h.enabled) ops.insert(ops.end(), {op::provision, op::vm_start, op::vm_resume, op::vm_migrate});
    return ops;
  }));
}

api::status host_operations::reset() { return actors_.reset_operations(host_cls_, host_); }

host_operations::result_void host_operations::assert_this_host(const std::string& host) const {
  if (!db_.snapshot()->get<api::host>(host)) return fail(api::errors::HANDLE_INVALID("host", host));
  if (host != host_) return fail(api::errors::HOST_OFFLINE(host));
  return ok_v;
}

host_operations::result_void host_operations::set_enabled(const std::string& host, bool enabled) {
  if (auto st = assert_this_host(host); !st) return st;
  auto s = db_.snapshot();
  const api::host* h = s->get<api::host>(host);
  api::host after = *h;
  after.enabled = enabled;
  auto t = db_.begin();
  t.update(host, *h, after);
  if (auto r = db_.commit(std::move(t)); !r) return fail(std::move(r).error());
  actors_.refresh(host_cls_, host);
  return ok_v;
}

host_operations::result_void host_operations::power_off(const std::string& host, bool reboot, const std::string& task) {
  if (auto st = assert_this_host(host); !st) return st;
  auto r = actors_.run(host_cls_, host, reboot ? "reboot" : "shutdown", task, [this, host]() -> api::api_result<wire::value> {
    auto s = db_.snapshot();
    if (s->get<api::host>(host)->enabled) return fail(api::errors::HOST_NOT_DISABLED());
    auto guests = resident_guests(*s, host);
    if (!guests.empty()) return fail(api::errors::HOST_IN_USE(host, "VM", guests.front()));
    return wire::value("");
  });
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

// Why each guest that must leave cannot, by the evacuation plan.
api::map<api::ref<api::vm>, std::vector<std::string>> host_operations::blockers() const {
  api::map<api::ref<api::vm>, std::vector<std::string>> out;
  for (auto& [vm, why] : plan_evacuation(*db_.snapshot(), host_).stay) out[api::ref<api::vm>{vm}] = std::move(why);
  return out;
}

api::api_result<api::map<api::ref<api::vm>, std::vector<std::string>>> host_operations::vms_preventing_evacuation(
    const std::string& host) const {
  if (auto st = assert_this_host(host); !st) return fail(st.error());
  return blockers();
}

namespace {

// xapi's encoding: each VM's error as CODE,param,... joined with |.
api::api_error cannot_evacuate(const std::map<std::string, std::vector<std::string>>& stay) {
  std::string all;
  for (const auto& [vm, why] : stay) {
    if (!all.empty()) all += '|';
    for (std::size_t i = 0; i < why.size(); ++i) all += (i ? "," : "") + why[i];
  }
  return api::errors::CANNOT_EVACUATE_HOST(all);
}

}  // namespace

host_operations::result_void host_operations::assert_can_evacuate(const std::string& host) const {
  if (auto st = assert_this_host(host); !st) return st;
  if (auto plan = plan_evacuation(*db_.snapshot(), host_); !plan.stay.empty()) return fail(cannot_evacuate(plan.stay));
  return ok_v;
}

host_operations::result_void host_operations::evacuate(const std::string& host, const std::string& task) {
  if (auto st = assert_this_host(host); !st) return st;
  auto r = actors_.run(host_cls_, host, "evacuate", task, [this]() -> api::api_result<wire::value> {
    auto plan = plan_evacuation(*db_.snapshot(), host_);
    if (!plan.stay.empty()) return fail(cannot_evacuate(plan.stay));
    if (!plan.moves.empty() && !guests_.migrate) return fail(api::errors::NO_HOSTS_AVAILABLE());
    for (const auto& [vm, to] : plan.moves)
      if (auto moved = guests_.migrate(vm, to); !moved) return fail(moved.error());
    return wire::value("");
  });
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

host_operations::result_void host_operations::declare_dead(const std::string& host) {
  auto s = db_.snapshot();
  const api::host* h = s->get<api::host>(host);
  if (!h) return fail(api::errors::HANDLE_INVALID("host", host));
  const api::host_metrics* m = s->get<api::host_metrics>(h->metrics.opaque);
  if (host == host_ || (m && m->live)) return fail(api::errors::HOST_IS_LIVE(host));
  if (!guests_.reset) return fail(api::errors::OPERATION_NOT_ALLOWED("this host cannot reset VMs"));
  for (const auto& vm : resident_guests(*s, host))
    if (auto r = guests_.reset(vm); !r) return r;
  if (h->enabled) {
    api::host after = *h;
    after.enabled = false;
    auto t = db_.begin();
    t.update(host, *h, after);
    if (auto r = db_.commit(std::move(t)); !r) return fail(std::move(r).error());
  }
  return ok_v;
}

}  // namespace xapid::actors
