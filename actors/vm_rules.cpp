#include "actors/vm_rules.hpp"

#include <algorithm>

namespace xapid::actors {
namespace {

using op_t = api::vm_operations;
using ps = api::vm_power_state;

bool among(op_t op, std::initializer_list<op_t> ops) { return std::find(ops.begin(), ops.end(), op) != ops.end(); }

// Operations that may run beside those already in progress (xapi's rule): long copies
// together, snapshots together, and a hard shutdown or reboot to end a stuck operation.
bool allowed_concurrently(op_t op, const api::map<std::string, op_t>& current) {
  auto all_in = [&](std::initializer_list<op_t> group) {
    if (!among(op, group)) return false;
    return std::all_of(current.begin(), current.end(), [&](const auto& kv) { return among(kv.second, group); });
  };
  auto running = [&](op_t o) {
    return std::any_of(current.begin(), current.end(), [&](const auto& kv) { return kv.second == o; });
  };
  if (all_in({op_t::clone, op_t::copy, op_t::export_}) || all_in({op_t::snapshot, op_t::checkpoint})) return true;
  if (op == op_t::hard_shutdown) return !running(op_t::hard_shutdown);
  if (op == op_t::hard_reboot) return !running(op_t::hard_shutdown) && !running(op_t::hard_reboot);
  return false;
}

bool default_template(const api::vm& vm) {
  auto it = vm.other_config.find("default_template");
  return it != vm.other_config.end() && (it->second == "true" || it->second == "1");
}

// The operations allowed_operations considers: those an operator can ask for.
constexpr op_t listed_operations[] = {
    op_t::snapshot,       op_t::clone,          op_t::copy,           op_t::revert,
    op_t::checkpoint,     op_t::provision,      op_t::start,          op_t::start_on,
    op_t::pause,          op_t::unpause,        op_t::clean_shutdown, op_t::clean_reboot,
    op_t::hard_shutdown,  op_t::hard_reboot,    op_t::suspend,        op_t::resume,
    op_t::resume_on,      op_t::shutdown,       op_t::export_,        op_t::metadata_export,
    op_t::destroy,        op_t::changing_dynamic_range, op_t::changing_static_range,
    op_t::changing_memory_limits, op_t::changing_VCPUs, op_t::changing_VCPUs_live,
    op_t::changing_memory_live, op_t::make_into_template};

}  // namespace

std::string power_state_name(api::vm_power_state s) {
  std::string name(api::to_string(s));
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name;
}

std::vector<api::vm_power_state> allowed_power_states(const api::vm& vm, api::vm_operations op) {
  switch (op) {
    case op_t::import: return {};
    case op_t::changing_VCPUs:
    case op_t::changing_static_range:
    case op_t::changing_memory_limits:
      if (vm.is_control_domain) return {ps::Halted, ps::Running};
      return {ps::Halted};
    case op_t::changing_shadow_memory:
    case op_t::make_into_template:
    case op_t::provision:
    case op_t::start:
    case op_t::start_on: return {ps::Halted};
    case op_t::unpause: return {ps::Paused};
    case op_t::csvm:
    case op_t::resume:
    case op_t::resume_on: return {ps::Suspended};
    case op_t::awaiting_memory_live:
    case op_t::call_plugin:
    case op_t::clean_reboot:
    case op_t::clean_shutdown:
    case op_t::changing_memory_live:
    case op_t::changing_shadow_memory_live:
    case op_t::changing_VCPUs_live:
    case op_t::data_source_op:
    case op_t::pause:
    case op_t::pool_migrate:
    case op_t::send_sysrq:
    case op_t::send_trigger:
    case op_t::snapshot_with_quiesce:
    case op_t::suspend: return {ps::Running};
    case op_t::changing_dynamic_range: return {ps::Halted, ps::Running};
    case op_t::clone:
    case op_t::copy:
      if (vm.is_a_snapshot) return {ps::Halted, ps::Suspended};
      return {ps::Halted};
    case op_t::create_template:
    case op_t::destroy:
    case op_t::export_: return {ps::Halted, ps::Suspended};
    case op_t::hard_reboot: return {ps::Paused, ps::Running};
    case op_t::checkpoint:
    case op_t::get_boot_record:
    case op_t::shutdown:
    case op_t::hard_shutdown: return {ps::Paused, ps::Suspended, ps::Running};
    case op_t::migrate_send: return {ps::Halted, ps::Suspended, ps::Running};
    default: return {ps::Halted, ps::Paused, ps::Suspended, ps::Running};
  }
}

std::optional<api::api_error> check_vm_operation(const api::vm& vm, const std::string& ref, api::vm_operations op) {
  if (auto blocked = vm.blocked_operations.find(op); blocked != vm.blocked_operations.end())
    return api::errors::OPERATION_BLOCKED(ref, blocked->second);

  // The control domain belongs to the host: only its memory and its metadata may change.
  if (vm.is_control_domain &&
      !among(op, {op_t::changing_dynamic_range, op_t::changing_static_range, op_t::changing_memory_limits,
                  op_t::changing_VCPUs, op_t::changing_memory_live, op_t::metadata_export, op_t::data_source_op}))
    return api::errors::OPERATION_NOT_ALLOWED("This operation is not allowed on the control domain");

  auto states = allowed_power_states(vm, op);
  if (std::find(states.begin(), states.end(), vm.power_state) == states.end()) {
    std::string expected;
    for (auto s : states) expected += (expected.empty() ? "" : ", ") + power_state_name(s);
    return api::errors::VM_BAD_POWER_STATE(ref, expected, power_state_name(vm.power_state));
  }
  if (!vm.current_operations.empty() && !allowed_concurrently(op, vm.current_operations))
    return api::errors::OTHER_OPERATION_IN_PROGRESS("VM", ref);

  if (vm.is_a_template && !vm.is_a_snapshot) {
    bool ok = among(op, {op_t::changing_dynamic_range, op_t::changing_static_range, op_t::changing_memory_limits,
                         op_t::changing_shadow_memory, op_t::changing_VCPUs, op_t::clone, op_t::copy, op_t::export_,
                         op_t::metadata_export, op_t::provision}) ||
              (op == op_t::destroy && !default_template(vm));
    if (!ok) return api::errors::VM_IS_TEMPLATE(ref);
  }
  if (vm.is_a_snapshot &&
      !among(op, {op_t::revert, op_t::clone, op_t::copy, op_t::export_, op_t::destroy, op_t::hard_shutdown,
                  op_t::metadata_export}))
    return api::errors::OPERATION_NOT_ALLOWED("This operation is not allowed on a snapshot");
  if (op == op_t::provision && !vm.is_a_template) return api::errors::PROVISION_ONLY_ALLOWED_ON_TEMPLATE();
  if (op == op_t::revert && !vm.is_a_snapshot)
    return api::errors::OPERATION_NOT_ALLOWED("Only snapshots can be reverted to");
  return std::nullopt;
}

std::vector<api::vm_operations> allowed_vm_operations(const api::vm& vm, const std::string& ref) {
  std::vector<api::vm_operations> ops;
  for (op_t op : listed_operations)
    if (!check_vm_operation(vm, ref, op)) ops.push_back(op);
  return ops;
}

namespace vm_rules {

api::status check_memory_order(const api::vm& vm) {
  if (vm.memory_static_min < 0)
    return fail(api::errors::INVALID_VALUE("memory_static_min", std::to_string(vm.memory_static_min)));
  if (vm.memory_static_min > vm.memory_dynamic_min)
    return fail(api::errors::INVALID_VALUE("memory_dynamic_min", std::to_string(vm.memory_dynamic_min)));
  if (vm.memory_dynamic_min > vm.memory_dynamic_max)
    return fail(api::errors::INVALID_VALUE("memory_dynamic_max", std::to_string(vm.memory_dynamic_max)));
  if (vm.memory_dynamic_max > vm.memory_static_max)
    return fail(api::errors::INVALID_VALUE("memory_static_max", std::to_string(vm.memory_static_max)));
  return {};
}

api::status check_vcpus(const api::vm& vm) {
  if (vm.VCPUs_max < 1 || vm.VCPUs_max > max_vcpus)
    return fail(api::errors::INVALID_VALUE("VCPUs_max", std::to_string(vm.VCPUs_max)));
  if (vm.VCPUs_at_startup < 1 || vm.VCPUs_at_startup > vm.VCPUs_max)
    return fail(api::errors::INVALID_VALUE("VCPUs_at_startup", std::to_string(vm.VCPUs_at_startup)));
  return {};
}

}  // namespace vm_rules

}  // namespace xapid::actors
