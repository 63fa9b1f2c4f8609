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
  // SESSION_INVALID(ref) unless `ref` is a live session; marks it used.
  api::status validate(const std::string& ref);
  api::status destroy(const std::string& ref);
  // Ends every session idle longer than the timeout; returns how many.
  std::size_t expire_idle();
  std::size_t count() const;

 private:
  struct live {
    std::int64_t last_active_ms;
    std::string originator;
  };
  storage::database& db_;
  clock& clock_;
  std::string this_host_;
  session_limits limits_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, live> live_;
};

}  // namespace xapid::gateway
