#include "pool/emergency.hpp"

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "common/private_file.hpp"
#include "pool/join.hpp"
#include "pool/pool_log.hpp"

namespace xapid::pool {
namespace {

constexpr std::string_view emergency_master_file = "emergency-master";

bool in_log(const storage::raft_status& st, std::uint64_t raft_id) {
  return std::any_of(st.configuration.begin(), st.configuration.end(), [&](const auto& s) { return s.member.id == raft_id; });
}

std::string host_part(const std::string& address) {
  auto colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

void set_error(const api::api_error& e, peer::ApiError& out) {
  out.set_code(std::string(api::to_string(e.code)));
  for (const auto& p : e.params) out.add_params(p);
}

}  // namespace

bool emergency_master_marked(const std::string& data_dir) {
  std::error_code ec;
  return std::filesystem::exists(data_dir + "/" + std::string(emergency_master_file), ec);
}

result<void, std::string> clear_emergency_master_mark(const std::string& data_dir) {
  const std::string mark = data_dir + "/" + std::string(emergency_master_file);
  std::error_code ec;
  std::filesystem::remove(mark, ec);
  if (ec) return fail("cannot remove " + mark + ": " + ec.message());
  return ok_v;
}

api::status emergency_transition_to_master(const emergency_side& e) {
  auto s = e.master.db->snapshot();
  if (auto st = ha_off(*s); !st) return st;
  const auto status = e.master.log->status();
  if (status.ready) return ok_v;  // the master already: nothing to do (xapi's CLI says so)
  // Beyond xapi, which would split the pool: a master that answers is handed the role instead.
  if (status.leader.id != 0 && status.leader.id != e.identity.raft_id)
    if (auto m = member_by_raft_id(*s, status.leader.id);
        m && !m->peer_address.empty() && e.master.peers->ping(m->peer_address, m->fingerprint, e.master.reach_timeout))
      return fail(api::errors::OPERATION_NOT_ALLOWED("the pool's master (host " + m->host_uuid +
                                                     ") answers: hand its role over with pool.designate_new_master"));
  return recover_alone(e, "the old master, if it still runs, must be fenced");
}

api::status recover_alone(const emergency_side& e, const std::string& why) {
  const std::string mark = e.data_dir + "/" + std::string(emergency_master_file);
  if (!write_private_file(mark, "the pool's log is recovered with this host as its only voter at the next start\n"))
    return fail(api::errors::INTERNAL_ERROR("cannot write " + mark));
  spdlog::warn("pool.emergency_transition_to_master raft_id={} term={} (restarting as the pool's only voter; what only the "
               "lost voters held is gone: {})",
               e.identity.raft_id, e.master.log->status().term, why);
  e.restart();
  return ok_v;
}

api::status emergency_reset_master(const emergency_side& e, const std::string& master_address) {
  auto s = e.master.db->snapshot();
  if (auto st = ha_off(*s); !st) return st;
  auto target = master_peer_address(master_address, e.listen);
  if (!target) return fail(api::errors::INVALID_VALUE("master_address", master_address));
  const std::string own_host = host_part(e.listen);
  if (*target == e.peer_address || host_part(*target) == own_host) return fail(api::errors::HOST_ITS_OWN_SLAVE());
  // The master is one of this pool's members: its peer service is reached with the certificate
  // the pool pins for it.
  for (const member_record& m : members(*s))
    if (m.peer_address == *target) return follow_master(e, m);
  return fail(api::errors::OPERATION_NOT_ALLOWED("no host of this pool serves at " + master_address));
}

api::status follow_master(const emergency_side& e, const member_record& master) {
  if (master.raft_id == e.identity.raft_id) return fail(api::errors::HOST_ITS_OWN_SLAVE());
  peer::RejoinRequest q;
  q.set_raft_address(e.raft_address);
  auto reply = e.master.peers->rejoin(master.peer_address, master.fingerprint, q, e.rejoin_timeout);
  if (!reply) {
    spdlog::warn("pool.emergency_reset_master.failed master={} reason=\"{}\"", master.peer_address, reply.error());
    return fail(api::errors::HOST_OFFLINE(master.host_ref));
  }
  if (reply->has_error()) return fail(from_proto(reply->error()));
  if (reply->already_member()) return ok_v;  // it follows that master already
  member_identity id{reply->raft_id(), e.identity.pool_id, e.identity.secret, false,
                     std::vector<std::uint64_t>(reply->member_raft_ids().begin(), reply->member_raft_ids().end()),
                     reply->joined_at_index()};
  // Root's password stays this host's own (the pool's: the master gave it at the join).
  const std::string hash_path = e.data_dir + "/root-password.hash";
  auto hash = read_whole_file(hash_path);
  if (!hash || hash->empty()) return fail(api::errors::INTERNAL_ERROR("cannot read " + hash_path));
  if (hash->back() == '\n') hash->pop_back();
  if (auto kept = accept_membership(e.data_dir, id, *hash); !kept)
    return fail(api::errors::INTERNAL_ERROR(kept.error() + ": the master has taken this host back; run pool.recover_slaves again"));
  spdlog::warn("pool.emergency_reset_master master={} raft_id={} (restarting: this host's database and log are replaced by the master's)",
               master.peer_address, id.raft_id);
  e.restart();
  return ok_v;
}

api::api_result<std::vector<std::string>> recover_slaves(const emergency_side& e) {
  if (auto st = ha_off(*e.master.db->snapshot()); !st) return fail(std::move(st).error());
  return call_back_members(e);
}

api::api_result<std::vector<std::string>> call_back_members(const emergency_side& e) {
  auto s = e.master.db->snapshot();
  if (auto st = on_master(e.master, *s); !st) return fail(std::move(st).error());
  const auto status = e.master.log->status();
  std::vector<std::string> recovered;
  // Each member outside the log rejoins this master and restarts; one that does not answer, or
  // refuses, is left out (xapi swallows their errors too).
  for (const member_record& m : members(*s)) {
    if (m.raft_id == e.identity.raft_id || in_log(status, m.raft_id) || m.peer_address.empty()) continue;
    auto reply = e.master.peers->reset_master(m.peer_address, m.fingerprint, e.rejoin_timeout + std::chrono::seconds(10));
    if (reply && !reply->has_error()) {
      spdlog::info("pool.recover_slaves.recovered host={}", m.host_uuid);
      recovered.push_back(m.host_ref);
    } else {
      spdlog::warn("pool.recover_slaves.not_recovered host={} reason=\"{}\"", m.host_uuid,
                   reply ? from_proto(reply->error()).description().at(0) : reply.error());
    }
  }
  return recovered;
}

void take_back(const master_side& m, const std::string& caller_fingerprint, const peer::RejoinRequest& request,
               peer::RejoinReply& reply) {
  auto s = m.db->snapshot();
  // Under HA too: its master calls back the hosts that return after it recovered alone.
  if (auto st = on_master(m, *s); !st) return set_error(st.error(), *reply.mutable_error());
  auto member = member_by_fingerprint(*s, caller_fingerprint);
  if (!member) return set_error(api::errors::HOST_UNKNOWN_TO_MASTER(""), *reply.mutable_error());
  const auto status = m.log->status();
  if (member->raft_id == status.leader.id) return set_error(api::errors::HOST_ITS_OWN_SLAVE(), *reply.mutable_error());
  if (in_log(status, member->raft_id)) return reply.set_already_member(true);
  const std::string& raft_address = request.raft_address();
  if (raft_address.empty() || raft_address.size() > 256 || raft_address.find(':') == std::string::npos)
    return set_error(api::errors::INVALID_VALUE("raft_address", raft_address.substr(0, 256)), *reply.mutable_error());
  // A new id, as at a join: the old one's entries and votes stay with the old log.
  member_record back = *member;
  back.raft_id = member_identity::new_pool().raft_id;
  back.raft_address = raft_address;
  if (auto st = publish_own_record(*m.db, back); !st) return set_error(st.error(), *reply.mutable_error());
  const std::uint64_t recorded_at = m.db->applied_log_index();
  const std::chrono::milliseconds limit{60000};
  auto added = m.log->add({back.raft_id, raft_address}, limit);
  if (added) added = m.log->assign(back.raft_id, storage::raft_role::standby, limit);
  if (!added) {
    spdlog::warn("pool.rejoin.failed host={} raft_id={} reason=\"{}\"", member->host_uuid, back.raft_id, added.error());
    return set_error(api::errors::INTERNAL_ERROR("taking host " + member->host_uuid + " back into the pool's log: " + added.error()),
                     *reply.mutable_error());
  }
  spdlog::info("pool.rejoin host={} raft_id={} (its old id {} had left the log)", member->host_uuid, back.raft_id, member->raft_id);
  reply.set_raft_id(back.raft_id);
  for (const auto& server : m.log->status().configuration) reply.add_member_raft_ids(server.member.id);
  reply.set_joined_at_index(recorded_at);
}

}  // namespace xapid::pool
