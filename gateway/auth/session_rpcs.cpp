#include "gateway/auth/session_rpcs.hpp"

#include <mutex>
#include <set>

#include <spdlog/spdlog.h>

#include "gateway/auth/passwords.hpp"
#include "gateway/rpc/typed_rpcs.hpp"

namespace xapid::gateway {
namespace {

std::string string_at(const wire::array& p, std::size_t i) {
  return i < p.size() && p[i].as_string() ? *p[i].as_string() : std::string();
}

// On a member of a pool, the address of its master: a client logs in there (xapi's rule, which
// XenAPI clients follow); empty on the master itself, or while no master is known.
std::string master_elsewhere(const storage::state& s, const std::string& this_host) {
  const api::pool* pool = s.first<api::pool>();
  if (!pool || pool->master.opaque == this_host) return {};
  const api::host* master = s.get<api::host>(pool->master.opaque);
  return master ? master->address : std::string();
}

}  // namespace

void register_session_rpcs(dispatcher& d, session_manager& sessions, storage::database& db, root_account& root,
                           login_guard& logins) {
  auto login = [&sessions, &logins, &db](call_context& ctx, const wire::array& p) -> api::api_result<wire::value> {
    // Over the network a member sends the client to its master, before any password is looked
    // at; its own socket (root), and slave_local_login_with_password (below: for when the
    // master cannot be reached), log in here.
    if (!ctx.from_unix_socket)
      if (std::string master = master_elsewhere(*db.snapshot(), sessions.this_host()); !master.empty())
        return fail(api::errors::HOST_IS_SLAVE(master));
    const std::string originator = string_at(p, 3);
    auto failed = [&] {
      ctx.answer_delay = logins.remaining_delay(ctx.started);
      return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
    };
    if (!p[0].as_string() || !p[1].as_string()) return failed();
    const std::string& user = *p[0].as_string();
    const std::string& password = *p[1].as_string();
    // A local peer is root already: an empty user and password are its login.
    if (ctx.from_unix_socket && user.empty() && password.empty()) {
      auto ref = sessions.create_root_session(originator);
      if (!ref) return fail(ref.error());
      return wire::value(*ref);
    }
    auto who = logins.authenticate({user, password, ctx.client});
    if (!who) return failed();
    auto ref = who->root ? sessions.create_root_session(originator)
                         : sessions.create_subject_session(originator, who->subject, who->sid, who->user);
    if (!ref) return ref.error().code == api::error_code::SESSION_AUTHENTICATION_FAILED ? failed() : fail(ref.error());
    return wire::value(*ref);
  };
  // Logins hash a password (yescrypt: ~20 ms of CPU here) or ask PAM, and commit a session:
  // off the serving threads, as the other calls below that commit.
  // Untyped: a non-string user or password fails as any login (same delay); version, originator are never refused.
  d.add_blocking("session.login_with_password", login, 2);
  // Root only, as xapi's: a session in memory, for a host whose pool may have no master.
  d.add_blocking("session.slave_local_login_with_password", [&sessions, &logins](call_context& ctx, const wire::array& p)
                                                                -> api::api_result<wire::value> {
    const std::string user = string_at(p, 0), password = string_at(p, 1);
    const bool root = ctx.from_unix_socket && user.empty() && password.empty() ? true : [&] {
      auto who = logins.authenticate({user, password, ctx.client});
      return who && who->root;
    }();
    if (!root) {
      ctx.answer_delay = logins.remaining_delay(ctx.started);
      return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
    }
    return wire::value(sessions.create_local_root_session("slave_local_login"));
  });

  namespace m = api::method;
  constexpr bool blocking = true;  // each commits
  auto logout = [&sessions](call_context& ctx) { return sessions.destroy(ctx.session); };
  add_typed<m::session_logout>(d, logout, blocking);
  add_typed<m::session_local_logout>(d, logout, blocking);

  add_typed<m::session_change_password>(d, [&root, &db](call_context& ctx, const std::string& old_pwd,
                                                        const std::string& new_pwd) -> api::status {
    // root's password is root's to change (xapi: local root only).
    if (!ctx.who.superuser) return fail(api::errors::PERMISSION_DENIED("only root may change root's password"));
    static std::mutex one_at_a_time;  // two changes never both check the same old hash
    std::lock_guard serial(one_at_a_time);
    const std::string current = current_root_hash(root, db);
    if (!verify_password(old_pwd, current))
      return fail(api::errors::CHANGE_PASSWORD_REJECTED("the old password is not the current one"));
    if (new_pwd.empty()) return fail(api::errors::CHANGE_PASSWORD_REJECTED("the new password is empty"));
    for (unsigned char c : new_pwd)
      if (c < 0x20 || c == 0x7f) return fail(api::errors::CHANGE_PASSWORD_REJECTED("the new password has control characters"));
    std::string hash = hash_password(new_pwd);
    // Through the pool's log: acknowledged once a majority holds it, so every host takes it and
    // no failover brings the old one back (the master carries every change out, one at a time).
    auto t = db.begin();
    t.set_private(std::string(root_hash_name), hash);
    if (auto done = db.commit(std::move(t)); !done) return fail(done.error());
    // This host's own copy, for a start before the pool's database is read (best effort: the
    // pool's value is the one logins use).
    std::lock_guard lock(root.mu);
    if (auto st = store_root_hash(root.data_dir, hash); !st) spdlog::warn("session.change_password.local_copy_failed reason=\"{}\"", st.error());
    root.hash = hash;
    return ok_v;
  }, blocking);

  const std::size_t cls = storage::schema::get().class_of<api::session>();
  add_typed<m::session_get_all_subject_identifiers>(d, [&db, cls](call_context&) -> api::api_result<std::vector<std::string>> {
    std::set<std::string> sids;
    db.snapshot()->for_each(cls, [&](const std::string&, const storage::row& r) {
      const auto& s = *static_cast<const api::session*>(r.record.get());
      if (!s.auth_user_sid.empty()) sids.insert(s.auth_user_sid);
      return true;
    });
    return std::vector<std::string>(sids.begin(), sids.end());
  });
  // As xapi: every session of the subject but the caller's own; never a local superuser's.
  add_typed<m::session_logout_subject_identifier>(d, [&sessions](call_context& ctx, const std::string& sid) -> api::status {
    if (sid.empty()) return ok_v;
    sessions.destroy_where([&](const std::string& ref, const caller& owner) {
      return !owner.superuser && owner.identity == sid && ref != ctx.session;
    });
    return ok_v;
  }, blocking);
}

}  // namespace xapid::gateway
