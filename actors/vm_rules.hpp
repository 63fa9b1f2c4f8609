// Which operations a VM admits, as pure functions of its record: the power states each
// operation needs, which operations may run together, and the exceptions of templates and
// snapshots. The VM's actor asks these before it admits an operation and to fill
// allowed_operations; they read nothing but their arguments.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/api/convert.hpp"
#include "xapid/api/types.hpp"

namespace xapid::actors {

// The power states in which `op` may start.
std::vector<api::vm_power_state> allowed_power_states(const api::vm& vm, api::vm_operations op);

// The error that refuses `op` on `vm` (whose ref is `ref`) now, given its current_operations,
// or nothing when `op` may start.
std::optional<api::api_error> check_vm_operation(const api::vm& vm, const std::string& ref, api::vm_operations op);

// What allowed_operations shows: the operations that check_vm_operation admits now.
std::vector<api::vm_operations> allowed_vm_operations(const api::vm& vm, const std::string& ref);

// The power state's name as errors spell it ("halted").
std::string power_state_name(api::vm_power_state s);

namespace vm_rules {
// More vCPUs than any Xen guest can have: a VM asking for more does not start
// (VM_TOO_MANY_VCPUS), and no setting may ask for them (INVALID_VALUE).
inline constexpr std::int64_t max_vcpus = 512;
// static_min <= dynamic_min <= dynamic_max <= static_max, all at least 0: INVALID_VALUE(field,
// value) naming the first field that breaks the order.
api::status check_memory_order(const api::vm& vm);
// 1 <= VCPUs_at_startup <= VCPUs_max <= max_vcpus: INVALID_VALUE(field, value) otherwise.
api::status check_vcpus(const api::vm& vm);
}  // namespace vm_rules

}  // namespace xapid::actors
