// The session class's own RPCs: login (2- and 4-argument forms), logout, local_logout,
// change_password and the subject-identifier calls. Passwords are checked by the login guard
// (logins.hpp); on the unix socket an empty user and password log in as root, as local tools
// expect.
#pragma once

#include "gateway/rpc/dispatch.hpp"
#include "gateway/auth/logins.hpp"
#include "gateway/auth/sessions.hpp"

namespace xapid::gateway {

void register_session_rpcs(dispatcher& d, session_manager& sessions, storage::database& db, root_account& root,
                           login_guard& logins);

}  // namespace xapid::gateway
