// The VM operation rules, table-driven: each row is a VM state, an operation and the error the
// rules answer (or none).
#include <gtest/gtest.h>

#include "actors/vm_rules.hpp"

namespace xapid::actors {
namespace {

using op = api::vm_operations;
using ps = api::vm_power_state;
const std::string ref = "OpaqueRef:vm";

api::vm vm_in(ps state) {
  api::vm v;
  v.power_state = state;
  return v;
}

struct row {
  const char* what;
  api::vm vm;
  op operation;
  std::optional<api::api_error> expected;
};

TEST(vm_rules, every_row_of_the_table) {
  api::vm tmpl = vm_in(ps::Halted);
  tmpl.is_a_template = true;
  api::vm default_tmpl = tmpl;
  default_tmpl.other_config["default_template"] = "true";
  api::vm snap = tmpl;
  snap.is_a_snapshot = true;
  api::vm busy = vm_in(ps::Running);
  busy.current_operations["OpaqueRef:t1"] = op::clean_shutdown;
  api::vm copying = vm_in(ps::Halted);
  copying.current_operations["OpaqueRef:t1"] = op::clone;
  api::vm blocked = vm_in(ps::Halted);
  blocked.blocked_operations[op::start] = "maintenance";
  api::vm dom0 = vm_in(ps::Running);
  dom0.is_control_domain = true;

  const row rows[] = {
      {"start a halted VM", vm_in(ps::Halted), op::start, std::nullopt},
      {"start a running VM", vm_in(ps::Running), op::start, api::errors::VM_BAD_POWER_STATE(ref, "halted", "running")},
      {"pause a halted VM", vm_in(ps::Halted), op::pause, api::errors::VM_BAD_POWER_STATE(ref, "running", "halted")},
      {"unpause a running VM", vm_in(ps::Running), op::unpause, api::errors::VM_BAD_POWER_STATE(ref, "paused", "running")},
      {"resume a halted VM", vm_in(ps::Halted), op::resume, api::errors::VM_BAD_POWER_STATE(ref, "suspended", "halted")},
      {"suspend a paused VM", vm_in(ps::Paused), op::suspend, api::errors::VM_BAD_POWER_STATE(ref, "running", "paused")},
      {"hard shutdown a halted VM", vm_in(ps::Halted), op::hard_shutdown,
       api::errors::VM_BAD_POWER_STATE(ref, "paused, suspended, running", "halted")},
      {"hard shutdown a suspended VM", vm_in(ps::Suspended), op::hard_shutdown, std::nullopt},
      {"hard reboot a paused VM", vm_in(ps::Paused), op::hard_reboot, std::nullopt},
      {"destroy a running VM", vm_in(ps::Running), op::destroy,
       api::errors::VM_BAD_POWER_STATE(ref, "halted, suspended", "running")},
      {"destroy a suspended VM", vm_in(ps::Suspended), op::destroy, std::nullopt},
      {"clone a running VM", vm_in(ps::Running), op::clone, api::errors::VM_BAD_POWER_STATE(ref, "halted", "running")},
      {"snapshot a running VM", vm_in(ps::Running), op::snapshot, std::nullopt},
      {"start a template", tmpl, op::start, api::errors::VM_IS_TEMPLATE(ref)},
      {"clone a template", tmpl, op::clone, std::nullopt},
      {"provision a template", tmpl, op::provision, std::nullopt},
      {"destroy a template", tmpl, op::destroy, std::nullopt},
      {"destroy a default template", default_tmpl, op::destroy, api::errors::VM_IS_TEMPLATE(ref)},
      {"provision a VM", vm_in(ps::Halted), op::provision, api::errors::PROVISION_ONLY_ALLOWED_ON_TEMPLATE()},
      {"revert to a VM", vm_in(ps::Halted), op::revert, api::errors::OPERATION_NOT_ALLOWED("Only snapshots can be reverted to")},
      {"revert to a snapshot", snap, op::revert, std::nullopt},
      {"start a snapshot", snap, op::start, api::errors::OPERATION_NOT_ALLOWED("This operation is not allowed on a snapshot")},
      {"suspend during a clean shutdown", busy, op::suspend, api::errors::OTHER_OPERATION_IN_PROGRESS("VM", ref)},
      {"hard shutdown during a clean shutdown", busy, op::hard_shutdown, std::nullopt},
      {"copy during a clone", copying, op::copy, std::nullopt},
      {"start during a clone", copying, op::start, api::errors::OTHER_OPERATION_IN_PROGRESS("VM", ref)},
      {"a blocked operation", blocked, op::start, api::errors::OPERATION_BLOCKED(ref, "maintenance")},
      {"shut down the control domain", dom0, op::clean_shutdown,
       api::errors::OPERATION_NOT_ALLOWED("This operation is not allowed on the control domain")},
  };
  for (const auto& r : rows) {
    auto got = check_vm_operation(r.vm, ref, r.operation);
    EXPECT_EQ(got.has_value(), r.expected.has_value()) << r.what;
    if (got && r.expected) {
      EXPECT_EQ(got->description(), r.expected->description()) << r.what;
    }
  }
}

TEST(vm_rules, allowed_operations_follow_the_power_state) {
  auto has = [](const std::vector<op>& ops, op o) { return std::find(ops.begin(), ops.end(), o) != ops.end(); };
  auto halted = allowed_vm_operations(vm_in(ps::Halted), ref);
  EXPECT_TRUE(has(halted, op::start));
  EXPECT_TRUE(has(halted, op::destroy));
  EXPECT_FALSE(has(halted, op::clean_shutdown));
  auto running = allowed_vm_operations(vm_in(ps::Running), ref);
  EXPECT_TRUE(has(running, op::clean_shutdown));
  EXPECT_TRUE(has(running, op::suspend));
  EXPECT_FALSE(has(running, op::start));
  api::vm busy = vm_in(ps::Running);
  busy.current_operations["OpaqueRef:t"] = op::clean_shutdown;
  auto during = allowed_vm_operations(busy, ref);
  EXPECT_EQ(during, (std::vector<op>{op::hard_shutdown, op::hard_reboot}));
}

}  // namespace
}  // namespace xapid::actors
