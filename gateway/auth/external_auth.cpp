#include "gateway/auth/external_auth.hpp"

#include <pwd.h>
#include <security/pam_appl.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "gateway/auth/roles.hpp"
#include "gateway/rpc/typed_rpcs.hpp"
#include "xapid/api/rbac.hpp"

namespace xapid::gateway {
namespace {

std::size_t host_class() { return storage::schema::get().class_of<api::host>(); }
std::size_t host_field(const char* name) { return *storage::schema::get().field_index(host_class(), name); }

// Answers every PAM prompt for a secret with the password.
int answer_with_password(int n, const struct pam_message** msg, struct pam_response** resp, void* data) {
  auto* replies = static_cast<struct pam_response*>(std::calloc(static_cast<std::size_t>(n), sizeof(struct pam_response)));
  if (!replies) return PAM_BUF_ERR;
  for (int i = 0; i < n; ++i)
    if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
      replies[i].resp = ::strdup(static_cast<const char*>(data));
  *resp = replies;
  return PAM_SUCCESS;
}

// PAM modules sleep after a failure (pam_faildelay, pam_unix's own ~2 s). The login guard
// answers every failure at one fixed time instead: a module's sleep would hold a thread, and a
// failure that answers sooner or later than another tells which check failed.
void no_fail_delay(int, unsigned, void*) {}

// Whether the account may log in now (not locked, not expired): PAM's account management
// alone, without a password. A password remembered by the login guard is still subject to it.
bool pam_account_valid(const std::string& service, const std::string& user) {
  struct pam_conv conv = {answer_with_password, const_cast<char*>("")};
  pam_handle_t* handle = nullptr;
  if (::pam_start(service.c_str(), user.c_str(), &conv, &handle) != PAM_SUCCESS) return false;
  (void)::pam_set_item(handle, PAM_FAIL_DELAY, reinterpret_cast<const void*>(&no_fail_delay));
  int rc = ::pam_acct_mgmt(handle, PAM_SILENT);
  ::pam_end(handle, rc);
  return rc == PAM_SUCCESS;
}

bool pam_accepts(const std::string& service, const std::string& user, const std::string& password) {
  struct pam_conv conv = {answer_with_password, const_cast<char*>(password.c_str())};
  pam_handle_t* handle = nullptr;
  if (::pam_start(service.c_str(), user.c_str(), &conv, &handle) != PAM_SUCCESS) return false;
  (void)::pam_set_item(handle, PAM_FAIL_DELAY, reinterpret_cast<const void*>(&no_fail_delay));
  int rc = ::pam_authenticate(handle, PAM_SILENT);
  if (rc == PAM_SUCCESS) rc = ::pam_acct_mgmt(handle, PAM_SILENT);
  ::pam_end(handle, rc);
  return rc == PAM_SUCCESS;
}

using string_map = api::map<std::string, std::string>;

api::status set_auth(storage::database& db, const std::vector<std::string>& hosts, const string_map& config,
                     const std::string& service, const std::string& type) {
  auto t = db.begin();
  for (const auto& h : hosts) {
    t.set(host_class(), h, host_field("external_auth_type"), wire::value(type));
    t.set(host_class(), h, host_field("external_auth_service_name"), wire::value(service));
    t.set(host_class(), h, host_field("external_auth_configuration"), api::to_value(config));
  }
  auto r = db.commit(std::move(t));
  if (!r) return fail(std::move(r).error());
  return ok_v;
}

}  // namespace

api::api_result<external_identity> authenticate_external(storage::database& db, const std::string& host,
                                                         const std::string& user, const std::string& password,
                                                         verified_credentials* verified) {
  auto snap = db.snapshot();
  const api::host* h = snap->get<api::host>(host);
  if (!h || h->external_auth_type != "PAM") return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
  auto it = h->external_auth_configuration.find("pam_service");
  std::string service = it != h->external_auth_configuration.end() ? it->second : "login";
  const std::string scope = "pam:" + service;
  if (verified && verified->remembered(scope, user, password)) {
    // The password was checked a moment ago; whether the account may log in is asked anew.
    if (!pam_account_valid(service, user)) return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
  } else {
    if (!pam_accepts(service, user, password)) return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
    if (verified) verified->remember(scope, user, password);
  }

  struct passwd pw, *found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found)
    return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
  std::string sid = "u" + std::to_string(pw.pw_uid);
  snap = db.snapshot();
  std::optional<external_identity> id;
  snap->for_each(storage::schema::get().class_of<api::subject>(), [&](const std::string& ref, const storage::row& r) {
    const auto& s = *static_cast<const api::subject*>(r.record.get());
    if (s.subject_identifier != sid) return true;
    id = external_identity{ref, sid, user, subject_role_level(*snap, s)};
    return false;
  });
  if (!id) return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
  return *id;
}

void register_external_auth_rpcs(dispatcher& d, storage::database& db) {
  namespace m = api::method;
  auto all_hosts = [&db] {
    std::vector<std::string> hosts;
    db.snapshot()->for_each(host_class(), [&](const std::string& ref, const storage::row&) {
      hosts.push_back(ref);
      return true;
    });
    return hosts;
  };
  auto enable = [&db](const std::vector<std::string>& hosts, const string_map& config, const std::string& service,
                      const std::string& type) -> api::status {
    if (type != "PAM") return fail(api::errors::AUTH_UNKNOWN_TYPE(type));
    auto snap = db.snapshot();
    for (const auto& h : hosts)
      if (const api::host* rec = snap->get<api::host>(h); rec && !rec->external_auth_type.empty())
        return fail(api::errors::AUTH_ALREADY_ENABLED(rec->external_auth_type, rec->external_auth_service_name));
    return set_auth(db, hosts, config, service, type);
  };
  // The pool named must be this pool: a bogus ref changes nothing.
  auto known_pool = [&db](const api::ref<api::pool>& pool) -> api::status {
    if (!db.snapshot()->get<api::pool>(pool.opaque)) return fail(api::errors::HANDLE_INVALID("pool", pool.opaque));
    return ok_v;
  };
  add_typed<m::pool_enable_external_auth>(d, [enable, all_hosts, known_pool](call_context&, const api::ref<api::pool>& pool,
                                                                             const string_map& config, const std::string& service_name,
                                                                             const std::string& auth_type) -> api::status {
    if (auto st = known_pool(pool); !st) return st;
    return enable(all_hosts(), config, service_name, auth_type);
  });
  add_typed<m::host_enable_external_auth>(d, [enable](call_context&, const api::ref<api::host>& host, const string_map& config,
                                                      const std::string& service_name, const std::string& auth_type) {
    return enable({host.opaque}, config, service_name, auth_type);
  });
  add_typed<m::pool_disable_external_auth>(d, [&db, all_hosts, known_pool](call_context&, const api::ref<api::pool>& pool,
                                                                           const string_map&) -> api::status {
    if (auto st = known_pool(pool); !st) return st;
    return set_auth(db, all_hosts(), {}, "", "");
  });
  add_typed<m::host_disable_external_auth>(d, [&db](call_context&, const api::ref<api::host>& host, const string_map&) {
    return set_auth(db, {host.opaque}, {}, "", "");
  });
}

}  // namespace xapid::gateway
