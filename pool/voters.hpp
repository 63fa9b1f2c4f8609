// What the pool's master keeps true: pool.master names it, and the pool keeps 3 voting members of its log (5 once it has 5 hosts; all of
// them while it has fewer than 3); the others are standbys, each a full replica. The master
// promotes a standby when a vote is missing (after libraft's catch-up rounds), one at a time,
// from a thread of its own; a standby that cannot catch up is tried again later.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "storage/raft_sequencer.hpp"

namespace xapid::pool {

std::size_t voters_wanted(std::size_t servers);

class voter_keeper {
 public:
  // Holds the log: a promotion under way when the log stops ends then, and the keeper after it.
  // `while_leading` runs at each step on the master first (it makes pool.master follow the log's
  // leader).
  voter_keeper(std::shared_ptr<storage::raft_sequencer> log, std::function<void()> while_leading,
               std::chrono::milliseconds period = std::chrono::milliseconds(250));
  ~voter_keeper();
  voter_keeper(const voter_keeper&) = delete;
  voter_keeper& operator=(const voter_keeper&) = delete;

  // One step, on the master: promotes one standby when votes are missing. True when it did.
  bool step();

 private:
  std::shared_ptr<storage::raft_sequencer> log_;
  std::function<void()> while_leading_;
  std::chrono::milliseconds period_;
  std::map<std::uint64_t, std::chrono::steady_clock::time_point> failed_;  // standby -> when its promotion failed
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace xapid::pool
