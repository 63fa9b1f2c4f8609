// What the pool's master keeps true: pool.master names it, and the pool keeps 3 voting members of its log (5 once it has 5 hosts; all of
// them while it has fewer than 3); the others are standbys, each a full replica. The master
// promotes a live standby when a vote is missing or a voter's host is dead (host_metrics.live
// false: unheard for --host-dead-seconds, or declared dead), after libraft's catch-up rounds,
// and demotes a voter to standby when there is one too many (a dead one first; a hand-over to a
// standby, a host gone), one change at a time, from a thread of its own; a standby that cannot
// catch up is tried again later. So a pool of four or more that lost a voter for good votes
// with live hosts again, and outlives one more failure. The hand-over of the master's role to another host goes through the keeper too, so
// that its promotion of the new master is never undone half-way by a step.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "common/periodic_thread.hpp"
#include "storage/raft_sequencer.hpp"

namespace xapid::pool {

std::size_t voters_wanted(std::size_t servers);

class voter_keeper {
 public:
  // Holds the log: a promotion under way when the log stops ends then, and the keeper after it.
  // `while_leading` runs at each step on the master first (it makes pool.master follow the log's
  // leader). `has_host` says whether the pool database still has the host of a log member: one
  // whose host row has gone (host.destroy, an eject the master did not finish) leaves the log.
  enum class host_state { gone, dead, live };
  voter_keeper(std::shared_ptr<storage::raft_sequencer> log, std::function<void()> while_leading,
               std::function<host_state(std::uint64_t raft_id)> host_of,
               std::chrono::milliseconds period = std::chrono::milliseconds(250));
  ~voter_keeper();
  voter_keeper(const voter_keeper&) = delete;
  voter_keeper& operator=(const voter_keeper&) = delete;

  // One step, on the master: removes a member whose host has gone, promotes one live standby
  // when live votes are missing, or demotes a voter (never itself; a dead one first) when there
  // are too many. True when it changed the membership.
  bool step();

  // On the master: makes member `id` the master (a voter first, when it is a standby) and
  // returns once this host sees it lead.
  result<void, std::string> hand_over(std::uint64_t id, std::chrono::milliseconds timeout);

  // On the master: member `id` leaves the log after `departure` (its rows' removal, applied by
  // it) succeeds. One of two voters is made a standby first, so that a master that goes between
  // the departure's commit and the member's removal starts again with a log that does not need
  // that member's vote (it would have no majority left); no step comes between.
  api::status see_off(std::uint64_t id, const std::function<api::status()>& departure);

 private:
  std::shared_ptr<storage::raft_sequencer> log_;
  std::function<void()> while_leading_;
  std::function<host_state(std::uint64_t)> host_of_;
  std::map<std::uint64_t, std::chrono::steady_clock::time_point> failed_;  // standby -> when its promotion failed
  std::map<std::uint64_t, std::chrono::steady_clock::time_point> hostless_since_;  // member -> first seen without a host
  static constexpr std::chrono::seconds hostless_grace{30};
  std::mutex step_mu_;  // a step and a hand-over, one at a time
  std::unique_ptr<periodic_thread> thread_;  // last: it steps once the rest is made
};

}  // namespace xapid::pool
