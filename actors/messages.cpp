#include "actors/messages.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace xapid::actors {
namespace {

using storage::schema;

// The class a message's `cls` names, as the catalog spells it.
const char* class_name_of(api::cls c) {
  switch (c) {
    case api::cls::VM: return "VM";
    case api::cls::Host: return "host";
    case api::cls::SR: return "SR";
    case api::cls::Pool: return "pool";
    case api::cls::VMPP: return "VMPP";
  }
  return "";
}

// At most `bytes` of `text`, cut before a UTF-8 sequence that would not fit whole.
std::string utf8_prefix(const std::string& text, std::size_t bytes) {
  if (text.size() <= bytes) return text;
  while (bytes > 0 && (static_cast<unsigned char>(text[bytes]) & 0xC0) == 0x80) --bytes;
  return text.substr(0, bytes) + "...";
}

}  // namespace

bool message_object_exists(const storage::state& s, api::cls cls, const std::string& uuid) {
  auto index = schema::get().class_index(class_name_of(cls));
  return index && s.ref_by_uuid(*index, uuid).has_value();
}

message_log::message_log(storage::database& db, clock& clk, std::size_t limit) : db_(db), clk_(clk), limit_(limit) {}

storage::transaction message_log::creation(const alert& a, std::string& ref) {
  api::message m;
  m.name = a.name;
  m.priority = a.priority;
  m.cls = a.cls;
  m.obj_uuid = a.obj_uuid;
  m.body = a.body;
  m.timestamp = api::datetime{clk_.now_ms() / 1000};
  auto t = db_.begin();
  ref = t.create(m);
  return t;
}

api::api_result<std::string> message_log::create(const alert& a) {
  // The log keeps 10,000 messages on every host: each is bounded, so the log is.
  if (a.name.size() > max_name_bytes)
    return fail(api::errors::VALUE_NOT_SUPPORTED("name", utf8_prefix(a.name, 64), "longer than " + std::to_string(max_name_bytes) + " bytes"));
  if (a.body.size() > max_body_bytes)
    return fail(api::errors::VALUE_NOT_SUPPORTED("body", utf8_prefix(a.body, 64), "longer than " + std::to_string(max_body_bytes) + " bytes"));
  std::string ref;
  auto r = db_.commit(creation(a, ref));
  if (!r) return fail(std::move(r).error());
  trim();
  return ref;
}

void message_log::raise(const alert& given) {
  // Bounded as message.create bounds a client's: a body made of an administrator's text (an
  // ALARM quotes its config) is cut, not refused.
  alert a = given;
  if (a.name.size() > max_name_bytes) a.name = utf8_prefix(a.name, max_name_bytes - 3);
  if (a.body.size() > max_body_bytes) a.body = utf8_prefix(a.body, max_body_bytes - 3);
  std::string ref;
  db_.commit_async(creation(a, ref), [name = a.name, uuid = a.obj_uuid](result<storage::generation, api::api_error> r) {
    if (!r) spdlog::warn("message.raise.failed name={} obj={} reason=\"{}\"", name, uuid, r.error().description().at(0));
  });
  trim();
}

void message_log::raise_for_vm(std::pair<const char*, std::int64_t> kind, const std::string& vm_ref,
                               const std::string& what) {
  auto s = db_.snapshot();
  const api::vm* vm = s->get<api::vm>(vm_ref);
  if (!vm) return;  // gone meanwhile (destroyed): nothing to tell of
  // (A name of any length would make the body too long to keep: its first 256 bytes name it.)
  raise({kind.first, kind.second, api::cls::VM, vm->uuid,
         "VM '" + utf8_prefix(vm->name_label, 256) + "' (uuid: " + vm->uuid + ") " + utf8_prefix(what, 1024)});
}

std::string message_log::host_quoted(const std::string& host_ref) const {
  auto s = db_.snapshot();
  const api::host* h = s->get<api::host>(host_ref);
  return h ? "'" + utf8_prefix(h->name_label, 256) + "' (uuid: " + h->uuid + ")" : std::string("'' (uuid: )");
}

std::string message_log::resident_host(const std::string& vm_ref) const {
  auto s = db_.snapshot();
  const api::vm* vm = s->get<api::vm>(vm_ref);
  return vm ? vm->resident_on.opaque : std::string();
}

std::string message_log::host_of_vm(const std::string& vm_ref) const {
  auto s = db_.snapshot();
  const api::vm* vm = s->get<api::vm>(vm_ref);
  const api::host* h = vm ? s->get<api::host>(vm->resident_on.opaque) : nullptr;
  return h ? h->name_label + " (uuid: " + h->uuid + ")" : std::string();
}

std::string message_log::vm_uuid(const std::string& vm_ref) const {
  auto s = db_.snapshot();
  const api::vm* vm = s->get<api::vm>(vm_ref);
  return vm ? vm->uuid : std::string();
}

std::string message_log::vm_name(const std::string& vm_ref) const {
  auto s = db_.snapshot();
  const api::vm* vm = s->get<api::vm>(vm_ref);
  return vm ? vm->name_label : std::string();
}

std::string message_log::snapshot_of(const std::string& snapshot_ref) const {
  auto s = db_.snapshot();
  const api::vm* vm = s->get<api::vm>(snapshot_ref);
  return vm ? vm->snapshot_of.opaque : std::string();
}

void message_log::trim() {
  const std::size_t cls = schema::get().class_of<api::message>();
  auto s = db_.snapshot();
  const std::size_t count = s->count(cls);
  if (count <= limit_ + std::max<std::size_t>(1, limit_ / 100)) return;
  if (trimming_->exchange(true)) return;  // one trim at a time; the next create looks again
  // Oldest first: by the generation that created them (the order of the pool's log).
  std::vector<std::pair<storage::generation, std::string>> rows;
  rows.reserve(count);
  s->for_each(cls, [&](const std::string& ref, const storage::row& r) {
    rows.emplace_back(r.created, ref);
    return true;
  });
  const std::size_t excess = rows.size() - std::min(rows.size(), limit_);
  std::nth_element(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(excess), rows.end());
  auto t = db_.begin();
  for (std::size_t i = 0; i < excess; ++i) t.destroy(cls, rows[i].second);
  // (The outcome may come after this log is gone: it holds only what it shares.)
  db_.commit_async(std::move(t), [busy = trimming_, excess](result<storage::generation, api::api_error> r) {
    if (r) spdlog::info("message.trimmed count={}", excess);
    else spdlog::warn("message.trim.failed reason=\"{}\"", r.error().description().at(0));
    *busy = false;
  });
}

}  // namespace xapid::actors
