// The datamodel as xe shows it, derived from the generated catalog at start-up: each class
// under xe's name (VM → vm, host_cpu → host-cpu), each field under xe's spelling (name_label →
// name-label; a ref to a class named as the field, VIF.VM, → vm-uuid) with the RPCs that change
// it, and the values printed as xe prints them.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "xapid/api/catalog.hpp"

namespace xapid::cli {

struct xe_field {
  std::string name;                     // xe's: "name-label", "vm-uuid", "other-config"
  const api::field_desc* desc = nullptr;
  std::string setter;                   // "VM.set_name_label"; empty when read-only
  std::string add_to, remove_from;      // of a set or a map; empty when it has none
  // How its values are shown, when not as its type says: the statefiles (a set of strings that
  // are VDI refs) as the VDIs' uuids, as xapi's xe shows them.
  const api::type_desc* shown_as = nullptr;
  const api::type_desc& shown() const { return shown_as ? *shown_as : *desc->type; }

  bool is_set() const { return desc->type->kind == api::type_kind::set; }
  bool is_map() const { return desc->type->kind == api::type_kind::map; }
  // xe's tag: " RO", " RW", "SRO", "SRW", "MRO", "MRW".
  std::string tag() const;
};

struct xe_class {
  std::string name;                     // xe's: "vm"
  const api::class_desc* desc = nullptr;
  std::vector<xe_field> fields;         // uuid, name-label, name-description first, then the datamodel's order
  std::vector<std::string> list_fields; // what <class>-list shows without params=
  // Filters every <class>-list applies first (vm: not templates; template, snapshot: only those).
  std::vector<std::pair<std::string, std::string>> default_filters;
  // Filters of the objects an operation acts on, when they differ (vm: not the control domain
  // either, as xapi's xe selects VMs).
  std::vector<std::pair<std::string, std::string>> selection_filters;
  const std::vector<std::pair<std::string, std::string>>& selected_by() const {
    return selection_filters.empty() ? default_filters : selection_filters;
  }

  const xe_field* find(std::string_view field_name) const;
  std::string wire(std::string_view message) const { return std::string(desc->name) + "." + std::string(message); }
};

// The classes that have objects to list (a uuid and get_all_records), in the datamodel's order,
// and xe's views of VM: template and snapshot.
std::span<const xe_class> xe_classes();
const xe_class* find_xe_class(std::string_view xe_name);
const xe_class* xe_class_of_wire(std::string_view wire_name);

// The text of a field's xe name for a datamodel field of `owner`.
std::string xe_field_name(const api::class_desc& owner, const api::field_desc& field);

}  // namespace xapid::cli
