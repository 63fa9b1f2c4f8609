// Events over the storage change feed: event.from (a struct of events, valid_ref_counts and a
// token, as xapi answers, not the seed's set), event.inject, event.get_current_id, and the older
// register/unregister/next. A commit wakes a waiting event.from at once; waiting calls run on
// their own threads (dispatcher::add_blocking), never on an I/O thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/clock.hpp"
#include "gateway/dispatch.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

class event_rpcs {
 public:
  event_rpcs(storage::database& db, clock& clk);
  ~event_rpcs();
  void register_with(dispatcher& d);

  api::api_result<wire::value> from(const caller& who, const wire::array& params);
  api::api_result<wire::value> next(const caller& who, const std::string& session);
  api::api_result<wire::value> inject(const call_context& ctx, const wire::array& params);

 private:
  struct registration;
  bool take_inject_token(const std::string& session);
  std::map<std::string, std::pair<double, std::int64_t>> inject_tokens_;  // by session: tokens, when
  storage::database& db_;
  clock& clock_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<registration>> registrations_;  // by session
};

}  // namespace xapid::gateway
