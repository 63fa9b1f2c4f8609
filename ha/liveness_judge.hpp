// One host's judgement of which hosts of an HA pool are alive, and of whether it must fence
// itself — pure bookkeeping over its own monotonic clock, fed by what it observes (a lease's
// counter moving in the statefile, a heartbeat round trip, another host saying it heard one), so
// the daemon and the whole-pool simulator run the same rules.
//
// The rules, with T the pool's timeout (ha_configuration:timeout):
// - A host *fences itself* once, for fence_after (< T), it has neither renewed its own lease
//   (counted from the *start* of its last successful write, which is before any reader can see
//   the new counter) nor exchanged heartbeats with a majority of the pool (itself counted).
// - Another host is *dead* once its lease has been seen written since HA was enabled (it armed),
//   the silent hosts are no majority of the pool (else they may live on among themselves), and,
//   for T on the judge's clock, its lease counter has not moved — as this host's own reads show:
//   its latest read is T or more after the latest evidence (reads that stall prove nothing), and
//   its reads since, each credited with at most T/5 since the one before (twice the renewal
//   interval), add up to T: a forward jump of the judge's own clock — its VM paused, a clock
//   stepped — stands for at most T/5 of the other's silence, so even after two jumps within T
//   the host judged dead was silent for 0.6 T, when it fenced —,
//   no heartbeat with it (either way) was seen, and no host reported having seen one (reports
//   come in the reporters' lease blocks and heartbeat answers, with their age) — and every other
//   host not itself dead has reported lately (within T − fence_after − a heartbeat's timeout), so that no heartbeat the
//   host could count towards its majority went unreported. Every piece of evidence is dated no
//   earlier than the event the host itself counts from (a write's or a heartbeat's start), so a
//   host judged dead had stopped both more than T before, and fenced itself at fence_after.
// - A judge that has just begun (a new master) has seen nothing yet: every host gets the whole T
//   from then on.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace xapid::ha {

using ha_clock = std::chrono::steady_clock;
using ha_time = ha_clock::time_point;

// The pool's timeout and what follows from it (xapi's derivations, in its spirit: renewals and
// heartbeats several times per T, fencing well before T).
struct ha_timing {
  std::chrono::milliseconds timeout{60000};
  std::chrono::milliseconds renew_every() const { return std::max(timeout / 10, std::chrono::milliseconds(100)); }
  std::chrono::milliseconds fence_after() const { return timeout * 6 / 10; }
};

// T from the pool's ha_configuration["timeout"], else its other_config["default_ha_timeout"],
// else 60 s (xapi's order); empty with the offending text when it is not a whole number ≥ 10.
struct timeout_choice {
  std::optional<std::chrono::milliseconds> timeout;
  std::string invalid;  // the value refused
};
timeout_choice choose_timeout(const std::string* configured, const std::string* pool_default);

class liveness_judge {
 public:
  liveness_judge(std::string self, std::vector<std::string> hosts, ha_timing timing, ha_time now);

  // This host wrote its own lease; the write began at `began`.
  void renewed(ha_time began);
  // A heartbeat this host sent to `host` at `sent` came back: evidence, and a report from it.
  void heartbeat(const std::string& host, ha_time sent);
  // `host` sent this host a heartbeat (it arrived at `now`).
  void heartbeat_from(const std::string& host, ha_time now);
  // `host`'s lease block as read now: its counter (and incarnation) moved, or not. True when it
  // moved: the block's list of hosts heard is then a fresh report. `read_began` is when the read
  // was issued (default now): a read that took long shows the block as it was then at the
  // latest, so standing still is counted only up to it.
  bool lease_seen(const std::string& host, std::uint64_t counter, std::uint64_t incarnation, ha_time now,
                  std::optional<ha_time> read_began = std::nullopt);
  // `reporter` says, as of `now`, it saw a heartbeat with `host` `age` before.
  void reported(const std::string& reporter, const std::string& host, std::chrono::milliseconds age, ha_time now);

  // `host` was judged dead before this judge began (by this host before it restarted to recover
  // the pool alone): it is dead from now on until a sign of life.
  void known_dead(const std::string& host, ha_time now);  // (its lease counts as seen)

  bool must_fence(ha_time now) const;
  bool dead(const std::string& host, ha_time now) const;
  // The hosts heard by heartbeat, and how long ago: what this host reports.
  std::vector<std::pair<std::string, std::chrono::milliseconds>> heard(ha_time now) const;
  const std::vector<std::string>& hosts() const { return hosts_; }
  const ha_timing& timing() const { return timing_; }

 private:
  struct seen {
    std::uint64_t counter = 0, incarnation = 0;
    bool read = false;   // a baseline counter is known
    bool armed = false;  // its lease was seen written since HA was enabled (or it was known dead)
    ha_time evidence;        // the latest time it is known to have been alive
    ha_time last_read;       // this host's latest read of its lease
    // When this host's reads of its lease were issued: the latest 64, each at least T/20 after
    // the one kept before (standing still since the evidence is credited from them, at most
    // T/5 a read). Evidence may come dated earlier than reads already made (a report's age).
    std::vector<ha_time> reads;
    std::optional<ha_time> known_dead_from;  // known_dead's evidence: standing still as if read
    ha_time heartbeat_sent;  // the latest of this host's heartbeats to it that came back (sent then)
    bool heartbeat = false;
    ha_time heard;           // the latest heartbeat seen with it, either way
    bool heard_any = false;
    ha_time report;          // the latest report from it
  };
  std::string self_;
  std::vector<std::string> hosts_;
  ha_timing timing_;
  ha_time renewed_;
  std::map<std::string, seen> others_;
};

}  // namespace xapid::ha
