// Tasks of Async calls: a task row is made when the call is accepted and filled in when it
// ends (status, progress, finished, result as the XML-RPC <value> fragment of the return value,
// error_info). Like xapi's, tasks do not outlive the daemon, die with the session that made
// them, and are forgotten a while after they finish.
#pragma once

#include <chrono>
#include <string>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "common/clock.hpp"
#include "gateway/rpc/dispatch.hpp"
#include "proto/api/convert.hpp"
#include "proto/wire/codec.hpp"
#include "storage/database.hpp"

namespace xapid::gateway {

class task_manager {
 public:
  task_manager(storage::database& db, clock& clk, std::string this_host);

  // Removes the tasks this host left in a previous run (other hosts' stay).
  api::status clear_stale();
  // A task of an Async call (`running` = its operation runs now), or a client's own task
  // (task.create), which the client settles or cancels.
  api::api_result<std::string> create(const std::string& session, const std::string& name,
                                      const std::string& description = "", bool running = true);
  // task.cancel: a client's own pending task ends cancelled; a cancellable operation following
  // the task (an export or import) is asked to stop — the task is "cancelling" until it does,
  // then "cancelled"; any other operation in progress is OPERATION_NOT_ALLOWED.
  api::status cancel(const std::string& task);
  // Who made `task`: the user of the session it belongs to (none when that session is gone).
  std::optional<caller> owner_of(const storage::state& s, const std::string& task) const;
  // Whether `who` may cancel, destroy, change or follow `task`, as xapi decides: the same user
  // as its owner, or a role with "task.destroy/any" (pool-operator and above); else
  // RBAC_PERMISSION_DENIED("task.destroy/any", ...). HANDLE_INVALID for no such task.
  api::status check_owner(const std::string& task, const caller& who) const;
  // An operation that can stop part way follows `task`: the flag turns true when it is cancelled.
  std::shared_ptr<std::atomic<bool>> watch_cancel(const std::string& task);
  // An Async task of another host whose operation this host carries out (a call sent on to it):
  // while it runs here it is this host's to cancel, or to refuse to (its row may not have
  // reached this replica yet: nothing of it is read). release forgets it again (its own host
  // completes it).
  void adopt(const std::string& task);
  void release(const std::string& task);
  void complete(const std::string& task, const wire::response& outcome);
  // A long operation's progress, 0 to 1 (written at most every second by its callers).
  void set_progress(const std::string& task, double progress);
  // Forgets tasks finished longer ago than `age`; returns how many.
  std::size_t collect_finished(std::chrono::seconds age);

  // The task.result text of a return value: "" for void, <value>text</value> for a string,
  // else the XML-RPC <value> element.
  static std::string result_text(const wire::value& v);

 private:
  storage::database& db_;
  clock& clock_;
  std::string this_host_;
  std::mutex mu_;
  std::set<std::string> running_;  // tasks whose operation is in progress
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> cancellable_;  // tasks of operations that can stop
};

// task.create, task.cancel, task.destroy, and the owner's rule on the task setters.
void register_task_rpcs(dispatcher& d, task_manager& tasks, storage::database& db);

}  // namespace xapid::gateway
