// External authentication (seed: pool.enable_external_auth) with the "PAM" type: a user that PAM
// accepts logs in when a subject with their identifier ("u<uid>") exists; the subject's roles
// decide what the session may call. The settings live on the host objects as in xapi
// (external_auth_type, _service_name, _configuration); configuration["pam_service"] names the
// PAM service (default "login").
#pragma once

#include <optional>
#include <string>

#include "gateway/rpc/dispatch.hpp"
#include "storage/database.hpp"

#include "gateway/auth/passwords.hpp"

namespace xapid::gateway {

struct external_identity {
  std::string subject;       // the subject's ref
  std::string sid;           // its subject_identifier
  std::string user;          // the name the user logged in with
  std::size_t role_level;    // index in api::all_roles() of its most powerful role; npos: none
};

// SESSION_AUTHENTICATION_FAILED unless external authentication is on, PAM accepts the
// password (or accepted it a moment ago: `verified`), and a subject exists for the user (looked
// up every time, so a removed subject cannot log in even with a remembered password).
api::api_result<external_identity> authenticate_external(storage::database& db, const std::string& host,
                                                         const std::string& user, const std::string& password,
                                                         verified_credentials* verified = nullptr);

// pool.enable_external_auth / disable_external_auth and their host.* forms.
void register_external_auth_rpcs(dispatcher& d, storage::database& db);

}  // namespace xapid::gateway
