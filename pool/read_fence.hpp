// A member's calls see every write the pool acknowledged before they came (issue 17: a client
// never reads older state than it wrote, through whichever host it wrote). A call on a host that
// is not the ready master waits until this replica has applied what the master had applied when
// the call arrived: the master's applied index (Ping) is at least every acknowledged write's
// entry, since the master applies an entry before any host acknowledges it. Calls that arrive
// together share one question to the master (one at a time; those that come meanwhile share the
// next). A master that cannot be asked, or a replica that does not catch up within `limit`,
// lets the calls go on what this replica holds (a partitioned member keeps answering reads; its
// writes are refused by the log).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pool/peer_client.hpp"
#include "storage/database.hpp"
#include "storage/raft_sequencer.hpp"

namespace xapid::pool {

class read_fence {
 public:
  read_fence(storage::database& db, std::shared_ptr<storage::raft_sequencer> log, peer_client& peers,
             std::chrono::milliseconds limit = std::chrono::seconds(2));
  ~read_fence();  // the calls still waiting go on at once
  read_fence(const read_fence&) = delete;
  read_fence& operator=(const read_fence&) = delete;

  // Whether a call must wait here: this host is not the master with everything applied.
  bool needed() const noexcept { return !log_->ready(); }
  // Calls `go` once this replica is fresh, from the fence's thread (it must only hand work on).
  void after_fresh(std::function<void()> go);

 private:
  void run();
  // What this replica must reach before the current round's calls go on: the master's applied
  // index (0: nothing known to wait for), or, on a master just elected, its readiness.
  struct wanted {
    std::uint64_t index = 0;
    bool until_ready = false;
  };
  wanted target();

  storage::database& db_;
  std::shared_ptr<storage::raft_sequencer> log_;
  peer_client& peers_;
  std::chrono::milliseconds limit_;
  std::size_t listener_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;  // a call arrived, an entry was applied, or stopping
  std::vector<std::function<void()>> next_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace xapid::pool
