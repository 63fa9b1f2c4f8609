#include "pool/membership.hpp"

#include <charconv>

namespace xapid::pool {
namespace {

const std::string key_raft_id = std::string(reserved_prefix) + "raft-id";
const std::string key_raft_address = std::string(reserved_prefix) + "raft-address";
const std::string key_peer_address = std::string(reserved_prefix) + "peer-address";
const std::string key_fingerprint = std::string(reserved_prefix) + "certificate-sha256";

std::optional<member_record> record_of(const std::string& ref, const api::host& h) {
  auto at = [&](const std::string& key) -> const std::string* {
    auto it = h.other_config.find(key);
    return it == h.other_config.end() ? nullptr : &it->second;
  };
  const std::string* id = at(key_raft_id);
  if (!id) return std::nullopt;
  member_record m;
  m.host_ref = ref;
  m.host_uuid = h.uuid;
  auto [end, ec] = std::from_chars(id->data(), id->data() + id->size(), m.raft_id);
  if (ec != std::errc() || end != id->data() + id->size() || m.raft_id == 0) return std::nullopt;
  if (const auto* v = at(key_raft_address)) m.raft_address = *v;
  if (const auto* v = at(key_peer_address)) m.peer_address = *v;
  if (const auto* v = at(key_fingerprint)) m.fingerprint = *v;
  return m;
}

}  // namespace

std::map<std::string, std::string> reserved_entries(const member_record& m) {
  return {{key_raft_id, std::to_string(m.raft_id)},
          {key_raft_address, m.raft_address},
          {key_peer_address, m.peer_address},
          {key_fingerprint, m.fingerprint}};
}

std::vector<member_record> members(const storage::state& s) {
  std::vector<member_record> out;
  s.for_each(storage::schema::get().class_of<api::host>(), [&](const std::string& ref, const storage::row& r) {
    if (auto m = record_of(ref, *static_cast<const api::host*>(r.record.get()))) out.push_back(std::move(*m));
    return true;
  });
  return out;
}

std::optional<member_record> member_by_raft_id(const storage::state& s, std::uint64_t id) {
  for (auto& m : members(s))
    if (m.raft_id == id) return m;
  return std::nullopt;
}

std::optional<member_record> member_of_host(const storage::state& s, const std::string& host_ref) {
  const api::host* h = s.get<api::host>(host_ref);
  return h ? record_of(host_ref, *h) : std::nullopt;
}

std::optional<member_record> member_by_fingerprint(const storage::state& s, const std::string& fingerprint) {
  if (fingerprint.empty()) return std::nullopt;
  for (auto& m : members(s))
    if (m.fingerprint == fingerprint) return m;
  return std::nullopt;
}

namespace {

// The entries of `before` and of `after` whose keys `kept` selects are the same.
bool keeps_entries(const api::map<std::string, std::string>& before, const wire::structure& after,
                   bool (*kept)(std::string_view key)) {
  std::map<std::string, std::string> was, is;
  for (auto it = before.lower_bound(std::string(reserved_prefix)); it != before.end() && it->first.starts_with(reserved_prefix); ++it)
    if (kept(it->first)) was.insert(*it);
  // A value that is not a string is never the one kept.
  for (const auto& [key, value] : after)
    if (kept(key)) is[key] = value.as_string() ? *value.as_string() : std::string("\x01");
  return was == is;
}

bool is_reserved(std::string_view key) { return key.starts_with(reserved_prefix); }
// Who a member is: its Raft id and pinned certificate. Not even the member writes them (its
// addresses it may: they follow its options); only the master's join does.
bool is_identity(std::string_view key) { return key == key_raft_id || key == key_fingerprint; }

}  // namespace

bool keeps_reserved(const api::map<std::string, std::string>& before, const wire::structure& after) {
  return keeps_entries(before, after, is_reserved);
}

api::status vet_member_change(const storage::state& s, std::uint64_t sender, std::span<const storage::op> ops) {
  using storage::op_kind;
  const auto& sch = storage::schema::get();
  const std::size_t host_class = sch.class_of<api::host>();
  const std::size_t other_config = *sch.field_index(host_class, "other_config");
  const std::size_t address = *sch.field_index(host_class, "address");
  const std::size_t pool_class = sch.class_of<api::pool>();
  const std::size_t pool_master = *sch.field_index(pool_class, "master");
  const std::size_t metrics_class = sch.class_of<api::host_metrics>();
  const std::size_t metrics_live = *sch.field_index(metrics_class, "live");
  std::optional<std::string> own_host;
  if (sender)
    if (auto m = member_by_raft_id(s, sender)) own_host = m->host_ref;
  auto refuse = [](const std::string& what) {
    return fail(api::errors::OPERATION_NOT_ALLOWED("a member may not " + what + ": the pool's membership is the master's"));
  };
  for (const storage::op& o : ops) {
    if (o.kind == op_kind::set_private) return refuse("set a private value");
    // Where calls and logins are sent, and who votes: the master's to say.
    if (o.kind == op_kind::set && o.cls == pool_class && o.field == pool_master) return refuse("name the pool's master");
    if (o.kind == op_kind::set && o.cls == metrics_class && o.field == metrics_live) return refuse("say whether a host is live");
    if (o.cls != host_class) continue;
    const bool own = own_host && o.ref == *own_host;
    switch (o.kind) {
      case op_kind::create: return refuse("add a host");
      case op_kind::destroy:
        if (member_of_host(s, o.ref)) return refuse("remove a member's host");
        break;
      case op_kind::add_to_map:
      case op_kind::remove_from_map:
        if (o.field == other_config && (is_identity(o.key) || (is_reserved(o.key) && !own)))
          return refuse("change " + std::string(own ? "its own " : "another host's ") + o.key);
        break;
      case op_kind::set: {
        if (o.field == address && !own) return refuse("change another host's address");
        if (o.field != other_config) break;
        const api::host* h = s.get<api::host>(o.ref);
        const wire::structure* given = o.value.as_struct();
        if (!h || !given) break;  // applying it fails on its own (HANDLE_INVALID, a type error)
        if (!keeps_entries(h->other_config, *given, own ? is_identity : is_reserved))
          return refuse("change " + std::string(own ? "its own identity in the pool" : "another host's membership entries"));
        break;
      }
      default: break;
    }
  }
  return ok_v;
}

api::status publish_own_record(storage::database& db, const member_record& m) {
  auto snap = db.snapshot();
  const api::host* h = snap->get<api::host>(m.host_ref);
  if (!h) return fail(api::errors::HANDLE_INVALID("host", m.host_ref));
  auto t = db.begin();
  const std::size_t cls = storage::schema::get().class_of<api::host>();
  const std::size_t field = *storage::schema::get().field_index(cls, "other_config");
  bool changed = false;
  for (const auto& [key, value] : reserved_entries(m)) {
    auto it = h->other_config.find(key);
    if (it != h->other_config.end() && it->second == value) continue;
    if (it != h->other_config.end()) t.remove_from_map(cls, m.host_ref, field, key);
    t.add_to_map(cls, m.host_ref, field, key, wire::value(value));
    changed = true;
  }
  if (!changed) return ok_v;
  auto committed = db.commit(std::move(t));
  if (!committed) return fail(committed.error());
  return ok_v;
}

}  // namespace xapid::pool
