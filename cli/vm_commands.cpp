// The VM commands that are more than one RPC: install from a template, uninstall with its
// disks, export and import (XVA over HTTP), the VM's disks, CD and VIFs, its memory limits.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <optional>
#include <pugixml.hpp>
#include <sstream>

#include "cli/commands.hpp"

namespace xapid::cli {
namespace {

xe_result<void> done(xe_result<wire::value> answer) {
  if (!answer) return fail(std::move(answer).error());
  return ok_v;
}

// The template's disks (other_config:disks, <provision><disk sr=""/>...) pointed at `sr_uuid`.
xe_result<void> put_disks_on(context& ctx, const std::string& vm, const std::string& sr_uuid) {
  auto other = ctx.api.call("VM.get_other_config", {vm});
  if (!other) return fail(std::move(other).error());
  const wire::value* disks = other->find("disks");
  if (!disks || !disks->as_string() || disks->as_string()->empty()) return ok_v;
  pugi::xml_document doc;
  if (!doc.load_string(disks->as_string()->c_str())) return local_error("The template's other-config:disks is not XML");
  for (pugi::xml_node disk : doc.child("provision").children("disk")) {
    if (!disk.attribute("sr")) disk.append_attribute("sr");
    disk.attribute("sr").set_value(sr_uuid.c_str());
  }
  std::ostringstream text;
  doc.save(text, "", pugi::format_raw | pugi::format_no_declaration);
  if (auto removed = done(ctx.api.call("VM.remove_from_other_config", {vm, "disks"})); !removed) return removed;
  return done(ctx.api.call("VM.add_to_other_config", {vm, "disks", text.str()}));
}

xe_result<void> vm_install(context& ctx) {
  auto templ = named_object(ctx, *find_xe_class("template"), *ctx.param("template"));
  if (!templ) return fail(std::move(templ).error());
  std::string sr_uuid;
  if (const std::string* sr = ctx.param("sr-uuid")) sr_uuid = *sr;
  if (const std::string* sr_name = ctx.param("sr-name-label")) {
    auto sr = named_object(ctx, *find_xe_class("sr"), *sr_name);
    if (!sr) return fail(std::move(sr).error());
    sr_uuid = ctx.names.uuid_of("SR", *sr);
  }
  auto vm = ctx.api.call("VM.clone", {*templ, *ctx.param("new-name-label")});
  if (!vm) return fail(std::move(vm).error());
  std::string ref = text_of(*vm);
  if (!sr_uuid.empty())
    if (auto put = put_disks_on(ctx, ref, sr_uuid); !put) return put;
  if (auto provisioned = done(ctx.api.call("VM.provision", {ref})); !provisioned) return provisioned;
  if (auto set = done(ctx.api.call("VM.set_is_a_template", {ref, false})); !set) return set;
  ctx.out += ctx.names.uuid_of("VM", ref) + "\n";
  return ok_v;
}

// The disk VDIs of a VM's VBDs (not CDs, not empty drives).
xe_result<std::vector<std::string>> disks_of(context& ctx, const wire::value& vm_record) {
  std::vector<std::string> vdis;
  if (auto* vbds = member_of(vm_record, "VBDs").as_array())
    for (const auto& vbd : *vbds) {
      auto record = ctx.api.call("VBD.get_record", {vbd});
      if (!record) return fail(std::move(record).error());
      std::string vdi = text_of(member_of(*record, "VDI"));
      if (!vdi.empty() && vdi != "OpaqueRef:NULL" && text_of(member_of(*record, "type")) == "Disk") vdis.push_back(vdi);
    }
  return vdis;
}

bool confirmed(context& ctx, const std::string& what) {
  if (ctx.inv.force) return true;
  if (!isatty(0)) return false;
  std::fprintf(stderr, "%s\nType 'yes' to continue\n", what.c_str());
  char line[16] = {};
  return std::fgets(line, sizeof line, stdin) && std::string_view(line).starts_with("yes");
}

xe_result<void> vm_uninstall(context& ctx) {
  auto vms = selected_objects(ctx, *find_xe_class("vm"), "vm");
  if (!vms) return fail(std::move(vms).error());
  for (const auto& vm : *vms) {
    auto vdis = disks_of(ctx, vm.record);
    if (!vdis) return fail(std::move(vdis).error());
    std::string label = text_of(member_of(vm.record, "name_label"));
    if (!confirmed(ctx, "This will destroy the VM " + label + " and its " + std::to_string(vdis->size()) + " disk(s).")) 
      return local_error("vm-uninstall needs --force when it cannot ask (no terminal), or the answer 'yes'");
    if (auto destroyed = done(ctx.api.call("VM.destroy", {vm.ref})); !destroyed) return destroyed;
    for (const auto& vdi : *vdis)
      if (auto destroyed = done(ctx.api.call("VDI.destroy", {vdi})); !destroyed) return destroyed;
  }
  return ok_v;
}

// The records of one VM's devices of `device_class` ("VBD", "VIF"), printed as <class>-list does.
xe_result<void> list_devices(context& ctx, std::string_view field, std::string_view device_class, const std::vector<std::string>& fields) {
  auto vms = selected_objects(ctx, *find_xe_class("vm"), "vm");
  if (!vms) return fail(std::move(vms).error());
  const xe_class& devices = *xe_class_of_wire(device_class);
  for (const auto& vm : *vms) {
    std::vector<object> found;
    if (auto* refs = member_of(vm.record, field).as_array())
      for (const auto& ref : *refs) {
        auto record = ctx.api.call(devices.wire("get_record"), {ref});
        if (!record) return fail(std::move(record).error());
        found.push_back({text_of(ref), std::move(*record)});
      }
    print_objects(ctx, devices, found, fields);
  }
  return ok_v;
}

xe_result<void> vm_disk_list(context& ctx) {
  return list_devices(ctx, "VBDs", "VBD", {"uuid", "vm-uuid", "vdi-uuid", "userdevice", "type", "mode", "empty"});
}

xe_result<void> vm_vif_list(context& ctx) {
  return list_devices(ctx, "VIFs", "VIF", {"uuid", "device", "MAC", "network-uuid", "currently-attached"});
}

// A new disk: a VDI in the SR (the pool's default without sr-uuid) and a VBD at `device`.
xe_result<void> vm_disk_add(context& ctx) {
  auto vms = selected_objects(ctx, *find_xe_class("vm"), "vm");
  if (!vms) return fail(std::move(vms).error());
  auto size = parse_value(*find_xe_class("vdi")->find("virtual-size")->desc->type, "disk-size", *ctx.param("disk-size"), ctx.api);
  if (!size) return fail(std::move(size).error());
  std::string sr;
  if (const std::string* uuid = ctx.param("sr-uuid")) {
    auto ref = ctx.api.call("SR.get_by_uuid", {*uuid});
    if (!ref) return fail(std::move(ref).error());
    sr = text_of(*ref);
  } else {
    auto pools = ctx.api.call("pool.get_all", {});
    if (!pools) return fail(std::move(pools).error());
    auto default_sr = ctx.api.call("pool.get_default_SR", {pools->as_array()->front()});
    if (!default_sr) return fail(std::move(default_sr).error());
    sr = text_of(*default_sr);
  }
  for (const auto& vm : *vms) {
    std::string label = text_of(member_of(vm.record, "name_label"));
    wire::structure vdi{{"name_label", label + " " + ctx.param_or("device", "1")}, {"SR", sr}, {"virtual_size", *size},
                        {"type", "user"}, {"sharable", false}, {"read_only", false}};
    auto made = ctx.api.call("VDI.create", {wire::value(std::move(vdi))});
    if (!made) return fail(std::move(made).error());
    wire::structure vbd{{"VM", vm.ref}, {"VDI", *made}, {"userdevice", ctx.param_or("device", "1")}, {"bootable", false},
                        {"mode", "RW"}, {"type", "Disk"}, {"unpluggable", true}, {"empty", false}};
    auto attached = ctx.api.call("VBD.create", {wire::value(std::move(vbd))});
    if (!attached) return fail(std::move(attached).error());
    ctx.out += ctx.names.uuid_of("VDI", text_of(*made)) + "\n";
  }
  return ok_v;
}

// The VM's CD drive: the VBD of type CD.
xe_result<std::string> cd_drive(context& ctx, const object& vm) {
  if (auto* vbds = member_of(vm.record, "VBDs").as_array())
    for (const auto& vbd : *vbds) {
      auto type = ctx.api.call("VBD.get_type", {vbd});
      if (!type) return fail(std::move(type).error());
      if (text_of(*type) == "CD") return text_of(vbd);
    }
  return local_error("The VM has no CD drive");
}

xe_result<void> vm_cd(context& ctx, bool insert) {
  auto vms = selected_objects(ctx, *find_xe_class("vm"), "vm");
  if (!vms) return fail(std::move(vms).error());
  std::string disc;
  if (insert) {
    auto ref = named_object(ctx, *find_xe_class("vdi"), *ctx.param("cd-name"));
    if (!ref) return fail(std::move(ref).error());
    disc = *ref;
  }
  for (const auto& vm : *vms) {
    auto drive = cd_drive(ctx, vm);
    if (!drive) return fail(std::move(drive).error());
    auto answer = insert ? ctx.api.call("VBD.insert", {*drive, disc}) : ctx.api.call("VBD.eject", {*drive});
    if (!answer) return fail(std::move(answer).error());
  }
  return ok_v;
}

xe_result<void> vm_memory_limits_set(context& ctx) {
  auto vms = selected_objects(ctx, *find_xe_class("vm"), "vm");
  if (!vms) return fail(std::move(vms).error());
  const api::type_desc& int_type = *find_xe_class("vm")->find("memory-static-max")->desc->type;
  wire::array limits;
  for (const char* name : {"static-min", "static-max", "dynamic-min", "dynamic-max"}) {
    auto v = parse_value(int_type, name, *ctx.param(name), ctx.api);
    if (!v) return fail(std::move(v).error());
    limits.push_back(std::move(*v));
  }
  for (const auto& vm : *vms) {
    wire::array args{vm.ref};
    args.insert(args.end(), limits.begin(), limits.end());
    if (auto set = done(ctx.api.call("VM.set_memory_limits", std::move(args))); !set) return set;
  }
  return ok_v;
}

// On a terminal, how far a transfer has gone (of `total` bytes when known), on one line of stderr.
class progress_bar {
 public:
  progress_bar(const char* what, std::optional<std::uint64_t> total) : what_(what), total_(total), shown_(isatty(2)) {}
  ~progress_bar() {
    if (!shown_ || done_ == 0) return;
    draw();  // where it ended
    std::fputc('\n', stderr);
  }
  void add(std::size_t n) {
    done_ += n;
    if (shown_ && done_ - drawn_at_ >= (8u << 20)) draw();
  }

 private:
  void draw() {
    drawn_at_ = done_;
    if (total_ && *total_) {
      int percent = static_cast<int>(std::min<std::uint64_t>(done_ * 100 / *total_, 100));
      std::fprintf(stderr, "\r%s [%-40s] %3d%%", what_, std::string(percent * 40 / 100, '#').c_str(), percent);
    } else {
      std::fprintf(stderr, "\r%s %.1f MiB", what_, static_cast<double>(done_) / (1 << 20));
    }
    std::fflush(stderr);
  }

  const char* what_;
  std::optional<std::uint64_t> total_;
  bool shown_;
  std::uint64_t done_ = 0, drawn_at_ = 0;
};

// vm-export: the VM's XVA, streamed from /export into `filename` (- : standard output).
xe_result<void> vm_export(context& ctx) {
  auto vms = selected_objects(ctx, *find_xe_class("vm"), "vm");
  if (!vms) return fail(std::move(vms).error());
  if (vms->size() != 1) return local_error("vm-export exports one VM at a time");
  const std::string& file = *ctx.param("filename");
  const bool to_stdout = file == "-";
  std::FILE* out = to_stdout ? stdout : std::fopen(file.c_str(), "wbx");  // never over an existing file
  if (!out) return local_error("cannot create " + file + ": " + std::strerror(errno));
  const std::string uuid = text_of(member_of(vms->front().record, "uuid"));
  progress_bar bar("Exporting", std::nullopt);
  auto got = ctx.api.transfers().download("/export?session_id=" + ctx.api.session() + "&uuid=" + uuid, [&](const char* d, std::size_t n) {
    bar.add(n);
    return std::fwrite(d, 1, n, out) == n;
  });
  bool closed = to_stdout ? std::fflush(out) == 0 : std::fclose(out) == 0;
  if (!got) {
    if (!to_stdout) std::remove(file.c_str());
    return local_error("vm-export: " + ctx.api.where().describe() + ": " + got.error());
  }
  if (!closed) return local_error("writing " + file + " failed: " + std::strerror(errno));
  return ok_v;
}

// vm-import: an XVA from `filename` (- : standard input, sent chunked) into the SR given, else
// the pool's default; prints the new VM's uuid.
xe_result<void> vm_import(context& ctx) {
  const std::string& file = *ctx.param("filename");
  const bool from_stdin = file == "-";
  std::FILE* in = from_stdin ? stdin : std::fopen(file.c_str(), "rb");
  if (!in) return local_error("cannot open " + file + ": " + std::strerror(errno));
  std::optional<std::uint64_t> length;
  if (struct stat st{}; !from_stdin && fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode)) length = st.st_size;
  std::string path = "/import?session_id=" + ctx.api.session();
  if (const std::string* sr = ctx.param("sr-uuid")) {
    auto ref = ctx.api.call("SR.get_by_uuid", {*sr});
    if (!ref) return fail(std::move(ref).error());
    path += "&sr_id=" + text_of(*ref);
  }
  progress_bar bar("Importing", length);
  auto answer = ctx.api.transfers().upload(path, [&](char* buf, std::size_t n) -> long {
    std::size_t got = std::fread(buf, 1, n, in);
    if (got == 0 && std::ferror(in)) return -1;
    bar.add(got);
    return static_cast<long>(got);
  }, length);
  if (!from_stdin) std::fclose(in);
  if (!answer) return local_error("vm-import: " + ctx.api.where().describe() + ": " + answer.error());
  std::string ref = answer->substr(0, answer->find('\n'));
  ctx.out += ctx.names.uuid_of("VM", ref) + "\n";
  return ok_v;
}

command vm_command(std::string name, std::string help, std::vector<std::string> required, std::vector<std::string> optional,
                   std::function<xe_result<void>(context&)> run) {
  return command{std::move(name), std::move(help), std::move(required), std::move(optional), find_xe_class("vm"), "vm", false, true, std::move(run)};
}

}  // namespace

void add_vm_commands(std::vector<command>& out) {
  out.push_back({"vm-install", "Install a new VM from a template (its disks in sr-uuid or sr-name-label, else the pool's default SR); prints its uuid.",
                 {"template", "new-name-label"}, {"sr-uuid", "sr-name-label"}, nullptr, {}, false, true, vm_install});
  out.push_back(vm_command("vm-export", "Export the VM as an XVA archive to filename (- : standard output).", {"filename"}, {}, vm_export));
  out.push_back({"vm-import", "Import a VM from an XVA archive in filename (- : standard input) into sr-uuid, else the pool's default SR; prints its uuid.",
                 {"filename"}, {"sr-uuid"}, nullptr, {}, false, true, vm_import});
  out.push_back(vm_command("vm-uninstall", "Destroy the VM and its disks (asks first; --force does not).", {}, {}, vm_uninstall));
  out.push_back(vm_command("vm-disk-list", "List the VM's disks (VBDs).", {}, {}, vm_disk_list));
  out.push_back(vm_command("vm-vif-list", "List the VM's VIFs.", {}, {}, vm_vif_list));
  out.push_back(vm_command("vm-disk-add", "Add a new disk to the VM (disk-size in bytes, or with KiB, MiB, GiB, TiB); prints the VDI's uuid.",
                           {"disk-size"}, {"device", "sr-uuid"}, vm_disk_add));
  out.push_back(vm_command("vm-cd-insert", "Put the disc (a VDI, by name or uuid) into the VM's CD drive.", {"cd-name"}, {},
                           [](context& ctx) { return vm_cd(ctx, true); }));
  out.push_back(vm_command("vm-cd-eject", "Take the disc out of the VM's CD drive.", {}, {}, [](context& ctx) { return vm_cd(ctx, false); }));
  out.push_back(vm_command("vm-memory-limits-set", "Set the VM's four memory limits at once (bytes, or with KiB, MiB, GiB).",
                           {"static-min", "static-max", "dynamic-min", "dynamic-max"}, {}, vm_memory_limits_set));
}

}  // namespace xapid::cli
