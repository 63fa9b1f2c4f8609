#include "cli/xe_classes.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace xapid::cli {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string dashed(std::string_view s) {
  std::string out(s);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

// What xe's <class>-list shows by default, as xapi's CLI chooses per class; a class not named
// here shows its uuid and names.
struct list_default {
  std::string_view xe_class;
  std::array<std::string_view, 7> fields;
};
constexpr list_default list_defaults[] = {
    {"vm", {"uuid", "name-label", "power-state"}},
    {"template", {"uuid", "name-label", "name-description"}},
    {"snapshot", {"uuid", "name-label", "name-description", "snapshot-of", "snapshot-time"}},
    {"host", {"uuid", "name-label", "name-description"}},
    {"pool", {"uuid", "name-label", "name-description", "master", "default-SR"}},
    {"sr", {"uuid", "name-label", "name-description", "type", "content-type"}},
    {"vdi", {"uuid", "name-label", "name-description", "virtual-size", "read-only", "sharable", "sr-uuid"}},
    {"vbd", {"uuid", "vm-uuid", "vdi-uuid", "device", "empty"}},
    {"vif", {"uuid", "device", "vm-uuid", "network-uuid"}},
    {"network", {"uuid", "name-label", "name-description", "bridge"}},
    {"pif", {"uuid", "device", "VLAN", "MAC", "network-uuid", "currently-attached", "host-uuid"}},
    {"pbd", {"uuid", "host-uuid", "sr-uuid", "device-config", "currently-attached"}},
    {"task", {"uuid", "name-label", "name-description", "status", "progress"}},
    {"subject", {"uuid", "subject-identifier", "other-config", "roles"}},
    {"role", {"uuid", "name-label", "name-description", "subroles"}},
    {"host-cpu", {"uuid", "number", "vendor", "speed", "utilisation"}},
    {"sm", {"uuid", "type", "name-label", "name-description", "vendor", "copyright", "configuration"}},
    {"console", {"uuid", "vm-uuid", "protocol", "location"}},
    {"bond", {"uuid", "master", "slaves"}},
    {"vlan", {"uuid", "tagged-PIF", "untagged-PIF", "tag"}},
    {"tunnel", {"uuid", "transport-PIF", "access-PIF", "status"}},
    {"message", {"uuid", "name", "priority", "cls", "obj-uuid", "timestamp", "body"}},
};

const api::method_desc* find_message(const api::class_desc& c, std::string_view name) {
  for (const auto* m : c.methods)
    if (m->name == name) return m;
  return nullptr;
}

bool has_uuid_and_records(const api::class_desc& c) {
  return c.find_field("uuid") && find_message(c, "get_all_records") && find_message(c, "get_by_uuid");
}

xe_class make_class(std::string name, const api::class_desc& c) {
  xe_class out{std::move(name), &c, {}, {}, {}, {}};
  for (const auto& f : c.fields) out.fields.push_back({xe_field_name(c, f), &f, {}, {}, {}});
  // Fields that hold refs as strings (xapi's records.ml shows them by uuid): SR.VDIs has the type.
  const api::class_desc* sr = api::find_class("SR");
  const api::field_desc* vdis = sr ? sr->find_field("VDIs") : nullptr;
  for (auto& f : out.fields)
    if (f.desc->name == "ha_statefiles" && (c.name == "pool" || c.name == "host") && vdis) f.shown_as = vdis->type;
  auto field_named = [&](std::string_view wire_name) -> xe_field* {
    for (auto& f : out.fields)
      if (f.desc->name == wire_name) return &f;
    return nullptr;
  };
  for (const auto* m : c.methods) {
    // A setter: set_<field> taking the object and one value (VM's memory setters are custom RPCs
    // of RO fields, and still the way to change them).
    if (m->name.starts_with("set_") && m->params.size() == 2)
      if (xe_field* f = field_named(m->name.substr(4))) f->setter = std::string(m->wire_name);
    if (m->kind == api::method_kind::add_to || m->kind == api::method_kind::remove_from)
      if (xe_field* f = field_named(m->field))
        (m->kind == api::method_kind::add_to ? f->add_to : f->remove_from) = std::string(m->wire_name);
  }
  // xe shows an object's uuid and names first.
  auto rank = [](const xe_field& f) { return f.name == "uuid" ? 0 : f.name == "name-label" ? 1 : f.name == "name-description" ? 2 : 3; };
  std::stable_sort(out.fields.begin(), out.fields.end(), [&](const xe_field& a, const xe_field& b) { return rank(a) < rank(b); });
  auto known = std::find_if(std::begin(list_defaults), std::end(list_defaults), [&](auto& d) { return d.xe_class == out.name; });
  if (known != std::end(list_defaults)) {
    for (auto name : known->fields)
      if (!name.empty() && out.find(name)) out.list_fields.emplace_back(name);
  } else {
    for (std::string_view name : {"uuid", "name-label", "name-description"})
      if (out.find(name)) out.list_fields.emplace_back(name);
  }
  return out;
}

std::vector<xe_class> make_classes() {
  std::vector<xe_class> out;
  for (const auto& c : api::all_classes()) {
    if (!has_uuid_and_records(c)) continue;
    out.push_back(make_class(dashed(lower(c.name)), c));
    if (c.name == "VM") {
      out.back().default_filters = {{"is-a-template", "false"}};
      out.back().selection_filters = {{"is-a-template", "false"}, {"is-control-domain", "false"}};
      out.push_back(make_class("template", c));
      out.back().default_filters = {{"is-a-template", "true"}, {"is-a-snapshot", "false"}};
      out.push_back(make_class("snapshot", c));
      out.back().default_filters = {{"is-a-snapshot", "true"}};
    }
  }
  return out;
}

}  // namespace

std::string xe_field::tag() const {
  if (is_set()) return add_to.empty() && setter.empty() ? "SRO" : "SRW";
  if (is_map()) return add_to.empty() && setter.empty() ? "MRO" : "MRW";
  return setter.empty() ? " RO" : " RW";
}

const xe_field* xe_class::find(std::string_view field_name) const {
  for (const auto& f : fields)
    if (f.name == field_name) return &f;
  return nullptr;
}

std::string xe_field_name(const api::class_desc& owner, const api::field_desc& field) {
  // A ref named after the class it points to (VIF.VM, VDI.SR, PBD.host) is shown by that
  // object's uuid, as xe names it: vm-uuid, sr-uuid, host-uuid.
  if (field.type->kind == api::type_kind::ref && lower(field.name) == lower(field.type->name))
    return dashed(lower(field.name)) + "-uuid";
  return dashed(field.name);
}

std::span<const xe_class> xe_classes() {
  static const std::vector<xe_class> classes = make_classes();
  return classes;
}

const xe_class* find_xe_class(std::string_view xe_name) {
  for (const auto& c : xe_classes())
    if (c.name == xe_name) return &c;
  return nullptr;
}

const xe_class* xe_class_of_wire(std::string_view wire_name) {
  for (const auto& c : xe_classes())
    if (c.desc->name == wire_name && c.default_filters.empty()) return &c;
  return find_xe_class(dashed(lower(wire_name)));
}

}  // namespace xapid::cli
