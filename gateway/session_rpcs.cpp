#include "gateway/session_rpcs.hpp"

#include <set>

#include "gateway/external_auth.hpp"
#include "gateway/passwords.hpp"

namespace xapid::gateway {
namespace {

std::string string_at(const wire::array& p, std::size_t i) {
  return i < p.size() && p[i].as_string() ? *p[i].as_string() : std::string();
}

}  // namespace

void register_session_rpcs(dispatcher& d, session_manager& sessions, storage::database& db, root_account& root,
                           std::chrono::milliseconds failed_login_delay) {
  auto login = [&sessions, &root, &db, failed_login_delay](call_context& ctx,
                                                       const wire::array& p) -> api::api_result<wire::value> {
    if (!p[0].as_string() || !p[1].as_string()) return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
    const std::string& user = *p[0].as_string();
    const std::string& password = *p[1].as_string();
    const std::string originator = string_at(p, 3);
    bool trusted_local = ctx.from_unix_socket && user.empty() && password.empty();
    bool ok = trusted_local;
    if (!ok && user == "root") {
      std::string hash;
      {
        std::lock_guard lock(root.mu);
        hash = root.hash;
      }
      ok = verify_password(password, hash);
    }
    if (!ok && user != "root" && !user.empty()) {
      auto id = authenticate_external(db, sessions.this_host(), user, password);
      if (id) {
        auto ref = sessions.create_subject_session(originator, id->subject, id->sid, id->user, id->role_level);
        if (!ref) return fail(ref.error());
        return wire::value(*ref);
      }
    }
    if (!ok) {
      ctx.answer_delay = failed_login_delay;
      return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
    }
    auto ref = sessions.create_root_session(originator);
    if (!ref) return fail(ref.error());
    return wire::value(*ref);
  };
  // Logins hash a password (yescrypt: ~20 ms of CPU here) or ask PAM, and commit a session:
  // off the serving threads, as the other calls below that commit.
  d.add_blocking("session.login_with_password", login, 2);
  d.add_blocking("session.slave_local_login_with_password", login);

  auto logout = [&sessions](call_context& ctx, const wire::array&) -> api::api_result<wire::value> {
    if (auto st = sessions.destroy(ctx.session); !st) return fail(st.error());
    return wire::value("");
  };
  d.add_blocking("session.logout", logout);
  d.add_blocking("session.local_logout", logout);

  d.add_blocking("session.change_password", [&root](call_context&, const wire::array& p) -> api::api_result<wire::value> {
    std::string old_pwd = string_at(p, 0), new_pwd = string_at(p, 1);
    std::lock_guard lock(root.mu);
    if (!verify_password(old_pwd, root.hash))
      return fail(api::errors::CHANGE_PASSWORD_REJECTED("the old password is not the current one"));
    if (new_pwd.empty()) return fail(api::errors::CHANGE_PASSWORD_REJECTED("the new password is empty"));
    std::string hash = hash_password(new_pwd);
    if (auto st = store_root_hash(root.data_dir, hash); !st) return fail(api::errors::INTERNAL_ERROR(st.error()));
    root.hash = hash;
    return wire::value("");
  });

  const std::size_t cls = storage::schema::get().class_of<api::session>();
  d.add("session.get_all_subject_identifiers", [&db, cls](call_context&, const wire::array&) -> api::api_result<wire::value> {
    std::set<std::string> sids;
    db.snapshot()->for_each(cls, [&](const std::string&, const storage::row& r) {
      const auto& s = *static_cast<const api::session*>(r.record.get());
      if (!s.auth_user_sid.empty()) sids.insert(s.auth_user_sid);
      return true;
    });
    wire::array out;
    for (const auto& s : sids) out.emplace_back(s);
    return wire::value(std::move(out));
  });
  d.add_blocking("session.logout_subject_identifier",
        [&db, &sessions, cls](call_context& ctx, const wire::array& p) -> api::api_result<wire::value> {
          std::string sid = string_at(p, 0);
          std::vector<std::string> refs;
          db.snapshot()->for_each(cls, [&](const std::string& ref, const storage::row& r) {
            if (static_cast<const api::session*>(r.record.get())->auth_user_sid == sid && ref != ctx.session)
              refs.push_back(ref);
            return true;
          });
          for (const auto& ref : refs) (void)sessions.destroy(ref);
          return wire::value("");
        });
}

}  // namespace xapid::gateway
