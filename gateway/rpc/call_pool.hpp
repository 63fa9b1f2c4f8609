// The threads that run calls which may wait or take long (commits, password checks, whole
// tables, Async operations), fairly between clients. Each client is a lane — one user's
// sessions, or one address's calls without a session — with a queue of its own; lanes take
// turns, and no lane runs more than its share at once, so a crowd of one client's calls
// (1,200 wrong logins, a flood of event.from) waits in its own lane while others go on. Lanes
// of the local superuser (root's unix socket and root's sessions) are served first and have
// threads of their own besides, so root's calls and writes get through whatever others do.
// Threads are made as work comes, up to a bound, and leave when idle. A call that waits for its
// commit (common/waiting.hpp) does not count against its lane's share meanwhile: the share is
// of work, and a client's writes in a pool spend most of their time waiting for disks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace xapid::gateway {

struct call_pool_limits {
  std::size_t threads = 64;            // for every lane together
  std::size_t priority_threads = 4;    // besides, only for priority lanes
  std::size_t per_lane_running = 16;   // one lane's calls running at once, but for those waiting for a commit
  std::size_t per_lane_queued = 1024;  // one lane's calls waiting for a thread; more are refused
  std::chrono::seconds idle_exit{30};  // an idle thread leaves after this
  // Besides, one lane's calls waiting for a commit (beyond, a wait counts as running): with the
  // defaults a lane holds at most 48 of the 64 threads, and a busy writer's calls fill the
  // pool's log entries (two such lanes can hold every thread: the others' calls then wait for
  // one to come free, as they did behind four busy lanes before, a commit's time at most).
  std::size_t per_lane_waiting = 32;
};

class call_pool {
 public:
  explicit call_pool(call_pool_limits limits = {});
  ~call_pool();
  call_pool(const call_pool&) = delete;
  call_pool& operator=(const call_pool&) = delete;

  // Queues `job` in `lane`; false when that lane's queue is full or the pool is stopping.
  bool submit(const std::string& lane, bool priority, std::function<void()> job);
  // Runs nothing more (what is queued is dropped) and waits for the jobs running now.
  void stop();

  struct counts {
    std::size_t threads, running, queued, lanes;
  };
  counts current() const;  // how busy the pool is now

 private:
  struct lane {
    std::string name;
    bool priority = false;
    bool ready = false;  // in a ready list
    std::size_t running = 0;
    std::size_t waiting = 0;  // running, but waiting for a commit
    std::deque<std::function<void()>> jobs;
  };
  class lane_waits;
  bool wait_begins(lane& l);  // whether the wait is counted as one
  void wait_ends(lane& l);
  void wake_for(const lane& l);  // a thread for a lane just made ready; with mu_ held
  void work(bool priority_only);
  // A lane with a job it may start now, or nullptr; with mu_ held.
  lane* next_lane(bool priority_only);
  void make_ready(lane& l);  // with mu_ held
  void start_thread(bool priority_only);  // with mu_ held

  call_pool_limits limits_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, std::unique_ptr<lane>> lanes_;
  std::deque<lane*> ready_, ready_priority_;
  std::size_t threads_ = 0, priority_threads_ = 0, idle_ = 0, idle_priority_ = 0, running_ = 0, queued_ = 0;
  std::vector<std::thread> all_threads_;  // joined at stop; finished ones are reaped as threads start
  std::vector<std::thread::id> finished_;
};

}  // namespace xapid::gateway
