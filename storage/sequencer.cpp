#include "storage/sequencer.hpp"

#include "common/log_host.hpp"

namespace xapid::storage {

result<void, std::string> local_sequencer::start(ordered_database db) {
  apply_ = std::move(db.apply);
  thread_ = std::thread(carry_log_host([this] { loop(); }));
  return ok_v;
}

std::uint64_t local_sequencer::enqueue(const std::shared_ptr<proposal>& p) {
  std::uint64_t seq;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return 0;
    seq = ++queued_;
    queue_.emplace_back(seq, p);
  }
  cv_.notify_one();
  return seq;
}

bool local_sequencer::order(const std::shared_ptr<proposal>& p) { return enqueue(p) != 0; }

bool local_sequencer::order_and_wait(const std::shared_ptr<proposal>& p) {
  const std::uint64_t seq = enqueue(p);
  if (seq == 0) return false;
  std::unique_lock lock(applied_mu_);
  applied_cv_.wait(lock, [&] { return applied_ >= seq; });
  return true;
}

void local_sequencer::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void local_sequencer::loop() {
  std::vector<std::shared_ptr<proposal>> batch;
  for (;;) {
    batch.clear();
    std::uint64_t last = 0;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything ordered is applied
      // Installing a checkpoint replaces the whole state, so it goes alone.
      while (!queue_.empty() && batch.size() < max_batch_) {
        const bool install = queue_.front().second->k == proposal::kind::install;
        if (install && !batch.empty()) break;
        last = queue_.front().first;
        batch.push_back(std::move(queue_.front().second));
        queue_.pop_front();
        if (install) break;
      }
    }
    try {
      apply_(batch);
    } catch (const std::exception& e) {
      // Nothing of a batch that threw is acknowledged as done (apply publishes only after its
      // write): every proposal without an outcome fails, and the thread goes on.
      for (const auto& p : batch)
        if (!p->outcome) p->outcome = fail(api::errors::INTERNAL_ERROR(std::string("apply failed: ") + e.what()));
    }
    // The callbacks run before the waiters wake, so a waiter ordered after an asynchronous
    // proposal knows its callback has run.
    for (const auto& p : batch)
      if (p->applied) p->applied(*p);
    {
      std::lock_guard lock(applied_mu_);
      applied_ = last;
    }
    applied_cv_.notify_all();
  }
}

}  // namespace xapid::storage
