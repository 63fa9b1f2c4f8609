#include "pool/voters.hpp"

#include <spdlog/spdlog.h>

#include "common/clock.hpp"
#include "common/log_host.hpp"

namespace xapid::pool {

std::size_t voters_wanted(std::size_t servers) { return servers >= 5 ? 5 : std::min<std::size_t>(servers, 3); }

voter_keeper::voter_keeper(std::shared_ptr<storage::raft_sequencer> log, std::function<void()> while_leading,
                           std::chrono::milliseconds period)
    : log_(std::move(log)), while_leading_(std::move(while_leading)), period_(period) {
  thread_ = std::thread(carry_log_host([this] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, period_, [this] { return stopping_; })) {
      lock.unlock();
      step();
      lock.lock();
    }
  }));
}

voter_keeper::~voter_keeper() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool voter_keeper::step() {
  const auto status = log_->status();
  if (status.state != storage::raft_status::role_state::leader) return false;
  if (while_leading_) while_leading_();
  std::size_t servers = 0, voters = 0;
  for (const auto& s : status.configuration) {
    servers += s.role != storage::raft_role::spare;
    voters += s.role == storage::raft_role::voter;
  }
  if (voters >= voters_wanted(servers)) return false;
  const auto now = monotonic_now();
  for (const auto& s : status.configuration) {
    if (s.role != storage::raft_role::standby) continue;
    if (auto f = failed_.find(s.member.id); f != failed_.end() && now - f->second < std::chrono::seconds(30)) continue;
    // libraft catches it up first (rounds of at most 5 s), then appends the change.
    auto promoted = log_->assign(s.member.id, storage::raft_role::voter, std::chrono::seconds(30));
    if (promoted) {
      spdlog::info("pool.voter.promoted raft_id={} address={}", s.member.id, s.member.address);
      failed_.erase(s.member.id);
      return true;
    }
    spdlog::warn("pool.voter.promotion_failed raft_id={} address={} reason=\"{}\"", s.member.id, s.member.address, promoted.error());
    failed_[s.member.id] = now;
    return false;
  }
  return false;
}

}  // namespace xapid::pool
