// The actors of one host (C++ Actor Framework): a supervisor and, under it, one actor per object
// with operations (a VM, the host). An object's actor admits an operation only when the object's
// rules allow it beside those in progress, records it in current_operations, lets it run on a
// thread of its own, and retires it; so conflicting operations are refused at once with the
// rules' error, and reads (which go to storage snapshots) never wait for an actor.
// The actors keep nothing that storage does not have: a crashed actor is restarted by the
// supervisor and carries on from the object's row.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "proto/api/convert.hpp"
#include "xapid/api/types.hpp"
#include "storage/database.hpp"

namespace xapid::actors {

// How a class's objects admit operations. `record` is the class's typed record (e.g. api::vm)
// with the operation about to start already in its current_operations when `allowed` is asked.
struct operation_rules {
  std::function<std::optional<api::api_error>(const void* record, const std::string& ref, std::string_view op)> check;
  std::function<wire::value(const void* record, const std::string& ref)> allowed;
};

// The rules of a class whose objects do one operation at a time (SR, VDI, VBD, VIF, host): any
// operation is refused while another is in progress, and nothing is allowed then; otherwise
// `allowed(record)` lists what may start (a vector of the class's operations enum).
template <class R, class Allowed>
operation_rules one_at_a_time(Allowed allowed) {
  return operation_rules{
      [](const void* rec, const std::string& ref, std::string_view) -> std::optional<api::api_error> {
        if (!static_cast<const R*>(rec)->current_operations.empty())
          return api::errors::OTHER_OPERATION_IN_PROGRESS(std::string(R::api_class), ref);
        return std::nullopt;
      },
      [allowed](const void* rec, const std::string&) {
        const R& r = *static_cast<const R*>(rec);
        if (!r.current_operations.empty()) return api::to_value(decltype(allowed(r)){});
        return api::to_value(allowed(r));
      }};
}

class host_actors {
 public:
  explicit host_actors(storage::database& db);
  ~host_actors();  // waits for operations in progress
  host_actors(const host_actors&) = delete;
  host_actors& operator=(const host_actors&) = delete;

  // Gives class `cls` (which has allowed_operations and current_operations) its rules.
  void add_rules(std::size_t cls, operation_rules rules);

  // Runs operation `op` (its wire name, "start") on the object `ref` of class `cls` under the key
  // `task` of current_operations: refused with the rules' error, or admitted and `work` run on
  // the calling thread (a call's own, never an I/O thread); answers once it is retired.
  api::api_result<wire::value> run(std::size_t cls, const std::string& ref, std::string op, std::string task,
                                   std::function<api::api_result<wire::value>()> work);

  // Recomputes the object's allowed_operations (after a change the rules depend on); answers
  // once they are written.
  void refresh(std::size_t cls, const std::string& ref);
  // At start: operations recorded by this host's previous run have no thread any more; clear
  // them and recompute allowed_operations for every object of `cls` whose operations `host`
  // runs (actors/placement.hpp). Other hosts' operations in progress are left alone.
  api::status reset_operations(std::size_t cls, const std::string& host);

  // The keys (current_operations') of the operations this host has admitted and not finished:
  // each is one before its admission is committed, until after its retirement was tried.
  std::vector<std::string> operations_in_flight() const;
  // On the master: clears, from every object that `seen` (a snapshot taken before any host was
  // asked what it carries out) shows with operations, those whose keys are neither in `claimed`
  // (the other hosts' operations_in_flight, asked after `seen`) nor this host's. Such an
  // operation's host died or restarted in it, or its retirement could not be committed (no
  // master, in a failover): nothing will ever retire it. An object changed since `seen` is left
  // for the next sweep. Answers how many operations were cleared.
  std::size_t forget_orphaned_operations(const storage::state& seen, const std::set<std::string>& claimed);

  // Fault injection for tests: the object's actor fails as a bug would make it.
  void crash(std::size_t cls, const std::string& ref);
  // How many actors the supervisor restarted after a failure.
  std::size_t restarts() const noexcept { return restarts_->load(); }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::shared_ptr<std::atomic<std::size_t>> restarts_;
};

}  // namespace xapid::actors
