#include "gateway/handlers/xva_handlers.hpp"

#include <openssl/evp.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <thread>
#include <variant>

#include <spdlog/spdlog.h>

#include "actors/vm_export.hpp"
#include "actors/vm_import.hpp"
#include "gateway/handlers/http_auth.hpp"
#include "common/clock.hpp"
#include "gateway/auth/roles.hpp"
#include "proto/wire/codec.hpp"
#include "sm/xva_stream.hpp"
#include "xapid/api/rbac.hpp"

namespace xapid::gateway {
namespace {

using storage::schema;

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
  auto who = authorize(ctx.sessions, ctx.logins, io, t.query);
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
    const actors::vm_export exporter(ctx.repos);
    auto archive = exporter.contents(*snap, vm, snap->get<api::host>(ctx.host)->hostname);
    if (metadata_only) archive.disks.clear();
    std::int64_t total = 0;
    for (const auto& disk : archive.disks) total += disk.size;
    if (!io.send_head(200, "application/octet-stream")) return fail(api::errors::INTERNAL_ERROR("the client went away"));
    streamed = true;
    sm::tar_out out([&](const char* d, std::size_t n) { return io.write(d, n); });
    if (!out.add("ova.xml", archive.ova_xml.data(), archive.ova_xml.size()))
      return fail(api::errors::INTERNAL_ERROR("the client went away"));
    std::int64_t sent = 0;
    for (const auto& disk : archive.disks) {
      auto written = exporter.write_disk(out, *snap, disk, [&](std::int64_t n) {
        sent += n;
        task.progress(total ? static_cast<double>(sent) / total : 1.0);
        return !task.cancelled();
      });
      if (!written) return fail(task.cancelled() ? api::errors::TASK_CANCELLED(task.ref) : written.error());
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

// What a failed read of the archive was: a cancelled import, a cut stream, or a damaged one.
api::api_error stream_error(const sm::tar_in& in, const progress_task& task) {
  if (task.cancelled()) return api::errors::TASK_CANCELLED(task.ref);
  if (in.error().empty() || in.error().find("ended") != std::string::npos) return api::errors::IMPORT_ERROR_PREMATURE_EOF();
  return api::errors::IMPORT_ERROR(in.error());
}

// The status of where an import would go, refused: an SR that is not there (404), one that
// takes no images (400), or one this host cannot reach (500).
unsigned target_status(const api::api_error& e) {
  switch (e.code) {
    case api::error_code::DEFAULT_SR_NOT_FOUND:
    case api::error_code::HANDLE_INVALID: return 404;
    case api::error_code::SR_OPERATION_NOT_SUPPORTED: return 400;
    default: return 500;
  }
}

// The status of an import the actors layer refused or failed: disks it names that are not here
// (404), an archive asking what cannot be (400), or the host's failure (500).
unsigned import_status(const api::api_error& e) {
  switch (e.code) {
    case api::error_code::IMPORT_ERROR_ATTACHED_DISKS_NOT_FOUND: return 404;
    case api::error_code::IMPORT_ERROR:
    case api::error_code::IMPORT_ERROR_FAILED_TO_FIND_OBJECT: return 400;
    default: return 500;
  }
}

// An import made its VM: the task gets the VM as its result, and the client its ref.
void finish_import(http_stream& io, progress_task& task, const std::string& vm, const std::string& sr,
                   std::int64_t received, const char* format) {
  spdlog::info("vm.imported vm={} bytes={} sr={} format={}", vm, received, sr, format);
  task.done(wire::response{true, wire::value(wire::array{wire::value(vm)}), {}});
  std::string body = vm + "\n";
  if (io.send_head(200, "text/plain")) io.write(body.data(), body.size());
}

// The seed's own (legacy) XVA: each disk a directory of gzipped chunks of 1e9 bytes. Answers
// the new VM's ref.
api::api_result<std::string> import_legacy(actors::vm_import& importer, sm::tar_in& in, actors::xva_metadata metadata,
                                           const std::string& sr, const progress_task& task) {
  auto plan = importer.plan(std::move(metadata), sr, {});
  if (!plan) return fail(plan.error());
  std::string name;
  std::int64_t size = 0;
  while (in.next(name, size)) {
    auto slash = name.rfind('/');
    std::string folder = slash == std::string::npos ? "" : name.substr(0, slash);
    std::string leaf = name.substr(slash + 1);
    if (leaf.empty()) continue;  // a directory entry
    actors::import_disk* disk = plan->disk_under(folder);
    std::string digits;
    for (char c : leaf) if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
    if (!disk || leaf.rfind("chunk", 0) != 0 || digits.empty())
      return fail(api::errors::IMPORT_ERROR_UNEXPECTED_FILE("<disk>/chunk-NNNNNNNNN.gz", name));
    // Chunks of 1e9 bytes: an index beyond the disk (or one whose offset would overflow) is refused.
    constexpr std::int64_t legacy_chunk_bytes = 1000000000;
    const std::int64_t index = digits.size() > 12 ? -1 : std::atoll(digits.c_str());
    if (index < 0 || index > disk->size / legacy_chunk_bytes)
      return fail(api::errors::IMPORT_ERROR("chunk " + name + " lies outside its disk"));
    std::string why;
    if (!disk->data.inflate_entry(in, index * legacy_chunk_bytes, why))
      return fail(task.cancelled() ? api::errors::TASK_CANCELLED(task.ref)
                  : why.find("ended") != std::string::npos ? api::errors::IMPORT_ERROR_PREMATURE_EOF()
                                                            : api::errors::IMPORT_ERROR(why));
  }
  if (!in.error().empty()) return fail(stream_error(in, task));
  return importer.commit(*plan);
}

void serve_import(xva_context& ctx, http_stream& io, bool metadata_only) {
  auto transfer = begin_transfer(ctx, io, "vm.import");
  if (!transfer) return;
  auto& q = transfer->query;
  auto& task = transfer->task;
  auto fail_with = [&](unsigned status, const api::api_error& e) { transfer->fail(status, e); };
  actors::vm_import importer(ctx.db, ctx.repos, ctx.actors, ctx.clk);
  auto sr = importer.target_sr(q["sr_id"]);
  if (!sr) return fail_with(target_status(sr.error()), sr.error());
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
  auto metadata = actors::read_xva_metadata(xml, metadata_only);
  if (!metadata) return fail_with(400, metadata.error());
  if (std::holds_alternative<actors::legacy_metadata>(*metadata)) {
    // Whatever fails in the legacy form is the archive's fault to its client.
    auto vm = import_legacy(importer, in, std::move(*metadata), *sr, task);
    if (!vm) return fail_with(400, vm.error());
    return finish_import(io, task, *vm, *sr, received, "legacy");
  }
  auto plan = importer.plan(std::move(*metadata), *sr, {metadata_only, q["restore"] == "true"});
  if (!plan) return fail_with(import_status(plan.error()), plan.error());

  // The disks arrive as chunks "<archive id>/<index>", each followed by its checksum.
  const bool force = q["force"] == "true";
  bool checksums_ok = true;
  std::string chunk;
  while (in.next(name, size)) {
    auto slash = name.find('/');
    actors::import_disk* disk = slash == std::string::npos ? nullptr : plan->disk_under(name.substr(0, slash));
    if (!disk) return fail_with(400, api::errors::IMPORT_ERROR_FAILED_TO_FIND_OBJECT(name));
    std::string leaf = name.substr(slash + 1);
    bool is_sum = leaf.size() > 9 && leaf.substr(leaf.size() - 9) == ".checksum";
    bool is_xxh = leaf.size() > 7 && leaf.substr(leaf.size() - 7) == ".xxhash";
    std::string digits = leaf.substr(0, leaf.find('.'));
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
      return fail_with(400, api::errors::IMPORT_ERROR_UNEXPECTED_FILE(name.substr(0, slash) + "/<chunk>", name));
    const std::int64_t index = digits.size() > 18 ? -1 : std::atoll(digits.c_str());
    if (!in.read_entry(chunk, sm::xva_chunk_bytes)) return fail_with(400, stream_error(in, task));
    if (is_sum) {
      if (!disk->data.check(index, chunk)) checksums_ok = false;
    } else if (is_xxh) {
      if (!disk->data.check_xxhash(index, chunk)) checksums_ok = false;
    } else if (!disk->data.write_chunk(index, chunk)) {
      if (disk->data.last_errno() == ENOSPC) return fail_with(507, plan->sr_full(*disk));
      if (disk->data.last_errno() != 0)
        return fail_with(500, api::errors::SR_BACKEND_FAILURE(std::to_string(disk->data.last_errno()), "",
                                                                std::strerror(disk->data.last_errno())));
      return fail_with(400, api::errors::IMPORT_ERROR("chunk " + name + " lies outside its disk"));
    }
    if (!checksums_ok && !force) return fail_with(400, api::errors::IMPORT_ERROR_SOME_CHECKSUMS_FAILED());
  }
  if (!in.error().empty()) return fail_with(400, stream_error(in, task));
  // A chunk without its checksum is as unchecked as one with a wrong checksum.
  for (const auto& disk : plan->disks())
    if (!disk.data.every_chunk_checked() && !force) return fail_with(400, api::errors::IMPORT_ERROR_SOME_CHECKSUMS_FAILED());

  // Everything arrived: the disks become images, and every record is made in one go.
  auto vm = importer.commit(*plan);
  if (!vm) return fail_with(import_status(vm.error()), vm.error());
  finish_import(io, task, *vm, *sr, received, metadata_only ? "metadata" : "xenserver");
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
