// Sessions: created by login, checked on every call, ended by logout, idleness, revocation or a
// newer session past the cap. Their rows live in the database (so session.* getters and
// get_record work); when each was last used is kept in memory, since writing it on every call
// would cost a synced commit per call. Like xapi's, sessions do not outlive the daemon that made
// them: rows left by a previous run are removed at start.
//
// In a pool a session is the pool's: one made on any host is valid on every host while its row
// is in the pool database. A host that first sees another's session adopts it (a *visiting*
// one); a session whose row has gone (logged out through another host, or ended by its own)
// is invalid everywhere at its next call. The host that made a session keeps its cap and its
// idleness; a visiting one idle here is only forgotten here.
//
// A session's rights are those of its user now, not at login: a subject's session follows the
// subject's roles on every call, and ends when the subject goes or external authentication is
// turned off on this host.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "gateway/rpc/caller.hpp"
#include "proto/api/convert.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

struct session_limits {
  std::chrono::seconds idle_timeout{24 * 3600};  // default 24 h without a call
  // At most this many sessions per user (root: per originator), the least recently used going
  // first: a user can only ever end its own sessions this way.
  std::size_t per_user = 500;
};

class session_manager {
 public:
  session_manager(storage::database& db, clock& clk, std::string this_host, session_limits limits = {});

  // Removes the session rows this host left in a previous run (other hosts' stay).
  api::status clear_stale();
  // A new session of the local superuser.
  api::api_result<std::string> create_root_session(const std::string& originator);
  // A session of the local superuser kept in memory only, with no row and no commit
  // (session.slave_local_login_with_password, as xapi's): it works on a host whose pool has no
  // master — the emergency operations need one there.
  std::string create_local_root_session(const std::string& originator);
  // A new session of an externally authenticated subject (`subject`: its ref).
  api::api_result<std::string> create_subject_session(const std::string& originator, const std::string& subject,
                                                      const std::string& sid, const std::string& user);
  // SESSION_INVALID(ref) unless `ref` is a live session; marks it used and answers its owner
  // with the rights it has now.
  api::api_result<caller> validate(const std::string& ref);
  api::status destroy(const std::string& ref);
  // Ends every session of the pool whose owner matches; returns how many.
  std::size_t destroy_where(const std::function<bool(const std::string& ref, const caller&)>& match);
  // Ends every session idle longer than the timeout, or whose subject's rights are gone;
  // returns how many.
  std::size_t expire_idle();
  std::size_t count() const;
  const std::string& this_host() const noexcept { return this_host_; }
  // Calls `listener` with the ref of every session that ends, however it ends (what others
  // kept for a session goes with it). Set before sessions are made.
  void on_end(std::function<void(const std::string& ref)> listener) { end_listeners_.push_back(std::move(listener)); }

 private:
  struct live {
    std::int64_t last_active_ms;
    std::string originator;
    caller owner;
    std::string subject;  // a subject's session: the subject's ref
    std::string cap{};    // whose cap it counts against (cap_key); none for a visiting one
    bool visiting = false;  // made by another host of the pool: its row is that host's to remove
    bool local_only = false;  // slave-local: in this host's memory only, with no row
  };
  // Another host's session, from its row, to be used here; nothing when there is no such row.
  std::optional<live> adopt(const std::string& ref) const;
  api::api_result<std::string> create(api::session rec, live entry);
  // Takes the least recently used sessions of `cap` out of live_ until one more fits (under mu_).
  std::vector<std::string> make_room(const std::string& cap);
  // The rights of a subject's session now; false when the session must end.
  bool refresh(live& s) const;
  // Ends sessions already taken out of live_: tells the listeners, removes their rows.
  void end(const std::vector<std::string>& refs);
  void notify_end(const std::vector<std::string>& refs);
  // Removes the rows of these sessions and their tasks, in a commit of their own or in `t`.
  void remove_rows(const std::vector<std::string>& refs);
  static void add_removals(storage::transaction& t, const storage::state& snap, const std::vector<std::string>& refs);
  // Takes the sessions `match` picks (under the lock) out of live_ and ends them (visiting ones
  // only when `end_visiting`, else they are forgotten here); how many.
  std::size_t end_where(const std::function<bool(const std::string& ref, live& s)>& match, bool end_visiting);
  static std::string cap_key(const live& s);

  storage::database& db_;
  clock& clock_;
  std::string this_host_;
  session_limits limits_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, live> live_;
  std::vector<std::function<void(const std::string&)>> end_listeners_;
};

}  // namespace xapid::gateway
