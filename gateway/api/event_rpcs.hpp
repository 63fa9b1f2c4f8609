// Events over the storage change feed: event.from (a struct of events, valid_ref_counts and a
// token, as xapi answers, not the seed's set), event.inject, event.get_current_id, and the older
// register/unregister/next. A waiting event.from or event.next holds no thread: it is parked
// until a commit (the database tells at once) or its deadline, then looked at on the call pool,
// and it ends when its client closes the connection. Waiters that would get the same answer
// (same subscription, token and view of the records) are looked at together and share one
// answer, written once per format. Waits are bounded per session, per user and per client
// address (root's are not), beyond which TOO_BUSY answers.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "gateway/rpc/dispatch.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

struct event_limits {
  std::size_t per_session = 64;    // waiting calls of one session
  std::size_t per_user = 1024;     // of one user's sessions together
  std::size_t per_client = 256;    // from one client address
  std::size_t total = 100000;      // in all
};

class event_rpcs {
 public:
  using session_check = std::function<api::api_result<caller>(const std::string& session)>;
  // `check` tells, when a waiting call wakes, whether its session is still valid and its rights.
  event_rpcs(storage::database& db, clock& clk, const dispatcher& d, session_check check, event_limits limits = {});
  ~event_rpcs();
  void register_with(dispatcher& d);
  // Answers every waiting call (the daemon is stopping).
  void stop();
  // Forgets what event.register kept for a session that ended.
  void session_ended(const std::string& session);

  // Calls waiting now (event.from, event.next), for GET /metrics.
  std::size_t waiting();

  api::api_result<std::string> inject(const call_context& ctx, const std::string& cls_name, const std::string& ref);

 private:
  struct registration;
  struct waiter;
  using batch = std::vector<std::shared_ptr<waiter>>;
  void from(call_context& ctx, const wire::array& params, dispatcher::answer done);
  void next(call_context& ctx, dispatcher::answer done);
  void start(const std::shared_ptr<waiter>& w, call_context& ctx);
  void hand_on(batch waiters, bool due);
  void look(const batch& waiters, bool due);
  void answer_alike(const batch& alike, bool due);
  void finish(waiter& w, const api::api_result<wire::value>& answer);
  void park(const std::shared_ptr<waiter>& w, bool look_again);
  bool unpark(const waiter& w);
  void forget(waiter& w);
  void client_gone(const std::shared_ptr<waiter>& w);
  void on_commit(storage::generation g);
  void waker_loop();
  bool take_inject_token(const std::string& user);

  storage::database& db_;
  clock& clock_;
  const dispatcher& dispatcher_;
  session_check check_session_;
  event_limits limits_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, std::unique_ptr<registration>> registrations_;  // by session
  std::map<std::string, std::pair<double, std::int64_t>> inject_tokens_;  // by user: tokens, when
  std::uint64_t next_id_ = 0;
  std::map<std::uint64_t, std::shared_ptr<waiter>> parked_;
  // The parked waiters by what decides their answer (key_of: the cursor first, so the ones a
  // commit wakes come first); each entry is answered together.
  std::map<std::string, std::set<std::uint64_t>> alike_;
  std::multimap<std::int64_t, std::uint64_t> deadlines_;  // deadline (ms) -> waiter
  std::map<std::string, std::size_t> per_session_, per_user_, per_client_;
  storage::generation published_ = 0;  // the newest commit the database told of
  storage::generation handed_ = 0;     // the waiters parked before it were handed on
  std::thread waker_;
  std::size_t publish_listener_ = 0;
};

}  // namespace xapid::gateway
