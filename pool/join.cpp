#include "pool/join.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/private_file.hpp"
#include "pool/join_objects.hpp"
#include "pool/join_rules.hpp"
#include "pool/membership.hpp"
#include "pool/peer_tls.hpp"
#include "pool/pool_log.hpp"

namespace xapid::pool {
namespace {

constexpr std::string_view accepted_file = "join-accepted";
// Between a join's request and its outcome: the master's peer address, so that a host that stops
// (or loses the answer) meanwhile asks whether it was taken in (JoinedAs) and ends the join done
// or not done, never half.
constexpr std::string_view pending_file = "join-pending";
constexpr std::string_view root_hash_name = "root-password-hash = ";

void add_error(peer::JoinReply& reply, const api::api_error& e) {
  auto* out = reply.add_errors();
  out->set_code(std::string(api::to_string(e.code)));
  for (const auto& p : e.params) out->add_params(p);
}

std::string describe(const api::api_error& e) {
  std::string out(api::to_string(e.code));
  for (const auto& p : e.params) out += " " + p;
  return out;
}

// The API address of the pool's master, for HOST_IS_SLAVE: its host's address.
std::string master_api_address(const storage::state& s, const storage::raft_status& status) {
  if (auto m = member_by_raft_id(s, status.leader.id))
    if (const api::host* h = s.get<api::host>(m->host_ref)) return h->address;
  return "";
}

// The answer to a joining host the pool has taken in as log member `raft_id`.
void answer_taken_in(const join_master& m, std::uint64_t raft_id, peer::JoinReply& reply) {
  reply.set_raft_id(raft_id);
  reply.set_joined_at_index(m.db->applied_log_index());
  reply.set_pool_id(m.identity.pool_id);
  reply.set_secret(m.identity.secret);
  reply.set_root_password_hash(m.root_password_hash());
  reply.set_master_certificate_pem(m.certificate_pem);
  reply.set_master_raft_address(m.raft_address);
  for (const auto& server : m.log->status().configuration)
    if (server.member.id != raft_id) reply.add_member_raft_ids(server.member.id);
}

// A host the pool took in before (`earlier`, never the master) asking again: its place in the
// log made whole (added, made a standby) and the join's answer given again. False (with errors
// in `reply`) when the log cannot take it.
bool answer_again(const join_master& m, const member_record& earlier, const storage::raft_status& status, peer::JoinReply& reply) {
  const storage::raft_member member{earlier.raft_id, earlier.raft_address};
  auto server = std::find_if(status.configuration.begin(), status.configuration.end(),
                             [&](const storage::raft_server& s) { return s.member.id == member.id; });
  if (server == status.configuration.end())
    if (auto added = m.log->add(member, m.membership_timeout); !added)
      return add_error(reply, api::errors::INTERNAL_ERROR("the pool's log cannot take the host: " + added.error())), false;
  if (server == status.configuration.end() || server->role == storage::raft_role::spare)
    if (auto standby = m.log->assign(member.id, storage::raft_role::standby, m.membership_timeout); !standby)
      return add_error(reply, api::errors::INTERNAL_ERROR("the pool's log cannot make the host a replica: " + standby.error())), false;
  answer_taken_in(m, member.id, reply);
  spdlog::info("pool.join.accepted_again host={} raft_id={} (its first answer was lost)", earlier.host_uuid, member.id);
  return true;
}

}  // namespace

void answer_joined_as(const join_master& m, const std::string& caller_fingerprint, const peer::JoinedAsRequest& q,
                      peer::JoinReply& reply) {
  const auto status = m.log->status();
  auto pool = m.db->snapshot();
  if (status.state != storage::raft_status::role_state::leader)
    return add_error(reply, api::errors::HOST_IS_SLAVE(master_api_address(*pool, status)));
  auto earlier = member_by_fingerprint(*pool, caller_fingerprint);
  if (!earlier || earlier->host_uuid != q.host_uuid() || earlier->raft_id == m.identity.raft_id || earlier->raft_id == status.leader.id)
    return add_error(reply, api::errors::INTERNAL_ERROR("this host was not taken in by the pool"));
  answer_again(m, *earlier, status, reply);
}

void take_in(const join_master& m, const peer::JoinRequest& request, const std::string& caller, const std::string& caller_fingerprint,
             peer::JoinReply& reply) {
  auto refuse = [&](const api::api_error& e) {
    spdlog::warn("pool.join.refused host={} raft_address={} error=\"{}\"", request.host_uuid(), request.raft_address(), describe(e));
    add_error(reply, e);
  };
  if (auto st = m.authenticate(request.username(), request.password(), caller); !st) return refuse(st.error());
  const auto status = m.log->status();
  auto pool = m.db->snapshot();
  if (status.state != storage::raft_status::role_state::leader)
    return refuse(api::errors::HOST_IS_SLAVE(master_api_address(*pool, status)));
  // The certificate it hands over is the one it proved it holds on this connection.
  auto fingerprint = certificate_fingerprint(request.certificate_pem());
  if (!fingerprint || caller_fingerprint.empty() || *fingerprint != caller_fingerprint)
    return refuse(api::errors::INTERNAL_ERROR("the joining host's certificate is not the one it presents"));
  if (request.raft_id() == 0 || request.raft_id() > 0x7fffffffffffffffULL || request.raft_address().empty() ||
      request.peer_address().empty())
    return refuse(api::errors::INTERNAL_ERROR("the joining host gave no usable addresses in the pool"));
  // The same host asking again — its certificate, its uuid, its addresses — after a join this
  // pool took in and whose answer it never got (the master or the connection went between the
  // commit and the answer): it is answered again, its place in the log made whole, rather than
  // refused as "already part of a pool" while it stays alone.
  // (Never the master itself: a host asked to join its own pool is refused by the checks.)
  if (auto earlier = member_by_fingerprint(*pool, *fingerprint);
      earlier && earlier->raft_id != m.identity.raft_id && earlier->raft_id != status.leader.id &&
      earlier->host_uuid == request.host_uuid() && earlier->raft_address == request.raft_address() &&
      earlier->peer_address == request.peer_address()) {
    answer_again(m, *earlier, status, reply);
    return;
  }
  if (member_by_raft_id(*pool, request.raft_id()) || request.raft_id() == m.identity.raft_id)
    return refuse(api::errors::INTERNAL_ERROR("the joining host's id in the pool's log is taken: try again"));
  if (status.snapshot_index == 0)
    return refuse(api::errors::INTERNAL_ERROR("the pool's log has not taken its first snapshot yet: try again"));
  auto joiner = storage::read_checkpoint(request.checkpoint());
  if (!joiner) return refuse(api::errors::INTERNAL_ERROR("the joining host's database cannot be read: " + joiner.error()));

  auto failures = join_failures(**joiner, *pool, request.force());
  if (!failures.empty()) {
    for (const auto& f : failures) refuse(f);
    return;
  }

  // The transaction that takes the host in, then its place in the log: a spare first (it gets
  // nothing), the rows, then a standby (a replica). Any step that fails undoes the ones before.
  auto objects = join_objects(**joiner, *pool);
  if (!objects) return refuse(objects.error());
  auto t = m.db->begin();
  t.ops() = std::move(objects).value();
  const auto joiner_host = (*joiner)->ref_by_uuid(storage::schema::get().class_of<api::host>(), request.host_uuid());
  if (!joiner_host) return refuse(api::errors::INTERNAL_ERROR("the joining host's database has no host " + request.host_uuid()));
  // Its record in the pool replaces what its own pool of one said of it.
  member_record record{*joiner_host, request.host_uuid(), request.raft_id(), request.raft_address(), request.peer_address(), *fingerprint};
  const std::size_t host_cls = storage::schema::get().class_of<api::host>();
  const std::size_t other_config = *storage::schema::get().field_index(host_cls, "other_config");
  for (auto& o : t.ops()) {
    if (o.kind != storage::op_kind::create || o.cls != host_cls || o.ref != *joiner_host) continue;
    // A create carries the whole record, its fields in the schema's order.
    wire::array* fields = o.value.as_array();
    wire::structure* found = fields && other_config < fields->size() ? (*fields)[other_config].as_struct() : nullptr;
    if (!found) return refuse(api::errors::INTERNAL_ERROR("the joining host's record has no other_config"));
    wire::structure& entries = *found;
    std::erase_if(entries, [](const auto& e) { return e.first.starts_with(reserved_prefix); });
    for (auto& [key, value] : reserved_entries(record)) entries.emplace_back(key, wire::value(value));
  }
  // The pool's shared SRs reach the new host too: a PBD of each, with the device_config of one
  // the pool has, unplugged (the host plugs it when it starts as a member).
  pool->for_each_of<api::sr>([&](const std::string& sr, const api::sr& rec) {
    if (!rec.shared) return true;
    const auto pbds = pool->refs_where<api::pbd>("SR", sr);
    if (pbds.empty()) return true;
    api::pbd pbd;
    pbd.uuid = m.db->ids().uuid();
    pbd.host.opaque = *joiner_host;
    pbd.SR.opaque = sr;
    pbd.device_config = pool->get<api::pbd>(pbds.front())->device_config;
    t.create(pbd);
    return true;
  });
  std::vector<std::pair<std::size_t, std::string>> created;
  for (const auto& o : t.ops())
    if (o.kind == storage::op_kind::create) created.emplace_back(o.cls, o.ref);

  const storage::raft_member member{request.raft_id(), request.raft_address()};
  // A host that comes back at the same address (destroyed or ejected while it was down) may
  // still have its old place in the log, which the keeper would remove in a while: it goes now.
  // The address of a member the pool still has is refused.
  for (const auto& server : status.configuration) {
    if (server.member.address != member.address) continue;
    if (auto holder = member_by_raft_id(*pool, server.member.id))
      return refuse(api::errors::INTERNAL_ERROR("the joining host's address in the pool's log, " + member.address +
                                                ", is host " + holder->host_uuid + "'s"));
    if (auto removed = m.log->remove(server.member.id, m.membership_timeout); !removed)
      return refuse(api::errors::INTERNAL_ERROR("the pool's log cannot take the host: " + removed.error()));
    spdlog::info("pool.member.removed raft_id={} address={} reason=address_taken_again", server.member.id, server.member.address);
  }
  if (auto added = m.log->add(member, m.membership_timeout); !added)
    return refuse(api::errors::INTERNAL_ERROR("the pool's log cannot take the host: " + added.error()));
  auto committed = m.db->commit(std::move(t));
  if (!committed) {
    (void)m.log->remove(member.id, m.membership_timeout);
    return refuse(committed.error());
  }
  if (auto standby = m.log->assign(member.id, storage::raft_role::standby, m.membership_timeout); !standby) {
    auto undo = m.db->begin();
    for (auto it = created.rbegin(); it != created.rend(); ++it) undo.destroy(it->first, it->second);
    if (auto undone = m.db->commit(std::move(undo)); !undone)
      spdlog::error("pool.join.undo_failed host={} error=\"{}\"", request.host_uuid(), describe(undone.error()));
    (void)m.log->remove(member.id, m.membership_timeout);
    return refuse(api::errors::INTERNAL_ERROR("the pool's log cannot make the host a replica: " + standby.error()));
  }
  answer_taken_in(m, member.id, reply);
  spdlog::info("pool.join.accepted host={} raft_id={} raft_address={} peer_address={} objects={}", request.host_uuid(),
               request.raft_id(), request.raft_address(), request.peer_address(), created.size());
}

namespace {

// Whether the pool at `address` took this host in (JoinedAs, by this host's certificate),
// asked again for up to `limit` while it cannot be reached.
result<peer::JoinReply, peer_client::joined_as_failure> ask_taken_in(peer_client& client, const std::string& address,
                                                                    const std::string& host_uuid, std::chrono::seconds limit) {
  peer::JoinedAsRequest q;
  q.set_host_uuid(host_uuid);
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto r = client.joined_as(address, q, std::chrono::seconds(5));
    if (r || r.error().stranger || std::chrono::steady_clock::now() >= until) return r;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// The master's answer kept: DIR/join-accepted for the restart that follows (the join pending
// no more). `asked_raft_id`: the id this host asked to join with (0: none, a JoinedAs).
api::status keep_membership(const std::string& data_dir, const std::string& master, const peer::JoinReply& reply,
                            std::uint64_t asked_raft_id) {
  if (reply.errors_size() > 0) {
    for (const auto& e : reply.errors()) spdlog::warn("pool.join.refused master={} error=\"{}\"", master, describe(from_proto(e)));
    return fail(from_proto(reply.errors(0)));
  }
  // Its id in the pool's log: the one asked for, or the one an earlier, unanswered join took.
  const std::uint64_t raft_id = reply.raft_id() != 0 ? reply.raft_id() : asked_raft_id;
  if (raft_id == 0 || reply.pool_id().size() != 16 || reply.secret().size() != 32 || reply.root_password_hash().empty() ||
      reply.root_password_hash().find('\n') != std::string::npos) {
    spdlog::error("pool.join.failed master={} reason=\"the master's answer is not complete\"", master);
    return fail(api::errors::JOINING_HOST_SERVICE_FAILED());
  }
  member_identity id{raft_id, reply.pool_id(), reply.secret(), false,
                     std::vector<std::uint64_t>(reply.member_raft_ids().begin(), reply.member_raft_ids().end()),
                     reply.joined_at_index()};
  if (auto kept = accept_membership(data_dir, id, reply.root_password_hash()); !kept)
    return fail(api::errors::INTERNAL_ERROR(kept.error() + ": the master has taken this host in; eject it and join again"));
  std::error_code ec;
  std::filesystem::remove(data_dir + "/" + std::string(pending_file), ec);
  spdlog::info("pool.join.accepted master={} raft_id={} (restarting as a member)", master, id.raft_id);
  return ok_v;
}

}  // namespace

api::status join_pool(const joining_host& self, const join_request& request) {
  auto target = master_peer_address(request.master_address, self.listen);
  if (!target) {
    spdlog::warn("pool.join.failed master={} reason=\"{}\"", request.master_address, target.error());
    return fail(api::errors::JOINING_HOST_CONNECTION_FAILED());
  }
  peer::JoinRequest q;
  q.set_username(request.username);
  q.set_password(request.password);
  q.set_force(request.force);
  q.set_checkpoint(self.db->export_checkpoint());
  q.set_host_uuid(self.host_uuid);
  q.set_raft_id(member_identity::new_pool().raft_id);  // a new id, never one used before
  q.set_raft_address(self.raft_address);
  q.set_peer_address(self.peer_address);
  q.set_certificate_pem(self.certificate_pem);
  const std::string pending = self.data_dir + "/" + std::string(pending_file);
  if (!write_private_file(pending, *target + "\n")) return fail(api::errors::INTERNAL_ERROR("cannot write " + pending));
  auto reply = self.client->join(*target, q, std::chrono::seconds(120));
  if (!reply) {
    // Sent, and maybe taken in with its answer lost (the master went between its commit and its
    // answer): asked by this host's certificate whether it is a member now.
    spdlog::warn("pool.join.failed master={} reason=\"{}\" (asking whether it was taken in)", *target, reply.error());
    auto taken = ask_taken_in(*self.client, *target, self.host_uuid, std::chrono::seconds(10));
    if (taken) return keep_membership(self.data_dir, *target, *taken, q.raft_id());
    std::error_code ec;
    if (taken.error().stranger) std::filesystem::remove(pending, ec);
    else spdlog::warn("pool.join.unresolved master={} (this host asks again when it starts)", *target);
    return fail(api::errors::JOINING_HOST_CONNECTION_FAILED());
  }
  if (reply->errors_size() > 0) {
    std::error_code ec;
    std::filesystem::remove(pending, ec);
  }
  return keep_membership(self.data_dir, *target, *reply, q.raft_id());
}

result<bool, std::string> resolve_pending_join(const std::string& data_dir, const std::string& host_uuid, peer_client& client) {
  const std::string path = data_dir + "/" + std::string(pending_file);
  auto text = read_whole_file(path);
  if (!text) return false;
  std::string master = text->substr(0, text->find('\n'));
  auto taken = ask_taken_in(client, master, host_uuid, std::chrono::seconds(10));
  if (taken) {
    if (auto kept = keep_membership(data_dir, master, *taken, 0); !kept) return fail("pool.join: " + kept.error().description().at(0));
    return true;
  }
  if (!taken.error().stranger) {
    spdlog::warn("pool.join.unresolved master={} reason=\"{}\" (asked again at the next start)", master, taken.error().why);
    return false;
  }
  spdlog::info("pool.join.not_taken_in master={} (the join this host asked for before it stopped did not happen)", master);
  std::error_code ec;
  std::filesystem::remove(path, ec);
  return false;
}

result<void, std::string> accept_membership(const std::string& data_dir, const member_identity& id, const std::string& root_password_hash) {
  const std::string path = data_dir + "/" + std::string(accepted_file);
  if (!write_private_file(path, to_text(id) + std::string(root_hash_name) + root_password_hash + "\n")) return fail("cannot write " + path);
  return ok_v;
}

bool membership_accepted(const std::string& data_dir) {
  std::error_code ec;
  return std::filesystem::exists(data_dir + "/" + std::string(accepted_file), ec);
}

result<bool, std::string> finish_accepted_join(const std::string& data_dir) {
  const std::string path = data_dir + "/" + std::string(accepted_file);
  auto text = read_whole_file(path);
  if (!text) return false;
  const auto at = text->find(root_hash_name);
  const auto end = at == std::string::npos ? at : text->find('\n', at);
  if (at == std::string::npos || end == std::string::npos) return fail(path + ": no root password hash");
  const std::string hash = text->substr(at + root_hash_name.size(), end - at - root_hash_name.size());
  auto id = parse_identity(std::string_view(*text).substr(0, at));
  if (!id) return fail(path + ": " + id.error());
  if (!write_private_file(data_dir + "/root-password.hash", hash + "\n")) return fail("cannot write " + data_dir + "/root-password.hash");
  std::error_code ec;
  for (const char* old : {"db", "raft"}) {
    std::filesystem::remove_all(data_dir + "/" + old, ec);
    if (ec) return fail("cannot remove " + data_dir + "/" + old + ": " + ec.message());
  }
  if (auto saved = save_identity(data_dir, *id); !saved) return fail(saved.error());
  std::filesystem::remove(data_dir + "/" + std::string(pending_file), ec);  // the join it was is done
  if (::unlink(path.c_str()) != 0) return fail("cannot remove " + path);
  spdlog::info("pool.join.finished raft_id={} (the database comes from the pool's master)", id->raft_id);
  return true;
}

}  // namespace xapid::pool
