// Sessions: created by login, checked on every call, ended by logout or idleness. Their rows
// live in the database (so session.* getters and get_record work); when each was last used is
// kept in memory, since writing it on every call would cost a synced commit per call. Like
// xapi's, sessions do not outlive the daemon: rows left by a previous run are removed at start.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.hpp"
#include "proto/api/convert.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

struct session_limits {
  std::chrono::seconds idle_timeout{24 * 3600};  // default 24 h without a call
  std::size_t per_originator = 500;              // as xapi: the oldest goes when a new one exceeds this
};

class session_manager {
 public:
  session_manager(storage::database& db, clock& clk, std::string this_host, session_limits limits = {});

  // Removes session rows left by a previous run.
  api::status clear_stale();
  // A new session of the local superuser.
  api::api_result<std::string> create_root_session(const std::string& originator);
  // A new session of an externally authenticated subject.
  api::api_result<std::string> create_subject_session(const std::string& originator, const std::string& subject,
                                                      const std::string& sid, const std::string& user,
                                                      std::size_t role_level);
  // SESSION_INVALID(ref) unless `ref` is a live session; marks it used. Answers the index in
  // api::all_roles() of the session's most powerful role (0 for the local superuser; npos: none).
  api::api_result<std::size_t> validate(const std::string& ref);
  api::status destroy(const std::string& ref);
  // Ends every session idle longer than the timeout; returns how many.
  std::size_t expire_idle();
  std::size_t count() const;
  const std::string& this_host() const noexcept { return this_host_; }

 private:
  struct live {
    std::int64_t last_active_ms;
    std::string originator;
    std::size_t role_level;
  };
  api::api_result<std::string> create(api::session rec, std::size_t role_level);
  storage::database& db_;
  clock& clock_;
  std::string this_host_;
  session_limits limits_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, live> live_;
};

}  // namespace xapid::gateway
