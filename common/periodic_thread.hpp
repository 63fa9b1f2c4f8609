// A thread that runs `step` every `period` until it is destroyed (which waits for a step under
// way to end). It carries the log host of the thread that made it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "common/log_host.hpp"

namespace xapid {

class periodic_thread {
 public:
  periodic_thread(std::chrono::milliseconds period, std::function<void()> step) {
    thread_ = std::thread(carry_log_host([this, period, step = std::move(step)] {
      std::unique_lock lock(mu_);
      while (!cv_.wait_for(lock, period, [this] { return stopping_; })) {
        lock.unlock();
        step();
        lock.lock();
      }
    }));
  }
  ~periodic_thread() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  periodic_thread(const periodic_thread&) = delete;
  periodic_thread& operator=(const periodic_thread&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;  // last: it starts once the rest is made
};

}  // namespace xapid
