#include "pool/master_duties.hpp"

#include <filesystem>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/clock.hpp"
#include "common/private_file.hpp"
#include "pool/departure_objects.hpp"
#include "pool/membership.hpp"

namespace xapid::pool {
namespace {

constexpr std::string_view ejected_file = "ejected";


api::api_result<member_record> reachable_member(const master_side& m, const storage::state& s, const std::string& host) {
  if (!s.get<api::host>(host)) return fail(api::errors::HANDLE_INVALID("host", host));
  auto member = member_of_host(s, host);
  if (!member || member->peer_address.empty()) return fail(api::errors::HOST_OFFLINE(host));
  if (!m.peers->ping(member->peer_address, member->fingerprint, m.reach_timeout)) return fail(api::errors::HOST_OFFLINE(host));
  return *member;
}

// Polls `done` every 50 ms until it holds or `limit` passes.
template <class F>
bool wait_until(std::chrono::milliseconds limit, F done) {
  const auto until = monotonic_now() + limit;
  for (;;) {
    if (done()) return true;
    if (monotonic_now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

api::status on_master(const master_side& m, const storage::state& s) {
  if (m.log->status().ready) return ok_v;
  const api::pool* pool = s.first<api::pool>();
  const api::host* master = pool ? s.get<api::host>(pool->master.opaque) : nullptr;
  return fail(api::errors::HOST_IS_SLAVE(master ? master->address : std::string()));
}

api::status ha_off(const storage::state& s) {
  if (const api::pool* pool = s.first<api::pool>(); pool && pool->ha_enabled) return fail(api::errors::HA_IS_ENABLED());
  return ok_v;
}

api::status master_checks(const master_side& m, const storage::state& s) {
  if (auto st = ha_off(s); !st) return st;
  return on_master(m, s);
}

api::status designate_new_master(const master_side& m, const std::string& host) {
  auto s = m.db->snapshot();
  if (auto st = master_checks(m, *s); !st) return st;
  if (host == m.this_host) return ok_v;  // it is the master already
  auto member = reachable_member(m, *s, host);
  if (!member) return fail(std::move(member).error());
  spdlog::info("pool.designate_new_master host={} raft_id={}", host, member->raft_id);
  if (auto moved = m.keeper->hand_over(member->raft_id, std::chrono::seconds(30)); !moved)
    return fail(api::errors::INTERNAL_ERROR("handing the master's role to host " + member->host_uuid + ": " + moved.error()));
  // The new master's keeper writes pool.master; it reaches this replica soon after.
  const bool named = wait_until(std::chrono::seconds(15), [&] {
    const api::pool* pool = m.db->snapshot()->first<api::pool>();
    return pool && pool->master.opaque == host;
  });
  if (!named)
    return fail(api::errors::INTERNAL_ERROR("host " + member->host_uuid + " leads the pool's log, but pool.master does not name it yet"));
  return ok_v;
}

api::status eject(const master_side& m, const std::string& host) {
  auto s = m.db->snapshot();
  if (auto st = master_checks(m, *s); !st) return st;
  if (!s->get<api::host>(host)) return fail(api::errors::HANDLE_INVALID("host", host));
  if (host == m.this_host) return fail(api::errors::HOST_CANNOT_DESTROY_SELF(host));
  if (auto refused = departure_refused(*s, host)) return fail(std::move(*refused));
  auto member = reachable_member(m, *s, host);
  if (!member) return fail(std::move(member).error());
  if (!m.keeper) return fail(api::errors::INTERNAL_ERROR("this host does not serve the pool yet"));
  spdlog::info("pool.eject host={} raft_id={}", host, member->raft_id);
  auto departed = m.keeper->see_off(member->raft_id, [&]() -> api::status {
    if (auto gone = remove_host_rows(*m.db, *m.db->snapshot(), host); !gone) return gone;
    // The host learns it has left from its own replica: it is waited for until it has applied
    // the change (or has gone to restart), before the log stops sending it entries.
    const std::uint64_t departed_at = m.db->applied_log_index();
    const bool told = wait_until(std::chrono::seconds(15), [&] {
      auto pong = m.peers->ping(member->peer_address, member->fingerprint, m.reach_timeout);
      return !pong || pong->applied_index() >= departed_at;
    });
    if (!told) spdlog::warn("pool.eject.unacknowledged host={} (it has not applied its departure within 15 s)", host);
    return ok_v;
  });
  if (!departed) return departed;
  spdlog::info("pool.ejected host={} raft_id={}", host, member->raft_id);
  return ok_v;
}

api::status sync_database(const master_side& m) {
  auto s = m.db->snapshot();
  if (auto st = on_master(m, *s); !st) return st;
  const std::uint64_t committed = m.db->applied_log_index();  // the master applies in order
  const auto until = monotonic_now() + std::chrono::seconds(10);
  for (const member_record& member : members(*s)) {
    if (member.host_ref == m.this_host || member.peer_address.empty()) continue;
    const bool synced = wait_until(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::max(until - monotonic_now(), decltype(until - until)::zero())),
                                   [&] {
                                     auto pong = m.peers->ping(member.peer_address, member.fingerprint, m.reach_timeout);
                                     return pong && pong->applied_index() >= committed;
                                   });
    if (!synced) spdlog::warn("pool.sync_database.member_behind host={} (it did not answer, or had not applied entry {})", member.host_uuid, committed);
  }
  return ok_v;
}

api::status remove_host_rows(storage::database& db, const storage::state& s, const std::string& host) {
  auto t = db.begin();
  if (!departure_objects(s, host, t)) return fail(api::errors::HANDLE_INVALID("host", host));
  if (auto done = db.commit(std::move(t)); !done) return fail(std::move(done).error());
  return ok_v;
}

bool mark_ejected(const std::string& data_dir) { return write_private_file(data_dir + "/" + std::string(ejected_file), "ejected\n"); }

bool ejection_marked(const std::string& data_dir) { return std::filesystem::exists(data_dir + "/" + std::string(ejected_file)); }

result<bool, std::string> finish_ejection(const std::string& data_dir) {
  const std::string mark = data_dir + "/" + std::string(ejected_file);
  if (!ejection_marked(data_dir)) return false;
  std::error_code ec;
  for (const char* old : {"db", "raft", "sr", "pool-member", "join-accepted"}) {
    std::filesystem::remove_all(data_dir + "/" + old, ec);
    if (ec) return fail("cannot remove " + data_dir + "/" + old + ": " + ec.message());
  }
  if (!std::filesystem::remove(mark, ec) || ec) return fail("cannot remove " + mark);
  spdlog::info("pool.eject.finished (this host starts again as a pool of its own)");
  return true;
}

}  // namespace xapid::pool
