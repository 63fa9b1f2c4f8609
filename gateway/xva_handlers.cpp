#include "gateway/xva_handlers.hpp"

#include <openssl/evp.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <pugixml.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.hpp"
#include "actors/vm_lifecycle.hpp"
#include "actors/vm_rules.hpp"
#include "gateway/roles.hpp"
#include "proto/wire/xmlrpc.hpp"
#include "sm/images.hpp"
#include "sm/xva_stream.hpp"
#include "xapid/api/rbac.hpp"

namespace xapid::gateway {
namespace {

using storage::schema;
namespace fs = std::filesystem;
const std::string null_ref(api::null_ref_text);

// --- the request: query parameters and who is asking ---

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> query_of(const std::string& target) {
  std::map<std::string, std::string> q;
  auto qm = target.find('?');
  if (qm == std::string::npos) return q;
  std::string_view rest(target);
  rest.remove_prefix(qm + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto part = rest.substr(0, amp);
    auto eq = part.find('=');
    q[url_decode(part.substr(0, eq))] = eq == std::string_view::npos ? "" : url_decode(part.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return q;
}

// The caller, from session_id or HTTP basic credentials (checked by the login guard, whose
// failures answer after its fixed delay); a local peer without either is root, as on the API
// socket.
api::api_result<caller> authorize(xva_context& ctx, http_stream& io, const std::map<std::string, std::string>& q) {
  if (auto s = q.find("session_id"); s != q.end()) return ctx.sessions.validate(s->second);
  const auto started = monotonic_now();
  std::string auth = io.header("Authorization");
  if (auth.rfind("Basic ", 0) == 0) {
    std::string encoded = auth.substr(6);
    std::string decoded(encoded.size(), '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                            reinterpret_cast<const unsigned char*>(encoded.data()), static_cast<int>(encoded.size()));
    decoded.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    while (!decoded.empty() && decoded.back() == '\0') decoded.pop_back();  // base64 padding
    auto colon = decoded.find(':');
    login_attempt attempt{colon == std::string::npos ? decoded : decoded.substr(0, colon),
                          colon == std::string::npos ? std::string() : decoded.substr(colon + 1), io.peer()};
    auto who = ctx.logins.authenticate(attempt);
    if (!who) {
      std::this_thread::sleep_for(ctx.logins.remaining_delay(started));  // this transfer's own thread
      return fail(who.error());
    }
    if (who->root) return caller{0, "", true};
    return caller{who->role, who->sid, false};
  }
  if (io.from_unix_socket()) return caller{0, "", true};
  return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
}

void answer_error(http_stream& io, unsigned status, const api::api_error& e) {
  std::string body;
  for (const auto& part : e.description()) body += (body.empty() ? "" : " ") + part;
  body += "\n";
  if (io.send_head(status, "text/plain")) io.write(body.data(), body.size());
}

// The task a client gave to follow the transfer, if any.
struct progress_task {
  task_manager* tasks = nullptr;
  std::string ref;
  std::shared_ptr<std::atomic<bool>> cancel;  // set by task.cancel
  std::chrono::steady_clock::time_point last{};
  bool cancelled() const { return cancel && *cancel; }
  void progress(double fraction) {
    if (ref.empty()) return;
    auto now = monotonic_now();
    if (now - last < std::chrono::seconds(1)) return;
    last = now;
    tasks->set_progress(ref, fraction);
  }
  void done(const wire::response& r) {
    if (!ref.empty()) tasks->complete(ref, r);
  }
};

// What every transfer starts with: its query, the task that follows it, and the caller's right
// to make it (vm-admin or above, as xapi's VM export and import need).
struct transfer_start {
  std::map<std::string, std::string> query;
  progress_task task;
  http_stream& io;
  void fail(unsigned status, const api::api_error& e) {
    task.done(wire::response{false, {}, e.description()});
    answer_error(io, status, e);
  }
};

std::optional<transfer_start> begin_transfer(xva_context& ctx, http_stream& io, const char* permission) {
  transfer_start t{query_of(io.target()), {}, io};
  t.task.tasks = &ctx.tasks;
  // Only an authorized caller's own task follows the transfer: nobody else's is touched.
  auto who = authorize(ctx, io, t.query);
  if (!who) {
    answer_error(io, 401, who.error());
    return std::nullopt;
  }
  if (who->role > role_index("vm-admin")) {
    answer_error(io, 403, api::errors::RBAC_PERMISSION_DENIED(permission, "No permission in user session"));
    return std::nullopt;
  }
  if (auto it = t.query.find("task_id"); it != t.query.end()) {
    if (auto st = ctx.tasks.check_owner(it->second, *who); !st) {
      answer_error(io, st.error().code == api::error_code::HANDLE_INVALID ? 404 : 403, st.error());
      return std::nullopt;
    }
    t.task.ref = it->second;
    t.task.cancel = ctx.tasks.watch_cancel(it->second);  // a transfer stops part way when cancelled
  }
  return t;
}

// --- export ---

struct exported {
  std::map<std::string, std::string> ids;  // OpaqueRef -> "Ref:N"
  wire::array objects;
};

// A record with references to exported objects as their archive ids, others dropped (in sets)
// or null.
wire::value remap(const wire::value& v, const std::map<std::string, std::string>& ids) {
  if (const std::string* s = v.as_string()) {
    if (s->rfind("OpaqueRef:", 0) != 0) return v;
    auto it = ids.find(*s);
    return wire::value(it == ids.end() ? null_ref : it->second);
  }
  if (const auto* a = v.as_array()) {
    wire::array out;
    for (const auto& e : *a) {
      if (const std::string* s = e.as_string(); s && s->rfind("OpaqueRef:", 0) == 0 && !ids.count(*s)) continue;
      out.push_back(remap(e, ids));
    }
    return wire::value(std::move(out));
  }
  if (const wire::structure* st = v.as_struct()) {
    wire::structure out;
    for (const auto& [k, e] : *st) out.emplace_back(k, remap(e, ids));
    return wire::value(std::move(out));
  }
  return v;
}

std::string ova_xml(const storage::state& s, const std::string& vm_ref, std::vector<std::pair<std::string, std::string>>& disks,
                     const std::string& hostname) {
  // Which objects go: the VM, its VBDs and their VDIs and SRs, its VIFs and their networks.
  std::vector<std::pair<std::size_t, std::string>> order;
  auto add = [&](std::size_t cls, const std::string& ref) {
    for (const auto& [c, r] : order)
      if (r == ref) return;
    order.emplace_back(cls, ref);
  };
  const std::size_t vm_cls = schema::get().class_of<api::vm>(), vbd_cls = schema::get().class_of<api::vbd>(),
                    vdi_cls = schema::get().class_of<api::vdi>(), sr_cls = schema::get().class_of<api::sr>(),
                    vif_cls = schema::get().class_of<api::vif>(), net_cls = schema::get().class_of<api::network>();
  add(vm_cls, vm_ref);
  for (const auto& b : s.refs_where<api::vbd>("VM", vm_ref)) {
    add(vbd_cls, b);
    const api::vbd* vbd = s.get<api::vbd>(b);
    if (vbd->empty || !s.get<api::vdi>(vbd->VDI.opaque)) continue;
    const api::vdi* vdi = s.get<api::vdi>(vbd->VDI.opaque);
    if (vdi->read_only && vbd->type == api::vbd_type::CD) continue;  // an ISO stays in its library
    add(vdi_cls, vbd->VDI.opaque);
    add(sr_cls, vdi->SR.opaque);
  }
  for (const auto& f : s.refs_where<api::vif>("VM", vm_ref)) {
    add(vif_cls, f);
    add(net_cls, s.get<api::vif>(f)->network.opaque);
  }
  std::map<std::string, std::string> ids;
  for (std::size_t i = 0; i < order.size(); ++i) ids[order[i].second] = "Ref:" + std::to_string(i);
  wire::array objects;
  for (const auto& [cls, ref] : order) {
    const storage::row* r = s.find(cls, ref);
    if (!r) continue;
    wire::value snapshot = remap(schema::get().table(cls).ops->to_value(r->record.get()), ids);
    objects.emplace_back(wire::structure{{"class", wire::value(std::string(schema::get().table(cls).desc->name))},
                                         {"id", wire::value(ids[ref])},
                                         {"snapshot", std::move(snapshot)}});
    if (cls == vdi_cls) disks.emplace_back(ids[ref], ref);
  }
  wire::structure version{{"hostname", wire::value(hostname)},
                          {"date", wire::value(api::format_iso8601(api::datetime{wall_seconds()}))},
                          {"product_version", wire::value("0.1.0")},
                          {"product_brand", wire::value("xapid")},
                          {"build_number", wire::value("0")},
                          {"xapi_major", wire::value(std::int64_t{1})},
                          {"xapi_minor", wire::value(std::int64_t{3})},
                          {"export_vsn", wire::value(std::int64_t{2})}};
  std::string xml;
  wire::xmlrpc::append_value(xml, wire::value(wire::structure{{"version", wire::value(std::move(version))},
                                                              {"objects", wire::value(std::move(objects))}}));
  return xml;
}

void serve_export(xva_context& ctx, http_stream& io, bool metadata_only) {
  auto transfer = begin_transfer(ctx, io, "vm.export");
  if (!transfer) return;
  auto& q = transfer->query;
  auto& task = transfer->task;
  auto fail_with = [&](unsigned status, const api::api_error& e) { transfer->fail(status, e); };
  auto s = ctx.db.snapshot();
  const std::size_t vm_cls = schema::get().class_of<api::vm>();
  std::string vm = q.count("ref") ? q["ref"] : std::string();
  if (!vm.empty() && vm.rfind("OpaqueRef:", 0) != 0) vm = s->ref_by_uuid(vm_cls, vm).value_or(vm);  // ref=<uuid>, as the seed's example
  if (vm.empty() && q.count("uuid")) {
    auto by_uuid = s->ref_by_uuid(vm_cls, q["uuid"]);
    if (!by_uuid) return fail_with(404, api::errors::UUID_INVALID("VM", q["uuid"]));
    vm = *by_uuid;
  }
  if (!s->get<api::vm>(vm)) return fail_with(404, api::errors::HANDLE_INVALID("VM", vm));

  // The export is an operation of the VM: it keeps the VM from starting meanwhile. Metadata
  // alone is a read of one snapshot, of a VM in any state.
  bool streamed = false;
  auto stream = [&]() -> api::api_result<wire::value> {
    auto snap = ctx.db.snapshot();
    std::vector<std::pair<std::string, std::string>> disks;  // archive id, VDI ref
    std::string xml = ova_xml(*snap, vm, disks, snap->get<api::host>(ctx.host)->hostname);
    if (metadata_only) disks.clear();
    std::int64_t total = 0;
    for (const auto& [id, vdi] : disks) total += snap->get<api::vdi>(vdi)->virtual_size;
    if (!io.send_head(200, "application/octet-stream")) return fail(api::errors::INTERNAL_ERROR("the client went away"));
    streamed = true;
    sm::tar_out out([&](const char* d, std::size_t n) { return io.write(d, n); });
    if (!out.add("ova.xml", xml.data(), xml.size())) return fail(api::errors::INTERNAL_ERROR("the client went away"));
    std::int64_t sent = 0;
    for (const auto& [id, vdi_ref] : disks) {
      const api::vdi* vdi = snap->get<api::vdi>(vdi_ref);
      auto path = ctx.repos.vdi_path(*snap, vdi_ref);
      if (!path) return fail(path.error());
      auto written = sm::write_disk_chunks(out, id, *path, vdi->virtual_size, fs::path(*path).parent_path().string(),
                                           [&](std::int64_t n) {
                                             sent += n;
                                             task.progress(total ? static_cast<double>(sent) / total : 1.0);
                                             return !task.cancelled();
                                           });
      if (!written && task.cancelled()) return fail(api::errors::TASK_CANCELLED(task.ref));
      if (!written) return fail(api::errors::SR_BACKEND_FAILURE(std::to_string(written.error().status),
                                                                written.error().out, written.error().err));
    }
    if (!out.finish()) return fail(api::errors::INTERNAL_ERROR("the client went away"));
    spdlog::info("vm.exported vm={} bytes={} metadata_only={}", snap->get<api::vm>(vm)->uuid, out.bytes(), metadata_only);
    return wire::value("");
  };
  auto r = metadata_only ? stream()
                         : ctx.actors.run(vm_cls, vm, "export", task.ref.empty() ? ctx.db.ids().opaque_ref() : task.ref,
                                          stream);
  if (!r) {
    task.done(wire::response{false, {}, r.error().description()});
    // Once the archive has begun the status line is gone: the cut stream tells the client.
    if (!streamed) answer_error(io, r.error().code == api::error_code::VM_BAD_POWER_STATE ? 409 : 500, r.error());
    return;
  }
  task.done(wire::response{true, wire::value(""), {}});
}

// --- import ---

// The SR ran out of space for a disk of the archive.
api::api_error sr_full(const std::string& dir, const wire::value& vdi_snapshot) {
  struct statvfs st {};
  std::int64_t available = ::statvfs(dir.c_str(), &st) == 0 ? static_cast<std::int64_t>(st.f_bavail) * st.f_frsize : 0;
  std::int64_t wanted = 0;
  if (const wire::structure* rec = vdi_snapshot.as_struct())
    for (const auto& [k, v] : *rec)
      if (k == "virtual_size") {
        if (const std::string* text = v.as_string()) wanted = std::atoll(text->c_str());
        else if (const std::int64_t* i = v.as_int()) wanted = *i;
      }
  return api::errors::SR_FULL(std::to_string(wanted), std::to_string(available));
}

// What a failed read of the archive was: a cancelled import, a cut stream, or a damaged one.
api::api_error stream_error(const sm::tar_in& in, const progress_task& task) {
  if (task.cancelled()) return api::errors::TASK_CANCELLED(task.ref);
  if (in.error().empty() || in.error().find("ended") != std::string::npos) return api::errors::IMPORT_ERROR_PREMATURE_EOF();
  return api::errors::IMPORT_ERROR(in.error());
}

struct imported_object {
  std::string cls;
  std::string id;
  wire::value snapshot;
};

// Reads the archive's metadata: XenServer's form (a struct of version and objects).
api::api_result<std::vector<imported_object>> parse_ova(const std::string& xml) {
  std::string call = "<?xml version=\"1.0\"?><methodCall><methodName>ova</methodName><params><param>" + xml +
                     "</param></params></methodCall>";
  auto start = call.find("<?xml", 10);  // a declaration inside ova.xml would break the wrapper
  if (start != std::string::npos) {
    auto end = call.find("?>", start);
    call.erase(start, end - start + 2);
  }
  wire::limits lim;
  lim.max_body_bytes = 256u << 20;
  auto parsed = wire::xmlrpc::parse_call(call, lim);
  if (!parsed || parsed->params.empty() || !parsed->params[0].as_struct())
    return fail(api::errors::IMPORT_ERROR("ova.xml is not XenServer export metadata"));
  const wire::value* objects = nullptr;
  for (const auto& [k, v] : *parsed->params[0].as_struct())
    if (k == "objects") objects = &v;
  const auto* list = objects ? objects->as_array() : nullptr;
  if (!list) return fail(api::errors::IMPORT_ERROR("ova.xml lists no objects"));
  std::vector<imported_object> out;
  for (const auto& o : *list) {
    const wire::structure* st = o.as_struct();
    if (!st) continue;
    imported_object obj;
    for (const auto& [k, v] : *st) {
      if (k == "class" && v.as_string()) obj.cls = *v.as_string();
      if (k == "id" && v.as_string()) obj.id = *v.as_string();
      if (k == "snapshot") obj.snapshot = v;
    }
    if (!obj.cls.empty() && !obj.id.empty()) out.push_back(std::move(obj));
  }
  return out;
}

// A record of class R from an exported snapshot: each field it has that this datamodel knows
// and can read; the others keep their defaults.
template <class R>
R record_from(const wire::value& snapshot) {
  R rec{};
  const std::size_t cls = schema::get().class_of<R>();
  const auto& ts = schema::get().table(cls);
  if (const wire::structure* st = snapshot.as_struct())
    for (const auto& [name, v] : *st)
      if (auto f = schema::get().field_index(cls, name)) (void)ts.ops->set_field(&rec, *f, v);
  return rec;
}

std::string field_of(const wire::value& snapshot, const std::string& name) {
  if (const wire::structure* st = snapshot.as_struct())
    for (const auto& [k, v] : *st)
      if (k == name && v.as_string()) return *v.as_string();
  return {};
}

// An import made its VM: its allowed operations and the SR's sizes follow, the task gets the
// VM as its result, and the client its ref.
void finish_import(xva_context& ctx, http_stream& io, progress_task& task, const std::string& vm, const std::string& sr,
                   std::int64_t received, const char* format) {
  ctx.actors.refresh(schema::get().class_of<api::vm>(), vm);
  ctx.repos.refresh_sizes(sr);
  spdlog::info("vm.imported vm={} bytes={} sr={} format={}", vm, received, sr, format);
  task.done(wire::response{true, wire::value(wire::array{wire::value(vm)}), {}});
  std::string body = vm + "\n";
  if (io.send_head(200, "text/plain")) io.write(body.data(), body.size());
}

// The seed's own (legacy) XVA: ova.xml is an <appliance> with one <vm> and its <vdi>s, each
// disk a directory of gzipped chunks of 1e9 bytes. Answers the new VM's ref.
// What an archive may ask for: at most max_import_disks disks of at most max_import_disk_bytes
// each, and a VM whose vCPUs and memory a host could give it (the rules its settings keep).
api::status importable_disk(std::int64_t size, std::size_t disks_so_far) {
  if (disks_so_far >= sm::max_import_disks)
    return fail(api::errors::IMPORT_ERROR("the archive holds more than " + std::to_string(sm::max_import_disks) + " disks"));
  if (size < 0 || size > sm::max_import_disk_bytes)
    return fail(api::errors::IMPORT_ERROR("a disk of " + std::to_string(size) + " bytes: at most " +
                                          std::to_string(sm::max_import_disk_bytes) + " may be imported"));
  return ok_v;
}

api::status importable_vm(const api::vm& vm) {
  auto st = actors::vm_rules::check_vcpus(vm);
  if (st) st = actors::vm_rules::check_memory_order(vm);
  if (!st) return fail(api::errors::IMPORT_ERROR("the VM's settings cannot be: " + st.error().description().at(1) + " " +
                                                 st.error().description().at(2)));
  return ok_v;
}

api::api_result<std::string> import_legacy(xva_context& ctx, sm::tar_in& in, const std::string& xml, const std::string& sr,
                                           const std::string& dir, const progress_task& task) {
  pugi::xml_document doc;
  if (!doc.load_string(xml.c_str())) return fail(api::errors::IMPORT_ERROR("ova.xml is not well-formed XML"));
  pugi::xml_node appliance = doc.child("appliance"), vm = appliance.child("vm");
  if (!vm) return fail(api::errors::IMPORT_ERROR("ova.xml holds no <vm>"));
  auto trim = [](std::string t) {
    t.erase(0, t.find_first_not_of(" \t\r\n"));
    t.erase(t.find_last_not_of(" \t\r\n") + 1);
    return t;
  };
  struct legacy_disk {
    std::int64_t size = 0;
    std::string source;  // the directory of its chunks in the archive
    std::optional<sm::disk_in> data;
  };
  std::map<std::string, legacy_disk> disks;  // by <vdi name>
  for (pugi::xml_node v : appliance.children("vdi")) {
    legacy_disk d;
    d.size = v.attribute("size").as_llong(-1);
    d.source = v.attribute("source").as_string();
    if (d.source.rfind("file://", 0) == 0) d.source = d.source.substr(7);
    if (d.size < 0 || d.source.empty()) return fail(api::errors::IMPORT_ERROR("a <vdi> has no size or source"));
    if (auto st = importable_disk(d.size, disks.size()); !st) return fail(st.error());
    auto raw = sm::disk_in::open(dir + "/.import-" + ctx.db.ids().uuid() + ".raw", d.size);
    if (!raw) return fail(api::errors::SR_BACKEND_FAILURE("28", "", raw.error().err));
    auto& slot = disks[v.attribute("name").as_string()];
    slot.size = d.size;
    slot.source = d.source;
    slot.data.emplace(std::move(*raw));
  }
  std::string name;
  std::int64_t size = 0;
  while (in.next(name, size)) {
    auto slash = name.rfind('/');
    std::string folder = slash == std::string::npos ? "" : name.substr(0, slash);
    std::string leaf = name.substr(slash + 1);
    if (leaf.empty()) continue;  // a directory entry
    auto disk = std::find_if(disks.begin(), disks.end(), [&](const auto& d) { return d.second.source == folder; });
    std::string digits;
    for (char c : leaf) if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
    if (disk == disks.end() || leaf.rfind("chunk", 0) != 0 || digits.empty())
      return fail(api::errors::IMPORT_ERROR_UNEXPECTED_FILE("<disk>/chunk-NNNNNNNNN.gz", name));
    // Chunks of 1e9 bytes: an index beyond the disk (or one whose offset would overflow) is refused.
    constexpr std::int64_t legacy_chunk_bytes = 1000000000;
    const std::int64_t index = digits.size() > 12 ? -1 : std::atoll(digits.c_str());
    if (index < 0 || index > disk->second.size / legacy_chunk_bytes)
      return fail(api::errors::IMPORT_ERROR("chunk " + name + " lies outside its disk"));
    std::string why;
    if (!disk->second.data->inflate_entry(in, index * legacy_chunk_bytes, why))
      return fail(task.cancelled() ? api::errors::TASK_CANCELLED(task.ref)
                  : why.find("ended") != std::string::npos ? api::errors::IMPORT_ERROR_PREMATURE_EOF()
                                                            : api::errors::IMPORT_ERROR(why));
  }
  if (!in.error().empty()) return fail(stream_error(in, task));

  std::vector<std::string> images;
  auto drop_images = [&] { ctx.repos.drop(images); };
  auto t = ctx.db.begin();
  std::map<std::string, std::string> vdi_refs;
  for (auto& [vdi_name, d] : disks) {
    api::vdi v;
    v.uuid = ctx.db.ids().uuid();
    v.name_label = vdi_name;
    v.SR.opaque = sr;
    v.type = api::vdi_type::system;
    v.location = v.uuid + ".qcow2";
    v.managed = true;
    v.sm_config = {{"image-format", "qcow2"}};
    std::string path = dir + "/" + v.location;
    sm::mark_pending(path);  // until the records commit
    images.push_back(path);
    if (auto r = d.data->finish_as_qcow2(path); !r) {
      drop_images();
      return fail(api::errors::SR_BACKEND_FAILURE(std::to_string(r.error().status), r.error().out, r.error().err));
    }
    if (auto info = sm::image_info_of(path)) {
      v.virtual_size = info->virtual_size;
      v.physical_utilisation = info->actual_size;
    }
    vdi_refs[vdi_name] = t.create(v);
  }
  api::vm rec;
  rec.uuid = ctx.db.ids().uuid();
  rec.name_label = trim(vm.child_value("label"));
  rec.name_description = trim(vm.child_value("shortdesc"));
  std::int64_t memory = vm.child("config").attribute("mem_set").as_llong(256 << 20);
  rec.memory_static_min = rec.memory_dynamic_min = rec.memory_dynamic_max = rec.memory_static_max = rec.memory_target =
      memory;
  rec.VCPUs_max = rec.VCPUs_at_startup = std::max<long long>(1, vm.child("config").attribute("vcpus").as_llong(1));
  if (vm.child("hacks").attribute("is_hvm").as_bool(false)) {
    rec.HVM_boot_policy = "BIOS order";
    rec.HVM_boot_params = {{"order", "cd"}};
  } else {
    rec.PV_bootloader = "pygrub";
    rec.PV_args = vm.child("hacks").attribute("kernel_boot_cmdline").as_string();
  }
  if (auto st = importable_vm(rec); !st) {
    drop_images();
    return fail(st.error());
  }
  rec.actions_after_shutdown = api::on_normal_exit::destroy;
  rec.actions_after_reboot = api::on_normal_exit::restart;
  rec.actions_after_crash = api::on_crash_behaviour::restart;
  rec.power_state = api::vm_power_state::Halted;
  rec.user_version = 1;
  rec.domid = -1;
  api::vm_metrics m;
  m.uuid = ctx.db.ids().uuid();
  m.install_time = api::datetime{ctx.clk.now_ms() / 1000};
  rec.metrics.opaque = t.create(m);
  std::string vm_ref = t.create(rec);
  for (pugi::xml_node b : vm.children("vbd")) {
    auto it = vdi_refs.find(b.attribute("vdi").as_string());
    if (it == vdi_refs.end()) {
      drop_images();
      return fail(api::errors::IMPORT_ERROR_FAILED_TO_FIND_OBJECT(b.attribute("vdi").as_string()));
    }
    std::string device = b.attribute("device").as_string();
    api::vbd vbd;
    vbd.uuid = ctx.db.ids().uuid();
    vbd.VM.opaque = vm_ref;
    vbd.VDI.opaque = it->second;
    vbd.device = device;
    vbd.userdevice = device.empty() ? "0" : std::to_string(std::max(0, device.back() - 'a'));
    vbd.bootable = std::string(b.attribute("function").as_string()) == "root";
    vbd.mode = std::string(b.attribute("mode").as_string("w")) == "w" ? api::vbd_mode::RW : api::vbd_mode::RO;
    vbd.type = api::vbd_type::Disk;
    vbd.unpluggable = true;
    t.create(vbd);
  }
  if (auto r = ctx.db.commit(std::move(t)); !r) {
    drop_images();
    return fail(std::move(r).error());
  }
  ctx.repos.keep(images);
  return vm_ref;
}

void serve_import(xva_context& ctx, http_stream& io, bool metadata_only) {
  auto transfer = begin_transfer(ctx, io, "vm.import");
  if (!transfer) return;
  auto& q = transfer->query;
  auto& task = transfer->task;
  auto fail_with = [&](unsigned status, const api::api_error& e) { transfer->fail(status, e); };
  const bool restore = q["restore"] == "true";
  const bool force = q["force"] == "true";
  auto s = ctx.db.snapshot();
  std::string sr = q.count("sr_id") ? q["sr_id"] : std::string();
  if (sr.empty()) {
    if (const api::pool* pool = s->first<api::pool>()) sr = pool->default_SR.opaque;
    if (sr.empty() || sr == null_ref || !s->get<api::sr>(sr)) return fail_with(404, api::errors::DEFAULT_SR_NOT_FOUND(sr));
  }
  if (!s->get<api::sr>(sr)) return fail_with(404, api::errors::HANDLE_INVALID("SR", sr));
  auto dir = ctx.repos.directory(*s, sr, true);
  if (!dir) return fail_with(dir.error().code == api::error_code::SR_OPERATION_NOT_SUPPORTED ? 400 : 500, dir.error());
  const std::int64_t content_length = std::atoll(io.header("Content-Length").c_str());

  std::int64_t received = 0;
  sm::tar_in in([&](char* buf, std::size_t n) -> long {
    if (task.cancelled()) return -1;
    long got = io.read_body(buf, n);
    if (got > 0) {
      received += got;
      if (content_length > 0) task.progress(static_cast<double>(received) / content_length);
    }
    return got;
  });
  // ova.xml first.
  std::string name, xml;
  std::int64_t size = 0;
  if (!in.next(name, size)) return fail_with(400, stream_error(in, task));
  if (name != "ova.xml") return fail_with(400, api::errors::IMPORT_ERROR_UNEXPECTED_FILE("ova.xml", name));
  if (!in.read_entry(xml, 64 << 20)) return fail_with(400, stream_error(in, task));
  if (xml.find("<appliance") != std::string::npos && !metadata_only) {
    auto vm = import_legacy(ctx, in, xml, sr, *dir, task);
    if (!vm) return fail_with(400, vm.error());
    return finish_import(ctx, io, task, *vm, sr, received, "legacy");
  }
  auto objects = parse_ova(xml);
  if (!objects) return fail_with(400, objects.error());

  // The disks arrive as chunks into raw files beside the SR.
  std::map<std::string, sm::disk_in> disks;  // archive id -> disk
  std::map<std::string, const imported_object*> by_id;
  for (const auto& o : *objects) by_id[o.id] = &o;
  // Metadata alone refers to disks that are here already, by their uuids.
  std::map<std::string, std::string> existing_vdis;  // archive id -> VDI ref
  for (const auto& o : *objects) {
    if (o.cls != "VDI" || !metadata_only) continue;
    auto found = ctx.db.snapshot()->ref_by_uuid(schema::get().class_of<api::vdi>(), field_of(o.snapshot, "uuid"));
    if (!found) return fail_with(404, api::errors::IMPORT_ERROR_ATTACHED_DISKS_NOT_FOUND());
    existing_vdis[o.id] = *found;
  }
  for (const auto& o : *objects) {
    if (o.cls != "VDI" || metadata_only) continue;
    auto v = record_from<api::vdi>(o.snapshot);
    if (auto st = importable_disk(v.virtual_size, disks.size()); !st) return fail_with(400, st.error());
    auto d = sm::disk_in::open(*dir + "/.import-" + ctx.db.ids().uuid() + ".raw", v.virtual_size);
    if (!d) return fail_with(500, api::errors::SR_BACKEND_FAILURE("28", "", d.error().err));
    disks.emplace(o.id, std::move(*d));
  }
  bool checksums_ok = true;
  std::string chunk;
  while (in.next(name, size)) {
    auto slash = name.find('/');
    auto disk = slash == std::string::npos ? disks.end() : disks.find(name.substr(0, slash));
    if (disk == disks.end()) return fail_with(400, api::errors::IMPORT_ERROR_FAILED_TO_FIND_OBJECT(name));
    std::string leaf = name.substr(slash + 1);
    bool is_sum = leaf.size() > 9 && leaf.substr(leaf.size() - 9) == ".checksum";
    bool is_xxh = leaf.size() > 7 && leaf.substr(leaf.size() - 7) == ".xxhash";
    std::string digits = leaf.substr(0, leaf.find('.'));
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
      return fail_with(400, api::errors::IMPORT_ERROR_UNEXPECTED_FILE(name.substr(0, slash) + "/<chunk>", name));
    const std::int64_t index = digits.size() > 18 ? -1 : std::atoll(digits.c_str());
    if (!in.read_entry(chunk, sm::xva_chunk_bytes)) return fail_with(400, stream_error(in, task));
    if (is_sum) {
      if (!disk->second.check(index, chunk)) checksums_ok = false;
    } else if (is_xxh) {
      if (!disk->second.check_xxhash(index, chunk)) checksums_ok = false;
    } else if (!disk->second.write_chunk(index, chunk)) {
      if (disk->second.last_errno() == ENOSPC) return fail_with(507, sr_full(*dir, by_id[disk->first]->snapshot));
      if (disk->second.last_errno() != 0)
        return fail_with(500, api::errors::SR_BACKEND_FAILURE(std::to_string(disk->second.last_errno()), "",
                                                                std::strerror(disk->second.last_errno())));
      return fail_with(400, api::errors::IMPORT_ERROR("chunk " + name + " lies outside its disk"));
    }
    if (!checksums_ok && !force) return fail_with(400, api::errors::IMPORT_ERROR_SOME_CHECKSUMS_FAILED());
  }
  if (!in.error().empty()) return fail_with(400, stream_error(in, task));
  // A chunk without its checksum is as unchecked as one with a wrong checksum.
  for (const auto& [id, disk] : disks)
    if (!disk.every_chunk_checked() && !force) return fail_with(400, api::errors::IMPORT_ERROR_SOME_CHECKSUMS_FAILED());

  // Everything arrived: the disks become qcow2 images, then every record is made in one go.
  s = ctx.db.snapshot();
  auto t = ctx.db.begin();
  std::vector<std::string> images;
  auto drop_images = [&] { ctx.repos.drop(images); };
  std::map<std::string, std::string> refs = existing_vdis;  // archive id -> new (or existing) ref
  for (auto& [id, disk] : disks) {
    auto v = storage::as_copy(record_from<api::vdi>(by_id[id]->snapshot));
    v.uuid = ctx.db.ids().uuid();
    v.SR.opaque = sr;
    v.location = v.uuid + ".qcow2";
    v.snapshot_of.opaque = v.parent.opaque = null_ref;
    v.metadata_of_pool.opaque = null_ref;
    v.managed = true;
    v.missing = false;
    v.sm_config = {{"image-format", "qcow2"}};
    std::string path = *dir + "/" + v.location;
    sm::mark_pending(path);  // until the records commit
    images.push_back(path);
    if (auto r = disk.finish_as_qcow2(path); !r) {
      drop_images();
      return fail_with(500, api::errors::SR_BACKEND_FAILURE(std::to_string(r.error().status), r.error().out, r.error().err));
    }
    if (auto info = sm::image_info_of(path)) {
      v.virtual_size = info->virtual_size;
      v.physical_utilisation = info->actual_size;
    }
    refs[id] = t.create(v);
  }
  std::string vm_ref;
  std::size_t net_cls = schema::get().class_of<api::network>();
  for (const auto& o : *objects) {
    if (o.cls == "network") {
      // An existing network of the same bridge or name takes the VM's VIFs; else a new one.
      std::string bridge = field_of(o.snapshot, "bridge"), label = field_of(o.snapshot, "name_label");
      s->for_each(net_cls, [&](const std::string& ref, const storage::row& row) {
        const auto* n = static_cast<const api::network*>(row.record.get());
        if ((!bridge.empty() && n->bridge == bridge) || n->name_label == label) {
          refs[o.id] = ref;
          return false;
        }
        return true;
      });
      if (!refs.count(o.id)) {
        auto n = storage::as_copy(record_from<api::network>(o.snapshot));
        n.uuid = ctx.db.ids().uuid();
        refs[o.id] = t.create(n);
      }
    } else if (o.cls == "SR") {
      refs[o.id] = sr;
    }
  }
  for (const auto& o : *objects) {
    if (o.cls != "VM") continue;
    auto v = actors::as_new_vm(record_from<api::vm>(o.snapshot));
    if (auto st = importable_vm(v); !st) {
      drop_images();
      return fail_with(400, st.error());
    }
    v.uuid = ctx.db.ids().uuid();
    // What pointed at objects of the exporting pool points nowhere here.
    v.affinity.opaque = v.suspend_SR.opaque = v.snapshot_of.opaque = v.parent.opaque = null_ref;
    v.protection_policy.opaque = v.appliance.opaque = null_ref;
    v.blobs = {};
    api::vm_metrics m;
    m.uuid = ctx.db.ids().uuid();
    m.install_time = api::datetime{ctx.clk.now_ms() / 1000};
    v.metrics.opaque = t.create(m);
    vm_ref = refs[o.id] = t.create(v);
    break;  // an XVA holds one VM
  }
  if (vm_ref.empty()) {
    drop_images();
    return fail_with(400, api::errors::IMPORT_ERROR("ova.xml holds no VM"));
  }
  for (const auto& o : *objects) {
    if (o.cls == "VBD") {
      auto b = storage::as_copy(record_from<api::vbd>(o.snapshot));
      std::string vdi_id = field_of(o.snapshot, "VDI");
      b.uuid = ctx.db.ids().uuid();
      b.VM.opaque = vm_ref;
      b.VDI.opaque = refs.count(vdi_id) ? refs[vdi_id] : null_ref;
      if (b.VDI.opaque == null_ref) b.empty = true;  // a CD whose ISO stayed behind
      b.currently_attached = false;
      b.metrics.opaque = null_ref;
      t.create(b);
    } else if (o.cls == "VIF") {
      auto f = storage::as_copy(record_from<api::vif>(o.snapshot));
      std::string net_id = field_of(o.snapshot, "network");
      if (!refs.count(net_id)) continue;
      f.uuid = ctx.db.ids().uuid();
      f.VM.opaque = vm_ref;
      f.network.opaque = refs[net_id];
      f.currently_attached = false;
      f.metrics.opaque = null_ref;
      if (!restore) {  // a restore keeps the MAC addresses; a copy gets its own
        f.MAC = ctx.db.ids().mac();
        f.MAC_autogenerated = true;
      }
      t.create(f);
    }
  }
  if (auto r = ctx.db.commit(std::move(t)); !r) {
    drop_images();
    return fail_with(500, r.error());
  }
  ctx.repos.keep(images);
  finish_import(ctx, io, task, vm_ref, sr, received, metadata_only ? "metadata" : "xenserver");
}

}  // namespace

void register_xva_handlers(http_server& server, xva_context& ctx) {
  server.add_stream_route("GET", "/export", [&ctx](http_stream& io) { serve_export(ctx, io, false); });
  server.add_stream_route("GET", "/export_metadata", [&ctx](http_stream& io) { serve_export(ctx, io, true); });
  for (const char* method : {"PUT", "POST"}) {
    server.add_stream_route(method, "/import", [&ctx](http_stream& io) { serve_import(ctx, io, false); });
    server.add_stream_route(method, "/import_metadata", [&ctx](http_stream& io) { serve_import(ctx, io, true); });
  }
}

}  // namespace xapid::gateway
