// The generated catalog holds the whole API of the seed, consistently.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "xapid/api/catalog.hpp"
#include "xapid/api/methods.hpp"
#include "xapid/api/rbac.hpp"
#include "xapid/api/types.hpp"

namespace xapid::api {
namespace {

TEST(datamodel, has_exactly_the_46_classes_of_section_2_1) {
  const std::vector<std::string> expected = {
      "session", "auth", "subject", "role", "task", "event", "pool", "pool_patch", "VM", "VM_metrics",
      "VM_guest_metrics", "VMPP", "VM_appliance", "DR_task", "host", "host_crashdump", "host_patch",
      "host_metrics", "host_cpu", "network", "VIF", "VIF_metrics", "PIF", "PIF_metrics", "Bond", "VLAN",
      "SM", "SR", "VDI", "VBD", "VBD_metrics", "PBD", "crashdump", "VTPM", "console", "user",
      "data_source", "blob", "message", "secret", "tunnel", "PCI", "PGPU", "GPU_group", "VGPU",
      "VGPU_type"};
  std::vector<std::string> actual;
  for (const auto& c : all_classes()) actual.emplace_back(c.name);
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(std::tuple_size_v<all_record_types>, 46u);
}

TEST(datamodel, rpc_count_equals_the_seeds_rpc_entries) {
  // 001_*.txt has 1,335 "RPC name:" entries.
  EXPECT_EQ(all_methods().size(), 1335u);
  std::size_t per_class = 0;
  for (const auto& c : all_classes()) per_class += c.methods.size();
  EXPECT_EQ(per_class, 1335u);
}

TEST(datamodel, methods_are_found_by_wire_name) {
  const method_desc* m = find_method("VM.start");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->kind, method_kind::custom);
  ASSERT_EQ(m->params.size(), 3u);
  EXPECT_EQ(m->params[0].name, "vm");
  EXPECT_EQ(m->params[0].type->spelling, "ref(VM)");
  EXPECT_EQ(m->params[1].name, "start_paused");
  EXPECT_EQ(m->result->kind, type_kind::void_);
  EXPECT_TRUE(m->takes_session);
  EXPECT_TRUE(m->has_async);
  EXPECT_EQ(std::count(m->errors.begin(), m->errors.end(), error_code::VM_BAD_POWER_STATE), 1);
  EXPECT_EQ(find_method("VM.no_such_call"), nullptr);
  EXPECT_EQ(find_method("Async.VM.start"), nullptr);  // Async forms are derived, not listed
}

TEST(datamodel, session_login_takes_no_session) {
  const method_desc* m = find_method("session.login_with_password");
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->takes_session);
  EXPECT_FALSE(m->has_async);
  ASSERT_EQ(m->params.size(), 4u);
  EXPECT_EQ(m->params[3].name, "originator");
  EXPECT_EQ(m->result->spelling, "ref(session)");
}

TEST(datamodel, implicit_methods_are_classified) {
  struct row {
    const char* wire;
    method_kind kind;
    const char* field;
  };
  for (const row& r : std::initializer_list<row>{
           {"VM.get_name_label", method_kind::getter, "name_label"},
           {"VM.set_name_label", method_kind::setter, "name_label"},
           {"VM.get_power_state", method_kind::getter, "power_state"},
           {"VM.add_to_other_config", method_kind::add_to, "other_config"},
           {"VM.remove_from_other_config", method_kind::remove_from, "other_config"},
           {"VM.add_tags", method_kind::add_to, "tags"},
           {"VM.create", method_kind::constructor, ""},
           {"VM.destroy", method_kind::destructor, ""},
           {"VM.get_by_uuid", method_kind::get_by_uuid, ""},
           {"VM.get_by_name_label", method_kind::get_by_name_label, ""},
           {"VM.get_record", method_kind::get_record, ""},
           {"VM.get_all", method_kind::get_all, ""},
           {"VM.get_all_records", method_kind::get_all_records, ""},
           {"VM.clone", method_kind::custom, ""},
           {"VM.set_memory_dynamic_max", method_kind::custom, ""},  // memory fields are RO ins
           {"VM.get_boot_record", method_kind::custom, ""},
       }) {
    const method_desc* m = find_method(r.wire);
    ASSERT_NE(m, nullptr) << r.wire;
    EXPECT_EQ(m->kind, r.kind) << r.wire;
    EXPECT_EQ(m->field, r.field) << r.wire;
  }
}

TEST(datamodel, async_exists_for_custom_rpcs_create_and_destroy_outside_session_task_event) {
  for (const auto& m : all_methods()) {
    bool with_async_kind = m.kind == method_kind::custom || m.kind == method_kind::constructor ||
                           m.kind == method_kind::destructor;
    bool excluded_class = m.class_name == "session" || m.class_name == "task" || m.class_name == "event";
    EXPECT_EQ(m.has_async, with_async_kind && !excluded_class) << m.wire_name;
  }
  EXPECT_TRUE(find_method("VM.clone")->has_async);
  EXPECT_TRUE(find_method("network.create")->has_async);
  EXPECT_FALSE(find_method("VM.get_all_records")->has_async);
}

TEST(datamodel, field_names_and_qualifiers_are_the_wire_ones) {
  const class_desc* vm = find_class("VM");
  ASSERT_NE(vm, nullptr);
  struct row {
    const char* name;
    qualifier q;
    const char* type;
  };
  for (const row& r : std::initializer_list<row>{
           {"name_label", qualifier::rw, "string"},
           {"memory_static_max", qualifier::ro_constructor, "int"},
           {"power_state", qualifier::ro_runtime, "enum(vm_power_state)"},
           {"VCPUs_params", qualifier::rw, "map(string,string)"},
           {"actions_after_crash", qualifier::rw, "enum(on_crash_behaviour)"},
           {"current_operations", qualifier::ro_runtime, "map(string,enum(vm_operations))"},
           {"blocked_operations", qualifier::rw, "map(enum(vm_operations),string)"},
           {"resident_on", qualifier::ro_runtime, "ref(host)"},
           {"VBDs", qualifier::ro_runtime, "set(ref(VBD))"},
           {"PV_bootloader_args", qualifier::rw, "string"},
           {"HVM_shadow_multiplier", qualifier::ro_constructor, "float"},
           {"snapshot_time", qualifier::ro_runtime, "datetime"},
       }) {
    const field_desc* f = vm->find_field(r.name);
    ASSERT_NE(f, nullptr) << r.name;
    EXPECT_EQ(f->qual, r.q) << r.name;
    EXPECT_EQ(f->type->spelling, r.type) << r.name;
  }
  // Fields without getters in the seed are still fields (event has none at all).
  const class_desc* event = find_class("event");
  ASSERT_NE(event, nullptr);
  ASSERT_NE(event->find_field("class"), nullptr);
  EXPECT_EQ(event->find_field("operation")->type->spelling, "enum(event_operation)");
  EXPECT_EQ(event->find_field("obj_uuid")->type->spelling, "string");
}

TEST(datamodel, enums_have_their_wire_spelling) {
  auto values = [](const char* name) {
    const enum_desc* e = find_enum(name);
    EXPECT_NE(e, nullptr) << name;
    return e ? std::vector<std::string>(e->values.begin(), e->values.end()) : std::vector<std::string>{};
  };
  EXPECT_EQ(values("vm_power_state"), (std::vector<std::string>{"Halted", "Paused", "Running", "Suspended"}));
  EXPECT_EQ(values("vbd_operations"), (std::vector<std::string>{"attach", "eject", "insert", "plug", "unplug",
                                                                "unplug_force", "pause", "unpause"}));
  EXPECT_EQ(values("task_status_type"),
            (std::vector<std::string>{"pending", "success", "failure", "cancelling", "cancelled"}));
  EXPECT_EQ(values("bond_mode"), (std::vector<std::string>{"balance-slb", "active-backup", "lacp"}));
  auto ops = values("vm_operations");
  EXPECT_EQ(ops.size(), 47u);
  EXPECT_NE(std::find(ops.begin(), ops.end(), "changing_VCPUs_live"), ops.end());
  EXPECT_NE(std::find(ops.begin(), ops.end(), "metadata_export"), ops.end());
  // The C++ enum and its strings agree.
  EXPECT_EQ(to_string(vm_power_state::Suspended), "Suspended");
  vm_operations op{};
  EXPECT_TRUE(from_string("export", op));
  EXPECT_EQ(op, vm_operations::export_);
  EXPECT_FALSE(from_string("Export", op));
}

TEST(datamodel, errors_have_their_parameters) {
  auto params = [](error_code c) {
    auto p = describe(c).params;
    return std::vector<std::string>(p.begin(), p.end());
  };
  EXPECT_EQ(params(error_code::HOST_IS_SLAVE).size(), 1u);
  EXPECT_EQ(params(error_code::VM_BAD_POWER_STATE), (std::vector<std::string>{"vm", "expected", "actual"}));
  EXPECT_EQ(params(error_code::HANDLE_INVALID), (std::vector<std::string>{"class", "handle"}));
  EXPECT_EQ(params(error_code::SESSION_AUTHENTICATION_FAILED).size(), 0u);
  EXPECT_EQ(error_code_from_string("MESSAGE_PARAMETER_COUNT_MISMATCH"), error_code::MESSAGE_PARAMETER_COUNT_MISMATCH);
  EXPECT_EQ(error_code_from_string("NO_SUCH_ERROR"), std::nullopt);
  for (const auto& e : all_errors()) EXPECT_EQ(error_code_from_string(e.name).has_value(), true) << e.name;
  api_error err = errors::VM_BAD_POWER_STATE("OpaqueRef:x", "halted", "running");
  EXPECT_EQ(err.description(), (std::vector<std::string>{"VM_BAD_POWER_STATE", "OpaqueRef:x", "halted", "running"}));
}

// Walks a type and checks every class and enum it names is in the catalog.
void expect_defined(const type_desc& t, std::string_view where) {
  switch (t.kind) {
    case type_kind::ref:
    case type_kind::record: {
      EXPECT_NE(find_class(t.name), nullptr) << where << ": " << t.spelling;
      break;
    }
    case type_kind::enum_: {
      EXPECT_NE(find_enum(t.name), nullptr) << where << ": " << t.spelling;
      break;
    }
    case type_kind::set: expect_defined(*t.arg1, where); break;
    case type_kind::map:
      expect_defined(*t.arg1, where);
      expect_defined(*t.arg2, where);
      break;
    default: break;
  }
}

TEST(datamodel, every_referenced_type_is_defined) {
  for (const auto& c : all_classes())
    for (const auto& f : c.fields) expect_defined(*f.type, f.name);
  for (const auto& m : all_methods()) {
    expect_defined(*m.result, m.wire_name);
    for (const auto& p : m.params) expect_defined(*p.type, m.wire_name);
  }
}

TEST(datamodel, every_field_has_at_most_one_getter_and_accessors_name_real_fields) {
  for (const auto& c : all_classes()) {
    std::set<std::string_view> getters;
    for (const method_desc* m : c.methods) {
      if (m->field.empty()) continue;
      EXPECT_NE(c.find_field(m->field), nullptr) << m->wire_name;
      if (m->kind == method_kind::getter) {
        EXPECT_TRUE(getters.insert(m->field).second) << m->wire_name;
      } else {
        EXPECT_EQ(c.find_field(m->field)->qual, qualifier::rw) << m->wire_name;
      }
    }
  }
}

// The class a bound field points at: ref(C) or set(ref(C)).
std::string_view target_class(const type_desc& t) {
  if (t.kind == type_kind::ref) return t.name;
  if (t.kind == type_kind::set && t.arg1->kind == type_kind::ref) return t.arg1->name;
  return {};
}

TEST(datamodel, every_bound_field_pair_resolves_to_fields_of_the_right_types) {
  EXPECT_EQ(all_relations().size(), 45u);  // 46 rows in the seed, one dropped (overrides.json)
  for (const auto& r : all_relations()) {
    const class_desc* a = find_class(r.class_a);
    const class_desc* b = find_class(r.class_b);
    ASSERT_NE(a, nullptr) << r.class_a;
    ASSERT_NE(b, nullptr) << r.class_b;
    const field_desc* fa = a->find_field(r.field_a);
    const field_desc* fb = b->find_field(r.field_b);
    ASSERT_NE(fa, nullptr) << r.class_a << "." << r.field_a;
    ASSERT_NE(fb, nullptr) << r.class_b << "." << r.field_b;
    EXPECT_EQ(target_class(*fa->type), r.class_b) << r.class_a << "." << r.field_a;
    EXPECT_EQ(target_class(*fb->type), r.class_a) << r.class_b << "." << r.field_b;
    if (r.kind == "one-to-many") {
      EXPECT_EQ(fa->type->kind, type_kind::ref) << r.class_a << "." << r.field_a;
      EXPECT_EQ(fb->type->kind, type_kind::set) << r.class_b << "." << r.field_b;
    } else if (r.kind == "many-to-many") {
      EXPECT_EQ(fa->type->kind, type_kind::set);
      EXPECT_EQ(fb->type->kind, type_kind::set);
    }
  }
}

TEST(datamodel, typed_method_signatures_follow_the_catalog) {
  static_assert(std::is_same_v<method::VM_start::params, std::tuple<ref<vm>, bool, bool>>);
  static_assert(std::is_same_v<method::VM_start::result_type, void>);
  static_assert(std::is_same_v<method::VM_get_all_records::result_type, xapid::api::map<ref<vm>, vm>>);
  static_assert(std::is_same_v<method::host_get_data_sources::result_type, std::vector<data_source>>);
  EXPECT_EQ(method::VM_clone::wire_name, "VM.clone");
  EXPECT_NE(find_method(method::VM_clone::wire_name), nullptr);
}

TEST(datamodel, every_rpc_has_the_least_role_xapi_gives_it) {
  std::vector<std::string> names;
  for (const auto& r : all_roles()) {
    names.emplace_back(r.name);
    EXPECT_FALSE(r.description.empty()) << r.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"pool-admin", "pool-operator", "vm-power-admin", "vm-admin",
                                             "vm-operator", "read-only"}));
  auto least = [](const char* wire) { return std::string(all_roles()[least_role(*find_method(wire))].name); };
  EXPECT_EQ(least("VM.start"), "vm-operator");
  EXPECT_EQ(least("VM.destroy"), "vm-admin");
  EXPECT_EQ(least("VM.pool_migrate"), "vm-power-admin");
  EXPECT_EQ(least("VM.get_record"), "read-only");
  EXPECT_EQ(least("pool.join"), "pool-operator");
  EXPECT_EQ(least("subject.create"), "pool-admin");
  EXPECT_EQ(least("event.from"), "read-only");
  for (const auto& m : all_methods()) EXPECT_LT(least_role(m), all_roles().size()) << m.wire_name;
}

}  // namespace
}  // namespace xapid::api
