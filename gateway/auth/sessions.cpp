#include "gateway/auth/sessions.hpp"

#include <algorithm>

#include "gateway/auth/roles.hpp"
#include "xapid/api/rbac.hpp"

namespace xapid::gateway {
namespace {

std::size_t session_class() { return storage::schema::get().class_of<api::session>(); }

}  // namespace

session_manager::session_manager(storage::database& db, clock& clk, std::string this_host, session_limits limits)
    : db_(db), clock_(clk), this_host_(std::move(this_host)), limits_(limits) {}

api::status session_manager::clear_stale() {
  auto snap = db_.snapshot();
  auto t = db_.begin();
  // Only this host's: in a pool, the other members' sessions are alive.
  snap->for_each(session_class(), [&](const std::string& ref, const storage::row& r) {
    if (static_cast<const api::session*>(r.record.get())->this_host.opaque == this_host_) t.destroy(session_class(), ref);
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
  return create(std::move(rec), live{0, originator, caller{0, "", true}, {}});
}

api::api_result<std::string> session_manager::create_subject_session(const std::string& originator,
                                                                     const std::string& subject, const std::string& sid,
                                                                     const std::string& user) {
  live entry{0, originator, caller{caller::no_role, sid, false}, subject};
  if (!refresh(entry)) return fail(api::errors::SESSION_AUTHENTICATION_FAILED());
  api::session rec;
  rec.originator = originator;
  rec.subject.opaque = subject;
  rec.auth_user_sid = sid;
  rec.auth_user_name = user;
  // The permissions the session holds at login, as xapi lists them on the session.
  for (const auto& m : api::all_methods())
    if (entry.owner.role <= api::least_role(m)) rec.rbac_permissions.push_back(permission_name(m));
  return create(std::move(rec), std::move(entry));
}

std::string session_manager::cap_key(const live& s) {
  return s.owner.superuser ? "root/" + s.originator : "user/" + s.owner.identity;
}

api::api_result<std::string> session_manager::create(api::session rec, live entry) {
  const std::int64_t now = clock_.now_ms();
  entry.last_active_ms = now;
  auto t = db_.begin();
  rec.this_host.opaque = this_host_;
  rec.last_active = api::datetime{now / 1000};
  rec.validation_time = rec.last_active;
  std::string ref = t.create(rec);

  // Past the cap, the user's least recently used sessions go. They leave live_ here, under the
  // lock, so that two logins at once never pick the same one (the second commit would fail).
  std::vector<std::string> evicted;
  {
    std::lock_guard lock(mu_);
    entry.cap = cap_key(entry);
    evicted = make_room(entry.cap);
    live_[ref] = std::move(entry);  // valid from its commit on; unknown to clients before
  }
  // The evicted sessions go in the login's own commit: one synced write, not two. Should that
  // fail (a task of theirs destroyed meanwhile), the login commits alone and they end after.
  api::api_result<storage::generation> r = fail(api::errors::INTERNAL_ERROR("not committed"));
  if (!evicted.empty()) {
    notify_end(evicted);
    storage::transaction both = t;
    add_removals(both, *db_.snapshot(), evicted);
    r = db_.commit(std::move(both));
    if (r) evicted.clear();
  }
  if (!r) r = db_.commit(std::move(t));
  bool evicted_before_landing = false;
  {
    std::lock_guard lock(mu_);
    if (!r) live_.erase(ref);
    else evicted_before_landing = !live_.contains(ref);
  }
  // Another login evicted this one while its commit was in flight, from a snapshot without its
  // row: the row is removed here, so none outlives its session.
  if (evicted_before_landing) evicted.push_back(ref);
  remove_rows(evicted);  // the evicted have ended, whether this login succeeded or not
  if (!r) return fail(r.error());
  return ref;
}

std::vector<std::string> session_manager::make_room(const std::string& cap) {
  std::vector<std::string> evicted;
  std::vector<std::pair<std::int64_t, const std::string*>> same;  // refs not copied: a login at the cap scans them all
  for (const auto& [r, s] : live_)
    if (s.cap == cap) same.emplace_back(s.last_active_ms, &r);
  if (same.size() + 1 > limits_.per_user) {
    const std::size_t excess = same.size() + 1 - limits_.per_user;
    std::partial_sort(same.begin(), same.begin() + static_cast<std::ptrdiff_t>(excess), same.end());
    for (std::size_t i = 0; i < excess; ++i) evicted.push_back(*same[i].second);
    for (const auto& gone : evicted) live_.erase(gone);
  }
  return evicted;
}

std::string session_manager::create_local_root_session(const std::string& originator) {
  live entry{clock_.now_ms(), originator, caller{0, "", true}, {}};
  entry.cap = "local/" + originator;  // counted apart from root's sessions with rows
  entry.local_only = true;
  const std::string ref = db_.ids().secret_ref();
  std::vector<std::string> evicted;
  {
    std::lock_guard lock(mu_);
    evicted = make_room(entry.cap);
    live_[ref] = std::move(entry);
  }
  notify_end(evicted);  // they have no rows
  return ref;
}

bool session_manager::refresh(live& s) const {
  if (s.owner.superuser) return true;
  auto snap = db_.snapshot();
  const api::subject* subject = snap->get<api::subject>(s.subject);
  const api::host* host = snap->get<api::host>(this_host_);
  if (!subject || !host || host->external_auth_type.empty()) return false;
  s.owner.role = subject_role_level(*snap, *subject);
  return true;
}

std::optional<session_manager::live> session_manager::adopt(const std::string& ref) const {
  auto snap = db_.snapshot();
  const api::session* rec = snap->get<api::session>(ref);
  if (!rec || rec->this_host.opaque == this_host_) return std::nullopt;  // ours are all in live_
  live entry{clock_.now_ms(), rec->originator, caller{0, "", true}, {}, {}, true};
  if (!rec->is_local_superuser) {
    entry.owner = caller{caller::no_role, rec->auth_user_sid, false};
    entry.subject = rec->subject.opaque;
    if (!refresh(entry)) return std::nullopt;
  }
  return entry;
}

api::api_result<caller> session_manager::validate(const std::string& ref) {
  const std::int64_t now = clock_.now_ms();
  // Its row is the session: one removed through another host of the pool has ended.
  const bool has_row = db_.snapshot()->find(session_class(), ref) != nullptr;
  bool visiting = false;
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(ref);
    if (it == live_.end() && has_row) {
      if (auto adopted = adopt(ref)) it = live_.emplace(ref, std::move(*adopted)).first;
    }
    if (it == live_.end()) return fail(api::errors::SESSION_INVALID(ref));
    visiting = it->second.visiting;
    if ((has_row || it->second.local_only) && now - it->second.last_active_ms <= limits_.idle_timeout.count() * 1000 && refresh(it->second)) {
      it->second.last_active_ms = now;
      return it->second.owner;
    }
    live_.erase(it);  // gone, idle too long, or its subject's rights are gone
  }
  if (visiting || !has_row) notify_end({ref});  // (a local-only one has no row to remove)
  else end({ref});
  return fail(api::errors::SESSION_INVALID(ref));
}

api::status session_manager::destroy(const std::string& ref) {
  {
    std::lock_guard lock(mu_);
    // (Another host's session, logged out here: its row goes from here too.)
    if (live_.erase(ref) == 0 && !db_.snapshot()->find(session_class(), ref)) return fail(api::errors::SESSION_INVALID(ref));
  }
  end({ref});
  return ok_v;
}

std::size_t session_manager::destroy_where(const std::function<bool(const std::string&, const caller&)>& match) {
  std::size_t n = end_where([&](const std::string& ref, live& s) { return match(ref, s.owner); }, true);
  // The pool's other sessions, never used here: their rows go as well.
  std::vector<std::string> elsewhere;
  auto snap = db_.snapshot();
  {
    std::lock_guard lock(mu_);
    snap->for_each(session_class(), [&](const std::string& ref, const storage::row& r) {
      const auto& rec = *static_cast<const api::session*>(r.record.get());
      const caller owner = rec.is_local_superuser ? caller{0, "", true} : caller{caller::no_role, rec.auth_user_sid, false};
      if (!live_.contains(ref) && match(ref, owner)) elsewhere.push_back(ref);
      return true;
    });
  }
  end(elsewhere);
  return n + elsewhere.size();
}

std::size_t session_manager::end_where(const std::function<bool(const std::string&, live&)>& match, bool end_visiting) {
  std::vector<std::string> gone, forgotten;  // ended (rows removed); only forgotten here
  {
    std::lock_guard lock(mu_);
    for (auto it = live_.begin(); it != live_.end();) {
      if (match(it->first, it->second)) {
        (it->second.visiting && !end_visiting ? forgotten : gone).push_back(it->first);
        it = live_.erase(it);
      } else {
        ++it;
      }
    }
  }
  end(gone);
  notify_end(forgotten);
  return gone.size() + forgotten.size();
}

void session_manager::end(const std::vector<std::string>& refs) {
  notify_end(refs);
  remove_rows(refs);
}

void session_manager::notify_end(const std::vector<std::string>& refs) {
  for (const auto& ref : refs)
    for (const auto& listener : end_listeners_) listener(ref);
}

void session_manager::add_removals(storage::transaction& t, const storage::state& snap,
                                   const std::vector<std::string>& refs) {
  // The sessions' tasks end with them, as xapi's do.
  for (const auto& ref : refs) {
    const api::session* rec = snap.get<api::session>(ref);
    if (!rec) continue;
    for (const auto& task : rec->tasks)
      if (snap.get<api::task>(task.opaque)) t.destroy(storage::schema::get().class_of<api::task>(), task.opaque);
    t.destroy(session_class(), ref);
  }
}

void session_manager::remove_rows(const std::vector<std::string>& refs) {
  // A row another writer removed meanwhile (a task destroyed by its owner) fails the
  // transaction: it is built again from a newer snapshot.
  for (int attempt = 0; !refs.empty() && attempt < 3; ++attempt) {
    auto t = db_.begin();
    add_removals(t, *db_.snapshot(), refs);
    if (t.empty() || db_.commit(std::move(t)).ok()) return;
  }
}

std::size_t session_manager::expire_idle() {
  const std::int64_t limit_ms = limits_.idle_timeout.count() * 1000;
  const std::int64_t now = clock_.now_ms();
  // (A visiting session idle here may be used elsewhere: only its host ends it.)
  return end_where([&](const std::string&, live& s) { return now - s.last_active_ms > limit_ms || !refresh(s); }, false);
}

std::size_t session_manager::count() const {
  std::lock_guard lock(mu_);
  return live_.size();
}

}  // namespace xapid::gateway
