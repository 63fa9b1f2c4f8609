#include "gateway/sessions.hpp"

#include <algorithm>

#include "gateway/roles.hpp"
#include "xapid/api/rbac.hpp"
#include <vector>

namespace xapid::gateway {

session_manager::session_manager(storage::database& db, clock& clk, std::string this_host, session_limits limits)
    : db_(db), clock_(clk), this_host_(std::move(this_host)), limits_(limits) {}

api::status session_manager::clear_stale() {
  auto snap = db_.snapshot();
  const std::size_t cls = storage::schema::get().class_of<api::session>();
  auto t = db_.begin();
  snap->for_each(cls, [&](const std::string& ref, const storage::row&) {
    t.destroy(cls, ref);
    return true;
  });
  if (t.empty()) return ok_v;
  auto r = db_.commit(std::move(t));
  if (!r) return fail(r.error());
  return ok_v;
}

api::api_result<std::string> session_manager::create_root_session(const std::string& originator) {
  api::session rec;
  rec.is_local_superuser = true;
  rec.originator = originator;
  return create(std::move(rec), 0);
}

api::api_result<std::string> session_manager::create_subject_session(const std::string& originator,
                                                                     const std::string& subject, const std::string& sid,
                                                                     const std::string& user, std::size_t role_level) {
  api::session rec;
  rec.originator = originator;
  rec.subject.opaque = subject;
  rec.auth_user_sid = sid;
  rec.auth_user_name = user;
  // The permissions the session holds, as xapi lists them on the session.
  for (const auto& m : api::all_methods())
    if (role_level <= api::least_role(m)) rec.rbac_permissions.push_back(permission_name(m));
  return create(std::move(rec), role_level);
}

api::api_result<std::string> session_manager::create(api::session rec, std::size_t role_level) {
  const std::int64_t now = clock_.now_ms();
  const std::string originator = rec.originator;
  auto t = db_.begin();
  rec.this_host.opaque = this_host_;
  rec.last_active = api::datetime{now / 1000};
  rec.validation_time = rec.last_active;
  std::string ref = t.create(rec);

  // At most `per_originator` sessions per originator: the least recently used ones go.
  std::vector<std::pair<std::int64_t, std::string>> same;
  {
    std::lock_guard lock(mu_);
    for (const auto& [r, s] : live_)
      if (s.originator == originator) same.emplace_back(s.last_active_ms, r);
  }
  std::sort(same.begin(), same.end());
  const std::size_t cls = storage::schema::get().class_of<api::session>();
  std::size_t excess = same.size() + 1 > limits_.per_originator ? same.size() + 1 - limits_.per_originator : 0;
  for (std::size_t i = 0; i < excess; ++i) t.destroy(cls, same[i].second);

  auto r = db_.commit(std::move(t));
  if (!r) return fail(r.error());
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < excess; ++i) live_.erase(same[i].second);
  live_[ref] = live{now, originator, role_level};
  return ref;
}

api::api_result<std::size_t> session_manager::validate(const std::string& ref) {
  const std::int64_t now = clock_.now_ms();
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(ref);
    if (it != live_.end() && now - it->second.last_active_ms <= limits_.idle_timeout.count() * 1000) {
      it->second.last_active_ms = now;
      return it->second.role_level;
    }
    if (it == live_.end()) return fail(api::errors::SESSION_INVALID(ref));
  }
  (void)destroy(ref);  // idle too long
  return fail(api::errors::SESSION_INVALID(ref));
}

api::status session_manager::destroy(const std::string& ref) {
  {
    std::lock_guard lock(mu_);
    if (live_.erase(ref) == 0) return fail(api::errors::SESSION_INVALID(ref));
  }
  // The session's tasks end with it, as xapi's do.
  auto t = db_.begin();
  if (const api::session* rec = db_.snapshot()->get<api::session>(ref))
    for (const auto& task : rec->tasks) t.destroy(storage::schema::get().class_of<api::task>(), task.opaque);
  t.destroy(storage::schema::get().class_of<api::session>(), ref);
  auto r = db_.commit(std::move(t));
  if (!r) return fail(r.error());
  return ok_v;
}

std::size_t session_manager::expire_idle() {
  const std::int64_t now = clock_.now_ms();
  std::vector<std::string> idle;
  {
    std::lock_guard lock(mu_);
    for (const auto& [ref, s] : live_)
      if (now - s.last_active_ms > limits_.idle_timeout.count() * 1000) idle.push_back(ref);
  }
  std::size_t n = 0;
  for (const auto& ref : idle) n += destroy(ref).ok();
  return n;
}

std::size_t session_manager::count() const {
  std::lock_guard lock(mu_);
  return live_.size();
}

}  // namespace xapid::gateway
