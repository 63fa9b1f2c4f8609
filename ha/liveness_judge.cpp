#include "ha/liveness_judge.hpp"

#include <algorithm>
#include <charconv>

namespace xapid::ha {

timeout_choice choose_timeout(const std::string* configured, const std::string* pool_default) {
  const std::string* text = configured ? configured : pool_default;
  if (!text) return {std::chrono::seconds(60), {}};
  long long seconds = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), seconds);
  if (ec != std::errc() || end != text->data() + text->size() || seconds < 10 || seconds > 3600) return {std::nullopt, *text};
  return {std::chrono::seconds(seconds), {}};
}

liveness_judge::liveness_judge(std::string self, std::vector<std::string> hosts, ha_timing timing, ha_time now)
    : self_(std::move(self)), hosts_(std::move(hosts)), timing_(timing), renewed_(now) {
  for (const auto& h : hosts_)
    if (h != self_) others_[h].evidence = others_[h].report = now;  // nothing seen yet: the whole T from now
}

void liveness_judge::renewed(ha_time began) { renewed_ = std::max(renewed_, began); }

void liveness_judge::heartbeat(const std::string& host, ha_time sent) {
  auto it = others_.find(host);
  if (it == others_.end()) return;
  it->second.evidence = std::max(it->second.evidence, sent);
  it->second.heartbeat_sent = it->second.heartbeat ? std::max(it->second.heartbeat_sent, sent) : sent;
  it->second.heartbeat = true;
  it->second.heard = it->second.heard_any ? std::max(it->second.heard, sent) : sent;
  it->second.heard_any = true;
  it->second.report = std::max(it->second.report, sent);
}

void liveness_judge::heartbeat_from(const std::string& host, ha_time now) {
  auto it = others_.find(host);
  if (it == others_.end()) return;
  it->second.evidence = std::max(it->second.evidence, now);
  it->second.heard = it->second.heard_any ? std::max(it->second.heard, now) : now;
  it->second.heard_any = true;
}

bool liveness_judge::lease_seen(const std::string& host, std::uint64_t counter, std::uint64_t incarnation, ha_time now,
                                std::optional<ha_time> read_began) {
  auto it = others_.find(host);
  if (it == others_.end()) return false;
  seen& s = it->second;
  // The first read proves nothing (the counter may have stood still for ever); a change does:
  // the owner wrote it after our previous read.
  const bool moved = s.read && (counter != s.counter || incarnation != s.incarnation);
  if (moved) {
    s.evidence = std::max(s.evidence, now);
    s.report = std::max(s.report, now);
  }
  s.read = s.armed = true;
  const ha_time began = read_began.value_or(now);
  if (s.reads.empty() || began - s.reads.back() >= timing_.timeout / 20) {
    s.reads.push_back(began);
    if (s.reads.size() > 64) s.reads.erase(s.reads.begin());
  }
  s.last_read = std::max(s.last_read, began);
  s.counter = counter;
  s.incarnation = incarnation;
  return moved;
}

void liveness_judge::reported(const std::string& reporter, const std::string& host, std::chrono::milliseconds age, ha_time now) {
  auto it = others_.find(host);
  if (it == others_.end() || age.count() < 0 || host == reporter) return;
  it->second.evidence = std::max(it->second.evidence, now - age);
}

void liveness_judge::known_dead(const std::string& host, ha_time now) {
  auto it = others_.find(host);
  if (it == others_.end()) return;
  it->second.evidence = it->second.report = now - timing_.timeout;
  it->second.last_read = now;  // as if read standing still for T
  it->second.known_dead_from = it->second.evidence;
  it->second.armed = true;  // (its next read is a baseline, as any first read)
}

bool liveness_judge::must_fence(ha_time now) const {
  const auto limit = now - timing_.fence_after();
  if (renewed_ > limit) return false;
  // A majority of the pool, this host counted: how many others must have answered lately.
  const std::size_t needed = hosts_.size() / 2;
  std::size_t recent = 0;
  for (const auto& [host, s] : others_)
    if (s.heartbeat && s.heartbeat_sent > limit) ++recent;
  return recent < needed;  // a pool of one is its own majority
}

bool liveness_judge::dead(const std::string& host, ha_time now) const {
  auto it = others_.find(host);
  if (it == others_.end()) return false;
  // A host whose lease was never seen written since HA was enabled never armed: it would not
  // fence itself, so it is never judged dead (enable_ha waits for every host's first renewal).
  if (!it->second.armed) return false;
  if (now - it->second.evidence < timing_.timeout) return false;
  // Standing still for T must have been *read*: this host's own reads may have stalled (a slow
  // statefile holds its renewer, which reads after it writes), and a lease unread is not a lease
  // unrenewed — the whole-pool simulator found a master restarting the VMs of a host that was
  // renewing all along, cut off only from the network.
  if (it->second.last_read - it->second.evidence < timing_.timeout) return false;
  // ... by reads close enough together that no jump of this host's clock counts as silence.
  if (it->second.known_dead_from != it->second.evidence) {
    std::chrono::nanoseconds still{0};
    ha_time previous = it->second.evidence;
    for (const ha_time read : it->second.reads)
      if (read > previous) {
        still += std::min<std::chrono::nanoseconds>(read - previous, timing_.timeout / 5);
        previous = read;
      }
    if (still < timing_.timeout) return false;
  }
  // Silent hosts that are a majority of the pool may be alive among themselves (they reach each
  // other, not this host nor the statefile): they would not fence, so none is judged dead.
  std::size_t silent = 0;
  for (const auto& [other, s] : others_)
    if (now - s.evidence >= timing_.timeout) ++silent;
  if (2 * silent > hosts_.size()) return false;
  // Every other host that is not dead itself must have reported lately: one that has not may
  // have heard `host` meanwhile (a heartbeat is reported from its arrival, up to a heartbeat's
  // timeout after the sender counts it: the window is that much shorter).
  const auto window = timing_.timeout - timing_.fence_after() - timing_.renew_every();
  for (const auto& [other, s] : others_) {
    if (other == host) continue;
    const bool other_dead = now - s.evidence >= timing_.timeout;
    if (!other_dead && now - s.report >= window) return false;
  }
  return true;
}

std::vector<std::pair<std::string, std::chrono::milliseconds>> liveness_judge::heard(ha_time now) const {
  std::vector<std::pair<std::string, std::chrono::milliseconds>> out;
  for (const auto& [host, s] : others_)
    if (s.heard_any && now - s.heard < timing_.timeout)
      out.emplace_back(host, std::chrono::duration_cast<std::chrono::milliseconds>(now - s.heard));
  return out;
}

}  // namespace xapid::ha
