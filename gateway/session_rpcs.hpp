// The session class's own RPCs: login (2- and 4-argument forms), logout, local_logout,
// change_password and the subject-identifier calls. root authenticates against the local
// password hash; on the unix socket an empty user and password log in as root, as local tools
// expect. A failed login is answered after a delay.
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include "gateway/dispatch.hpp"
#include "gateway/sessions.hpp"

namespace xapid::gateway {

struct root_account {
  std::string data_dir;  // where the hash is kept (passwords.hpp)
  std::mutex mu;
  std::string hash;
};

void register_session_rpcs(dispatcher& d, session_manager& sessions, storage::database& db, root_account& root,
                           std::chrono::milliseconds failed_login_delay = std::chrono::milliseconds(500));

}  // namespace xapid::gateway
