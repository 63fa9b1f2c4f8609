#include "gateway/rpc/call_pool.hpp"

#include <algorithm>
#include <system_error>

#include <spdlog/spdlog.h>

#include "common/log_host.hpp"
#include "common/waiting.hpp"

namespace xapid::gateway {

call_pool::call_pool(call_pool_limits limits) : limits_(limits) {}

call_pool::~call_pool() { stop(); }

void call_pool::make_ready(lane& l) {
  if (l.ready || l.jobs.empty() || l.running >= limits_.per_lane_running) return;
  l.ready = true;
  (l.priority ? ready_priority_ : ready_).push_back(&l);
}

bool call_pool::submit(const std::string& name, bool priority, std::function<void()> job) {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  auto& slot = lanes_[name];
  if (!slot) {
    slot = std::make_unique<lane>();
    slot->name = name;
    slot->priority = priority;
  }
  lane& l = *slot;
  if (l.jobs.size() >= limits_.per_lane_queued) return false;
  l.jobs.push_back(std::move(job));
  ++queued_;
  make_ready(l);
  if (l.ready) wake_for(l);  // else it waits for one of its own running calls to end
  return true;
}

void call_pool::wake_for(const lane& l) {
  // An idle thread, else a new one while under the bound.
  if (l.priority && idle_priority_ == 0 && idle_ == 0 && priority_threads_ < limits_.priority_threads)
    start_thread(true);
  else if (idle_ == 0 && (!l.priority || idle_priority_ == 0) && threads_ < limits_.threads)
    start_thread(false);
  cv_.notify_all();
}

class call_pool::lane_waits final : public wait_listener {
 public:
  lane_waits(call_pool& pool, lane& l) : pool_(pool), lane_(l) {}
  void waiting_begins() override { counted_waiting_ = pool_.wait_begins(lane_); }
  void waiting_ends() override {
    if (counted_waiting_) pool_.wait_ends(lane_);
    counted_waiting_ = false;
  }

 private:
  call_pool& pool_;
  lane& lane_;
  bool counted_waiting_ = false;
};

bool call_pool::wait_begins(lane& l) {
  std::lock_guard lock(mu_);
  if (l.waiting >= limits_.per_lane_waiting) return false;
  --l.running;
  ++l.waiting;
  make_ready(l);
  try {
    if (l.ready) wake_for(l);
  } catch (const std::system_error&) {
    // No thread to be had now: the lane waits, ready, for one of those there are.
  }
  return true;
}

void call_pool::wait_ends(lane& l) {
  // Back to work, over the lane's share for a moment if others started meanwhile.
  std::lock_guard lock(mu_);
  --l.waiting;
  ++l.running;
}

void call_pool::start_thread(bool priority_only) {
  // Threads that left are joined here, so their count stays small.
  for (auto id : finished_) {
    auto it = std::find_if(all_threads_.begin(), all_threads_.end(), [&](const std::thread& t) { return t.get_id() == id; });
    if (it != all_threads_.end()) {
      it->join();
      all_threads_.erase(it);
    }
  }
  finished_.clear();
  // Counted once it exists (a thread that cannot be made throws, and changes nothing); it
  // cannot end before this, for its work begins by taking mu_, held here.
  all_threads_.emplace_back(carry_log_host([this, priority_only] { work(priority_only); }));
  ++(priority_only ? priority_threads_ : threads_);
}

call_pool::lane* call_pool::next_lane(bool priority_only) {
  for (auto* list : {&ready_priority_, &ready_}) {
    if (priority_only && list == &ready_) break;
    if (list->empty()) continue;
    lane* l = list->front();
    list->pop_front();
    l->ready = false;
    return l;
  }
  return nullptr;
}

void call_pool::work(bool priority_only) {
  std::unique_lock lock(mu_);
  auto& idle = priority_only ? idle_priority_ : idle_;
  for (;;) {
    lane* l = next_lane(priority_only);
    if (!l) {
      if (stopping_) break;
      ++idle;
      const bool woken = cv_.wait_for(lock, limits_.idle_exit, [&] {
        return stopping_ || !ready_priority_.empty() || (!priority_only && !ready_.empty());
      });
      --idle;
      if (!woken && ready_priority_.empty() && (priority_only || ready_.empty())) break;  // idle too long
      continue;
    }
    auto job = std::move(l->jobs.front());
    l->jobs.pop_front();
    --queued_;
    ++l->running;
    ++running_;
    make_ready(*l);  // its next job, behind the other lanes (round robin)
    lock.unlock();
    lane_waits waits(*this, *l);
    current_wait_listener() = &waits;
    try {
      job();
    } catch (const std::exception& e) {  // a job answers its errors; this is a bug, not a reason to die
      spdlog::error("call_pool.job.failed lane={} error=\"{}\"", l->name, e.what());
    }
    job = nullptr;  // what it holds goes before the lock is taken again
    current_wait_listener() = nullptr;
    lock.lock();
    --l->running;
    --running_;
    make_ready(*l);
    if (l->running == 0 && l->waiting == 0 && l->jobs.empty()) lanes_.erase(l->name);
  }
  --(priority_only ? priority_threads_ : threads_);
  finished_.push_back(std::this_thread::get_id());
}

void call_pool::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && all_threads_.empty()) return;
    stopping_ = true;
    ready_.clear();
    ready_priority_.clear();
    for (auto& [name, l] : lanes_) {
      queued_ -= l->jobs.size();
      l->jobs.clear();
      l->ready = false;
    }
    threads.swap(all_threads_);
    finished_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

call_pool::counts call_pool::current() const {
  std::lock_guard lock(mu_);
  return {threads_ + priority_threads_, running_, queued_, lanes_.size()};
}

}  // namespace xapid::gateway
