// Tasks of Async calls: a task row is made when the call is accepted and filled in when it
// ends (status, progress, finished, result as the XML-RPC <value> fragment of the return value,
// error_info). Like xapi's, tasks do not outlive the daemon, die with the session that made
// them, and are forgotten a while after they finish.
#pragma once

#include <chrono>
#include <string>

#include "common/clock.hpp"
#include "proto/api/convert.hpp"
#include "proto/wire/codec.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

class task_manager {
 public:
  task_manager(storage::database& db, clock& clk, std::string this_host);

  api::status clear_stale();
  api::api_result<std::string> create(const std::string& session, const std::string& name);
  void complete(const std::string& task, const wire::response& outcome);
  // Forgets tasks finished longer ago than `age`; returns how many.
  std::size_t collect_finished(std::chrono::seconds age);

  // The task.result text of a return value: "" for void, <value>text</value> for a string,
  // else the XML-RPC <value> element.
  static std::string result_text(const wire::value& v);

 private:
  storage::database& db_;
  clock& clock_;
  std::string this_host_;
};

}  // namespace xapid::gateway
