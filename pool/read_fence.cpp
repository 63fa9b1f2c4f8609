#include "pool/read_fence.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/clock.hpp"
#include "common/log_host.hpp"
#include "pool/membership.hpp"

namespace xapid::pool {

read_fence::read_fence(storage::database& db, std::shared_ptr<storage::raft_sequencer> log, peer_client& peers,
                       std::chrono::milliseconds limit)
    : db_(db), log_(std::move(log)), peers_(peers), limit_(limit) {
  listener_ = db_.on_publish([this](storage::generation) {
    { std::lock_guard lock(mu_); }
    cv_.notify_all();
  });
  thread_ = std::thread(carry_log_host([this] { run(); }));
}

read_fence::~read_fence() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  db_.remove_publish_listener(listener_);
}

void read_fence::after_fresh(std::function<void()> go) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      next_.push_back(std::move(go));
      cv_.notify_all();
      return;
    }
  }
  go();
}

read_fence::wanted read_fence::target() {
  const auto st = log_->status();
  if (st.ready || st.leader.id == 0) return {};  // the master itself; or none to ask (an election)
  // This host was just elected: what the last master committed is applied once its barrier is.
  if (st.state == storage::raft_status::role_state::leader) return {0, true};
  const auto master = member_by_raft_id(*db_.snapshot(), st.leader.id);
  if (!master || master->peer_address.empty()) return {};
  auto pong = peers_.ping(master->peer_address, master->fingerprint, limit_);
  if (!pong) {
    spdlog::warn("pool.read_fence.master_unreachable master={} reason=\"{}\" (answering from this replica)",
                 master->peer_address, pong.error().message);
    return {};
  }
  return {pong->applied_index(), false};
}

void read_fence::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !next_.empty(); });
    std::vector<std::function<void()>> round;
    round.swap(next_);
    if (!stopping_) {
      lock.unlock();
      const wanted want = target();
      lock.lock();
      const auto until = monotonic_now() + limit_;
      auto fresh = [&] { return want.until_ready ? log_->ready() : db_.applied_log_index() >= want.index; };
      while (!stopping_ && !fresh()) {
        // (A barrier's apply publishes nothing: a new master's readiness is looked at often.)
        const auto next = want.until_ready ? std::min(until, monotonic_now() + std::chrono::milliseconds(5)) : until;
        if (cv_.wait_until(lock, next) == std::cv_status::timeout && monotonic_now() >= until && !fresh()) {
          spdlog::warn("pool.read_fence.behind applied={} wanted={} (answering from this replica)", db_.applied_log_index(),
                       want.index);
          break;
        }
      }
    }
    lock.unlock();
    for (auto& go : round) go();
    lock.lock();
    if (stopping_ && next_.empty()) return;
  }
}

}  // namespace xapid::pool
