// The operation commands that are one RPC each, as rows: the class whose objects the command
// selects (the RPC's first parameter) and the xe parameter each other parameter of the RPC
// comes from, typed by the catalog; and the <class>-create commands, a record made of fields
// given by their xe names. What the RPC answers is printed: a new object as its uuid.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "cli/commands.hpp"

namespace xapid::cli {
namespace {

// Where an RPC parameter's value comes from when the command line does not give it.
enum class otherwise { required, text, force_flag, this_host };

// One RPC parameter: the xe parameter it is read from and, when that is absent, its default.
// A map is read from `name:key=value` parameters, and from the plain parameters `keys` names
// (each its own key: vm-migrate's live= in options); a set of refs from comma-separated uuids;
// a ref from a uuid, or from a name when `by_name`. `also`: another xe parameter that gives it
// by uuid (host-uuid= for host=); a required one then needs either.
struct arg {
  std::string_view xe_name;
  otherwise when_absent = otherwise::required;
  std::string_view text = "";
  bool by_name = false;
  std::string_view also = "";
  std::vector<std::string_view> keys = {};
};
arg optional_arg(std::string_view name, std::string_view text) { return {name, otherwise::text, text}; }
arg force_arg() { return {"force", otherwise::force_flag}; }

struct rpc_row {
  std::string_view name;
  std::string_view selects;     // the xe class whose objects it acts on; empty: none
  std::string_view selector;    // names one of them by uuid or name-label
  std::string_view rpc;         // its wire name
  std::string_view forced_rpc;  // the RPC with --force, when it is another
  std::vector<arg> args;
  std::string_view help;
  bool local_session = false;
};

std::vector<rpc_row> rpc_rows() {
  const arg new_name{"new-name-label"};
  const arg no_driver_params = optional_arg("driver-params:", "");
  return {
      {"vm-start", "vm", "vm", "VM.start", "", {optional_arg("paused", "false"), force_arg()}, "Start the selected VM(s)."},
      {"vm-shutdown", "vm", "vm", "VM.clean_shutdown", "VM.hard_shutdown", {}, "Shut down the selected VM(s); --force: at once, without asking the guest."},
      {"vm-reboot", "vm", "vm", "VM.clean_reboot", "VM.hard_reboot", {}, "Reboot the selected VM(s); --force: at once, without asking the guest."},
      {"vm-suspend", "vm", "vm", "VM.suspend", "", {}, "Suspend the selected VM(s) to disk."},
      {"vm-resume", "vm", "vm", "VM.resume", "", {optional_arg("paused", "false"), force_arg()}, "Resume the selected suspended VM(s)."},
      {"vm-pause", "vm", "vm", "VM.pause", "", {}, "Pause the selected running VM(s)."},
      {"vm-unpause", "vm", "vm", "VM.unpause", "", {}, "Unpause the selected paused VM(s)."},
      {"vm-clone", "vm", "vm", "VM.clone", "", {new_name}, "Clone a halted VM, its disks copy-on-write where the storage allows; prints the new VM's uuid."},
      {"vm-copy", "vm", "vm", "VM.copy", "", {new_name, optional_arg("sr-uuid", "")}, "Copy a halted VM with full copies of its disks (to sr-uuid when given); prints the new VM's uuid."},
      {"vm-snapshot", "vm", "vm", "VM.snapshot", "", {new_name}, "Snapshot a VM; prints the snapshot's uuid."},
      {"vm-checkpoint", "vm", "vm", "VM.checkpoint", "", {new_name}, "Checkpoint a VM (its disks and memory); prints the checkpoint's uuid."},
      {"vm-destroy", "vm", "vm", "VM.destroy", "", {}, "Destroy the VM record (not its disks; see vm-uninstall)."},
      {"vm-migrate", "vm", "vm", "VM.pool_migrate", "",
       {{"host", otherwise::required, "", true, "host-uuid"}, {"options:", otherwise::text, "", false, "", {"live"}}},
       "Move the running VM to another host of the pool (host= a name or uuid, or host-uuid=; live=true is passed on in its options)."},
      {"vm-reset-powerstate", "vm", "vm", "VM.power_state_reset", "", {}, "Mark a VM halted when its host is known to be gone (use with care)."},
      {"snapshot-revert", "snapshot", "snapshot-uuid", "VM.revert", "", {}, "Revert the VM to the state of the snapshot."},
      {"snapshot-destroy", "snapshot", "snapshot-uuid", "VM.destroy", "", {}, "Destroy the snapshot's record."},
      {"vbd-plug", "vbd", "vbd", "VBD.plug", "", {}, "Attach the VBD to its running VM."},
      {"vbd-unplug", "vbd", "vbd", "VBD.unplug", "VBD.unplug_force", {}, "Detach the VBD from its running VM."},
      {"vbd-destroy", "vbd", "vbd", "VBD.destroy", "", {}, "Destroy the VBD."},
      {"vbd-eject", "vbd", "vbd", "VBD.eject", "", {}, "Take the disc out of the CD drive."},
      {"vbd-insert", "vbd", "vbd", "VBD.insert", "", {{"vdi-uuid"}}, "Put the VDI (a disc) into the empty CD drive."},
      {"vif-plug", "vif", "vif", "VIF.plug", "", {}, "Attach the VIF to its running VM."},
      {"vif-unplug", "vif", "vif", "VIF.unplug", "VIF.unplug_force", {}, "Detach the VIF from its running VM."},
      {"vif-destroy", "vif", "vif", "VIF.destroy", "", {}, "Destroy the VIF."},
      {"vdi-destroy", "vdi", "vdi", "VDI.destroy", "", {}, "Destroy the VDI and its data."},
      {"vdi-forget", "vdi", "vdi", "VDI.forget", "", {}, "Forget the VDI's record, keeping its data."},
      {"vdi-snapshot", "vdi", "vdi", "VDI.snapshot", "", {no_driver_params}, "Snapshot the VDI; prints the snapshot's uuid."},
      {"vdi-clone", "vdi", "vdi", "VDI.clone", "", {no_driver_params}, "Clone the VDI; prints the clone's uuid."},
      {"vdi-copy", "vdi", "vdi", "VDI.copy", "", {{"sr-uuid"}, optional_arg("base-vdi-uuid", ""), optional_arg("into-vdi-uuid", "")}, "Copy the VDI into an SR; prints the copy's uuid."},
      {"vdi-resize", "vdi", "vdi", "VDI.resize", "", {{"disk-size"}}, "Resize the VDI (bytes, or with KiB, MiB, GiB, TiB)."},
      {"sr-create", "", "", "SR.create", "",
       {{"host-uuid", otherwise::this_host}, optional_arg("device-config:", ""), optional_arg("physical-size", "0"), {"name-label"},
        optional_arg("name-description", ""), {"type"}, optional_arg("content-type", ""), optional_arg("shared", "false"),
        optional_arg("sm-config:", "")},
       "Create an SR on a host (this one by default); prints its uuid."},
      {"sr-introduce", "", "", "SR.introduce", "",
       {{"uuid"}, {"name-label"}, optional_arg("name-description", ""), {"type"}, optional_arg("content-type", ""),
        optional_arg("shared", "false"), optional_arg("sm-config:", "")},
       "Introduce an SR that exists (its PBDs are made with pbd-create); prints its uuid."},
      {"sr-destroy", "sr", "sr", "SR.destroy", "", {}, "Destroy the SR and its data."},
      {"sr-forget", "sr", "sr", "SR.forget", "", {}, "Forget the SR's records, keeping its data."},
      {"sr-scan", "sr", "sr", "SR.scan", "", {}, "Scan the SR for VDIs made or gone behind the API's back."},
      {"pbd-plug", "pbd", "pbd", "PBD.plug", "", {}, "Attach the SR to the PBD's host."},
      {"pbd-unplug", "pbd", "pbd", "PBD.unplug", "", {}, "Detach the SR from the PBD's host."},
      {"pbd-destroy", "pbd", "pbd", "PBD.destroy", "", {}, "Destroy the PBD."},
      {"network-destroy", "network", "network", "network.destroy", "", {}, "Destroy the network."},
      {"host-enable", "host", "host", "host.enable", "", {}, "Let VMs start on the host again."},
      {"host-disable", "host", "host", "host.disable", "", {}, "Keep new VMs from starting on the host."},
      {"host-evacuate", "host", "host", "host.evacuate", "", {}, "Migrate every running VM off the host."},
      {"host-reboot", "host", "host", "host.reboot", "", {}, "Reboot the (disabled) host."},
      {"host-shutdown", "host", "host", "host.shutdown", "", {}, "Shut down the (disabled) host."},
      {"host-dmesg", "host", "host", "host.dmesg", "", {}, "Print the host's kernel messages."},
      {"host-compute-free-memory", "host", "host", "host.compute_free_memory", "", {}, "Print the memory free for new VMs on the host, in bytes."},
      {"task-cancel", "task", "task", "task.cancel", "", {}, "Ask the task to stop."},
      {"subject-role-add", "subject", "subject", "subject.add_to_roles", "", {{"role-name", otherwise::required, "", true}}, "Give the subject a role (by name)."},
      {"subject-role-remove", "subject", "subject", "subject.remove_from_roles", "", {{"role-name", otherwise::required, "", true}}, "Take a role (by name) from the subject."},
      {"subject-remove", "subject", "subject", "subject.destroy", "", {}, "Remove the subject (its sessions end)."},
      {"user-password-change", "", "", "session.change_password", "", {optional_arg("old", ""), {"new"}}, "Change the password of the logged-in user."},
      {"pool-join", "", "", "pool.join", "pool.join_force", {{"master-address"}, optional_arg("master-username", "root"), {"master-password"}},
       "Make this host a member of the pool whose master is master-address."},
      {"pool-eject", "host", "host-uuid", "pool.eject", "", {}, "Remove the host from its pool (it is wiped and starts again alone)."},
      {"pool-designate-new-master", "host", "host-uuid", "pool.designate_new_master", "", {}, "Hand the master's role to another member."},
      {"pool-emergency-transition-to-master", "", "", "pool.emergency_transition_to_master", "", {}, "Make this member the master when the master is gone for good.", true},
      {"pool-emergency-reset-master", "", "", "pool.emergency_reset_master", "", {{"master-address"}}, "Point this member at a new master.", true},
      {"pool-ha-enable", "", "", "pool.enable_ha", "", {optional_arg("heartbeat-sr-uuids", ""), optional_arg("ha-config:", "")}, "Turn on high availability for the pool."},
      {"pool-ha-disable", "", "", "pool.disable_ha", "", {}, "Turn off high availability."},
  };
}

xe_result<wire::value> arg_value(context& ctx, const arg& a, const api::param_desc& p) {
  std::string name(a.xe_name);
  const std::string* given = a.when_absent == otherwise::force_flag ? nullptr : ctx.param(name);
  const bool by_uuid = !given && !a.also.empty() && ctx.param(a.also);
  if (by_uuid) given = ctx.param(name = std::string(a.also));
  if (p.type->kind == api::type_kind::map) {
    wire::structure members;
    for (const auto& [k, v] : ctx.inv.params)
      if (k.starts_with(name) || std::find(a.keys.begin(), a.keys.end(), k) != a.keys.end())
        members.emplace_back(k.starts_with(name) ? k.substr(name.size()) : k, v);
    return wire::value(std::move(members));
  }
  if (!given) {
    switch (a.when_absent) {
      case otherwise::force_flag: return wire::value(ctx.inv.force);
      case otherwise::this_host: return ctx.api.call("session.get_this_host", {ctx.api.session()});
      case otherwise::text: return parse_value(*p.type, name, a.text, ctx.api);
      case otherwise::required: return usage_error("Required parameter not found: " + name);
    }
  }
  if (p.type->kind == api::type_kind::set && p.type->arg1->kind == api::type_kind::ref) {
    wire::array refs;
    for (const auto& uuid : split(*given, ','))
      if (auto ref = parse_value(*p.type->arg1, name, uuid, ctx.api); ref) refs.push_back(std::move(*ref));
      else return fail(std::move(ref).error());
    return wire::value(std::move(refs));
  }
  if (a.by_name && !by_uuid && p.type->kind == api::type_kind::ref)
    if (const xe_class* target = xe_class_of_wire(p.type->name)) {
      auto ref = named_object(ctx, *target, *given);
      if (!ref) return fail(std::move(ref).error());
      return wire::value(std::move(*ref));
    }
  return parse_value(*p.type, name, *given, ctx.api);
}

void print_answer(context& ctx, const api::type_desc& type, const wire::value& answer) {
  if (type.kind == api::type_kind::void_) return;
  ctx.out += show_value(type, answer, ctx.names) + "\n";
}

xe_result<void> run_row(context& ctx, const rpc_row& row) {
  std::string_view wire_name = ctx.inv.force && !row.forced_rpc.empty() ? row.forced_rpc : row.rpc;
  const api::method_desc* m = api::find_method(wire_name);
  bool selects = !row.selects.empty();
  auto rest = m->params.subspan(selects ? 1 : 0);
  wire::array args;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    auto v = arg_value(ctx, row.args[i], rest[i]);
    if (!v) return fail(std::move(v).error());
    args.push_back(std::move(*v));
  }
  if (!selects) {
    auto answer = ctx.api.call(wire_name, std::move(args));
    if (!answer) return fail(std::move(answer).error());
    print_answer(ctx, *m->result, *answer);
    return ok_v;
  }
  const xe_class* cls = find_xe_class(row.selects);
  auto objects = selected_objects(ctx, *cls, row.selector);
  if (!objects) return fail(std::move(objects).error());
  for (const auto& o : *objects) {
    wire::array call_args{o.ref};
    call_args.insert(call_args.end(), args.begin(), args.end());
    auto answer = ctx.api.call(wire_name, std::move(call_args));
    if (!answer) return fail(std::move(answer).error());
    print_answer(ctx, *m->result, *answer);
  }
  return ok_v;
}

// A row that does not fit its RPC's signature is a bug of this table: said and stopped at once.
void check_row(const rpc_row& row) {
  for (std::string_view wire_name : {row.rpc, row.forced_rpc}) {
    if (wire_name.empty()) continue;
    const api::method_desc* m = api::find_method(wire_name);
    std::size_t own = row.selects.empty() ? 0 : 1;
    if (!m || m->params.size() != row.args.size() + own || (own && !find_xe_class(row.selects))) {
      std::fprintf(stderr, "xe: the command %.*s does not fit %.*s in the datamodel\n", int(row.name.size()), row.name.data(),
                   int(wire_name.size()), wire_name.data());
      std::abort();
    }
  }
}

// --- <class>-create: a record from fields given by their xe names ---

struct create_row {
  std::string_view name;
  std::string_view xe_class;
  std::vector<std::string_view> required;
  std::vector<std::pair<std::string_view, std::string_view>> defaults;  // xe field name, text
  std::vector<std::pair<std::string_view, std::string_view>> aliases;   // xe's parameter, the field it sets
  std::string_view help;
};

std::vector<create_row> create_rows() {
  return {
      {"vdi-create", "vdi", {"sr-uuid", "name-label", "virtual-size"}, {{"type", "user"}, {"sharable", "false"}, {"read-only", "false"}}, {},
       "Create a VDI in an SR (virtual-size in bytes, or with KiB, MiB, GiB, TiB); prints its uuid."},
      {"network-create", "network", {"name-label"}, {}, {}, "Create a network; prints its uuid."},
      {"vif-create", "vif", {"vm-uuid", "network-uuid", "device"}, {}, {{"mac", "MAC"}}, "Create a VIF (MAC made when not given); prints its uuid."},
      {"vbd-create", "vbd", {"vm-uuid", "device"}, {{"mode", "RW"}, {"type", "Disk"}, {"bootable", "false"}}, {{"device", "userdevice"}},
       "Create a VBD (device is the VM's disk slot, 0, 1, ...); prints its uuid."},
      {"pbd-create", "pbd", {"host-uuid", "sr-uuid"}, {}, {}, "Create a PBD (device-config:key=value ...); prints its uuid."},
  };
}

std::string_view field_named(const create_row& row, std::string_view param) {
  for (auto [alias, field] : row.aliases)
    if (alias == param) return field;
  return param;
}

xe_result<void> run_create(context& ctx, const create_row& row, const xe_class& cls) {
  wire::structure record;
  auto put = [&](const xe_field& f, wire::value v) {
    for (auto& m : record)
      if (m.first == f.desc->name) return void(m.second = std::move(v));
    record.emplace_back(std::string(f.desc->name), std::move(v));
  };
  for (auto [name, text] : row.defaults)
    if (auto v = parse_value(*cls.find(name)->desc->type, name, text, ctx.api); v) put(*cls.find(name), std::move(*v));
  for (const auto& [param, text] : ctx.inv.params) {
    auto colon = param.find(':');
    const xe_field* f = cls.find(field_named(row, std::string_view(param).substr(0, colon)));
    if (!f) return usage_error("Unknown parameter: " + param);
    if (colon != std::string::npos) {
      const wire::value* had = nullptr;
      for (auto& m : record)
        if (m.first == f->desc->name) had = &m.second;
      wire::structure members = had && had->as_struct() ? *had->as_struct() : wire::structure{};
      members.emplace_back(param.substr(colon + 1), text);
      put(*f, wire::value(std::move(members)));
      continue;
    }
    auto v = parse_value(*f->desc->type, param, text, ctx.api);
    if (!v) return fail(std::move(v).error());
    put(*f, std::move(*v));
  }
  auto made = ctx.api.call(cls.wire("create"), {wire::value(std::move(record))});
  if (!made) return fail(std::move(made).error());
  ctx.out += ctx.names.uuid_of(cls.desc->name, text_of(*made)) + "\n";
  return ok_v;
}

}  // namespace

void add_operation_commands(std::vector<command>& out) {
  static const std::vector<rpc_row> rows = rpc_rows();
  for (const auto& row : rows) {
    check_row(row);
    command c{std::string(row.name), std::string(row.help), {}, {}, nullptr, std::string(row.selector), false, true,
              [&row](context& ctx) { return run_row(ctx, row); }};
    c.local_session = row.local_session;
    if (!row.selects.empty()) c.selects = find_xe_class(row.selects);
    for (const auto& a : row.args) {
      if (a.when_absent == otherwise::force_flag) continue;
      for (auto key : a.keys) c.optional.emplace_back(key);
      if (a.when_absent == otherwise::required && !a.also.empty()) c.one_of.push_back({std::string(a.xe_name), std::string(a.also)});
      else if (!a.also.empty()) c.optional.insert(c.optional.end(), {std::string(a.xe_name), std::string(a.also)});
      else (a.when_absent == otherwise::required ? c.required : c.optional).emplace_back(a.xe_name);
    }
    out.push_back(std::move(c));
  }
  static const std::vector<create_row> creates = create_rows();
  for (const auto& row : creates) {
    const xe_class* cls = find_xe_class(row.xe_class);
    command c{std::string(row.name), std::string(row.help), {}, {}, nullptr, {}, false, true,
              [&row, cls](context& ctx) { return run_create(ctx, row, *cls); }};
    for (auto r : row.required) c.required.emplace_back(r);
    for (const auto& f : cls->fields) {
      bool settable = f.desc->qual != api::qualifier::ro_runtime;
      if (!settable || std::find(row.required.begin(), row.required.end(), f.name) != row.required.end()) continue;
      c.optional.push_back(f.is_map() ? f.name + ":" : f.name);
    }
    for (auto [alias, field] : row.aliases) {
      auto& list = std::find(c.required.begin(), c.required.end(), alias) != c.required.end() ? c.required : c.optional;
      if (&list == &c.optional) list.emplace_back(alias);
    }
    out.push_back(std::move(c));
  }
}

}  // namespace xapid::cli
