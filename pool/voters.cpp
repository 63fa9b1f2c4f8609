#include "pool/voters.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/clock.hpp"

namespace xapid::pool {

std::size_t voters_wanted(std::size_t servers) { return servers >= 5 ? 5 : std::min<std::size_t>(servers, 3); }

voter_keeper::voter_keeper(std::shared_ptr<storage::raft_sequencer> log, std::function<void()> while_leading,
                           std::function<host_state(std::uint64_t)> host_of, std::chrono::milliseconds period)
    : log_(std::move(log)), while_leading_(std::move(while_leading)), host_of_(std::move(host_of)),
      thread_(std::make_unique<periodic_thread>(period, [this] { step(); })) {}

voter_keeper::~voter_keeper() { thread_.reset(); }  // before the members its steps use

bool voter_keeper::step() {
  std::lock_guard one_at_a_time(step_mu_);
  const auto status = log_->status();
  if (status.state != storage::raft_status::role_state::leader) return false;
  if (while_leading_) while_leading_();
  // A spare is a join under way (its rows come next); only a replica whose host has been gone
  // a while leaves (an eject lets its host apply its departure first, then removes it itself).
  const auto now = monotonic_now();
  std::map<std::uint64_t, host_state> hosts;
  for (const auto& s : status.configuration)
    hosts[s.member.id] = s.member.id == status.leader.id || !host_of_ ? host_state::live : host_of_(s.member.id);
  for (const auto& s : status.configuration) {
    if (!status.ready || !host_of_ || s.role == storage::raft_role::spare || s.member.id == status.leader.id ||
        hosts[s.member.id] != host_state::gone) {
      hostless_since_.erase(s.member.id);
      continue;
    }
    auto since = hostless_since_.try_emplace(s.member.id, now).first->second;
    if (now - since < hostless_grace) continue;
    auto removed = log_->remove(s.member.id, std::chrono::seconds(30));
    if (removed) spdlog::info("pool.member.removed raft_id={} address={} reason=host_gone", s.member.id, s.member.address);
    else spdlog::warn("pool.member.not_removed raft_id={} address={} reason=\"{}\"", s.member.id, s.member.address, removed.error());
    return bool(removed);
  }
  std::size_t servers = 0, voters = 0, live_voters = 0;
  for (const auto& s : status.configuration) {
    servers += s.role != storage::raft_role::spare;
    voters += s.role == storage::raft_role::voter;
    live_voters += s.role == storage::raft_role::voter && hosts[s.member.id] == host_state::live;
  }
  if (voters > voters_wanted(servers)) {
    // A dead voter first, else the one with the highest id other than this one: any live one
    // does (each is a full replica).
    const storage::raft_server* surplus = nullptr;
    auto rank = [&](const storage::raft_server& s) { return std::pair(hosts[s.member.id] != host_state::live, s.member.id); };
    for (const auto& s : status.configuration)
      if (s.role == storage::raft_role::voter && s.member.id != status.leader.id && (!surplus || rank(s) > rank(*surplus)))
        surplus = &s;
    if (!surplus) return false;
    auto demoted = log_->assign(surplus->member.id, storage::raft_role::standby, std::chrono::seconds(30));
    if (demoted) spdlog::info("pool.voter.demoted raft_id={} address={}", surplus->member.id, surplus->member.address);
    else spdlog::warn("pool.voter.demotion_failed raft_id={} address={} reason=\"{}\"", surplus->member.id, surplus->member.address, demoted.error());
    return bool(demoted);
  }
  // A vote missing, or held by a dead host: a live standby takes one (the dead voter is demoted
  // at the next step, as one too many). A dead standby is never tried: it cannot catch up.
  if (live_voters >= voters_wanted(servers)) return false;
  for (const auto& s : status.configuration) {
    if (s.role != storage::raft_role::standby || hosts[s.member.id] != host_state::live) continue;
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

result<void, std::string> voter_keeper::hand_over(std::uint64_t id, std::chrono::milliseconds timeout) {
  std::lock_guard one_at_a_time(step_mu_);
  const auto until = monotonic_now() + timeout;
  const auto status = log_->status();
  if (status.state != storage::raft_status::role_state::leader) return fail(std::string("this host is not the pool's master"));
  if (id == status.leader.id) return ok_v;
  auto server = std::find_if(status.configuration.begin(), status.configuration.end(),
                             [id](const storage::raft_server& s) { return s.member.id == id; });
  if (server == status.configuration.end() || server->role == storage::raft_role::spare)
    return fail("member " + std::to_string(id) + " holds no replica of the pool's log");
  if (server->role == storage::raft_role::standby) {
    if (auto promoted = log_->assign(id, storage::raft_role::voter, timeout); !promoted)
      return fail("making it a voter of the pool's log: " + promoted.error());
    spdlog::info("pool.voter.promoted raft_id={} address={} reason=hand_over", id, server->member.address);
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(std::max(until - monotonic_now(), decltype(until - until)::zero()));
  if (auto moved = log_->transfer(id, left); !moved) return fail(moved.error());
  spdlog::info("pool.master.handed_over raft_id={} address={}", id, server->member.address);
  return ok_v;
}

api::status voter_keeper::see_off(std::uint64_t id, const std::function<api::status()>& departure) {
  std::lock_guard one_at_a_time(step_mu_);
  const auto status = log_->status();
  if (status.state != storage::raft_status::role_state::leader)
    return fail(api::errors::INTERNAL_ERROR("this host is no longer the pool's master"));
  auto server = std::find_if(status.configuration.begin(), status.configuration.end(),
                             [id](const storage::raft_server& s) { return s.member.id == id; });
  const bool in_log = server != status.configuration.end();
  // Only with two voters: with three or more, the others are a majority of the log without it
  // (and a voter less for the eject's duration would leave one failure fewer to survive).
  const auto voters = std::count_if(status.configuration.begin(), status.configuration.end(),
                                    [](const storage::raft_server& s) { return s.role == storage::raft_role::voter; });
  if (in_log && server->role == storage::raft_role::voter && voters == 2) {
    if (auto demoted = log_->assign(id, storage::raft_role::standby, std::chrono::seconds(30)); !demoted)
      return fail(api::errors::INTERNAL_ERROR("making the departing host a standby of the pool's log: " + demoted.error()));
    spdlog::info("pool.voter.demoted raft_id={} address={} reason=departure", id, server->member.address);
  }
  // Failing here, it stays a standby, and the next step makes it a voter again if one is missing.
  if (auto gone = departure(); !gone) return gone;
  if (in_log) {
    if (auto removed = log_->remove(id, std::chrono::seconds(30)); !removed)
      spdlog::warn("pool.member.not_removed raft_id={} reason=\"{}\" (a later step removes it: its host has gone)", id, removed.error());
  }
  return ok_v;
}

}  // namespace xapid::pool
